package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
)

// playerState mirrors the widget's stats property, plus the events the host
// page recorded.
type playerState struct {
	State          string        `json:"state"`
	Mode           string        `json:"mode"`
	Live           bool          `json:"live"`
	FramesDecoded  int           `json:"framesDecoded"`
	Latency        float64       `json:"latency"`
	Viewers        int           `json:"viewers"`
	FallbackReason string        `json:"fallbackReason"`
	Error          string        `json:"error"`
	Qualities      []playerLevel `json:"qualities"`
	Events         []playerEvent `json:"events"`
	LatencyBadge   string        `json:"latencyBadge"`
}

type playerLevel struct {
	Value string `json:"value"`
	Label string `json:"label"`
}

type playerEvent struct {
	Type   string          `json:"type"`
	T      float64         `json:"t"` // ms since the host page started
	Detail json.RawMessage `json:"detail"`
}

func (s playerState) String() string {
	var events []string
	for _, e := range s.Events {
		events = append(events, fmt.Sprintf("%s@%.0fms %s", e.Type, e.T, e.Detail))
	}
	return fmt.Sprintf("state=%s mode=%s frames=%d latency=%.3fs badge=%q viewers=%d fallback=%q error=%q events=[%s]",
		s.State, s.Mode, s.FramesDecoded, s.Latency, s.LatencyBadge, s.Viewers, s.FallbackReason, s.Error, strings.Join(events, "; "))
}

func (s playerState) event(typ string) (playerEvent, bool) {
	for _, e := range s.Events {
		if e.Type == typ {
			return e, true
		}
	}
	return playerEvent{}, false
}

func qualityValues(s playerState) []string {
	var values []string
	for _, q := range s.Qualities {
		values = append(values, q.Value)
	}
	return values
}

const widgetJS = `document.getElementById('player')`

func widgetState(t *testing.T, p *page) playerState {
	t.Helper()
	s, err := eval[playerState](p, `({...`+widgetJS+`.stats, events: window.playerEvents,
		latencyBadge: `+widgetJS+`.shadowRoot.querySelector('[title=latency]').textContent})`)
	if err != nil {
		t.Fatalf("read the widget's state: %v", err)
	}
	return s
}

// hostPage is a page on an origin of its own that embeds the widget of srv
// the way the README tells: one script tag, one element. blockWebRTC makes
// every RTCPeerConnection of the page relay-only with no TURN server, so
// ICE has no candidate pair and never connects, as behind a firewall that
// drops UDP: the widget's WHEP offer is answered, then its connect timeout
// runs out.
var hostPage = template.Must(template.New("host").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A host page</title>
<style>body{margin:24px;font:16px system-ui;background:#f4f4f4}starling-player{width:1000px;height:460px}</style>
<script>
window.playerEvents = [];
{{if .BlockWebRTC}}
const NativePC = RTCPeerConnection;
window.RTCPeerConnection = class extends NativePC {
  constructor(config = {}) { super({ ...config, iceServers: [], iceTransportPolicy: 'relay' }); }
};
{{end}}
</script>
<script src="{{.Server}}/player.js"></script>
</head><body>
<h1>My stream</h1>
<starling-player id="player" server="{{.Server}}" room="{{.Room}}" token="{{.Token}}" connect-timeout="{{.Timeout}}"
  autoplay muted controls chat></starling-player>
<script>
for (const type of ['playing', 'fallback', 'error', 'chatmessage']) {
  document.getElementById('player').addEventListener(type, (e) => {
    window.playerEvents.push({ type, t: performance.now(), detail: e.detail });
  });
}
window.hostReady = true;
</script>
</body></html>
`))

type hostOptions struct {
	Server, Room, Token string
	Timeout             int // ms
	BlockWebRTC         bool
}

// startHostPage serves the host page from a server on another port (so
// another origin) and opens it in a new browser.
func startHostPage(t *testing.T, name string, opts hostOptions) *page {
	t.Helper()
	var body bytes.Buffer
	if err := hostPage.Execute(&body, opts); err != nil {
		t.Fatal(err)
	}
	host := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(body.Bytes())
	}))
	t.Cleanup(host.Close)
	if host.URL == opts.Server {
		t.Fatalf("host page and server share the origin %s", host.URL)
	}
	p := newPage(t, name)
	p.open(t, host.URL, "hostReady")
	return p
}

// adminToken mints a room-admin token (polls, moderation).
func adminToken(t *testing.T, s *server, room, identity string) string {
	t.Helper()
	out, err := exec.Command(s.bin, "token", "--keys", apiKey+":"+apiSecret, "--room", room,
		"--identity", identity, "--admin").Output()
	if err != nil {
		t.Fatalf("starling token --admin: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// chatClient is a Go client of the chat websocket.
type chatClient struct {
	ws *websocket.Conn
	n  int
}

func dialChat(t *testing.T, s *server, room, token string) *chatClient {
	t.Helper()
	u := strings.Replace(s.URL, "http://", "ws://", 1) + "/chat/" + url.PathEscape(room)
	ws, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	t.Cleanup(func() { ws.Close() })
	c := &chatClient{ws: ws}
	c.write(t, map[string]any{"type": "hello", "token": token, "history": 0})
	c.await(t, "synced", "")
	return c
}

func (c *chatClient) write(t *testing.T, msg map[string]any) {
	t.Helper()
	if err := c.ws.WriteJSON(msg); err != nil {
		t.Fatalf("chat write: %v", err)
	}
}

// await reads until a message of type typ (with client_id id, if given)
// arrives and returns it; an error for id fails the test.
func (c *chatClient) await(t *testing.T, typ, id string) map[string]any {
	t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var m map[string]any
		if err := c.ws.ReadJSON(&m); err != nil {
			t.Fatalf("chat: waiting for %s: %v", typ, err)
		}
		if id != "" && m["client_id"] != id {
			continue
		}
		if m["type"] == "error" && id != "" {
			t.Fatalf("chat: %v", m)
		}
		if m["type"] == typ {
			return m
		}
	}
}

// request sends msg with a fresh client_id and returns the server's ack.
func (c *chatClient) request(t *testing.T, msg map[string]any) map[string]any {
	t.Helper()
	c.n++
	id := fmt.Sprintf("go-%d", c.n)
	msg["client_id"] = id
	c.write(t, msg)
	return c.await(t, "ack", id)
}

// pollCounts reads a poll's tally over HTTP, as any client of the room may.
func pollCounts(t *testing.T, s *server, room, id, token string) []int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/chat/"+url.PathEscape(room)+"/polls/"+url.PathEscape(id), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET poll: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Counts []int `json:"counts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET poll: %d %v", resp.StatusCode, err)
	}
	return body.Counts
}

// widgetScreenshot saves a PNG of the widget alone to
// $STARLING_SCREENSHOTS/name, when that is set (for docs/).
func widgetScreenshot(t *testing.T, p *page, name string) {
	t.Helper()
	dir := os.Getenv("STARLING_SCREENSHOTS")
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.ID("player")))
	if err != nil {
		t.Errorf("screenshot of the widget: %v", err)
		return
	}
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	t.Logf("widget screenshot %s", file)
}
