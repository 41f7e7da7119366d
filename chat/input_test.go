package chat_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/starling-sfu/starling/chat"
)

// expiredToken is signed like a real one but expired an hour ago (the auth
// package only mints tokens valid from now).
func expiredToken(t *testing.T, identity, room string) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": apiKey, "sub": identity, "nbf": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix(),
		"video": map[string]any{"room": room, "roomJoin": true, "canPublishData": true},
	}).SignedString([]byte(apiSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// watcher joins room r and returns a check that it still receives: each
// call has the writer send a message and waits for it at the watcher.
func watcher(t *testing.T, n *node) func() {
	w, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "watcher", grant{room: "r"})})
	writer, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "writer", grant{room: "r", write: true})})
	i := 0
	return func() {
		t.Helper()
		i++
		a := writer.ack(map[string]any{"type": "send", "client_id": fmt.Sprint("w", i), "text": "still here"})
		w.event(a.Seq)
	}
}

func TestBadRequestsGetErrorsAndOthersAreUnaffected(t *testing.T) {
	n := startNode(t, tempSQLite(t), chat.Options{AnonymousRead: true, MaxText: 10})
	alive := watcher(t, n)
	c, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "alice", grant{room: "r", write: true})})
	viewer, _, _ := join(t, n.wsURL("r"), map[string]any{})
	for _, tc := range []struct {
		name  string
		frame string
		code  string
	}{
		{"invalid JSON", `{"type": "send", `, "bad_request"},
		{"not an object", `[1, 2]`, "bad_request"},
		{"no type", `{"text": "hi"}`, "bad_request"},
		{"unknown type", `{"type": "shout", "client_id": "u"}`, "unknown_type"},
		{"send without client_id", `{"type": "send", "text": "hi"}`, "bad_request"},
		{"send without text", `{"type": "send", "client_id": "x"}`, "bad_request"},
		{"text of the wrong type", `{"type": "send", "client_id": "x", "text": 5}`, "bad_request"},
		{"text too long", `{"type": "send", "client_id": "x", "text": "ééééééééééé"}`, "too_long"},
		{"client_id too long", `{"type": "send", "client_id": "` + strings.Repeat("c", 65) + `", "text": "x"}`, "too_long"},
		{"react without target", `{"type": "react", "client_id": "x", "emoji": "+"}`, "bad_request"},
		{"negative target", `{"type": "delete", "target": -1}`, "bad_request"},
		{"bad moderation action", `{"type": "moderate", "action": "smite", "identity": "bob"}`, "bad_request"},
		{"slow mode without seconds", `{"type": "slow_mode"}`, "bad_request"},
		{"vote without option", `{"type": "vote", "poll": "p"}`, "bad_request"},
		{"second hello", `{"type": "hello"}`, "bad_request"},
		{"delete without roomAdmin", `{"type": "delete", "target": 1}`, "forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.conn.WriteMessage(websocket.TextMessage, []byte(tc.frame)); err != nil {
				t.Fatal(err)
			}
			m := c.until("an error", func(m msg) bool { return m.Type == "error" })
			if m.Code != tc.code {
				t.Fatalf("%s: got %s, want %s", tc.frame, m.raw, tc.code)
			}
			c.ack(map[string]any{"type": "ping"}) // a good request between keeps the bad run short
		})
	}
	alive()
	viewer.refused(map[string]any{"type": "send", "client_id": "v", "text": "hi"}, "unauthorized")
	if got := n.srv.Stats().BadFrames.Load(); got < 10 {
		t.Errorf("stats count %d bad frames", got)
	}
	alive()
}

func TestTenBadRequestsInARowClose4000(t *testing.T) {
	n := startNode(t, tempSQLite(t), chat.Options{})
	alive := watcher(t, n)
	c, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "alice", grant{room: "r", write: true})})
	for range 9 {
		c.send(map[string]any{"type": "nonsense"})
	}
	c.ack(map[string]any{"type": "ping"}) // resets the count
	for range 10 {
		c.send(map[string]any{"type": "nonsense"})
	}
	c.expectClose(4000, "unknown_type")
	alive()
}

func TestAnOversizedFrameCloses1009(t *testing.T) {
	n := startNode(t, tempSQLite(t), chat.Options{})
	alive := watcher(t, n)
	c, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "alice", grant{room: "r", write: true})})
	c.send(map[string]any{"type": "send", "client_id": "big", "text": strings.Repeat("x", 17<<10)})
	c.expectClose(websocket.CloseMessageTooBig, "")
	alive()
}

func TestHelloFailuresClose4001(t *testing.T) {
	n := startNode(t, tempSQLite(t), chat.Options{HelloTimeout: 300 * time.Millisecond})
	alive := watcher(t, n)
	for _, tc := range []struct {
		name  string
		hello any // nil sends nothing
		code  string
	}{
		{"no hello", nil, "unauthorized"},
		{"another message first", map[string]any{"type": "ping"}, "bad_request"},
		{"invalid JSON", "{", "bad_request"},
		{"no token, anonymous reading off", map[string]any{"type": "hello"}, "unauthorized"},
		{"garbage token", map[string]any{"type": "hello", "token": "not.a.jwt"}, "unauthorized"},
		{"expired token", map[string]any{"type": "hello", "token": expiredToken(t, "alice", "r")}, "unauthorized"},
		{"token for another room", map[string]any{"type": "hello", "token": token(t, "alice", grant{room: "other", write: true})}, "unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, n.wsURL("r"))
			switch h := tc.hello.(type) {
			case string:
				if err := c.conn.WriteMessage(websocket.TextMessage, []byte(h)); err != nil {
					t.Fatal(err)
				}
			case nil:
			default:
				c.send(h)
			}
			c.expectClose(4001, tc.code)
		})
	}
	alive()
}

// A client that never reads fills its queue and is closed with 4008; the
// others keep receiving.
func TestASlowConsumerIsClosed4008(t *testing.T) {
	const text = 16 << 10
	n := startNode(t, tempSQLite(t), chat.Options{SendQueue: 16, MaxText: text, MaxFrame: 64 << 10})
	alive := watcher(t, n)
	slow, _, err := websocket.DefaultDialer.Dial(n.wsURL("r"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if err := slow.WriteJSON(map[string]any{"type": "hello", "token": token(t, "slow", grant{room: "r"})}); err != nil {
		t.Fatal(err)
	}
	sender, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "sender", grant{room: "r", write: true})})
	big := strings.Repeat("y", text)
	for i := 0; n.srv.Stats().SlowClientsDropped.Load() == 0; i++ {
		if i == 2000 {
			t.Fatal("2000 messages of 16 KiB and the client that reads none is still served")
		}
		sender.ack(map[string]any{"type": "send", "client_id": fmt.Sprint(i), "text": big})
	}
	alive()
	// Reading now, the slow client finds what got through, then the close.
	_ = slow.SetReadDeadline(time.Now().Add(wait))
	for {
		if _, _, err := slow.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, 4008) {
				t.Fatalf("the slow client's connection ended with %v, want close 4008", err)
			}
			break
		}
	}
	alive()
}

func TestOriginsOutsideAllowOriginsAreRefused(t *testing.T) {
	n := startNode(t, tempSQLite(t), chat.Options{AnonymousRead: true, AllowOrigins: []string{"https://app.example"}})
	for origin, ok := range map[string]bool{
		"https://app.example":  true,
		"https://evil.example": false,
		"":                     true,
		n.http.URL:             true, // same origin
	} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		conn, resp, err := websocket.DefaultDialer.Dial(n.wsURL("r"), h)
		if ok != (err == nil) {
			t.Errorf("origin %q: err %v, want allowed %v", origin, err, ok)
		}
		if conn != nil {
			_ = conn.Close()
		}
		if !ok && resp != nil && (resp.StatusCode != http.StatusForbidden || resp.Header.Get("Content-Type") != "application/json") {
			t.Errorf("origin %q: %s %q", origin, resp.Status, resp.Header.Get("Content-Type"))
		}
	}
}

func TestAPlainGETIsAskedToUpgrade(t *testing.T) {
	n := startNode(t, tempSQLite(t), chat.Options{})
	var e struct{ Error string }
	getJSON(t, n.http.URL+"/chat/r", "", http.StatusUpgradeRequired, &e)
	getJSON(t, n.http.URL+"/chat/r/what", "", http.StatusNotFound, &e)
}
