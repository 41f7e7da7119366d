package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/starling-sfu/starling/clip"
	"github.com/starling-sfu/starling/loadtest"
)

const loadtestUsage = `usage: starling loadtest <publish|subscribe|fanout> [flags]

  publish    WHIP publishers only
  subscribe  WHEP viewers of an existing stream
  fanout     one publisher, N WHEP viewers

Against Starling give --url and --keys (tokens are minted); against any other
WHIP/WHEP server give --whip and --whep (and tokens if it needs them).
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
	audio := fs.Bool("audio", true, "publish Opus audio too")
	layer := fs.String("layer", "", "pin the viewers' layer (q, h, f)")
	duration := fs.Duration("duration", 10*time.Second, "measurement window after everyone joined")
	ramp := fs.Float64("ramp", 20, "viewers joining per second")
	pid := fs.Int("server-pid", 0, "server process to sample CPU and memory of")
	maxLoss := fs.Float64("max-loss", -1, "exit non-zero when loss exceeds this percentage (-1: never)")
	jsonPath := fs.String("json", "", "also write the report as JSON to this file")
	loopback := fs.Bool("loopback", true, "offer loopback ICE candidates (server on this machine)")
	quiet := fs.Bool("quiet", false, "no progress lines")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
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
	var c clip.Codec
	switch strings.ToLower(*codec) {
	case "vp8":
		c = clip.VP8
	case "h264":
		c = clip.H264
	default:
		return fmt.Errorf("loadtest: codec %q is not vp8 or h264", *codec)
	}
	cfg := loadtest.Config{
		Mode: mode, WHIP: *whip, WHEP: *whep, PublishToken: *token, ViewToken: *viewToken,
		Publishers: *pubs, Subscribers: *subs, Codec: c, Simulcast: *simulcast, Audio: *audio, Layer: *layer,
		Duration: *duration, Ramp: *ramp, ServerPID: *pid, MaxLoss: *maxLoss, Loopback: *loopback,
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := loadtest.Run(ctx, cfg)
	if rep != nil {
		rep.WriteTable(stdout)
		if *jsonPath != "" {
			if jerr := rep.WriteJSON(*jsonPath); jerr != nil && err == nil {
				err = jerr
			}
		}
	}
	return err
}
