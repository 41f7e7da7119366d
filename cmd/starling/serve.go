package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/starling-sfu/starling/config"
	"github.com/starling-sfu/starling/node"
)

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel)
	slog.SetDefault(log)

	devKey := ""
	if len(cfg.Keys) == 0 {
		devKey, cfg.Keys = devKeys()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}

	n, err := node.New(cfg, log)
	if err != nil {
		return err
	}
	defer n.Close()

	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	srv := &http.Server{
		Handler:           n.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	tls := cfg.HTTP.TLSCert != ""
	log.Info("starling listening", "version", version, "http", ln.Addr().String(), "tls", tls,
		"udp", fmt.Sprint(n.Engine.UDPAddrs()), "ice_tcp", fmt.Sprint(n.Engine.TCPAddr()))
	printWelcome(cfg, ln.Addr(), devKey)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() {
		if tls {
			errc <- srv.ServeTLS(ln, cfg.HTTP.TLSCert, cfg.HTTP.TLSKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	stop() // a second signal ends the process at once
	log.Info("shutting down: draining sessions", "timeout", cfg.Limits.DrainTimeout.String())
	drainCtx, cancel := context.WithTimeout(context.Background(), cfg.Limits.DrainTimeout)
	defer cancel()
	n.Drain(drainCtx)
	shutCtx, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("http shutdown", "err", err)
	}
	log.Info("stopped")
	return nil
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// devKeys makes a random API key pair for a node started with no keys.
func devKeys() (string, map[string]string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	key := "dev" + base64.RawURLEncoding.EncodeToString(b[:4])
	return key, map[string]string{key: base64.RawURLEncoding.EncodeToString(b[4:])}
}

// printWelcome tells a person how to publish and watch: the dev key pair
// when one was generated, and a ready WHIP URL with a publish token.
func printWelcome(cfg config.Config, addr net.Addr, devKey string) {
	base := cfg.HTTP.PublicURL
	if base == "" {
		host := addr.String()
		if h, p, err := net.SplitHostPort(host); err == nil && (h == "::" || h == "0.0.0.0" || h == "") {
			host = net.JoinHostPort("localhost", p)
		}
		scheme := "http"
		if cfg.HTTP.TLSCert != "" {
			scheme = "https"
		}
		base = scheme + "://" + host
	}
	base = strings.TrimRight(base, "/")
	var b strings.Builder
	if devKey != "" {
		fmt.Fprintf(&b, "\nNo API keys configured; generated a development key pair for this run:\n")
		fmt.Fprintf(&b, "  STARLING_KEYS=%s:%s\n", devKey, cfg.Keys[devKey])
	}
	key := devKey
	if key == "" {
		for k := range cfg.Keys {
			key = k
			break
		}
	}
	if tok, err := mintToken(key, cfg.Keys[key], "demo", "obs", "", grants{publish: true, subscribe: true, data: true}, 24*time.Hour); err == nil {
		fmt.Fprintf(&b, "\nPublish to room \"demo\" (OBS: Settings > Stream > Service WHIP):\n")
		fmt.Fprintf(&b, "  WHIP URL:     %s/whip/demo\n", base)
		fmt.Fprintf(&b, "  Bearer token: %s\n", tok)
		fmt.Fprintf(&b, "  Browser:      %s/publish?room=demo&token=%s\n", base, tok)
		fmt.Fprintf(&b, "Watch:          %s/watch?room=demo   (WHEP: %s/whep/demo)\n", base, base)
	}
	fmt.Fprintf(&b, "Join the room \"demo\" from browsers (each person needs a token of their own identity):\n")
	for _, who := range []string{"alice", "bob"} {
		if tok, err := mintToken(key, cfg.Keys[key], "demo", who, who, grants{publish: true, subscribe: true, data: true}, 24*time.Hour); err == nil {
			fmt.Fprintf(&b, "  %-13s %s/room?room=demo&token=%s\n", who+":", base, tok)
		}
	}
	b.WriteString("\n")
	fmt.Fprint(os.Stdout, b.String())
}
