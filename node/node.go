// Package node assembles a Starling node from its configuration: the WebRTC
// transport, the SFU, the WHIP/WHEP signaling server, the TURN server,
// metrics and the web pages, behind one HTTP handler. `starling serve` runs one; tests run them
// in-process.
package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/starling-sfu/starling/access"
	"github.com/starling-sfu/starling/chat"
	"github.com/starling-sfu/starling/chat/redisstore"
	"github.com/starling-sfu/starling/chat/sqlite"
	"github.com/starling-sfu/starling/config"
	hlsbridge "github.com/starling-sfu/starling/hls-bridge"
	"github.com/starling-sfu/starling/hls-bridge/llhls"
	"github.com/starling-sfu/starling/metrics"
	"github.com/starling-sfu/starling/roomapi"
	"github.com/starling-sfu/starling/sfu"
	"github.com/starling-sfu/starling/signaling"
	"github.com/starling-sfu/starling/signaling/rtc"
	"github.com/starling-sfu/starling/transcode"
	"github.com/starling-sfu/starling/transport"
	"github.com/starling-sfu/starling/turn"
	"github.com/starling-sfu/starling/web"
	"github.com/starling-sfu/starling/webhooks"
)

// Node is one running Starling server, minus its HTTP listener.
type Node struct {
	Engine    *transport.Engine
	SFU       *sfu.SFU
	Signaling *signaling.Server
	// Rooms serves LiveKit's room protocol on /rtc.
	Rooms *rtc.Server
	// Webhooks delivers room events to webhook.urls; nil without any.
	Webhooks *webhooks.Notifier
	// TURN is the embedded TURN server; nil when it is off or external TURN
	// servers are configured.
	TURN *turn.Server
	// Chat serves chat and polls; nil when chat.enabled is off.
	Chat *chat.Server
	// HLS runs the LL-HLS ladders and serves /hls/.
	HLS       *hlsbridge.Manager
	chatStore chat.Store
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
	iceServers, err := n.startTURN(cfg, log)
	if err != nil {
		_ = engine.Close()
		return nil, err
	}
	verifier := access.NewVerifier(cfg.Keys)
	if len(cfg.Webhook.URLs) > 0 {
		key, secret, _ := cfg.WebhookKey()
		if n.Webhooks, err = webhooks.New(webhooks.Config{URLs: cfg.Webhook.URLs, APIKey: key, APISecret: secret,
			Timeout: cfg.Webhook.Timeout, Log: log}); err != nil {
			_ = n.Close()
			return nil, err
		}
	}
	var rooms *rtc.Server // set below; the SFU tells it of every room change
	n.SFU = sfu.New(sfu.Settings{
		PLIInterval:            cfg.RTC.PLIInterval,
		MaxSubscribersPerTrack: cfg.Limits.MaxSubscribersPerTrack,
		FanoutWorkers:          -1,
		Logger:                 log,
		OnEvent:                func(ev sfu.Event) { rooms.Observe(ev) },
	})
	rooms = rtc.New(rtc.Options{
		SFU:         n.SFU,
		Engine:      engine,
		Verifier:    verifier,
		ICEServers:  iceServers,
		MaxSessions: cfg.Limits.MaxSessions,
		OnEvent:     n.Webhooks.Notify, // a nil Notifier drops them
		Logger:      log,
	})
	n.Rooms = rooms
	n.Signaling = signaling.New(signaling.Options{
		SFU:            n.SFU,
		Engine:         engine,
		Verifier:       verifier,
		ICEServers:     iceServers,
		PublicPlayback: cfg.WHEP.PublicRooms,
		MaxBodyBytes:   cfg.Limits.MaxBodyBytes,
		MaxSessions:    cfg.Limits.MaxSessions,
		ConnectTimeout: cfg.Limits.ConnectTimeout,
		AllowOrigins:   cfg.HTTP.AllowOrigins,
		Logger:         log,
	})

	if cfg.Chat.Enabled {
		if err := n.startChat(cfg, verifier, log); err != nil {
			_ = n.Close()
			return nil, err
		}
	}

	if err := n.startHLS(cfg, log); err != nil {
		_ = n.Close()
		return nil, err
	}

	mux := http.NewServeMux()
	mux.Handle("/hls/", n.HLS)
	if n.Chat != nil {
		mux.Handle("/chat/", n.Chat.Handler())
	}
	api := n.Signaling.Handler()
	mux.Handle("/whip/", api)
	mux.Handle("/whep/", api)
	mux.Handle("/ice-servers", api)
	mux.Handle("/rtc", n.Rooms.Handler())
	mux.Handle("/rtc/", n.Rooms.Handler())
	mux.Handle("/twirp/", roomapi.New(n.Rooms, verifier, log))
	var more []prometheus.Collector
	if n.TURN != nil {
		more = append(more, &metrics.TURN{Server: n.TURN})
	}
	if n.Chat != nil {
		more = append(more, &metrics.Chat{Stats: n.Chat.Stats()})
	}
	more = append(more, &metrics.HLS{Stats: n.HLS.Stats}, &metrics.Rooms{Server: n.Rooms, Webhooks: n.Webhooks})
	mux.Handle("GET /metrics", metrics.Handler(&metrics.Collector{SFU: n.SFU, Signaling: n.Signaling}, more...))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	player := web.PlayerHandler()
	mux.Handle("GET /player.js", player)
	mux.Handle("GET /player/", player) // hls.js for the widget's LL-HLS fallback, with CORS
	mux.Handle("GET /embed/", player)
	mux.Handle("/", web.Handler())
	n.handler = mux
	return n, nil
}

// startChat opens the chat store (Redis when chat.redis_url is set, else
// SQLite in the data directory) and the chat server.
func (n *Node) startChat(cfg config.Config, verifier *access.Verifier, log *slog.Logger) error {
	c := cfg.Chat
	var err error
	if c.RedisURL != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.chatStore, err = redisstore.Open(ctx, c.RedisURL, redisstore.Options{Logger: log})
		log.Info("chat kept in Redis", "url", redactURL(c.RedisURL))
	} else {
		path := filepath.Join(cfg.DataDir, "chat.db")
		n.chatStore, err = sqlite.Open(path, log)
		log.Info("chat kept in SQLite", "path", path)
	}
	if err != nil {
		return fmt.Errorf("node: chat store: %w", err)
	}
	n.Chat = chat.NewServer(chat.Options{
		Store:         n.chatStore,
		Verifier:      verifier,
		AnonymousRead: c.AnonymousRead,
		History:       c.History,
		MaxText:       c.MaxText,
		Rate:          c.Rate,
		Burst:         c.Burst,
		SendQueue:     c.SendQueue,
		AllowOrigins:  cfg.HTTP.AllowOrigins,
		Logger:        log,
	})
	return nil
}

// startHLS sets up the LL-HLS ladders (hls.*). ffmpeg is probed when the
// first ladder starts, or now in live mode.
func (n *Node) startHLS(cfg config.Config, log *slog.Logger) error {
	h := cfg.HLS
	ladder, err := hlsbridge.ParseLadder(h.Ladder)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.HLS = hlsbridge.New(hlsbridge.Config{
		Mode: h.Mode,
		Transcode: transcode.Config{
			FFmpeg:           h.FFmpeg,
			Backend:          transcode.Backend(h.Backend),
			Ladder:           ladder,
			AudioBitrate:     h.AudioBitrate,
			KeyframeInterval: h.KeyframeInterval,
		},
		Passthrough: h.Passthrough,
		HLS:         llhls.Config{PartTarget: h.PartTarget, SegmentTarget: h.SegmentTarget},
		IdleTimeout: h.IdleTimeout,
		Logger:      log,
	}, n.SFU)
	return nil
}

// redactURL hides a URL's password for logs.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}

// startTURN starts the embedded TURN server, or takes the external TURN
// servers of the configuration, and returns what mints the ICE servers offered
// to clients; nil when TURN is off.
func (n *Node) startTURN(cfg config.Config, log *slog.Logger) (func(identity string) []webrtc.ICEServer, error) {
	tc := cfg.TURN
	if len(tc.ExternalURLs) > 0 {
		is, err := turn.NewIssuer(tc.Secret, tc.TTL, tc.ExternalURLs)
		if err != nil {
			return nil, err
		}
		log.Info("offering external TURN servers", "urls", tc.ExternalURLs)
		return is.ICEServers, nil
	}
	if !tc.Enabled {
		return nil, nil
	}
	secret := tc.Secret
	if secret == "" {
		secret = turn.RandomSecret()
		log.Info("turn.secret not set: generated one for this run; set STARLING_TURN_SECRET for credentials that an external TURN server (coturn static-auth-secret) or a restarted node accept")
	}
	allowed, err := turn.ParseNetworks(tc.AllowedPeerNetworks)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := turnTLS(cfg)
	if err != nil {
		return nil, err
	}
	listen := func(port int) string {
		if port == 0 {
			return ""
		}
		return fmt.Sprintf(":%d", port)
	}
	tlsAddr := ""
	if tlsCfg != nil {
		tlsAddr = listen(tc.TLSPort)
	}
	srv, err := turn.New(turn.Config{
		UDPAddr:                   listen(tc.UDPPort),
		TCPAddr:                   listen(tc.TCPPort),
		TLSAddr:                   tlsAddr,
		TLS:                       tlsCfg,
		RelayIP:                   turnRelayIP(cfg),
		RelayPortMin:              tc.RelayPortMin,
		RelayPortMax:              tc.RelayPortMax,
		Realm:                     tc.Realm,
		Secret:                    secret,
		MaxAllocationsPerIdentity: tc.MaxAllocationsPerIdentity,
		Peers:                     turn.PeerPolicy{AllowLoopback: tc.AllowLoopback, Allowed: allowed, Only: n.ownAddrs(cfg)},
		Logger:                    log,
	})
	if err != nil {
		return nil, err
	}
	is, err := turn.NewIssuer(secret, tc.TTL, srv.URLs(tc.Host))
	if err != nil {
		_ = srv.Close()
		return nil, err
	}
	n.TURN = srv
	return is.ICEServers, nil
}

// ownAddrs are the addresses this node's media is reached at, which is all
// the embedded TURN server relays to unless turn.relay_to_any_public is set.
func (n *Node) ownAddrs(cfg config.Config) []netip.Addr {
	if cfg.TURN.RelayToAnyPublic {
		return nil
	}
	var out []netip.Addr
	add := func(s string) {
		if a, err := netip.ParseAddr(s); err == nil && !a.IsUnspecified() {
			out = append(out, a.Unmap())
		}
	}
	for _, a := range n.Engine.UDPAddrs() {
		if u, ok := a.(*net.UDPAddr); ok {
			add(u.IP.String())
		}
	}
	for _, ip := range cfg.RTC.PublicIPs {
		add(ip)
	}
	if len(out) == 0 {
		// Nothing known (no interfaces?): refuse everything rather than relay anywhere.
		out = append(out, netip.IPv6Unspecified())
	}
	return out
}

// turnRelayIP is turn.public_ip, else the first IPv4 of rtc.public_ips; nil
// lets the TURN server find the host's own.
func turnRelayIP(cfg config.Config) net.IP {
	for _, s := range append([]string{cfg.TURN.PublicIP}, cfg.RTC.PublicIPs...) {
		if ip := net.ParseIP(s).To4(); ip != nil {
			return ip
		}
	}
	return nil
}

// turnTLS loads the TURN certificate (turn.tls_cert, else http.tls_cert);
// nil when there is none or the TLS port is off.
func turnTLS(cfg config.Config) (*tls.Config, error) {
	cert, key := cfg.TURN.TLSCert, cfg.TURN.TLSKey
	if cert == "" {
		cert, key = cfg.HTTP.TLSCert, cfg.HTTP.TLSKey
	}
	if cert == "" || cfg.TURN.TLSPort == 0 {
		return nil, nil
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("turn: tls certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
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
	if n.Signaling != nil {
		n.Signaling.Drain(ctx)
	}
	if n.Rooms != nil {
		n.Rooms.Close()
	}
	if n.Webhooks != nil {
		wctx, cancelHooks := context.WithTimeout(context.Background(), 5*time.Second)
		_ = n.Webhooks.Close(wctx) // delivers what is queued, for a while
		cancelHooks()
	}
	if n.HLS != nil {
		n.HLS.Close()
	}
	if n.Chat != nil {
		n.Chat.Close()
	}
	if n.chatStore != nil {
		_ = n.chatStore.Close()
	}
	if n.TURN != nil {
		_ = n.TURN.Close()
	}
	return n.Engine.Close()
}
