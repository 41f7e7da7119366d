package node

import (
	"context"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/starling-sfu/starling/clip"
	"github.com/starling-sfu/starling/loadtest"
)

// obsLikeAPI offers what OBS's WHIP output offers: H.264 constrained baseline
// on payload type 96 and Opus on 111, audio section first, NACK and PLI
// feedback, no simulcast and no transport-wide congestion control.
func obsLikeAPI(t *testing.T) *webrtc.API {
	m := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType:        111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", RTCPFeedback: fb},
		PayloadType: 96,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureNack(m, ir); err != nil {
		t.Fatal(err)
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

func TestOBSStylePublisherWithBearerTokenIsWatchable(t *testing.T) {
	n := startNode(t, nil)
	pub, err := loadtest.Publish(ctxTimeout(t, 10*time.Second), loadtest.PublisherOptions{
		URL: n.url("/whip/obs"), Token: mintToken(t, "obs", "obs-studio", true),
		Codec: clip.H264, Audio: true, AudioFirst: true, API: obsLikeAPI(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(context.Background())
	offer := pub.PeerConnection().LocalDescription().SDP
	if strings.Index(offer, "m=audio") > strings.Index(offer, "m=video") || strings.Contains(offer, "a=simulcast") {
		t.Fatalf("test offer is not shaped like OBS's:\n%s", offer)
	}
	track := n.videoTrack(t, "obs", 1)
	if c := track.Info().Codec; !strings.EqualFold(c.MimeType, webrtc.MimeTypeH264) || !strings.Contains(c.SDPFmtpLine, "42e01f") {
		t.Fatalf("published codec %s %q, want H.264 42e01f", c.MimeType, c.SDPFmtpLine)
	}

	var video, audio, keyFirst atomic.Int64
	keyFirst.Store(-1)
	sub, err := loadtest.Subscribe(ctxTimeout(t, 10*time.Second), loadtest.SubscriberOptions{
		URL: n.url("/whep/obs"),
		OnRTP: func(kind webrtc.RTPCodecType, p *rtp.Packet, _ time.Time) {
			if kind == webrtc.RTPCodecTypeAudio {
				audio.Add(1)
				return
			}
			if video.Add(1) == 1 {
				if track.Codec().KeyframeStart(p.Payload) {
					keyFirst.Store(1)
				} else {
					keyFirst.Store(0)
				}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(context.Background())
	eventually(t, 10*time.Second, "H.264 and Opus at the viewer", func() bool { return video.Load() > 100 && audio.Load() > 25 })
	if keyFirst.Load() != 1 {
		t.Fatal("viewer's first H.264 packet did not start a keyframe")
	}
}

func TestPublisherLeavingEndsViewerSessions(t *testing.T) {
	for _, how := range []string{"delete", "disconnect"} {
		t.Run(how, func(t *testing.T) {
			n := startNode(t, nil)
			pub, err := loadtest.Publish(ctxTimeout(t, 10*time.Second), loadtest.PublisherOptions{
				URL: n.url("/whip/leave"), Token: mintToken(t, "leave", "pub", true), Simulcast: true, Audio: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			n.videoTrack(t, "leave", 1)
			var subs []*loadtest.Subscriber
			for range 3 {
				s, err := loadtest.Subscribe(ctxTimeout(t, 10*time.Second), loadtest.SubscriberOptions{URL: n.url("/whep/leave")})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close(context.Background())
				subs = append(subs, s)
			}
			for _, s := range subs {
				eventually(t, 10*time.Second, "viewer receiving", func() bool { return s.Packets[1].Load() > 10 })
			}
			if how == "delete" {
				if err := pub.Close(ctxTimeout(t, 5*time.Second)); err != nil {
					t.Fatal(err)
				}
			} else {
				// The publisher vanishes without a DELETE: its DTLS close is
				// all the server sees.
				_ = pub.PeerConnection().Close()
			}
			for i, s := range subs {
				select {
				case <-s.Ended():
				case <-time.After(10 * time.Second):
					t.Fatalf("viewer %d still connected after the publisher left", i)
				}
			}
			eventually(t, 5*time.Second, "no sessions, rooms or subscriptions left", func() bool {
				whip, whep := n.Signaling.SessionCounts()
				return whip == 0 && whep == 0 && len(n.SFU.Rooms()) == 0 && n.SFU.Stats().Subscriptions.Load() == 0
			})
			// The viewers' late DELETEs are still answered.
			for _, s := range subs {
				if err := s.Session().Delete(ctxTimeout(t, 5*time.Second)); err != nil {
					t.Fatalf("late DELETE: %v", err)
				}
			}
		})
	}
}

// TestNoLeakAfterHundredPublishWatchCycles runs 100 cycles of a publisher
// and a viewer joining, media flowing, and both leaving, then checks that
// goroutines and heap are back to where they were.
func TestNoLeakAfterHundredPublishWatchCycles(t *testing.T) {
	if testing.Short() {
		t.Skip("100 cycles take about 30 s")
	}
	n := startNode(t, nil)
	api, err := loadtest.NewAPI(true)
	if err != nil {
		t.Fatal(err)
	}
	cycle := func(i int) {
		pub, err := loadtest.Publish(ctxTimeout(t, 10*time.Second), loadtest.PublisherOptions{
			URL: n.url("/whip/cycle"), Token: mintToken(t, "cycle", "pub", true), Simulcast: i%2 == 0, Audio: true, API: api,
		})
		if err != nil {
			t.Fatalf("cycle %d: publish: %v", i, err)
		}
		n.videoTrack(t, "cycle", 1)
		sub, err := loadtest.Subscribe(ctxTimeout(t, 10*time.Second), loadtest.SubscriberOptions{URL: n.url("/whep/cycle"), API: api})
		if err != nil {
			t.Fatalf("cycle %d: subscribe: %v", i, err)
		}
		eventually(t, 10*time.Second, "media at the viewer", func() bool { return sub.Packets[1].Load() > 0 })
		if err := sub.Close(ctxTimeout(t, 5*time.Second)); err != nil {
			t.Fatalf("cycle %d: viewer close: %v", i, err)
		}
		if err := pub.Close(ctxTimeout(t, 5*time.Second)); err != nil {
			t.Fatalf("cycle %d: publisher close: %v", i, err)
		}
		eventually(t, 10*time.Second, "the room to close", func() bool { return len(n.SFU.Rooms()) == 0 })
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	for i := range 3 { // warm up pools and caches
		cycle(i)
	}
	settle := func(limit int) int {
		var g int
		deadline := time.Now().Add(15 * time.Second)
		for {
			g = runtime.NumGoroutine()
			if g <= limit || time.Now().After(deadline) {
				return g
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	baseG := settle(0)
	baseHeap := heap()
	for i := range 100 {
		cycle(i)
	}
	g := settle(baseG + 5)
	h := heap()
	t.Logf("goroutines %d → %d, heap %.1f → %.1f MiB", baseG, g, float64(baseHeap)/(1<<20), float64(h)/(1<<20))
	if g > baseG+5 {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines grew from %d to %d after 100 cycles:\n%s", baseG, g, buf[:runtime.Stack(buf, true)])
	}
	// One published track's packet caches alone take 4.6 MB, so leaking
	// even a few of 100 would show.
	if h > baseHeap+16<<20 {
		t.Fatalf("heap grew from %d to %d bytes after 100 cycles", baseHeap, h)
	}
	whip, whep := n.Signaling.SessionCounts()
	if whip+whep != 0 || n.SFU.Stats().Subscriptions.Load() != 0 {
		t.Fatalf("left over: %d WHIP, %d WHEP sessions, %d subscriptions", whip, whep, n.SFU.Stats().Subscriptions.Load())
	}
}

// TestStalledViewerDoesNotSlowOthers freezes one viewer (it stops reading,
// as a hung client would) and checks that the publisher's other viewers keep
// receiving everything.
func TestStalledViewerDoesNotSlowOthers(t *testing.T) {
	n := startNode(t, nil)
	pub, err := loadtest.Publish(ctxTimeout(t, 10*time.Second), loadtest.PublisherOptions{
		URL: n.url("/whip/stall"), Token: mintToken(t, "stall", "pub", true), Simulcast: true, Audio: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(context.Background())
	n.videoTrack(t, "stall", 3)
	release := make(chan struct{})
	var stalled atomic.Bool
	frozen, err := loadtest.Subscribe(ctxTimeout(t, 10*time.Second), loadtest.SubscriberOptions{
		URL: n.url("/whep/stall"),
		OnRTP: func(webrtc.RTPCodecType, *rtp.Packet, time.Time) {
			if stalled.CompareAndSwap(false, true) {
				<-release
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { close(release); frozen.Close(context.Background()) }()
	eventually(t, 10*time.Second, "the frozen viewer to stall", stalled.Load)
	// NACK and reports, no transport-wide feedback: this is about forwarding
	// isolation, not bandwidth estimates (see testFanout).
	api, err := loadtest.NewViewerAPI(true)
	if err != nil {
		t.Fatal(err)
	}
	var healthy []*loadtest.Subscriber
	for range 5 {
		s, err := loadtest.Subscribe(ctxTimeout(t, 10*time.Second), loadtest.SubscriberOptions{URL: n.url("/whep/stall"), API: api})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(context.Background())
		healthy = append(healthy, s)
	}
	for _, s := range healthy {
		eventually(t, 10*time.Second, "viewer receiving", func() bool { return s.Packets[1].Load() > 0 })
	}
	start := make([]uint64, len(healthy))
	for i, s := range healthy {
		start[i] = s.Packets[1].Load()
	}
	startIn := n.SFU.Stats().PacketsIn[1][2].Load()
	eventually(t, 10*time.Second, "3 s of top-layer packets at the server", func() bool {
		return n.SFU.Stats().PacketsIn[1][2].Load()-startIn > 300
	})
	in := n.SFU.Stats().PacketsIn[1][2].Load() - startIn
	for i, s := range healthy {
		got := s.Packets[1].Load() - start[i]
		if got < in*90/100 {
			t.Fatalf("healthy viewer %d got %d video packets while the publisher sent %d on its layer", i, got, in)
		}
	}
}
