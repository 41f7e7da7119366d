package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/starling-sfu/starling/config"
	hlsbridge "github.com/starling-sfu/starling/hls-bridge"
	"github.com/starling-sfu/starling/hls-bridge/llhls"
	"github.com/starling-sfu/starling/metrics"
	"github.com/starling-sfu/starling/transcode"
)

// hlsBridge runs `starling hls-bridge`: a standalone LL-HLS origin fed by a
// WHEP URL, for a transcoding (GPU) node beside the SFU nodes. It serves
// the ladder at /hls/{name}/index.m3u8, plus /healthz and /metrics.
func hlsBridge(args []string) error {
	fs := flag.NewFlagSet("hls-bridge", flag.ContinueOnError)
	d := config.Default().HLS
	whep := fs.String("whep", "", "WHEP URL to play, e.g. http://sfu:8080/whep/ROOM (required)")
	token := fs.String("token", os.Getenv("STARLING_BRIDGE_TOKEN"), "bearer token for the WHEP server (env STARLING_BRIDGE_TOKEN)")
	addr := fs.String("http-addr", ":8090", "HTTP listen address")
	name := fs.String("name", "live", "the stream's path: /hls/NAME/index.m3u8")
	loopback := fs.Bool("include-loopback", false, "offer loopback ICE candidates (a WHEP server on this host)")
	ffmpeg := fs.String("ffmpeg", d.FFmpeg, "ffmpeg binary")
	backend := fs.String("backend", d.Backend, "encoder: auto, nvenc, nvdec, vaapi, qsv or libx264")
	ladderFlag := fs.String("ladder", "1920x1080:5000,1280x720:2800,854x480:1200,640x360:700", "renditions WIDTHxHEIGHT:KBITS, largest first")
	part := fs.Duration("part-target", d.PartTarget, "LL-HLS part duration")
	segment := fs.Duration("segment-target", d.SegmentTarget, "LL-HLS segment duration (a whole number of parts)")
	keyframes := fs.Duration("keyframe-interval", d.KeyframeInterval, "IDR cadence (a whole number of parts dividing the segment)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *whep == "" {
		fs.Usage()
		return errors.New("hls-bridge: --whep is required")
	}
	hc := config.Default()
	hc.HLS.Backend, hc.HLS.Ladder = *backend, splitList(*ladderFlag)
	hc.HLS.PartTarget, hc.HLS.SegmentTarget, hc.HLS.KeyframeInterval = *part, *segment, *keyframes
	if err := hc.Validate(); err != nil {
		return err
	}
	ladder, err := hlsbridge.ParseLadder(hc.HLS.Ladder)
	if err != nil {
		return err
	}
	log := newLogger(*level)
	slog.SetDefault(log)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := hlsbridge.NewRemote(ctx, hlsbridge.RemoteConfig{
		URL: *whep, Token: *token, IncludeLoopback: *loopback,
		Transcode: transcode.Config{FFmpeg: *ffmpeg, Backend: transcode.Backend(*backend), Ladder: ladder,
			AudioBitrate: hc.HLS.AudioBitrate, KeyframeInterval: *keyframes, Logger: log},
		HLS:    llhls.Config{PartTarget: *part, SegmentTarget: *segment},
		Logger: log,
	})
	if err != nil {
		return fmt.Errorf("hls-bridge: %w", err)
	}
	defer r.Close()

	mux := http.NewServeMux()
	prefix := "/hls/" + *name
	mux.Handle(prefix+"/", http.StripPrefix(prefix, r))
	reg := prometheus.NewRegistry()
	reg.MustRegister(&metrics.HLS{Stats: r.Stats})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("hls-bridge serving", "url", "http://"+*addr+prefix+"/index.m3u8", "whep", *whep, "backend", r.Backend())
	runCtx, cancelRun := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		r.Run(runCtx)
	}()
	defer func() {
		cancelRun()
		<-ran
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("hls-bridge: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
