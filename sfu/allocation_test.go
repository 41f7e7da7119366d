package sfu

import (
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/starling-sfu/starling/bwe"
)

// activeAll are all three test layers receiving.
var activeAll = [MaxLayers]bool{true, true, true}

func TestDownTrackPausesAndResumesAtAKeyframeWithContinuousNumbering(t *testing.T) {
	tt := newTestTrack(t, 0)
	d, w, _ := tt.subscribe(t, DownTrackOptions{}, true)
	for k := range 4 {
		tt.frame(2, k, k == 0)
	}
	now := time.Now().UnixNano()
	d.allocate(allocPause, activeAll, now)
	for k := 4; k < 8; k++ {
		tt.frame(0, k, k == 4)
		tt.frame(2, k, false)
	}
	if n := len(w.sent()); n != 12 {
		t.Fatalf("%d packets sent, want the 12 before the pause only", n)
	}
	if s := d.Stats(); !s.Paused || s.Layer != -1 {
		t.Fatalf("paused DownTrack reports %+v", s)
	}
	d.allocate(0, activeAll, now+int64(time.Second))
	tt.frame(0, 8, false) // not a keyframe: still nothing
	if n := len(w.sent()); n != 12 {
		t.Fatalf("resumed on a delta frame: %d packets", n)
	}
	tt.frame(0, 9, true)
	tt.frame(0, 10, false)
	pkts := w.sent()
	if len(pkts) != 18 || pkts[12].payload[2] != 0 || pkts[12].payload[3] != 9 {
		t.Fatalf("did not resume at layer 0's keyframe: %d packets", len(pkts))
	}
	checkContinuous(t, pkts)
	if s := d.Stats(); s.Paused || s.PausedSeconds < 0.9 {
		t.Fatalf("after resuming: %+v, want not paused and about a second paused in all", s)
	}
}

func TestDownTrackMovesDownAtOnceFromTheLowerLayersCachedKeyframe(t *testing.T) {
	tt := newTestTrack(t, 0)
	d, w, _ := tt.subscribe(t, DownTrackOptions{}, true)
	for k := range 6 {
		tt.frame(0, k, k == 2) // layer 0's keyframe is cached
		tt.frame(2, k, k == 0)
	}
	before := len(w.sent())
	d.allocate(0, activeAll, time.Now().UnixNano())
	waitFor(t, "the switch's replay to reach the live edge", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return !d.replaying
	})
	tt.frame(0, 6, false)
	tt.frame(2, 6, false)
	pkts := w.sent()
	checkContinuous(t, pkts)
	first := pkts[before]
	if first.payload[2] != 0 || first.payload[3] != 2 || first.payload[1]&1 != 0 {
		t.Fatalf("the switch did not start at layer 0's cached keyframe: % x", first.payload)
	}
	if got := len(pkts) - before; got != 5*3 {
		t.Fatalf("%d packets after the switch, want frames 2 to 6 of layer 0", got)
	}
	for _, p := range pkts[before:] {
		if p.payload[2] != 0 {
			t.Fatalf("layer %d forwarded after the switch down", p.payload[2])
		}
	}
	if s := d.Stats(); s.Switches != 1 || tt.stats.LayerDowns.Load() != 1 {
		t.Fatalf("switch not counted: %+v, downs %d", s, tt.stats.LayerDowns.Load())
	}
}

func TestRetransmissionsAreLimitedToTheForwardedLayerAndFewTries(t *testing.T) {
	tt := newTestTrack(t, 0)
	d, w, _ := tt.subscribe(t, DownTrackOptions{}, true)
	for k := range 3 {
		tt.frame(2, k, k == 0)
	}
	seq := w.sent()[4].seq
	now := time.Now().UnixNano()
	d.mu.Lock()
	resent := 0
	for i := range 2 * maxResends {
		// A NACK every round, as a receiver sends them.
		if d.resend(seq, now+int64(i)*resendInterval) {
			resent++
		}
	}
	d.mu.Unlock()
	if resent != maxResends {
		t.Fatalf("a packet NACKed %d times was resent %d times, want %d", 2*maxResends, resent, maxResends)
	}
	d.mu.Lock()
	old := d.resend(w.sent()[5].seq, now+maxResendAge+int64(time.Second))
	d.mu.Unlock()
	if old {
		t.Fatal("resent a packet older than the resend age")
	}
	// After a switch down, the old layer's packets are no use to the decoder.
	d.allocate(0, activeAll, now)
	for k := 3; k < 5; k++ {
		tt.frame(0, k, k == 3)
	}
	d.mu.Lock()
	stale := d.resend(w.sent()[6].seq, now)
	d.mu.Unlock()
	if stale {
		t.Fatal("resent a packet of the layer switched away from")
	}
}

func TestProbesArePaddingOnTheMediaStreamBetweenFrames(t *testing.T) {
	tt := newTestTrack(t, 0)
	d, w, _ := tt.subscribe(t, DownTrackOptions{}, true)
	if n := d.sendProbe(); n != 0 {
		t.Fatalf("probe sent (%d bytes) before any media", n)
	}
	tt.frame(2, 0, true)
	for range 3 {
		if n := d.sendProbe(); n != 12+maxPadding {
			t.Fatalf("probe of %d bytes, want a full padding-only packet", n)
		}
	}
	tt.frame(2, 1, false)
	pkts := w.sent()
	if len(pkts) != 9 {
		t.Fatalf("%d packets, want 3 of media, 3 of padding, 3 of media", len(pkts))
	}
	checkContinuous(t, pkts)
	for i, p := range pkts[3:6] {
		if p.ssrc != 1111 || len(p.payload) != 0 || p.marker {
			t.Fatalf("probe %d: ssrc %d, %d bytes of payload, marker %v; want padding only on the media stream", i, p.ssrc, len(p.payload), p.marker)
		}
	}
	// In the middle of a frame there is no room for padding.
	payload := []byte{0x10, 0x01, 2, 2}
	tt.hdr = rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: tt.seq[2], Timestamp: tt.ts[2], SSRC: 12}
	raw, _ := (&rtp.Packet{Header: tt.hdr, Payload: payload}).Marshal()
	tt.ingest(tt.layers[2].Load(), &tt.hdr, raw, payload, &tt.wg)
	if n := d.sendProbe(); n != 0 {
		t.Fatal("padding sent in the middle of a frame")
	}
}

// fakeEstimate is a bandwidth estimator the test sets.
type fakeEstimate struct {
	bps  chan int
	last int
}

func (f *fakeEstimate) Estimate(time.Time) bwe.Estimate {
	select {
	case b := <-f.bps:
		f.last = b
	default:
	}
	return bwe.Estimate{Bitrate: f.last, Source: bwe.SourceTWCC, Loss: 0}
}

func TestSubscriberMovesItsVideoToWhatItsEstimateCarries(t *testing.T) {
	tt := newTestTrack(t, 0)
	s := New(Settings{})
	sub := s.NewSubscriber("viewer")
	defer sub.Close()
	d, err := sub.Subscribe(tt.Track, DownTrackOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := &fakeWriter{keep: true}
	rc := &fakeRTCP{ch: make(chan []byte, 1)}
	defer close(rc.ch)
	if _, err := d.Bind(&fakeContext{codecs: subscriberCodecs, w: w, rtcp: rc}); err != nil {
		t.Fatal(err)
	}
	d.Start()
	est := &fakeEstimate{bps: make(chan int, 1)}
	est.bps <- 1000 // less than any layer: the lowest, then a pause after pauseHold
	sub.setEstimator(est)
	frames := 0
	waitFor(t, "the video to move to the lowest layer", func() bool {
		tt.frame(0, frames, frames%4 == 0)
		tt.frame(1, frames, frames%4 == 0)
		tt.frame(2, frames, frames%4 == 0)
		frames++
		time.Sleep(5 * time.Millisecond)
		return d.Layer() == 0
	})
	st := sub.Stats()
	if st.Source != "twcc" || st.Estimate != 1000 || len(st.Tracks) != 1 || st.Tracks[0].Layer != 0 {
		t.Fatalf("stats %+v", st)
	}
}
