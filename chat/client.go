package chat

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// frame is one message waiting in a client's queue.
type frame struct {
	// seq is the event's seq for log events, 0 for other messages.
	seq uint64
	// pm is a broadcast message, encoded once for every client; data is a
	// message for this client alone.
	pm   *websocket.PreparedMessage
	data []byte
}

// client is one websocket connection. Its handler goroutine reads (hello,
// then requests); one writer goroutine owns every write and the close
// handshake.
type client struct {
	srv  *Server
	conn *websocket.Conn
	room string
	log  *slog.Logger

	// Set at hello, before the client joins its hub; read-only afterwards.
	identity    string
	name        string
	anonymous   bool
	canWrite    bool
	canModerate bool
	hidden      bool
	hub         *hub

	q          chan frame
	start      chan joined // the join the writer starts from, once
	done       chan struct{}
	writerDone chan struct{}

	mu      sync.Mutex
	closing bool   // guarded by mu
	code    int    // close code; 0 sends none (the peer went away); guarded by mu
	reason  string // guarded by mu
	final   []byte // a message written before the close frame; guarded by mu

	badInARow int // the reader's count of consecutive bad frames
}

// joined is where a client's stream starts: the hub's last broadcast seq
// when it registered the client, and what the hello asked for.
type joined struct {
	joinReply
	since   uint64
	resume  bool
	history int
}

func newClient(s *Server, conn *websocket.Conn, room string) *client {
	return &client{
		srv:        s,
		conn:       conn,
		room:       room,
		log:        s.log.With("room", room),
		q:          make(chan frame, s.opts.SendQueue),
		start:      make(chan joined, 1),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
}

// run serves the connection until it ends: hello, join, requests.
func (c *client) run() {
	go c.writeLoop()
	defer c.finish()
	c.conn.SetReadLimit(c.srv.opts.MaxFrame)
	c.conn.SetPongHandler(func(string) error { c.extendRead(); return nil })
	_ = c.conn.SetReadDeadline(time.Now().Add(c.srv.opts.HelloTimeout))

	hello, ok := c.readHello()
	if !ok {
		c.readLoop()
		return
	}
	h := c.srv.acquire(c.room)
	if h == nil {
		c.close(websocket.CloseGoingAway, "server shutting down", nil)
		c.readLoop()
		return
	}
	defer c.srv.release(h)
	c.hub = h
	reply, err := h.join(c)
	switch {
	case err != nil:
		c.close(websocket.CloseInternalServerErr, "chat unavailable", errorFrame(refuse(codeInternal, "the chat store is unavailable; reconnect")))
	case reply.banned:
		c.close(closeBanned, "banned", errorFrame(refuse(codeForbidden, "you are banned from this room")))
	case reply.tokenRequired:
		c.srv.stats.Rejected.Add(1)
		c.close(closeUnauthorized, "hello refused", errorFrame(refuse(codeUnauthorized, "a token is required")))
	default:
		c.log.Debug("chat client joined", "seq", reply.seq)
		j := joined{joinReply: reply, history: c.srv.opts.History}
		if hello.Since != nil {
			j.since, j.resume = *hello.Since, true
		} else if hello.History != nil {
			j.history = min(*hello.History, maxHistory)
		}
		c.start <- j
		defer h.leave(c)
	}
	c.readLoop()
}

// readHello reads and checks the first frame and sets the client's
// identity and rights. On failure the client is closing.
func (c *client) readHello() (*request, bool) {
	_, data, err := c.conn.ReadMessage()
	if err != nil {
		var ne interface{ Timeout() bool }
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			c.close(closeUnauthorized, "no hello", errorFrame(refuse(codeUnauthorized, "no hello within %v", c.srv.opts.HelloTimeout)))
		case errors.Is(err, websocket.ErrReadLimit):
			c.srv.stats.BadFrames.Add(1)
			c.close(0, "", nil) // gorilla has sent 1009
		default:
			c.close(0, "", nil)
		}
		return nil, false
	}
	r, rerr := decode(data, c.srv.opts.MaxText)
	if rerr == nil && r.Type != requestTypeHello {
		rerr = refuse(codeBadRequest, "the first message must be hello")
	}
	if rerr == nil {
		rerr = c.authorize(r.Token)
	}
	if rerr != nil {
		c.srv.stats.Rejected.Add(1)
		c.close(closeUnauthorized, "hello refused", errorFrame(rerr))
		return nil, false
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(pongWait))
	return r, true
}

// authorize sets the client's identity and rights from its token, or makes
// it an anonymous viewer.
func (c *client) authorize(token string) *requestError {
	if token == "" {
		// Whether the room admits anonymous readers is the hub's call: a
		// room may override the server's default.
		c.identity, c.anonymous = "viewer-"+randomHex(8), true
		c.log = c.log.With("identity", c.identity)
		return nil
	}
	g, err := c.srv.verify(token)
	if err != nil {
		return refuse(codeUnauthorized, "%v", err)
	}
	if g.Room != c.room {
		return refuse(codeUnauthorized, "the token is for another room")
	}
	if g.Identity == "" {
		return refuse(codeUnauthorized, "the token has no identity")
	}
	c.identity, c.name = g.Identity, g.Name
	c.canWrite, c.canModerate, c.hidden = g.CanPublishData, g.RoomAdmin, g.Hidden
	c.log = c.log.With("identity", c.identity)
	return nil
}

// readLoop reads requests until the connection fails or, once the client is
// closing, until the peer answers the close frame or closeGrace passes.
func (c *client) readLoop() {
	for {
		mt, data, err := c.conn.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				c.srv.stats.BadFrames.Add(1)
			}
			c.close(0, "", nil)
			return
		}
		if c.isClosing() {
			continue
		}
		c.extendRead()
		if mt != websocket.TextMessage {
			c.badFrame(refuse(codeBadRequest, "binary frames are not understood"))
			continue
		}
		c.serve(data)
	}
}

// extendRead pushes the read deadline back, unless the client is closing
// and the deadline is its close grace.
func (c *client) extendRead() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closing {
		_ = c.conn.SetReadDeadline(time.Now().Add(pongWait))
	}
}

// finish waits for the writer's close handshake, then closes the socket.
func (c *client) finish() {
	c.close(0, "", nil)
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case <-c.writerDone:
	case <-t.C: // stuck writing to a peer that went away
	}
	_ = c.conn.Close()
	<-c.writerDone
	c.log.Debug("chat client left", "code", c.closeCode())
}

// close starts closing the connection with code (0 for none) after final,
// if it is not closing already; it reports whether this call did.
func (c *client) close(code int, reason string, final []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.closing, c.code, c.reason, c.final = true, code, reason, final
	close(c.done)
	return true
}

func (c *client) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

func (c *client) closeCode() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.code
}

// enqueue queues f without waiting; a full queue closes the client as a
// slow consumer.
func (c *client) enqueue(f frame) bool {
	select {
	case c.q <- f:
		return true
	default:
		c.dropSlow()
		return false
	}
}

func (c *client) dropSlow() {
	if c.close(closeSlowConsumer, "slow consumer", nil) {
		c.srv.stats.SlowClientsDropped.Add(1)
		c.log.Debug("chat client too slow")
	}
}

// send queues a message for this client alone.
func (c *client) send(data []byte) { c.enqueue(frame{data: data}) }
