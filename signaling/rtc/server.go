// Package rtc serves LiveKit's room signal protocol on /rtc, so that
// livekit-client and the other LiveKit SDKs join Starling rooms unchanged.
//
// A participant keeps one websocket of livekit.SignalRequest and
// SignalResponse protobufs and two peer connections, as LiveKit's classic
// ("v0", dual peer connection) mode has it: the client offers on its
// publisher connection, and the server offers on the subscriber connection
// every track the participant subscribes to. Media goes through the SFU
// like any other: published tracks become sfu tracks, subscriptions are sfu
// DownTracks. The single peer connection mode of /rtc/v1 is answered with
// 404, on which clients fall back to /rtc.
package rtc

import (
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
	"github.com/starling-sfu/starling/access"
	"github.com/starling-sfu/starling/sfu"
	"github.com/starling-sfu/starling/transport"
)

// ProtocolVersion is the signal protocol version Starling speaks.
const ProtocolVersion = 16

// Options configure the room signaling server.
type Options struct {
	SFU      *sfu.SFU
	Engine   *transport.Engine
	Verifier *access.Verifier
	// ICEServers returns the STUN/TURN servers offered to a participant;
	// nil offers none.
	ICEServers func(identity string) []webrtc.ICEServer
	// Version is the server version told to clients.
	Version string
	NodeID  string
	// MaxParticipants caps a room's participants unless the room was
	// created with its own cap; 0 means no cap.
	MaxParticipants int
	// MaxSessions caps the node's participants; default 1000.
	MaxSessions int
	// ResumeWindow is how long a participant whose websocket dropped stays
	// in the room, waiting for the client to resume; default 15 s.
	ResumeWindow time.Duration
	// PingInterval and PingTimeout are told to clients: how often they
	// ping, and after how long without a pong they reconnect. A session
	// that hears nothing for PingTimeout is treated as disconnected.
	PingInterval, PingTimeout time.Duration
	// MaxMessageBytes bounds a signal message; default 256 KiB.
	MaxMessageBytes int64
	// MessagesPerSecond and MessageBurst bound a participant's signal
	// messages (a token bucket); defaults 50 and 200.
	MessagesPerSecond, MessageBurst float64
	// OnEvent, when set, is told of room, participant and track changes as
	// LiveKit webhook events. It must not block.
	OnEvent func(*livekit.WebhookEvent)
	Logger  *slog.Logger
}

// Server is the /rtc endpoint and the registry of the node's rooms as
// LiveKit clients see them.
type Server struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	rooms    map[string]*room
	sessions map[string]*session // by participant sid
	closed   bool

	events  eventQueue
	done    chan struct{}
	stopped chan struct{}
	metrics Metrics
}

// Metrics counts what the server did.
type Metrics struct {
	Joins, Resumes, Refused atomic.Uint64
	BadMessages             atomic.Uint64 // undecodable, oversized or over the rate
	UnknownMessages         atomic.Uint64 // decodable but not understood
	DataPackets             atomic.Uint64 // forwarded to a participant
}

// New returns a Server. Its events come from the SFU: pass Server.Observe as
// the SFU's OnEvent.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Version == "" {
		o.Version = "0.1.0"
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = 1000
	}
	if o.ResumeWindow <= 0 {
		o.ResumeWindow = 15 * time.Second
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 5 * time.Second
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = 15 * time.Second
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 256 << 10
	}
	if o.MessagesPerSecond <= 0 {
		o.MessagesPerSecond = 50
	}
	if o.MessageBurst <= 0 {
		o.MessageBurst = 200
	}
	s := &Server{
		opts:     o,
		log:      o.Logger.With("component", "rtc"),
		rooms:    map[string]*room{},
		sessions: map[string]*session{},
		done:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	s.events.init()
	go s.run()
	return s
}

// Metrics returns the live counters.
func (s *Server) Metrics() *Metrics { return &s.metrics }

// Participants is how many participants are connected through /rtc.
func (s *Server) Participants() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Handler serves /rtc, /rtc/validate and, with 404s that make clients fall
// back to /rtc, /rtc/v1.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /rtc", s.handleJoin)
	mux.HandleFunc("GET /rtc/validate", s.handleValidate)
	mux.HandleFunc("/rtc/v1", s.handleV1)
	mux.HandleFunc("/rtc/v1/", s.handleV1)
	mux.HandleFunc("/rtc/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
	})
	return mux
}

// handleV1 refuses LiveKit's single peer connection path. livekit-client
// then asks /rtc/v1/validate, reads this 404, and joins on /rtc.
func (s *Server) handleV1(w http.ResponseWriter, _ *http.Request) {
	writeError(w, http.StatusNotFound, "v1 RTC path not found: Starling speaks the /rtc (dual peer connection) protocol")
}

// Close ends every session and stops the server's goroutines.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	sessions := make([]*session, 0, len(s.sessions))
	for _, x := range s.sessions {
		sessions = append(sessions, x)
	}
	s.mu.Unlock()
	for _, x := range sessions {
		x.leave(livekit.DisconnectReason_SERVER_SHUTDOWN, "server shutting down")
	}
	close(s.done)
	<-s.stopped
}

// run is the server's one goroutine of its own: it applies SFU events in
// order and measures speakers and connection quality.
func (s *Server) run() {
	defer close(s.stopped)
	speakers := time.NewTicker(speakerInterval)
	defer speakers.Stop()
	quality := time.NewTicker(qualityInterval)
	defer quality.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-s.events.ready:
			for _, ev := range s.events.take() {
				s.apply(ev)
			}
		case <-speakers.C:
			for _, r := range s.roomList() {
				r.updateSpeakers()
			}
		case now := <-quality.C:
			for _, r := range s.roomList() {
				r.updateQuality()
			}
			s.expireRooms(now)
		}
	}
}

func (s *Server) roomList() []*room {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		out = append(out, r)
	}
	return out
}

func (s *Server) session(sid string) (*session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	x, ok := s.sessions[sid]
	return x, ok
}

// eventQueue holds SFU events until the server's goroutine applies them;
// adding never blocks the SFU.
type eventQueue struct {
	mu    sync.Mutex
	q     []sfu.Event
	ready chan struct{}
}

func (e *eventQueue) init() { e.ready = make(chan struct{}, 1) }

func (e *eventQueue) put(ev sfu.Event) {
	e.mu.Lock()
	e.q = append(e.q, ev)
	e.mu.Unlock()
	select {
	case e.ready <- struct{}{}:
	default:
	}
}

func (e *eventQueue) take() []sfu.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.q
	e.q = nil
	return q
}

// Observe takes an SFU event; pass it as sfu.Settings.OnEvent.
func (s *Server) Observe(ev sfu.Event) { s.events.put(ev) }
