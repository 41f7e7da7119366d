package chat_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livekit/protocol/auth"
	"github.com/starling-sfu/starling/access"
	"github.com/starling-sfu/starling/chat"
	"github.com/starling-sfu/starling/chat/redisstore"
	"github.com/starling-sfu/starling/chat/redisstore/redistest"
	"github.com/starling-sfu/starling/chat/sqlite"
)

const (
	apiKey    = "APIkey"
	apiSecret = "0123456789abcdef0123456789abcdef"
	// wait bounds every wait for something that should happen promptly.
	wait = 10 * time.Second
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// openSQLite opens a store in path, closed when the test ends.
func openSQLite(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(path, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func tempSQLite(t testing.TB) *sqlite.Store {
	return openSQLite(t, filepath.Join(t.TempDir(), "chat.db"))
}

// openRedis opens a store on url with a key prefix of the test's own.
func openRedis(t testing.TB, url string) *redisstore.Store {
	t.Helper()
	st, err := redisstore.Open(context.Background(), url, redisstore.Options{KeyPrefix: "test:" + t.Name() + ":", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// node is a chat server behind its own HTTP test server.
type node struct {
	srv  *chat.Server
	http *httptest.Server
}

// startNode runs a chat server on st; opts.Store and opts.Verifier are
// filled in, generous limits are the default, and the server is closed
// when the test ends.
func startNode(t testing.TB, st chat.Store, opts chat.Options) *node {
	t.Helper()
	opts.Store = st
	opts.Verifier = access.NewVerifier(map[string]string{apiKey: apiSecret})
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	if opts.Rate == 0 {
		opts.Rate, opts.Burst = 10000, 10000
	}
	n := &node{srv: chat.NewServer(opts)}
	n.http = httptest.NewServer(n.srv.Handler())
	t.Cleanup(n.close)
	return n
}

// close stops the server, as a node shutting down does; it may be called
// more than once.
func (n *node) close() {
	n.srv.Close()
	n.http.Close()
}

func (n *node) wsURL(room string) string {
	return "ws" + strings.TrimPrefix(n.http.URL, "http") + "/chat/" + room
}

// grant describes a test token.
type grant struct {
	room     string
	write    bool
	admin    bool
	validFor time.Duration
}

func token(t testing.TB, identity string, g grant) string {
	t.Helper()
	vg := &auth.VideoGrant{RoomJoin: true, Room: g.room, RoomAdmin: g.admin}
	vg.SetCanPublishData(g.write)
	if g.validFor == 0 {
		g.validFor = time.Hour
	}
	tok, err := auth.NewAccessToken(apiKey, apiSecret).SetIdentity(identity).SetName(strings.ToUpper(identity)).
		SetVideoGrant(vg).SetValidFor(g.validFor).ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// msg is any server message, decoded loosely.
type msg struct {
	Type         string          `json:"type"`
	Identity     string          `json:"identity"`
	CanWrite     bool            `json:"can_write"`
	CanModerate  bool            `json:"can_moderate"`
	Seq          uint64          `json:"seq"`
	Viewers      int             `json:"viewers"`
	SlowMode     int             `json:"slow_mode"`
	Polls        []chat.Poll     `json:"polls"`
	Event        *chat.Event     `json:"event"`
	ClientID     string          `json:"client_id"`
	Duplicate    bool            `json:"duplicate"`
	Poll         json.RawMessage `json:"poll"`
	Code         string          `json:"code"`
	Message      string          `json:"message"`
	RetryAfterMS int64           `json:"retry_after_ms"`
	raw          []byte
}

// pollID is an ack's poll id.
func (m msg) pollID(t testing.TB) string {
	t.Helper()
	var id string
	if err := json.Unmarshal(m.Poll, &id); err != nil {
		t.Fatalf("ack %s: poll is not an id: %v", m.raw, err)
	}
	return id
}

// tally is a tally message's poll.
func (m msg) tally(t testing.TB) chat.Poll {
	t.Helper()
	var p chat.Poll
	if err := json.Unmarshal(m.Poll, &p); err != nil {
		t.Fatalf("tally %s: %v", m.raw, err)
	}
	return p
}

// wsClient is a websocket client whose reader goroutine logs what the
// server sends. Tests read the log in order (next, until) or search it
// (find), so that waiting for one message never loses another.
type wsClient struct {
	t    testing.TB
	conn *websocket.Conn
	done chan struct{}
	err  error // why reading ended; set before done closes
	pos  int   // where next and until read the log

	mu      sync.Mutex
	log     []msg         // guarded by mu
	seqs    []uint64      // seqs of every event received, in order; guarded by mu
	changed chan struct{} // closed when log grows; guarded by mu
}

// dial connects without saying hello.
func dial(t testing.TB, url string) *wsClient {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c := &wsClient{t: t, conn: conn, done: make(chan struct{}), changed: make(chan struct{})}
	t.Cleanup(func() { _ = conn.Close(); <-c.done })
	go c.read()
	return c
}

func (c *wsClient) read() {
	defer close(c.done)
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			c.err = err
			return
		}
		var m msg
		if err := json.Unmarshal(data, &m); err != nil {
			c.err = fmt.Errorf("server sent invalid JSON %q: %w", data, err)
			return
		}
		m.raw = data
		c.mu.Lock()
		c.log = append(c.log, m)
		if m.Type == "event" && m.Event != nil {
			c.seqs = append(c.seqs, m.Event.Seq)
		}
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	}
}

// join dials and says hello with the given fields (token, since,
// history), and reads up to synced; it returns the welcome and the events
// before synced.
func join(t testing.TB, url string, hello map[string]any) (*wsClient, msg, []chat.Event) {
	t.Helper()
	c := dial(t, url)
	hello["type"] = "hello"
	c.send(hello)
	welcome := c.next()
	if welcome.Type != "welcome" {
		t.Fatalf("got %s, want welcome", welcome.raw)
	}
	var backlog []chat.Event
	for {
		m := c.next()
		switch m.Type {
		case "event":
			backlog = append(backlog, *m.Event)
		case "synced":
			return c, welcome, backlog
		case "presence", "tally":
		default:
			t.Fatalf("before synced got %s", m.raw)
		}
	}
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	if err := c.conn.WriteJSON(v); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// await returns the index of the first message at or after from that
// satisfies ok, waiting up to wait for it.
func (c *wsClient) await(from int, ok func(msg) bool) (int, msg, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		for ; from < len(c.log); from++ {
			if ok(c.log[from]) {
				m := c.log[from]
				c.mu.Unlock()
				return from, m, nil
			}
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-c.done:
			c.mu.Lock()
			more := from < len(c.log)
			c.mu.Unlock()
			if !more {
				return from, msg{}, fmt.Errorf("connection ended: %w", c.err)
			}
		case <-deadline.C:
			return from, msg{}, fmt.Errorf("nothing within %v", wait)
		}
	}
}

// next returns the next message in order.
func (c *wsClient) next() msg {
	c.t.Helper()
	return c.until("a message", func(msg) bool { return true })
}

// until returns the next message in order that satisfies ok, passing over
// the others.
func (c *wsClient) until(what string, ok func(msg) bool) msg {
	c.t.Helper()
	i, m, err := c.await(c.pos, ok)
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", what, err)
	}
	c.pos = i + 1
	return m
}

// find returns the first message ever received that satisfies ok, waiting
// for it; it does not move next's place.
func (c *wsClient) find(what string, ok func(msg) bool) msg {
	c.t.Helper()
	_, m, err := c.await(0, ok)
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", what, err)
	}
	return m
}

// reply sends a request with a fresh client_id (unless it has one) and
// returns its ack, error or pong.
func (c *wsClient) reply(req map[string]any) msg {
	c.t.Helper()
	cid, ok := req["client_id"].(string)
	if !ok {
		cid = fmt.Sprintf("r-%d", time.Now().UnixNano())
		req["client_id"] = cid
	}
	c.mu.Lock()
	from := len(c.log)
	c.mu.Unlock()
	c.send(req)
	_, m, err := c.await(from, func(m msg) bool {
		return (m.Type == "ack" || m.Type == "error" || m.Type == "pong") && m.ClientID == cid
	})
	if err != nil {
		c.t.Fatalf("waiting for the reply to %v: %v", req, err)
	}
	return m
}

// ack sends a request and fails unless it is acknowledged (a ping:
// answered).
func (c *wsClient) ack(req map[string]any) msg {
	c.t.Helper()
	m := c.reply(req)
	if m.Type != "ack" && (m.Type != "pong" || req["type"] != "ping") {
		c.t.Fatalf("%v: got %s, want an ack", req, m.raw)
	}
	return m
}

// refused sends a request and fails unless it gets error code.
func (c *wsClient) refused(req map[string]any, code string) msg {
	c.t.Helper()
	m := c.reply(req)
	if m.Type != "error" || m.Code != code {
		c.t.Fatalf("%v: got %s, want error %s", req, m.raw, code)
	}
	return m
}

// event waits for the event with seq.
func (c *wsClient) event(seq uint64) chat.Event {
	c.t.Helper()
	return *c.find(fmt.Sprintf("event %d", seq), func(m msg) bool { return m.Type == "event" && m.Event.Seq == seq }).Event
}

// closed waits for the connection to end and returns its close code (-1 when
// it ended without a close frame).
func (c *wsClient) closed() int {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(wait):
		c.t.Fatalf("connection still open after %v", wait)
	}
	var ce *websocket.CloseError
	if errors.As(c.err, &ce) {
		return ce.Code
	}
	return -1
}

// expectClose waits for the close code and checks that an error message
// with errCode (if not empty) came before it.
func (c *wsClient) expectClose(code int, errCode string) {
	c.t.Helper()
	if got := c.closed(); got != code {
		c.t.Fatalf("closed with %d (%v), want %d", got, c.err, code)
	}
	if errCode == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.log {
		if m.Type == "error" && m.Code == errCode {
			return
		}
	}
	c.t.Fatalf("closed with %d without an error %s first", code, errCode)
}

// received returns the seqs of the events received so far.
func (c *wsClient) received() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]uint64(nil), c.seqs...)
}

// eventually polls cond until it holds, failing after wait.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, wait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startRedis runs a Redis for the test.
func startRedis(t testing.TB) string { return redistest.Start(t) }
