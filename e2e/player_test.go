package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// playerHLSFlags give the fallback a small two-rung ladder, light enough
// to transcode beside two browsers on a small CI machine.
var playerHLSFlags = []string{"--hls-ladder", "640x360:800,320x180:300", "--hls-segment-target", "2s"}

// A page on another origin embeds <starling-player> with one script tag:
// it plays over WebRTC with sub-second latency, shows chat from another
// client as text (markup included), and counts a vote cast in its poll card.
func TestPlayerWidgetPlaysWebRTCOnAnotherOriginWithChatAndPolls(t *testing.T) {
	requireBrowser(t)
	srv := startServer(t)
	const room = "widget"
	startPublisher(t, srv, room)

	viewerToken := srv.token(t, room, "viewer", false)
	host := startHostPage(t, "host", hostOptions{Server: srv.URL, Room: room, Token: viewerToken, Timeout: 5000})
	eventually(t, 15*time.Second, "the widget plays over WebRTC", func() (bool, string) {
		s := widgetState(t, host)
		if s.State == "failed" {
			t.Fatalf("widget failed: %s", s)
		}
		return s.State == "playing" && s.Mode == "webrtc" && s.FramesDecoded > 0, s.String()
	})
	first := widgetState(t, host)
	if ev, ok := first.event("playing"); !ok || !strings.Contains(string(ev.Detail), `"webrtc"`) {
		t.Errorf("no playing event with mode webrtc: %s", first)
	}
	if _, ok := first.event("fallback"); ok {
		t.Errorf("the widget fell back although WebRTC connects: %s", first)
	}
	eventually(t, 10*time.Second, "frames keep coming and latency under 1 s is shown", func() (bool, string) {
		s := widgetState(t, host)
		return s.FramesDecoded >= first.FramesDecoded+30 && s.Latency > 0 && s.Latency < 1 &&
			strings.HasSuffix(s.LatencyBadge, "ms latency"), s.String()
	})
	s := widgetState(t, host)
	t.Logf("player-webrtc: latency_s=%.3f badge=%q frames=%d", s.Latency, s.LatencyBadge, s.FramesDecoded)
	if got := qualityValues(s); !slices.Equal(got, []string{"f", "h", "q"}) {
		t.Errorf("quality menu offers %v, want the layers f, h, q", got)
	}

	// Chat from a Go client, one message carrying markup.
	alice := dialChat(t, srv, room, srv.token(t, room, "alice", false))
	const plain = "hello from alice"
	const markup = `<script>window.pwned=1</script><img src=x onerror="window.pwned=2">`
	alice.request(t, map[string]any{"type": "send", "text": plain})
	alice.request(t, map[string]any{"type": "send", "text": markup})
	eventually(t, 10*time.Second, "chat messages appear in the widget", func() (bool, string) {
		texts, err := eval[[]string](host, `[...`+widgetJS+`.shadowRoot.querySelectorAll('.log li .text')].map((e) => e.textContent)`)
		if err != nil {
			return false, err.Error()
		}
		return slices.Contains(texts, plain) && slices.Contains(texts, markup), strings.Join(texts, " | ")
	})
	injected, err := eval[bool](host, `window.pwned !== undefined || document.querySelectorAll('script').length !== 3 ||
		`+widgetJS+`.shadowRoot.querySelector('script, img') !== null`)
	if err != nil || injected {
		t.Errorf("chat markup became elements or ran (%v)", err)
	}
	var chatEvents []string
	for _, e := range widgetState(t, host).Events {
		if e.Type == "chatmessage" {
			var d struct{ Text string }
			_ = json.Unmarshal(e.Detail, &d)
			chatEvents = append(chatEvents, d.Text)
		}
	}
	if !slices.Contains(chatEvents, markup) {
		t.Errorf("chatmessage events %q lack the message with markup", chatEvents)
	}
	// presence comes at most once a second, when the count changes.
	eventually(t, 5*time.Second, "the viewer count includes the widget and alice", func() (bool, string) {
		s := widgetState(t, host)
		badge, _ := eval[string](host, widgetJS+`.shadowRoot.querySelector('[title=viewers]').textContent`)
		return s.Viewers >= 2 && badge == "2", badge
	})

	// A poll from a room admin; the viewer votes in the widget.
	admin := dialChat(t, srv, room, adminToken(t, srv, room, "host"))
	ack := admin.request(t, map[string]any{"type": "poll_create", "question": "Best <codec>?", "options": []string{"VP8", "H.264", "AV1"}})
	pollID, _ := ack["poll"].(string)
	if pollID == "" {
		t.Fatalf("poll_create ack without a poll id: %v", ack)
	}
	eventually(t, 10*time.Second, "the poll card shows the poll", func() (bool, string) {
		q, err := eval[string](host, widgetJS+`.shadowRoot.querySelector('.poll h3')?.textContent ?? ''`)
		return err == nil && q == "Best <codec>?", q
	})
	if _, err := eval[bool](host, widgetJS+`.shadowRoot.querySelector('.poll button[data-option="2"]').click() ?? true`); err != nil {
		t.Fatalf("click the AV1 option: %v", err)
	}
	eventually(t, 10*time.Second, "the vote is counted", func() (bool, string) {
		counts := pollCounts(t, srv, room, pollID, viewerToken)
		return slices.Equal(counts, []int{0, 0, 1}), fmt.Sprint(counts)
	})
	eventually(t, 10*time.Second, "the widget shows the tally", func() (bool, string) {
		label, err := eval[string](host, widgetJS+`.shadowRoot.querySelector('.poll button[data-option="2"]').textContent`)
		return err == nil && strings.Contains(label, "1 · 100%"), label
	})
	widgetScreenshot(t, host, "player-webrtc.png")
}

// With WebRTC blocked in the host page (see hostPage), the widget gives up
// on WHEP after its connect timeout, fires fallback, loads hls.js and plays
// the room's LL-HLS ladder.
func TestPlayerWidgetFallsBackToLLHLSWhenWebRTCIsBlocked(t *testing.T) {
	requireBrowser(t)
	requireFFmpeg(t)
	srv := startServer(t, playerHLSFlags...)
	const room = "widget-hls"
	startPublisher(t, srv, room)
	awaitTopLayer(t, srv)

	const timeout = 3000
	host := startHostPage(t, "host", hostOptions{Server: srv.URL, Room: room, Timeout: timeout, BlockWebRTC: true})
	eventually(t, 60*time.Second, "the widget falls back and plays LL-HLS", func() (bool, string) {
		s := widgetState(t, host)
		if s.State == "failed" {
			t.Fatalf("widget failed: %s", s)
		}
		return s.State == "playing" && s.Mode == "hls" && s.FramesDecoded > 0, s.String()
	})
	s := widgetState(t, host)
	fb, ok := s.event("fallback")
	if !ok {
		t.Fatalf("no fallback event: %s", s)
	}
	var playedHLS *playerEvent
	for _, e := range s.Events {
		if e.Type == "playing" {
			if strings.Contains(string(e.Detail), `"webrtc"`) {
				t.Fatalf("the widget played over WebRTC although it was blocked: %s", s)
			}
			playedHLS = &e
		}
	}
	if playedHLS == nil {
		t.Fatalf("no playing event: %s", s)
	}
	if fb.T < timeout*0.9 {
		t.Errorf("fallback after %.0f ms, before the %d ms connect timeout: %s", fb.T, timeout, s)
	}
	first := s.FramesDecoded
	eventually(t, 15*time.Second, "hls.js keeps decoding", func() (bool, string) {
		s := widgetState(t, host)
		return s.FramesDecoded >= first+30 && s.Latency > 0, s.String()
	})
	s = widgetState(t, host)
	levels := qualityValues(s)
	t.Logf("player-hls: fallback_ms=%.0f hls_playing_ms=%.0f latency_s=%.3f badge=%q levels=%v reason=%q",
		fb.T, playedHLS.T, s.Latency, s.LatencyBadge, levels, s.FallbackReason)
	if !slices.Equal(levels, []string{"360p", "180p"}) {
		t.Errorf("quality menu offers %v, want the renditions 360p, 180p", levels)
	}
	widgetScreenshot(t, host, "player-hls.png")
}
