package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/starling-sfu/starling/clip"
	"github.com/starling-sfu/starling/loadtest"
)

const loadtestUsage = `usage: starling loadtest <publish|subscribe|fanout|chat|hls|room> [flags]

  publish    WHIP publishers only
  subscribe  WHEP viewers of an existing stream
  fanout     one publisher, N WHEP viewers
  chat       N chat clients in one room, --rate messages/s between them
  hls        N LL-HLS viewers (--viewers) of a live stream, like hls.js in
             low-latency mode: latency, stalls, reload and part times
  room       N participants (--participants) in one room over LiveKit's
             signal protocol (/rtc), all publishing camera and microphone
             and subscribed to each other: N×(N−1) subscriptions per kind

Against Starling give --url and --keys (tokens are minted); against any other
WHIP/WHEP server give --whip and --whep (and tokens if it needs them), and
against any other LL-HLS server --hls with its multivariant playlist. The
room mode works against any server of LiveKit's protocol, given --url and
its --keys.
`

func loadtestCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, loadtestUsage)
		return errors.New("loadtest: missing mode")
	}
	mode := args[0]
	fs := flag.NewFlagSet("loadtest "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "", "base URL of a Starling node, e.g. http://127.0.0.1:8080")
	room := fs.String("room", "loadtest", "room to publish to and watch")
	whip := fs.String("whip", "", "WHIP endpoint (default URL/whip/ROOM)")
	whep := fs.String("whep", "", "WHEP endpoint (default URL/whep/ROOM)")
	token := fs.String("token", "", "Bearer token for publishing (default: minted from --keys)")
	viewToken := fs.String("view-token", "", "Bearer token for viewing (default: minted from --keys, or none)")
	keys := fs.String("keys", os.Getenv("STARLING_KEYS"), "Starling API key:secret to mint tokens with (env STARLING_KEYS)")
	subs := fs.Int("subscribers", 20, "WHEP viewers")
	pubs := fs.Int("publishers", 1, "WHIP publishers (publish mode)")
	codec := fs.String("codec", "vp8", "video codec of the clips: vp8 or h264")
	simulcast := fs.Bool("simulcast", true, "publish three simulcast layers")
	keyOnRequest := fs.Bool("keyframe-on-request", false, "publishers answer keyframe requests (PLI) at once, as encoders do; otherwise the clips' keyframes come every second")
	audio := fs.Bool("audio", true, "publish Opus audio too (hls: follow the separate audio rendition too)")
	layer := fs.String("layer", "", "pin the viewers' layer (q, h, f)")
	duration := fs.Duration("duration", 10*time.Second, "measurement window after everyone joined")
	ramp := fs.Float64("ramp", 20, "viewers joining per second (room: participants, default 5)")
	pid := fs.Int("server-pid", 0, "server process to sample CPU and memory of")
	maxLoss := fs.Float64("max-loss", -1, "exit non-zero when loss exceeds this percentage (-1: never)")
	jsonPath := fs.String("json", "", "also write the report as JSON to this file")
	loopback := fs.Bool("loopback", true, "offer loopback ICE candidates (server on this machine)")
	quiet := fs.Bool("quiet", false, "no progress lines")
	clients := fs.Int("clients", 100, "chat clients (chat mode)")
	senders := fs.Int("senders", 0, "chat clients that send (chat mode; 0: all)")
	rate := fs.Float64("rate", 50, "chat messages per second in the room (chat mode)")
	hlsURL := fs.String("hls", "", "multivariant playlist (hls mode; default URL/hls/ROOM/index.m3u8)")
	viewers := fs.Int("viewers", 20, "LL-HLS viewers (hls mode)")
	rendition := fs.String("rendition", "all-round-robin", "hls: each viewer's rendition: all-round-robin, lowest, highest, or a name (e.g. 720p)")
	preloadHint := fs.Bool("preload-hint", false, "hls: also request EXT-X-PRELOAD-HINT parts ahead, as Safari does (hls.js does not)")
	startTimeout := fs.Duration("start-timeout", 20*time.Second, "hls: how long a viewer waits for the stream to start (503s, 404s with Retry-After)")
	maxStalls := fs.Int("max-stalls", -1, "hls: exit non-zero when the viewers stall more than this many times in total (-1: never)")
	participants := fs.Int("participants", 4, "room: participants, each publishing and subscribed to all the others")
	video := fs.Bool("video", true, "room: publish the camera clip")
	adaptiveSize := fs.String("adaptive-size", "", "room: show every subscribed video at WxH (e.g. 320x180), as a grid of tiles: UpdateTrackSettings with that size")
	settle := fs.Duration("settle", 15*time.Second, "room: longest wait, before the window, for every subscription and for the layers forwarded to stop changing")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	var progress io.Writer
	if *whip == "" && *base != "" {
		*whip = strings.TrimRight(*base, "/") + "/whip/" + *room
	}
	if *whep == "" && *base != "" {
		*whep = strings.TrimRight(*base, "/") + "/whep/" + *room
	}
	if *keys != "" && (*token == "" || *viewToken == "") {
		k, secret, ok := strings.Cut(strings.Split(*keys, ",")[0], ":")
		if !ok {
			return fmt.Errorf("loadtest: --keys %q is not key:secret", *keys)
		}
		var err error
		if *token == "" {
			if *token, err = mintToken(k, secret, *room, "loadtest-publisher", "", grants{publish: true, subscribe: true}, 24*time.Hour); err != nil {
				return err
			}
		}
		if *viewToken == "" {
			if *viewToken, err = mintToken(k, secret, *room, "", "", grants{subscribe: true}, 24*time.Hour); err != nil {
				return err
			}
		}
	}
	if !*quiet {
		progress = stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if mode == "hls" {
		if *hlsURL == "" && *base != "" {
			*hlsURL = strings.TrimRight(*base, "/") + "/hls/" + *room + "/index.m3u8"
		}
		if *hlsURL == "" {
			return errors.New("loadtest: hls needs --hls or --url")
		}
		rep, err := loadtest.RunHLS(ctx, loadtest.HLSConfig{
			URL: *hlsURL, Viewers: *viewers, Ramp: *ramp, Duration: *duration, Rendition: *rendition,
			NoAudio: !*audio, PreloadHint: *preloadHint, StartTimeout: *startTimeout, ServerPID: *pid,
			MaxStalls: *maxStalls, Progress: progress,
		})
		if rep == nil {
			return err
		}
		return writeReport(rep, err, stdout, *jsonPath)
	}
	if mode == "chat" {
		cfg := loadtest.ChatConfig{
			Clients: *clients, Senders: *senders, Rate: *rate, Duration: *duration, ServerPID: *pid,
			MaxLoss: *maxLoss, Progress: progress, Ramp: 200,
		}
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "ramp" {
				cfg.Ramp = *ramp
			}
		})
		if *base == "" {
			return errors.New("loadtest: chat needs --url")
		}
		var err error
		if cfg.URL, err = loadtest.ChatURL(*base, *room); err != nil {
			return err
		}
		if *keys != "" {
			k, secret, _ := strings.Cut(strings.Split(*keys, ",")[0], ":")
			cfg.Token = func(identity string) (string, error) {
				return mintToken(k, secret, *room, identity, "", grants{subscribe: true, data: true}, 24*time.Hour)
			}
		}
		rep, err := loadtest.RunChat(ctx, cfg)
		if rep == nil {
			return err
		}
		return writeReport(rep, err, stdout, *jsonPath)
	}
	var c clip.Codec
	switch strings.ToLower(*codec) {
	case "vp8":
		c = clip.VP8
	case "h264":
		c = clip.H264
	default:
		return fmt.Errorf("loadtest: codec %q is not vp8 or h264", *codec)
	}
	if mode == "room" {
		if fs.NArg() > 0 {
			return fmt.Errorf("loadtest: room: unexpected arguments %q (flags go before them)", fs.Args())
		}
		cfg := loadtest.RoomConfig{
			URL: *base, Participants: *participants, Codec: c, NoSimulcast: !*simulcast, NoVideo: !*video,
			NoAudio: !*audio, Duration: *duration, Ramp: 5, Settle: *settle, ServerPID: *pid, MaxLoss: *maxLoss,
			Loopback: *loopback, Progress: progress,
		}
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "ramp" {
				cfg.Ramp = *ramp
			}
		})
		if *base == "" {
			return errors.New("loadtest: room needs --url")
		}
		if *keys == "" {
			return errors.New("loadtest: room needs --keys (key:secret) to mint each participant's token")
		}
		k, secret, _ := strings.Cut(strings.Split(*keys, ",")[0], ":")
		cfg.Token = func(identity string) (string, error) {
			return mintToken(k, secret, *room, identity, "", grants{publish: true, subscribe: true, data: true}, 24*time.Hour)
		}
		if *adaptiveSize != "" {
			var err error
			if cfg.AdaptiveWidth, cfg.AdaptiveHeight, err = parseSize(*adaptiveSize); err != nil {
				return err
			}
		}
		rep, err := loadtest.RunRoom(ctx, cfg)
		if rep == nil {
			return err
		}
		return writeReport(rep, err, stdout, *jsonPath)
	}
	cfg := loadtest.Config{
		Mode: mode, WHIP: *whip, WHEP: *whep, PublishToken: *token, ViewToken: *viewToken,
		Publishers: *pubs, Subscribers: *subs, Codec: c, Simulcast: *simulcast, Audio: *audio, Layer: *layer,
		KeyframeOnRequest: *keyOnRequest,
		Duration:          *duration, Ramp: *ramp, ServerPID: *pid, MaxLoss: *maxLoss, Loopback: *loopback,
	}
	cfg.Progress = progress
	rep, err := loadtest.Run(ctx, cfg)
	if rep == nil {
		return err
	}
	return writeReport(rep, err, stdout, *jsonPath)
}

// parseSize reads a WxH size such as 320x180.
func parseSize(s string) (w, h uint32, err error) {
	ws, hs, ok := strings.Cut(strings.ToLower(s), "x")
	wv, werr := strconv.ParseUint(ws, 10, 32)
	hv, herr := strconv.ParseUint(hs, 10, 32)
	if !ok || werr != nil || herr != nil || wv == 0 || hv == 0 {
		return 0, 0, fmt.Errorf("loadtest: size %q is not WxH, e.g. 320x180", s)
	}
	return uint32(wv), uint32(hv), nil
}

// report is what every load-test mode returns.
type report interface {
	WriteTable(io.Writer)
	WriteJSON(path string) error
}

// writeReport prints rep and writes it as JSON to jsonPath when given; the
// run's error wins over a write error.
func writeReport(rep report, err error, stdout io.Writer, jsonPath string) error {
	rep.WriteTable(stdout)
	if jsonPath != "" {
		if jerr := rep.WriteJSON(jsonPath); jerr != nil && err == nil {
			err = jerr
		}
	}
	return err
}
