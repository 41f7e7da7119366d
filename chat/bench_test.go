package chat

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// discardConn is a connection that swallows writes and never has anything
// to read, so a benchmark measures the server's side alone.
type discardConn struct {
	net.Conn // nil: only what the websocket uses is implemented
	closed   chan struct{}
}

func (c *discardConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *discardConn) Read([]byte) (int, error)    { <-c.closed; return 0, io.EOF }
func (c *discardConn) Close() error                { return nil }
func (c *discardConn) LocalAddr() net.Addr         { return &net.TCPAddr{} }
func (c *discardConn) RemoteAddr() net.Addr        { return &net.TCPAddr{} }
func (c *discardConn) SetDeadline(time.Time) error { return nil }
func (c *discardConn) SetReadDeadline(time.Time) error {
	return nil
}
func (c *discardConn) SetWriteDeadline(time.Time) error { return nil }

// hijacker lets the upgrader take a discardConn.
type hijacker struct {
	*httptest.ResponseRecorder
	conn *discardConn
}

func (h hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.conn, bufio.NewReadWriter(bufio.NewReader(h.conn), bufio.NewWriter(h.conn)), nil
}

// upgradedConn returns a server-side websocket over a discardConn.
func upgradedConn(b *testing.B, s *Server, closed chan struct{}) *websocket.Conn {
	req := httptest.NewRequest(http.MethodGet, "/chat/bench", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	conn, err := s.upgrader.Upgrade(hijacker{httptest.NewRecorder(), &discardConn{closed: closed}}, req, nil)
	if err != nil {
		b.Fatal(err)
	}
	return conn
}

// BenchmarkBroadcast relays events from a room's hub to 1,000 clients, each
// with its queue and writer goroutine writing real websocket frames (to a
// connection that discards them). It reports the server's cost per event
// delivered to one client.
func BenchmarkBroadcast(b *testing.B) {
	const clients, batch = 1000, 64
	s := NewServer(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer s.cancel()
	h := newHub(s, "bench", nil)
	h.sanctions = newSanctions(Moderation{})
	closed := make(chan struct{})
	var cs []*client
	for i := range clients {
		c := newClient(s, upgradedConn(b, s, closed), "bench")
		c.identity = "viewer-" + string(rune('a'+i%26))
		h.clients[c] = struct{}{}
		cs = append(cs, c)
		go c.writeLoop()
		c.start <- joined{}
	}
	defer func() {
		for _, c := range cs {
			c.close(websocket.CloseGoingAway, "", nil)
			<-c.writerDone
		}
		close(closed)
	}()
	// Every client has its welcome and synced.
	out := &s.stats.MessagesOut
	for out.Load() < 2*clients {
		time.Sleep(time.Millisecond)
	}
	text := strings.Repeat("x", 100)
	base := out.Load()

	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		n := min(batch, b.N-i)
		for range n {
			i++
			h.deliver(&Event{Seq: uint64(i), Kind: KindMessage, TS: 1763900000000, Identity: "alice", Name: "Alice", ClientID: "c", Text: text})
		}
		// Let the writers drain before the next batch, as 50 msg/s would.
		for out.Load() < base+uint64(i*clients) {
			time.Sleep(50 * time.Microsecond)
		}
	}
	b.StopTimer()
	if d := s.stats.SlowClientsDropped.Load(); d > 0 {
		b.Fatalf("%d clients dropped as slow", d)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*clients), "ns/delivery")
}
