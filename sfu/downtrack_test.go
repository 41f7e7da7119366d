package sfu

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
)

// checkContinuous fails unless sequence numbers step by exactly one and
// timestamps never go back: what a decoder needs to see no gap.
func checkContinuous(t *testing.T, pkts []sentPkt) {
	t.Helper()
	for i := 1; i < len(pkts); i++ {
		if pkts[i].seq != pkts[i-1].seq+1 {
			t.Fatalf("sequence gap at packet %d: %d then %d", i, pkts[i-1].seq, pkts[i].seq)
		}
		if d := pkts[i].ts - pkts[i-1].ts; d > 1<<31 {
			t.Fatalf("timestamp went back at packet %d: %d then %d", i, pkts[i-1].ts, pkts[i].ts)
		}
	}
}

func TestDownTrackSwitchesLayerOnlyOnKeyframe(t *testing.T) {
	tt := newTestTrack(t, 0)
	d, w, _ := tt.subscribe(t, DownTrackOptions{Layer: 2, Pinned: true}, true)

	// Layer l has keyframes when k%6 == 2*l, so each layer's come at
	// different times. Frames are sent layer 0, 1, 2 in turn.
	isKey := func(l, k int) bool { return k%6 == 2*l }
	run := func(from, to int) {
		for k := from; k < to; k++ {
			for l := range MaxLayers {
				tt.frame(l, k, isKey(l, k))
			}
		}
	}
	run(0, 7)
	d.SetMaxLayer(0) // down: layer 0's next keyframe is frame 12
	run(7, 13)
	d.SetMaxLayer(2) // up: layer 2's next keyframe is frame 16
	run(13, 20)

	pkts := w.sent()
	checkContinuous(t, pkts)
	want := func(k int) int {
		switch {
		case k < 4:
			return -1 // waiting for layer 2's first keyframe
		case k < 12:
			return 2
		case k < 16:
			return 0
		}
		return 2
	}
	got := map[int]int{}
	prevLayer := -1
	for i, p := range pkts {
		l, k := int(p.payload[2]), int(p.payload[3])
		// At a switch the frame captured at that instant may come from
		// both layers: the old layer's copy, then the new layer's keyframe.
		got[k] = l
		if l != prevLayer {
			if p.payload[0] != 0x10 || p.payload[1]&1 != 0 {
				t.Fatalf("packet %d starts layer %d at frame %d with a non-keyframe packet % x", i, l, k, p.payload)
			}
			prevLayer = l
		}
		if p.ssrc != 1111 || p.pt != 100 {
			t.Fatalf("packet %d sent with ssrc %d pt %d, want 1111/100", i, p.ssrc, p.pt)
		}
	}
	for k := range 20 {
		l, ok := got[k]
		if want(k) < 0 {
			if ok {
				t.Fatalf("frame %d forwarded before the first keyframe", k)
			}
			continue
		}
		if !ok || l != want(k) {
			t.Fatalf("frame %d came from layer %d (present %v), want layer %d", k, l, ok, want(k))
		}
	}
	if s := d.Stats().Switches; s != 2 {
		t.Fatalf("switches = %d, want 2", s)
	}
	if d.Layer() != 2 {
		t.Fatalf("final layer %d, want 2", d.Layer())
	}
}

func TestDownTrackFollowsActiveLayersWhenTopLayerPauses(t *testing.T) {
	tt := newTestTrack(t, 0)
	d, w, _ := tt.subscribe(t, DownTrackOptions{}, true)
	// Only layers 0 and 1 are active: a fresh subscriber starts on 1.
	tt.frame(0, 0, true)
	tt.frame(1, 0, false)
	_, active := tt.Layers()
	d.reselect(active, time.Now().UnixNano())
	for k := 1; k < 4; k++ {
		tt.frame(0, k, false)
		tt.frame(1, k, k == 1)
	}
	pkts := w.sent()
	if len(pkts) == 0 || pkts[0].payload[2] != 1 || pkts[0].payload[3] != 1 {
		t.Fatalf("subscriber did not start on the highest active layer's keyframe: %d packets", len(pkts))
	}
	checkContinuous(t, pkts)
}

func TestNewSubscriberStartsOnCachedKeyframe(t *testing.T) {
	tt := newTestTrack(t, 0)
	for k := range 10 { // keyframe at 0 and 8; 2 frames after the last one
		tt.frame(2, k, k%8 == 0)
	}
	d, w, _ := tt.subscribe(t, DownTrackOptions{Layer: 2, Pinned: true}, true)
	waitFor(t, "the replay to reach the live edge", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return !d.replaying
	})
	pkts := w.sent()
	if len(pkts) != 6 {
		t.Fatalf("replayed %d packets, want the 6 of frames 8 and 9", len(pkts))
	}
	if pkts[0].payload[3] != 8 || pkts[0].payload[1]&1 != 0 {
		t.Fatalf("replay did not start at the cached keyframe: % x", pkts[0].payload)
	}
	tt.frame(2, 10, false)
	pkts = w.sent()
	checkContinuous(t, pkts)
	// The cached frames sit just behind the live edge: their timestamps are
	// packed, and the live frame follows one frame interval after the last.
	if d := pkts[6].ts - pkts[5].ts; d != 4500 {
		t.Fatalf("live frame %d ticks after the replayed ones, want 4500", d)
	}
	if d := pkts[5].ts - pkts[0].ts; d != 1 {
		t.Fatalf("replayed frames span %d ticks, want 1", d)
	}
	if tt.stats.CachedStarts.Load() != 1 {
		t.Fatal("cached start not counted")
	}
}

func TestDownTrackAnswersNACKFromCacheOverRTX(t *testing.T) {
	tt := newTestTrack(t, 0)
	d, w, rc := tt.subscribe(t, DownTrackOptions{Layer: 0, Pinned: true}, true)
	for k := range 3 {
		tt.frame(0, k, k == 0)
	}
	lost := w.sent()[4]
	nack, _ := (&rtcp.TransportLayerNack{MediaSSRC: 1111, Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{lost.seq})}).Marshal()
	rc.ch <- nack
	var rtx sentPkt
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if p := w.sent(); len(p) == 10 {
			rtx = p[9]
			break
		}
		time.Sleep(time.Millisecond)
	}
	if rtx.ssrc != 2222 || rtx.pt != 101 {
		t.Fatalf("retransmission sent with ssrc %d pt %d, want RTX 2222/101", rtx.ssrc, rtx.pt)
	}
	if osn := uint16(rtx.payload[0])<<8 | uint16(rtx.payload[1]); osn != lost.seq || string(rtx.payload[2:]) != string(lost.payload) {
		t.Fatalf("RTX payload: osn %d payload % x, want %d % x", osn, rtx.payload[2:], lost.seq, lost.payload)
	}
	if rtx.ts != lost.ts {
		t.Fatalf("RTX timestamp %d, want %d", rtx.ts, lost.ts)
	}
	if s := d.Stats(); s.NACKs != 1 || s.Retransmits != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestKeyframeRequestsAreThrottledPerLayer(t *testing.T) {
	tt := newTestTrack(t, 0)
	tt.settings.PLIInterval = time.Hour
	for range 100 {
		tt.RequestKeyframe(1)
	}
	if n := len(tt.plis); n != 1 {
		t.Fatalf("%d PLIs sent upstream for 100 requests, want 1", n)
	}
	if ssrc := <-tt.plis; ssrc != 11 {
		t.Fatalf("PLI for ssrc %d, want layer 1's 11", ssrc)
	}
}

func TestFanoutInParallelDeliversEveryPacketToEverySubscriber(t *testing.T) {
	tt := newTestTrack(t, 2)
	var ws []*fakeWriter
	for range 100 {
		_, w, _ := tt.subscribe(t, DownTrackOptions{Layer: 0, Pinned: true}, false)
		ws = append(ws, w)
	}
	for k := range 20 {
		tt.frame(0, k, k == 0)
	}
	for i, w := range ws {
		if w.n != 60 {
			t.Fatalf("subscriber %d got %d packets, want 60", i, w.n)
		}
	}
}

func TestClosingTrackClosesItsDownTracks(t *testing.T) {
	tt := newTestTrack(t, 0)
	d, _, _ := tt.subscribe(t, DownTrackOptions{}, false)
	closed := make(chan struct{})
	d.OnClose(func() { close(closed) })
	tt.close()
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("DownTrack not closed when its track ended")
	}
	if _, err := tt.Subscribe(DownTrackOptions{}); err != ErrTrackClosed {
		t.Fatalf("Subscribe after close: %v, want ErrTrackClosed", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestReplayIsPacedAndHandsOverToLivePackets(t *testing.T) {
	tt := newTestTrack(t, 0)
	for k := range 40 { // 120 packets from the keyframe: paced over several ticks
		tt.frame(2, k, k == 0)
	}
	d, w, _ := tt.subscribe(t, DownTrackOptions{Layer: 2, Pinned: true}, true)
	// Live frames keep arriving while the replay runs.
	for k := 40; k < 60; k++ {
		tt.frame(2, k, false)
	}
	waitFor(t, "the replay to reach the live edge", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return !d.replaying
	})
	for k := 60; k < 65; k++ {
		tt.frame(2, k, false)
	}
	pkts := w.sent()
	if len(pkts) != 65*3 {
		t.Fatalf("sent %d packets, want every one of the 195 since the keyframe once", len(pkts))
	}
	checkContinuous(t, pkts)
	for i, p := range pkts {
		if int(p.payload[3]) != i/3 {
			t.Fatalf("packet %d carries frame %d, want %d", i, p.payload[3], i/3)
		}
	}
}

// An exact subscriber of layer 2 gets nothing while only the lower layers
// are sent, and then layer 2 alone, from its first keyframe.
func TestExactDownTrackForwardsOnlyItsLayer(t *testing.T) {
	tt := newTestTrack(t, 0)
	d, w, _ := tt.subscribe(t, DownTrackOptions{Layer: 2, Pinned: true, Exact: true}, true)
	for k := range 6 {
		tt.frame(0, k, k == 0)
		tt.frame(1, k, k == 0)
		_, active := tt.Layers()
		d.reselect(active, time.Now().UnixNano())
	}
	if n := len(w.sent()); n != 0 {
		t.Fatalf("%d packets of a lower layer were forwarded to an exact layer-2 subscriber", n)
	}
	for k := 6; k < 10; k++ {
		tt.frame(0, k, false)
		tt.frame(1, k, false)
		tt.frame(2, k, k == 7)
	}
	pkts := w.sent()
	if len(pkts) == 0 {
		t.Fatal("layer 2 was not forwarded once it came")
	}
	for i, p := range pkts {
		if l, k := int(p.payload[2]), int(p.payload[3]); l != 2 || k < 7 {
			t.Fatalf("packet %d is frame %d of layer %d, want layer 2 from its keyframe at 7", i, k, l)
		}
	}
	checkContinuous(t, pkts)
}
