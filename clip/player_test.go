package clip

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// frameLog records, per layer, the RTP timestamp and send time of the first
// packet of every frame it is written.
type frameLog struct {
	lastTS map[string]uint32
	ts     map[string][]uint32
	at     map[string][]time.Time
}

func newFrameLog() *frameLog {
	return &frameLog{lastTS: map[string]uint32{}, ts: map[string][]uint32{}, at: map[string][]time.Time{}}
}

func (l *frameLog) onSend(layer string, p *rtp.Packet, _ bool, at time.Time) {
	if n := len(l.ts[layer]); n > 0 && l.lastTS[layer] == p.Timestamp {
		return
	}
	l.lastTS[layer] = p.Timestamp
	l.ts[layer] = append(l.ts[layer], p.Timestamp)
	l.at[layer] = append(l.at[layer], at)
}

// discard is a Writer that drops packets, or fails with err when set.
type discard struct{ err error }

func (d discard) WriteRTP(*rtp.Packet) error { return d.err }

// publisher returns outputs for the three VP8 rungs and the audio clip, in
// the order audio, q, h, f.
func publisher(t testing.TB, w Writer) []Output {
	t.Helper()
	a, err := Audio()
	if err != nil {
		t.Fatal(err)
	}
	outs := []Output{{Layer: "audio", Stream: NewStream(a, 1, 111), Writer: w}}
	for i, rid := range RIDs() {
		c, err := Video(VP8, rid)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, Output{Layer: rid, Stream: NewStream(c, uint32(2+i), 96), Writer: w})
	}
	return outs
}

func TestPlayerSendsEachFrameWhenDueOnOneClock(t *testing.T) {
	log := newFrameLog()
	p, err := NewPlayer(PlayerConfig{Outputs: publisher(t, discard{}), OnSend: log.onSend})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_700_000_000, 0)
	p.start(t0)
	// Wake up every 7 ms, as a timer that is late by up to 7 ms would, until
	// the first wake-up at or after 1 s.
	for now := t0; ; now = now.Add(7 * time.Millisecond) {
		next, err := p.sendDue(now)
		if err != nil {
			t.Fatal(err)
		}
		if !next.After(now) || next.Sub(now) > 20*time.Millisecond {
			t.Fatalf("at %v the next frame is due %v later", now.Sub(t0), next.Sub(now))
		}
		if now.Sub(t0) >= time.Second {
			break
		}
	}
	// Over [0, 1 s]: frames 0..20 of video, 0..50 of audio.
	want := map[string]int{"audio": 51, "q": 21, "h": 21, "f": 21}
	for layer, n := range want {
		if got := len(log.ts[layer]); got != n {
			t.Errorf("%s: %d frames in 1 s, want %d", layer, got, n)
		}
		rate := 90000.0
		if layer == "audio" {
			rate = 48000
		}
		for i, at := range log.at[layer] {
			media := time.Duration(float64(log.ts[layer][i]-log.ts[layer][0]) / rate * float64(time.Second))
			if late := at.Sub(t0) - media; late < 0 || late >= 7*time.Millisecond {
				t.Fatalf("%s frame %d with media time %v sent at %v", layer, i, media, at.Sub(t0))
			}
		}
	}
	if p.Stalls() != 0 {
		t.Errorf("%d stalls, want 0", p.Stalls())
	}
}

func TestPlayerSkipsTimeInsteadOfBurstingAfterAStall(t *testing.T) {
	log := newFrameLog()
	p, err := NewPlayer(PlayerConfig{Outputs: publisher(t, discard{}), OnSend: log.onSend})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_700_000_000, 0)
	p.start(t0)
	if _, err := p.sendDue(t0); err != nil {
		t.Fatal(err)
	}
	if _, err := p.sendDue(t0.Add(2*time.Second + 10*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if p.Stalls() != 1 {
		t.Errorf("%d stalls, want 1", p.Stalls())
	}
	for layer, ts := range log.ts {
		if len(ts) != 2 {
			t.Fatalf("%s: %d frames sent, want 2 (no burst)", layer, len(ts))
		}
		// The second frame's timestamp is 2 s on, tracking the wall clock.
		step := uint32(2 * 90000)
		if layer == "audio" {
			step = 2 * 48000
		}
		if ts[1]-ts[0] != step {
			t.Errorf("%s: timestamp advanced %d over the stall, want %d", layer, ts[1]-ts[0], step)
		}
	}
}

// countingWriter counts frames of each layer (by marker or, for audio, by
// packet) and reports on done the counts when "q" reaches target frames.
type countingWriter struct {
	frames map[string]int
	layer  string
	target int
	done   chan map[string]int
}

func (w *countingWriter) forLayer(layer string) Writer { return layerWriter{w, layer} }

type layerWriter struct {
	w     *countingWriter
	layer string
}

func (lw layerWriter) WriteRTP(p *rtp.Packet) error {
	w := lw.w
	if lw.layer == "audio" || p.Marker {
		w.frames[lw.layer]++
	}
	if lw.layer == w.layer && p.Marker && w.frames[lw.layer] == w.target {
		snapshot := map[string]int{}
		for k, v := range w.frames {
			snapshot[k] = v
		}
		w.done <- snapshot
	}
	return nil
}

func TestPlayerRunsInRealTime(t *testing.T) {
	w := &countingWriter{frames: map[string]int{}, layer: "q", target: 21, done: make(chan map[string]int, 1)}
	outs := publisher(t, nil)
	for i := range outs {
		outs[i].Writer = w.forLayer(outs[i].Layer)
	}
	p, err := NewPlayer(PlayerConfig{Outputs: outs})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	start := time.Now()
	go func() { ran <- p.Run(ctx) }()

	var counts map[string]int
	select {
	case counts = <-w.done:
	case err := <-ran:
		t.Fatalf("Run returned early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("q did not send 21 frames in 10 s")
	}
	elapsed := time.Since(start)
	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Frame 20 of q is due 1 s after the start: never sooner, and on a
	// healthy host (even under -race) well within half a second more.
	if elapsed < time.Second || elapsed > 1500*time.Millisecond {
		t.Errorf("21 frames of q took %v, want about 1 s", elapsed)
	}
	// Outputs are served in order at each tick: audio frame 50 (due at 1 s,
	// like q's frame 20) before q, and h and f after it.
	if counts["h"] != 20 || counts["f"] != 20 || counts["audio"] < 51 || counts["audio"] > 60 {
		t.Errorf("frames when q sent its 21st: %v, want h and f 20, audio about 51", counts)
	}
}

func TestPlayerRunStopsAtFirstWriteError(t *testing.T) {
	broken := errors.New("broken pipe")
	p, err := NewPlayer(PlayerConfig{Outputs: publisher(t, discard{err: broken})})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); !errors.Is(err, broken) {
		t.Errorf("Run returned %v, want %v", err, broken)
	}
}

func TestPlayerRunReturnsNilWhenContextIsDone(t *testing.T) {
	p, err := NewPlayer(PlayerConfig{Outputs: publisher(t, discard{})})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Run(ctx); err != nil {
		t.Errorf("Run with a done context returned %v", err)
	}
}

func TestNewPlayerRejectsBadOutputs(t *testing.T) {
	c, err := Video(VP8, "q")
	if err != nil {
		t.Fatal(err)
	}
	s := NewStream(c, 1, 96)
	tests := map[string][]Output{
		"none":          nil,
		"no stream":     {{Layer: "q", Writer: discard{}}},
		"no writer":     {{Layer: "q", Stream: s}},
		"shared stream": {{Layer: "q", Stream: s, Writer: discard{}}, {Layer: "q2", Stream: s, Writer: discard{}}},
	}
	for name, outs := range tests {
		if _, err := NewPlayer(PlayerConfig{Outputs: outs}); err == nil {
			t.Errorf("%s: NewPlayer succeeded", name)
		}
	}
}

func TestPlayerSendDoesNotAllocate(t *testing.T) {
	p, err := NewPlayer(PlayerConfig{
		Outputs: publisher(t, discard{}),
		OnSend:  func(string, *rtp.Packet, bool, time.Time) {},
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	p.start(now)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := p.sendDue(now); err != nil {
			t.Fatal(err)
		}
		now = now.Add(50 * time.Millisecond)
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per 50 ms of a 4-stream publisher, want 0", allocs)
	}
}

// BenchmarkPlayerPublisherSecond measures the CPU cost of one second of a
// publisher (three VP8 rungs and Opus), the unit a load tester multiplies.
func BenchmarkPlayerPublisherSecond(b *testing.B) {
	p, err := NewPlayer(PlayerConfig{Outputs: publisher(b, discard{})})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	p.start(now)
	b.ReportAllocs()
	for b.Loop() {
		for range 50 { // one wake-up every 20 ms
			if _, err := p.sendDue(now); err != nil {
				b.Fatal(err)
			}
			now = now.Add(20 * time.Millisecond)
		}
	}
}
