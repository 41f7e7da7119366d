package rtc

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/starling-sfu/starling/access"
	"github.com/starling-sfu/starling/roomapi"
	"github.com/starling-sfu/starling/sfu"
	"github.com/starling-sfu/starling/transport"
	"google.golang.org/protobuf/proto"
)

// The harness's API key pair; LiveKit requires secrets of 32 characters or more.
const (
	testKey    = "APIstarlingtest"
	testSecret = "starling-test-secret-0123456789abcdef"
)

// testLogger discards logs unless STARLING_TEST_LOG is set: sessions log from
// goroutines that may outlive a test, which t.Log does not allow.
func testLogger() *slog.Logger {
	if os.Getenv("STARLING_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// harness is an in-process node as package node assembles it: transport,
// SFU, the room server on /rtc and the room service on /twirp/, behind a
// real HTTP listener.
type harness struct {
	t      testing.TB
	sfu    *sfu.SFU
	server *Server
	http   *httptest.Server
	events chan *livekit.WebhookEvent
}

func newHarness(t testing.TB, tweak func(*Options)) *harness {
	t.Helper()
	engine, err := transport.New(transport.Config{UDPPort: 0, TCPPort: 0, IncludeLoopback: true, Logger: testLogger()})
	if err != nil {
		t.Fatalf("transport: %v", err)
	}
	h := &harness{t: t, events: make(chan *livekit.WebhookEvent, 1000)}
	var srv *Server
	h.sfu = sfu.New(sfu.Settings{PLIInterval: 100 * time.Millisecond, Logger: testLogger(),
		OnEvent: func(ev sfu.Event) { srv.Observe(ev) }})
	verifier := access.NewVerifier(map[string]string{testKey: testSecret})
	opts := Options{
		SFU: h.sfu, Engine: engine, Verifier: verifier, Logger: testLogger(),
		OnEvent: func(ev *livekit.WebhookEvent) {
			select {
			case h.events <- ev:
			default:
			}
		},
	}
	if tweak != nil {
		tweak(&opts)
	}
	srv = New(opts)
	h.server = srv
	mux := http.NewServeMux()
	mux.Handle("/rtc", srv.Handler())
	mux.Handle("/rtc/", srv.Handler())
	mux.Handle("/twirp/", roomapi.New(srv, verifier, testLogger()))
	h.http = httptest.NewServer(mux)
	t.Cleanup(func() {
		h.http.Close()
		srv.Close()
		_ = engine.Close()
	})
	return h
}

// grant describes a test token.
type grant struct {
	room, identity            string
	publish, subscribe, data  bool
	hidden, admin, noRoomJoin bool
	sources                   []string
}

func (h *harness) token(g grant) string {
	h.t.Helper()
	vg := &auth.VideoGrant{RoomJoin: !g.noRoomJoin, Room: g.room, Hidden: g.hidden, RoomAdmin: g.admin,
		CanPublishSources: g.sources}
	vg.SetCanPublish(g.publish)
	vg.SetCanSubscribe(g.subscribe)
	vg.SetCanPublishData(g.data)
	tok, err := auth.NewAccessToken(testKey, testSecret).SetIdentity(g.identity).SetName(g.identity).
		SetVideoGrant(vg).SetValidFor(time.Hour).ToJWT()
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

// everyone may publish, subscribe and send data.
func everyone(room, identity string) grant {
	return grant{room: room, identity: identity, publish: true, subscribe: true, data: true}
}

// wsURL is the /rtc URL for a token.
func (h *harness) wsURL(path, tok string) string {
	return "ws" + strings.TrimPrefix(h.http.URL, "http") + path + "?access_token=" + tok + "&auto_subscribe=1&sdk=go&protocol=16"
}

// rawJoin opens /rtc without a client library and returns the socket after
// the JoinResponse.
func (h *harness) rawJoin(tok string) (*websocket.Conn, *livekit.JoinResponse) {
	h.t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(h.wsURL("/rtc", tok), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		h.t.Fatalf("dial /rtc: %v (HTTP %d)", err, status)
	}
	h.t.Cleanup(func() { ws.Close() })
	res := readResponse(h.t, ws, func(r *livekit.SignalResponse) bool { return r.GetJoin() != nil })
	return ws, res.GetJoin()
}

// readResponse reads until want accepts a response, failing after 5 s.
func readResponse(t testing.TB, ws *websocket.Conn, want func(*livekit.SignalResponse) bool) *livekit.SignalResponse {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_ = ws.SetReadDeadline(deadline)
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("read signal response: %v", err)
		}
		res := &livekit.SignalResponse{}
		if err := proto.Unmarshal(b, res); err != nil {
			t.Fatalf("undecodable response: %v", err)
		}
		if want(res) {
			return res
		}
	}
}

func sendRequest(t testing.TB, ws *websocket.Conn, req *livekit.SignalRequest) {
	t.Helper()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// eventually polls cond until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func protoMarshal(m proto.Message) ([]byte, error) { return proto.Marshal(m) }

// dialRaw opens /rtc and returns the socket without reading from it.
func dialRaw(h *harness, tok string) (*websocket.Conn, *http.Response, error) {
	ws, resp, err := websocket.DefaultDialer.Dial(h.wsURL("/rtc", tok), nil)
	if err == nil {
		h.t.Cleanup(func() { ws.Close() })
	}
	return ws, resp, err
}
