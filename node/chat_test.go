package node

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livekit/protocol/auth"
	"github.com/starling-sfu/starling/config"
)

func chatToken(t *testing.T, room, identity string) string {
	t.Helper()
	g := &auth.VideoGrant{RoomJoin: true, Room: room}
	g.SetCanPublishData(true)
	tok, err := auth.NewAccessToken(testKey, testSecret).SetIdentity(identity).SetValidFor(time.Hour).SetVideoGrant(g).ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// chatFrame reads frames until one of type typ arrives.
func readFrame(t *testing.T, c *websocket.Conn, typ string) map[string]any {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var f map[string]any
		if err := c.ReadJSON(&f); err != nil {
			t.Fatalf("waiting for %q: %v", typ, err)
		}
		if f["type"] == typ {
			return f
		}
	}
}

// metric returns the value of the sample named name (with its labels) in a
// /metrics scrape.
func metric(t *testing.T, n *testNode, name string) float64 {
	t.Helper()
	resp, err := http.Get(n.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("/metrics has no %s", name)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestNodeServesChatKeptInTheDataDirectory(t *testing.T) {
	n := startNode(t, nil)
	ws := "ws" + strings.TrimPrefix(n.url("/chat/lobby"), "http")
	c, _, err := websocket.DefaultDialer.Dial(ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WriteJSON(map[string]any{"type": "hello", "token": chatToken(t, "lobby", "alice")}); err != nil {
		t.Fatal(err)
	}
	if w := readFrame(t, c, "welcome"); w["identity"] != "alice" || w["can_write"] != true {
		t.Fatalf("welcome %v", w)
	}
	if err := c.WriteJSON(map[string]any{"type": "send", "client_id": "a1", "text": "hello <i>room</i>"}); err != nil {
		t.Fatal(err)
	}
	ev := readFrame(t, c, "event")["event"].(map[string]any)
	if ev["text"] != "hello <i>room</i>" || ev["seq"] != 1.0 || ev["from"] != "alice" {
		t.Errorf("event %v", ev)
	}
	if _, err := os.Stat(filepath.Join(n.cfg.DataDir, "chat.db")); err != nil {
		t.Errorf("chat is not kept in the data directory: %v", err)
	}
	if v := metric(t, n, "starling_chat_clients"); v != 1 {
		t.Errorf("starling_chat_clients %v, want 1", v)
	}
	if v := metric(t, n, "starling_chat_messages_in_total"); v < 1 {
		t.Errorf("starling_chat_messages_in_total %v", v)
	}
	if v := metric(t, n, "starling_chat_messages_out_total"); v < 2 { // welcome, synced, ack, event
		t.Errorf("starling_chat_messages_out_total %v", v)
	}

	resp, err := http.Get(n.url("/chat/lobby/polls"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var polls map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&polls); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET polls: %d %v %v", resp.StatusCode, polls, err)
	}
}

func TestNodeWithoutChatAnswersNotFound(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Chat.Enabled = false })
	resp, err := http.Get(n.url("/chat/lobby"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /chat/lobby with chat off: %d", resp.StatusCode)
	}
}
