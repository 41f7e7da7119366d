package sfu

import (
	"testing"
	"time"
)

// A lower layer whose cached run is too long to replay quickly (Chromium
// sends keyframes only when asked, so that run can span a minute) is not
// replayed on a switch down: the subscriber asks for the layer's keyframe and
// moves down at it, instead of seeing the layer late for as long as a slow
// replay would take to catch up.
func TestSwitchDownWaitsForAKeyframeWhenTheCachedRunIsLong(t *testing.T) {
	tt := newTestTrack(t, 0)
	d, w, _ := tt.subscribe(t, DownTrackOptions{}, true)
	// Layer 0's keyframe is 40 frames (2 s) old: more than switchPace allows.
	for k := range 40 {
		tt.frame(0, k, k == 0)
		tt.frame(2, k, k == 0)
	}
	drainPLIs(tt)
	before := len(w.sent())
	d.allocate(0, activeAll, time.Now().UnixNano())
	d.mu.Lock()
	replaying := d.replaying
	d.mu.Unlock()
	if replaying {
		t.Fatal("a 2 s run was replayed on a switch down")
	}
	if !askedFor(tt, 10) {
		t.Fatal("no keyframe was asked of layer 0")
	}
	tt.frame(0, 40, false)
	tt.frame(2, 40, false) // still layer 2 until layer 0's keyframe
	tt.frame(0, 41, true)
	tt.frame(2, 41, false)
	pkts := w.sent()[before:]
	checkContinuous(t, w.sent())
	if len(pkts) != 6 || pkts[0].payload[2] != 2 || pkts[3].payload[2] != 0 || pkts[3].payload[3] != 41 || pkts[3].payload[1]&1 != 0 {
		t.Fatalf("after the switch down: %d packets, want layer 2's frame 40 then layer 0's keyframe 41", len(pkts))
	}
}

// A replay meets the live edge by its deadline even when the layer's live
// rate outgrows the run's, as when an encoder ramps up after a keyframe: at
// the run's own pace it would never catch up and the subscriber would stay
// behind live for good.
func TestReplayCatchesUpWhenTheLiveRateOutgrowsTheRun(t *testing.T) {
	tt := newTestTrack(t, 0)
	for k := range 20 { // 60 packets over 0.95 s: replayed at 3×, 190 packets/s
		tt.frame(2, k, k == 0)
	}
	d, w, _ := tt.subscribe(t, DownTrackOptions{Layer: 2, Pinned: true}, true)
	replaying := func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.replaying
	}
	// Live frames arrive at 500 packets/s, for twice what the catch-up may take.
	caught := -1
	k := 20
	for end := time.Now().Add(2 * joinPace.catchUp); time.Now().Before(end); k++ {
		tt.frame(2, k, false)
		if caught < 0 && !replaying() {
			caught = k
		}
		time.Sleep(6 * time.Millisecond)
	}
	if caught < 0 {
		t.Fatalf("the replay had not met the live edge after %v of live frames at 500 packets/s", 2*joinPace.catchUp)
	}
	pkts := w.sent()
	if len(pkts) != 3*k {
		t.Fatalf("sent %d packets, want every one of the %d since the keyframe once", len(pkts), 3*k)
	}
	checkContinuous(t, pkts)
	for i, p := range pkts {
		if int(p.payload[3]) != (i/3)%256 {
			t.Fatalf("packet %d carries frame %d, want %d", i, p.payload[3], (i/3)%256)
		}
	}
}

func drainPLIs(tt *testTrack) {
	for {
		select {
		case <-tt.plis:
		default:
			return
		}
	}
}

// askedFor reports whether a keyframe request for ssrc is queued.
func askedFor(tt *testTrack, ssrc uint32) bool {
	for {
		select {
		case s := <-tt.plis:
			if s == ssrc {
				return true
			}
		case <-time.After(time.Second):
			return false
		}
	}
}
