package llhls

import (
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starling-sfu/starling/transcode"
)

// newPassthroughTrack is a passthrough video track at a nominal frame
// duration of frame ticks.
func newPassthroughTrack(g *grid, frame int64) *testTrack {
	cfg, _ := Config{Passthrough: true}.withDefaults()
	t := &testTrack{timescale: videoTimescale}
	t.cut = newSegmenter(cfg, g, &t.rec, true, videoTimescale, frame, new(atomic.Uint64), testLog)
	t.maxPart = keyedPartTarget(durTicks(cfg.PartTarget, videoTimescale), frame)
	return t
}

// publisherVideo is what a browser sends at 20 fps: frame times with up to
// ±4 ms of jitter, an IDR on the first frame at or after each grid line plus
// that line's entry in late (the time a keyframe request takes; a missing
// entry means the publisher sent none), and one IDR of its own mid-segment.
func publisherVideo(seconds int, late map[int]time.Duration) []transcode.Sample {
	rng := rand.New(rand.NewPCG(1, 2))
	var due []time.Duration // when each requested IDR is made, in order
	for k := 1; k*2 <= seconds; k++ {
		if d, ok := late[k]; ok {
			due = append(due, time.Duration(k)*2*time.Second+d)
		}
	}
	var out []transcode.Sample
	for i := range seconds * 20 {
		nominal := time.Duration(i) * 50 * time.Millisecond
		at := nominal + time.Duration(rng.IntN(9)-4)*time.Millisecond
		key := i == 0 || i == 18 // its own IDR at 0.9 s
		for len(due) > 0 && nominal >= due[0] {
			key, due = true, due[1:]
		}
		out = append(out, videoSample(0, at, key, i))
	}
	return out
}

func TestPassthroughSegmentsStartAtThePublishersIDRs(t *testing.T) {
	g := newGrid(2*time.Second, testWall, true)
	tr := newPassthroughTrack(g, 4500)
	// IDRs come early, late, and very late against the 2 s lines.
	late := map[int]time.Duration{1: 60 * time.Millisecond, 2: -240 * time.Millisecond,
		3: 100 * time.Millisecond, 4: -10 * time.Millisecond, 5: 0}
	for _, s := range publisherVideo(12, late) {
		tr.push(t, s)
	}
	tr.cut.finish()

	if dep := checkParts(t, "passthrough", tr); len(dep) > 0 {
		t.Errorf("segments %v do not start with an IDR", dep)
	}
	segs := tr.rec.segs
	if len(segs) != 6 {
		t.Fatalf("%d segments, want 6", len(segs))
	}
	start := time.Duration(0)
	for i, s := range segs {
		if s.msn != g.cur.firstMSN+uint64(i) {
			t.Errorf("segment %d has msn %d, want %d: numbers follow the grid", i, s.msn, g.cur.firstMSN+uint64(i))
		}
		line := time.Duration(i) * 2 * time.Second
		if off := start - line; off < -250*time.Millisecond || off > 160*time.Millisecond {
			t.Errorf("segment %d starts %v from its line, want within -250ms..+160ms", s.msn, off)
		}
		d := time.Duration(s.dur) * time.Second / videoTimescale
		if i < len(segs)-1 && (d < 1500*time.Millisecond || d >= 2500*time.Millisecond) {
			t.Errorf("segment %d lasts %v: EXTINF rounds to more than the 2 s target duration", s.msn, d)
		}
		start += d
	}
	// The IDR of its own at 0.9 s is just a frame: no new segment.
	if d := time.Duration(segs[0].dur) * time.Second / videoTimescale; d < 1900*time.Millisecond {
		t.Errorf("the first segment lasts %v; the publisher's own IDR cut it short", d)
	}
}

func TestPassthroughSegmentStartsWithoutAnIDRThatNeverComes(t *testing.T) {
	g := newGrid(2*time.Second, testWall, true)
	tr := newPassthroughTrack(g, 4500)
	// The publisher ignores the request for line 2's IDR.
	late := map[int]time.Duration{1: 40 * time.Millisecond, 3: 40 * time.Millisecond, 4: 40 * time.Millisecond}
	for _, s := range publisherVideo(10, late) {
		tr.push(t, s)
	}
	tr.cut.finish()
	checkParts(t, "passthrough", tr)
	var starts []time.Duration
	var at time.Duration
	for i, s := range tr.rec.segs {
		if i > 0 && s.msn != tr.rec.segs[i-1].msn+1 {
			t.Errorf("segment %d follows %d", s.msn, tr.rec.segs[i-1].msn)
		}
		starts = append(starts, at)
		at += time.Duration(s.dur) * time.Second / videoTimescale
	}
	if len(starts) < 3 {
		t.Fatalf("%d segments, want at least 3", len(starts))
	}
	// Segment 2 starts 150 ms late, on a plain frame, rather than growing
	// until the next IDR, past what EXT-X-TARGETDURATION allows.
	if s := starts[2]; s < 4140*time.Millisecond || s > 4210*time.Millisecond {
		t.Errorf("the segment without an IDR starts at %v, want 4.15-4.2 s (its line plus 150 ms)", s)
	}
	if d := time.Duration(tr.rec.segs[1].dur) * time.Second / videoTimescale; d >= 2500*time.Millisecond {
		t.Errorf("the segment before it lasts %v", d)
	}
}

func TestPassthroughPartsStayWithinPartTargetWhenTheFrameRateFalls(t *testing.T) {
	g := newGrid(2*time.Second, testWall, true)
	tr := newPassthroughTrack(g, 3000) // announced as 30 fps
	var at time.Duration
	for i := range 200 {
		step := 33 * time.Millisecond
		if i >= 60 && i < 120 {
			step = 90 * time.Millisecond // the camera drops to 11 fps
		}
		tr.push(t, videoSample(0, at, i%60 == 0, i))
		at += step
	}
	tr.cut.finish()
	for _, s := range tr.rec.segs {
		for n, p := range s.parts {
			if p.duration > tr.maxPart {
				t.Errorf("part %d.%d lasts %d ticks, above PART-TARGET's %d", s.msn, n, p.duration, tr.maxPart)
			}
		}
	}
	if tr.maxPart != 8*3000 {
		t.Errorf("PART-TARGET is %d ticks, want 8 frames of 30 fps", tr.maxPart)
	}
}

// A publisher whose "20 fps" runs at 21.6 fps for a while and at 18.5 for
// another, each frame ±8 ms: every part stays within PART-TARGET and above
// 85% of it, except each segment's last.
func TestPassthroughPartsFitWhenThePublishersClockDrifts(t *testing.T) {
	g := newGrid(2*time.Second, testWall, true)
	tr := newPassthroughTrack(g, 4500)
	rng := rand.New(rand.NewPCG(3, 4))
	var at time.Duration
	for i := range 400 {
		step := 46300 * time.Microsecond
		if i >= 200 {
			step = 54000 * time.Microsecond
		}
		jitter := time.Duration(rng.IntN(17)-8) * time.Millisecond
		tr.push(t, videoSample(0, at+jitter, i%40 == 0, i))
		at += step
	}
	tr.cut.finish()
	checkParts(t, "drifting", tr)
}
