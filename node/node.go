// Package node assembles a Starling node from its configuration: the WebRTC
// transport, the SFU, the WHIP/WHEP signaling server, metrics and the web
// pages, behind one HTTP handler. `starling serve` runs one; tests run them
// in-process.
package node

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/starling-sfu/starling/config"
	"github.com/starling-sfu/starling/metrics"
	"github.com/starling-sfu/starling/sfu"
	"github.com/starling-sfu/starling/signaling"
	"github.com/starling-sfu/starling/transport"
	"github.com/starling-sfu/starling/web"
)

// Node is one running Starling server, minus its HTTP listener.
type Node struct {
	Engine    *transport.Engine
	SFU       *sfu.SFU
	Signaling *signaling.Server
	handler   http.Handler
}

// New opens the media sockets and builds the node. cfg must be valid and
// have at least one API key.
func New(cfg config.Config, log *slog.Logger) (*Node, error) {
	if len(cfg.Keys) == 0 {
		return nil, fmt.Errorf("node: no API keys")
	}
	engine, err := transport.New(transport.Config{
		UDPPort:         cfg.RTC.UDPPort,
		TCPPort:         cfg.RTC.TCPPort,
		PublicIPs:       cfg.RTC.PublicIPs,
		Interfaces:      cfg.RTC.Interfaces,
		IncludeLoopback: cfg.RTC.IncludeLoopback,
		Logger:          log,
	})
	if err != nil {
		return nil, err
	}
	n := &Node{Engine: engine}
	n.SFU = sfu.New(sfu.Settings{
		PLIInterval:            cfg.RTC.PLIInterval,
		MaxSubscribersPerTrack: cfg.Limits.MaxSubscribersPerTrack,
		FanoutWorkers:          -1,
		Logger:                 log,
	})
	n.Signaling = signaling.New(signaling.Options{
		SFU:            n.SFU,
		Engine:         engine,
		Verifier:       signaling.NewVerifier(cfg.Keys),
		PublicPlayback: cfg.WHEP.PublicRooms,
		MaxBodyBytes:   cfg.Limits.MaxBodyBytes,
		MaxSessions:    cfg.Limits.MaxSessions,
		ConnectTimeout: cfg.Limits.ConnectTimeout,
		AllowOrigins:   cfg.HTTP.AllowOrigins,
		Logger:         log,
	})

	mux := http.NewServeMux()
	api := n.Signaling.Handler()
	mux.Handle("/whip/", api)
	mux.Handle("/whep/", api)
	mux.Handle("GET /metrics", metrics.Handler(&metrics.Collector{SFU: n.SFU, Signaling: n.Signaling}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.Handle("/", web.Handler())
	n.handler = mux
	return n, nil
}

// Handler serves every HTTP endpoint of the node.
func (n *Node) Handler() http.Handler { return n.handler }

// Drain refuses new sessions and waits, until ctx ends, for live ones to end;
// then it closes the rest.
func (n *Node) Drain(ctx context.Context) { n.Signaling.Drain(ctx) }

// Close ends every session and releases the media sockets.
func (n *Node) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n.Signaling.Drain(ctx)
	return n.Engine.Close()
}
