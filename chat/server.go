package chat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/starling-sfu/starling/access"
)

// Options configure a Server. Zero values take the defaults noted.
type Options struct {
	Store    Store
	Verifier *access.Verifier
	// AnonymousRead lets a hello without a token in as a read-only viewer.
	AnonymousRead bool
	// History is how many events a hello without since gets (default 50);
	// a hello may ask for up to 500.
	History int
	// MaxText is the most characters (runes) in a message (default 1000).
	MaxText int
	// Rate and Burst are the token bucket of each identity's messages,
	// reactions and votes on this node (default 2/s, burst 10).
	Rate  float64
	Burst int
	// SendQueue is how many messages may wait for a slow client before it
	// is closed with 4008 (default 256).
	SendQueue int
	// MaxFrame is the largest frame a client may send (default 16 KiB);
	// bigger ones close the connection with 1009.
	MaxFrame int64
	// HelloTimeout is how long a client has to send hello (default 10s).
	HelloTimeout time.Duration
	// AllowOrigins lists the origins whose pages may connect, "*" for any;
	// requests without an Origin and same-origin requests always may.
	AllowOrigins []string
	// Node names this node in presence records (random when empty).
	Node   string
	Logger *slog.Logger
}

// Stats are the server's counters, for /metrics.
type Stats struct {
	MessagesIn         atomic.Uint64 // client requests accepted
	MessagesOut        atomic.Uint64 // frames written to clients
	Clients            atomic.Int64  // connected websocket clients
	SlowClientsDropped atomic.Uint64 // clients closed with 4008
	Votes              atomic.Uint64 // votes accepted
	Rejected           atomic.Uint64 // well-formed requests refused with an error
	BadFrames          atomic.Uint64 // frames that are not a valid request
}

// Timings of the websocket connections.
const (
	writeWait    = 10 * time.Second // the longest one write may take
	pingPeriod   = 25 * time.Second
	pongWait     = 60 * time.Second // read deadline, renewed by every frame and pong
	closeGrace   = time.Second      // how long a closing peer has to answer our close frame
	storeTimeout = 5 * time.Second
)

// Server serves chat rooms over websockets. Each room with clients on this
// node has one hub that relays the room's log from the store to them.
type Server struct {
	opts     Options
	log      *slog.Logger
	stats    Stats
	upgrader websocket.Upgrader
	// ctx ends when the server closes; store calls and hubs derive from it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // connection handlers and hubs

	mu      sync.Mutex
	rooms   map[string]*hub      // guarded by mu
	clients map[*client]struct{} // guarded by mu
	closed  bool                 // guarded by mu
}

// NewServer returns a Server for opts; opts.Store is required.
func NewServer(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.History <= 0 {
		opts.History = 50
	}
	opts.History = min(opts.History, maxHistory)
	if opts.MaxText <= 0 {
		opts.MaxText = defaultMaxText
	}
	if opts.Rate <= 0 || math.IsNaN(opts.Rate) || math.IsInf(opts.Rate, 0) {
		opts.Rate = 2
	}
	if opts.Burst <= 0 {
		opts.Burst = 10
	}
	if opts.SendQueue <= 0 {
		opts.SendQueue = 256
	}
	if opts.MaxFrame <= 0 {
		opts.MaxFrame = 16 << 10
	}
	if opts.HelloTimeout <= 0 {
		opts.HelloTimeout = 10 * time.Second
	}
	if opts.Node == "" {
		opts.Node = randomHex(8)
	}
	s := &Server{
		opts:    opts,
		log:     opts.Logger,
		rooms:   make(map[string]*hub),
		clients: make(map[*client]struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   1024,
		WriteBufferSize:  4096,
		// Idle connections hold no write buffer; broadcasts are prepared
		// messages that need none.
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     s.checkOrigin,
		Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
			writeJSON(w, status, map[string]string{"error": reason.Error()})
		},
	}
	return s
}

// Stats returns the live counters.
func (s *Server) Stats() *Stats { return &s.stats }

// Handler serves GET /chat/{room} (the websocket) and GET
// /chat/{room}/polls[/{id}]; mount it at "/chat/".
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /chat/{room}", s.serveWebsocket)
	mux.HandleFunc("GET /chat/{room}/polls", s.servePolls)
	mux.HandleFunc("GET /chat/{room}/polls/{id}", s.servePoll)
	mux.HandleFunc("OPTIONS /chat/{room}/polls", s.serveOptions)
	mux.HandleFunc("OPTIONS /chat/{room}/polls/{id}", s.serveOptions)
	mux.HandleFunc("/chat/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
	})
	return mux
}

// Close closes every client with 1001, stops every room hub and waits for
// all of the server's goroutines.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for c := range s.clients {
		c.close(websocket.CloseGoingAway, "server shutting down", nil)
	}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

func (s *Server) serveWebsocket(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if !validRoom(room) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid room name"})
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		writeJSON(w, http.StatusUpgradeRequired, map[string]string{"error": "a websocket upgrade is required"})
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "server shutting down"})
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.log.Debug("chat upgrade failed", "room", room, "remote", r.RemoteAddr, "err", err)
		return // the upgrader has answered
	}
	c := newClient(s, conn, room)
	if !s.track(c) {
		c.close(websocket.CloseGoingAway, "server shutting down", nil)
	}
	s.stats.Clients.Add(1)
	defer s.stats.Clients.Add(-1)
	defer s.untrack(c)
	c.run()
}

// track registers c for Close; false when the server is closing.
func (s *Server) track(c *client) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[c] = struct{}{}
	return !s.closed
}

func (s *Server) untrack(c *client) {
	s.mu.Lock()
	delete(s.clients, c)
	s.mu.Unlock()
}

// acquire returns room's hub, starting one if the room has none running,
// and counts the caller as one of its users; nil when the server is closed.
func (s *Server) acquire(room string) *hub {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	h := s.rooms[room]
	if h == nil || h.stopped || h.exited {
		h = newHub(s, room, h)
		s.rooms[room] = h
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			h.run()
		}()
	}
	h.refs++
	return h
}

// release undoes acquire; the last user out stops the hub.
func (s *Server) release(h *hub) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h.refs--
	if h.refs > 0 {
		return
	}
	h.stopped = true
	h.cancel()
	if h.exited && s.rooms[h.room] == h {
		delete(s.rooms, h.room)
	}
}

// exited is called by a hub whose run ends.
func (s *Server) exited(h *hub) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h.exited = true
	if h.refs == 0 && s.rooms[h.room] == h {
		delete(s.rooms, h.room)
	}
}

func validRoom(room string) bool { return access.ValidName(room) }

func randomHex(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// verify checks an access token.
func (s *Server) verify(token string) (access.Grant, error) {
	if s.opts.Verifier == nil {
		return access.Grant{}, fmt.Errorf("%w: no API keys are configured", access.ErrInvalid)
	}
	return s.opts.Verifier.Verify(token)
}
