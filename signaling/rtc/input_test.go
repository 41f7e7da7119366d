package rtc

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/encoding/protowire"
)

func TestJoinRefusalsAreClearHTTPErrors(t *testing.T) {
	h := newHarness(t, nil)
	for _, tc := range []struct {
		name, path, token string
		status            int
		want              string
	}{
		{"no token", "/rtc", "", http.StatusUnauthorized, "missing access_token"},
		{"forged token", "/rtc", "e30.e30.bad", http.StatusUnauthorized, "invalid token"},
		{"no roomJoin", "/rtc", h.token(grant{room: "r", identity: "a", noRoomJoin: true}), http.StatusForbidden, "roomJoin"},
		{"no identity", "/rtc", h.token(grant{room: "r"}), http.StatusForbidden, "identity"},
		{"bad room", "/rtc", h.token(grant{room: "a b", identity: "a"}), http.StatusForbidden, "room"},
		{"single peer connection path", "/rtc/v1", h.token(everyone("r", "a")), http.StatusNotFound, "v1 RTC path not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, resp, err := websocket.DefaultDialer.Dial(h.wsURL(tc.path, tc.token), nil)
			if err == nil || resp == nil {
				t.Fatalf("joined; want HTTP %d", tc.status)
			}
			defer resp.Body.Close()
			var body struct{ Error string }
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("body is not a JSON error: %v", err)
			}
			if resp.StatusCode != tc.status || !strings.Contains(body.Error, tc.want) {
				t.Errorf("HTTP %d %q, want %d with %q", resp.StatusCode, body.Error, tc.status, tc.want)
			}
		})
	}
	// livekit-client asks /validate after a failed websocket; on the v1
	// path a 404 without "room does not exist" makes it fall back to /rtc.
	for path, want := range map[string]int{"/rtc/validate": 200, "/rtc/v1/validate": 404} {
		resp, err := http.Get(h.http.URL + path + "?access_token=" + h.token(everyone("r", "a")))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || strings.Contains(string(b), "requested room does not exist") {
			t.Errorf("%s: HTTP %d %q, want %d", path, resp.StatusCode, b, want)
		}
	}
	resp, err := http.Get(h.http.URL + "/rtc/validate?access_token=nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("validate with a bad token: HTTP %d, want 401", resp.StatusCode)
	}
}

// closeCode reads until the server closes ws and returns its close code.
func closeCode(t *testing.T, ws *websocket.Conn) int {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			t.Fatalf("connection ended without a close frame: %v", err)
		}
	}
}

// closedWith asserts the server closed ws, with code when its close frame
// arrives (a server closing on a client still writing may reset the
// connection instead), and counted one more bad message than before.
func closedWith(t *testing.T, h *harness, ws *websocket.Conn, code int, before uint64) {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		// 1006 is no close frame at all: the reset.
		if errors.As(err, &ce) && ce.Code != code && ce.Code != websocket.CloseAbnormalClosure {
			t.Errorf("close code %d, want %d", ce.Code, code)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the server did not close the connection")
		}
		break
	}
	eventually(t, 5*time.Second, "the bad input to be counted", func() bool {
		return h.server.Metrics().BadMessages.Load() > before
	})
}

// stillServed asserts a participant's signal connection still works and it
// is still in its room.
func stillServed(t *testing.T, h *harness, ws *websocket.Conn, identity string) {
	t.Helper()
	sendRequest(t, ws, &livekit.SignalRequest{Message: &livekit.SignalRequest_PingReq{PingReq: &livekit.Ping{Timestamp: 42}}})
	res := readResponse(t, ws, func(r *livekit.SignalResponse) bool { return r.GetPongResp() != nil })
	if res.GetPongResp().GetLastPingTimestamp() != 42 {
		t.Errorf("pong for %d, want 42", res.GetPongResp().GetLastPingTimestamp())
	}
	r, ok := h.sfu.LookupRoom("stage")
	if !ok {
		t.Fatal("room ended")
	}
	if _, ok := r.Participant(identity); !ok {
		t.Errorf("%s left the room", identity)
	}
}

func TestBadSignalInputClosesOnlyTheSenderWithAClearCode(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.MaxMessageBytes = 64 << 10 })
	bob, _ := h.rawJoin(h.token(everyone("stage", "bob")))

	t.Run("garbage frame", func(t *testing.T) {
		ws, _ := h.rawJoin(h.token(everyone("stage", "mallory-1")))
		if err := ws.WriteMessage(websocket.BinaryMessage, []byte{0xff, 0xff, 0xff, 0x0f, 0x01}); err != nil {
			t.Fatal(err)
		}
		if code := closeCode(t, ws); code != websocket.CloseInvalidFramePayloadData {
			t.Errorf("close code %d, want %d (invalid payload)", code, websocket.CloseInvalidFramePayloadData)
		}
		stillServed(t, h, bob, "bob")
	})
	t.Run("unknown message type", func(t *testing.T) {
		ws, _ := h.rawJoin(h.token(everyone("stage", "mallory-2")))
		// Field 999 of SignalRequest does not exist: a newer client's message.
		b := protowire.AppendTag(nil, 999, protowire.BytesType)
		b = protowire.AppendBytes(b, []byte("from the future"))
		before := h.server.Metrics().UnknownMessages.Load()
		if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
			t.Fatal(err)
		}
		stillServed(t, h, ws, "mallory-2") // ignored, and the socket still works
		if got := h.server.Metrics().UnknownMessages.Load(); got != before+1 {
			t.Errorf("unknown messages counted %d, want %d", got, before+1)
		}
		stillServed(t, h, bob, "bob")
	})
	t.Run("oversized message", func(t *testing.T) {
		ws, _ := h.rawJoin(h.token(everyone("stage", "mallory-3")))
		huge := &livekit.SignalRequest{Message: &livekit.SignalRequest_Offer{Offer: &livekit.SessionDescription{
			Type: "offer", Sdp: strings.Repeat("a=x\r\n", 20000)}}}
		b, _ := protoMarshal(huge)
		before := h.server.Metrics().BadMessages.Load()
		_ = ws.WriteMessage(websocket.BinaryMessage, b)
		closedWith(t, h, ws, websocket.CloseMessageTooBig, before)
		stillServed(t, h, bob, "bob")
	})
	t.Run("request flood", func(t *testing.T) {
		ws, _ := h.rawJoin(h.token(everyone("stage", "mallory-4")))
		ping, _ := protoMarshal(&livekit.SignalRequest{Message: &livekit.SignalRequest_Ping{Ping: 1}})
		before := h.server.Metrics().BadMessages.Load()
		for range 1000 {
			if err := ws.WriteMessage(websocket.BinaryMessage, ping); err != nil {
				break // closed already
			}
		}
		closedWith(t, h, ws, websocket.ClosePolicyViolation, before)
		stillServed(t, h, bob, "bob")
	})
	if got := h.server.Metrics().BadMessages.Load(); got < 3 {
		t.Errorf("bad messages counted %d, want at least 3", got)
	}
}

func TestJSONTextFramesAreAnsweredInJSON(t *testing.T) {
	h := newHarness(t, nil)
	ws, _ := h.rawJoin(h.token(everyone("stage", "js")))
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"pingReq":{"timestamp":"7"}}`)); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		mt, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if mt == websocket.TextMessage && strings.Contains(string(b), "pongResp") {
			if !strings.Contains(string(b), `"lastPingTimestamp":"7"`) {
				t.Errorf("pong %s", b)
			}
			return
		}
	}
}
