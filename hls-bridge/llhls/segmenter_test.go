package llhls

import (
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starling-sfu/starling/transcode"
)

type recSegment struct {
	msn       uint64
	wall      time.Time
	disc, gap bool
	newInit   bool
	parts     []cutPart
	dur       int64
	closed    bool
}

// recorder is a segmentSink that keeps what it is told.
type recorder struct{ segs []*recSegment }

func (r *recorder) openSegment(msn uint64, wall time.Time, disc bool, sps, _ []byte) {
	r.segs = append(r.segs, &recSegment{msn: msn, wall: wall, disc: disc, newInit: sps != nil})
}

func (r *recorder) gapSegment(msn uint64, wall time.Time, dur int64) {
	r.segs = append(r.segs, &recSegment{msn: msn, wall: wall, gap: true, dur: dur, closed: true})
}

func (r *recorder) closePart(p cutPart) {
	s := r.segs[len(r.segs)-1]
	s.parts = append(s.parts, p)
	s.dur += p.duration
}

func (r *recorder) closeSegment() { r.segs[len(r.segs)-1].closed = true }

// testTrack is a segmenter with its recorder, on a shared grid.
type testTrack struct {
	rec       recorder
	cut       segmenter
	timescale int64
	maxPart   int64 // the longest part the segmenter may cut, ticks
}

func newTestTrack(g *grid, video bool, timescale, frame int64) *testTrack {
	cfg, _ := Config{}.withDefaults()
	t := &testTrack{timescale: timescale}
	t.cut = newSegmenter(cfg, g, &t.rec, video, timescale, frame, new(atomic.Uint64), testLog)
	partTicks := durTicks(cfg.PartTarget, timescale)
	t.maxPart = (partTicks + frame - 1) / frame * frame
	return t
}

func (t *testTrack) push(tb testing.TB, s transcode.Sample) {
	tb.Helper()
	x, err := audioAccessUnit(s)
	if t.cut.video {
		x, err = videoAccessUnit(s)
	}
	if err != nil {
		tb.Fatal(err)
	}
	t.cut.push(x)
}

// ladderTracks is a 30 fps and a 20 fps rendition and 48 kHz audio.
func ladderTracks(g *grid) []*testTrack {
	return []*testTrack{
		newTestTrack(g, true, videoTimescale, 3000),
		newTestTrack(g, true, videoTimescale, 4500),
		newTestTrack(g, false, 48000, aacFrameLen),
	}
}

func pushAll(t *testing.T, tracks []*testTrack, samples []transcode.Sample) {
	for _, s := range samples {
		i := s.Rendition
		if i == transcode.AudioRendition {
			i = len(tracks) - 1
		}
		tracks[i].push(t, s)
	}
	for _, tr := range tracks {
		tr.cut.finish()
	}
}

// checkParts checks every complete segment of a track: consecutive
// numbers, parts within [85%, 100%] of the longest part (the last may be
// shorter). It returns the segments whose first part is not independent.
func checkParts(t *testing.T, name string, tr *testTrack) (dependent []uint64) {
	t.Helper()
	for i, s := range tr.rec.segs {
		if i > 0 && s.msn != tr.rec.segs[i-1].msn+1 {
			t.Errorf("%s: segment %d follows %d", name, s.msn, tr.rec.segs[i-1].msn)
		}
		if s.gap {
			continue
		}
		if !s.closed {
			t.Errorf("%s: segment %d never closed", name, s.msn)
		}
		for n, p := range s.parts {
			if p.duration > tr.maxPart {
				t.Errorf("%s: part %d.%d lasts %d ticks, above %d", name, s.msn, n, p.duration, tr.maxPart)
			}
			if n < len(s.parts)-1 && float64(p.duration) < 0.85*float64(tr.maxPart) {
				t.Errorf("%s: part %d.%d lasts %d ticks, below 85%% of %d", name, s.msn, n, p.duration, tr.maxPart)
			}
		}
		if !s.parts[0].independent || s.parts[0].samples[0].IsNonSyncSample {
			dependent = append(dependent, s.msn)
		}
	}
	return dependent
}

// checkIndependent checks that every segment of a track starts on an IDR.
func checkIndependent(t *testing.T, name string, tr *testTrack) {
	t.Helper()
	if dep := checkParts(t, name, tr); len(dep) > 0 {
		t.Errorf("%s: segments %v do not start independent", name, dep)
	}
}

// partStarts maps msn and part index to the part's start, in seconds.
func partStarts(tr *testTrack) map[[2]uint64]float64 {
	m := make(map[[2]uint64]float64)
	for _, s := range tr.rec.segs {
		for n, p := range s.parts {
			m[[2]uint64{s.msn, uint64(n)}] = float64(p.baseTime) / float64(tr.timescale)
		}
	}
	return m
}

// checkAligned checks that every track has the same segments and parts and
// that each starts at the same instant in all of them, to within a frame.
// Segments that are gaps in some track are left out.
func checkAligned(t *testing.T, tracks []*testTrack) {
	t.Helper()
	gaps := make(map[uint64]bool)
	for _, tr := range tracks {
		for _, s := range tr.rec.segs {
			gaps[s.msn] = gaps[s.msn] || s.gap
		}
	}
	parts := func(tr *testTrack) map[[2]uint64]float64 {
		m := partStarts(tr)
		for k := range m {
			if gaps[k[0]] {
				delete(m, k)
			}
		}
		return m
	}
	ref := parts(tracks[0])
	for i, tr := range tracks[1:] {
		got := parts(tr)
		if len(got) != len(ref) {
			t.Errorf("track %d has %d parts, track 0 has %d", i+1, len(got), len(ref))
		}
		for k, at := range got {
			r, ok := ref[k]
			if !ok {
				t.Errorf("track %d has part %d.%d, track 0 does not", i+1, k[0], k[1])
			} else if math.Abs(at-r) > 0.05 {
				t.Errorf("part %d.%d starts at %.4f in track %d, %.4f in track 0", k[0], k[1], at, i+1, r)
			}
		}
	}
}

func TestSegmenterCutsEveryTrackOnOneGrid(t *testing.T) {
	g := newGrid(2*time.Second, testWall, true)
	tracks := ladderTracks(g)
	pushAll(t, tracks, ladderSamples(10*time.Second))

	for i, name := range []string{"30fps", "20fps", "audio"} {
		checkIndependent(t, name, tracks[i])
		segs := tracks[i].rec.segs
		if len(segs) != 5 {
			t.Fatalf("%s: %d segments, want 5", name, len(segs))
		}
		for _, s := range segs {
			if len(s.parts) != 8 {
				t.Errorf("%s: segment %d has %d parts, want 8", name, s.msn, len(s.parts))
			}
		}
	}
	checkAligned(t, tracks)
	if first := tracks[0].rec.segs[0].msn; first != g.cur.firstMSN {
		t.Errorf("first msn %d, want the grid's %d", first, g.cur.firstMSN)
	}
}

func TestSegmenterFollowsLateIDRsAt2997FPS(t *testing.T) {
	g := newGrid(2*time.Second, testWall, true)
	tr := newTestTrack(g, true, videoTimescale, 3003)
	for _, s := range synthVideo(0, 30000.0/1001, 300, 2*time.Second, 0) {
		tr.push(t, s)
	}
	tr.cut.finish()
	checkIndependent(t, "29.97fps", tr)
	for _, s := range tr.rec.segs[:len(tr.rec.segs)-1] {
		if len(s.parts) != 8 {
			t.Errorf("segment %d has %d parts, want 8", s.msn, len(s.parts))
		}
		if d := float64(s.dur) / videoTimescale; d < 1.9 || d > 2.1 {
			t.Errorf("segment %d lasts %.4fs", s.msn, d)
		}
	}
}

func TestSegmenterWaitsForAnIDR(t *testing.T) {
	g := newGrid(2*time.Second, testWall, true)
	tr := newTestTrack(g, true, videoTimescale, 3000)
	samples := synthVideo(0, 30, 130, 2*time.Second, 0)
	for _, s := range samples[1:] { // the first IDR is lost
		tr.push(t, s)
	}
	tr.cut.finish()
	if got := tr.cut.dropped.Load(); got != 59 {
		t.Errorf("dropped %d samples, want the 59 before the second IDR", got)
	}
	if len(tr.rec.segs) != 2 || tr.rec.segs[0].msn != g.cur.firstMSN+1 {
		t.Fatalf("segments %+v, want two starting at msn %d", tr.rec.segs, g.cur.firstMSN+1)
	}
	checkIndependent(t, "video", tr)
}

func TestSegmenterRestartedEncoderIsOneDiscontinuityForAllTracks(t *testing.T) {
	g := newGrid(2*time.Second, testWall, true)
	tracks := ladderTracks(g)
	before := ladderSamples(5 * time.Second)
	// The encoder restarts: timestamps begin again at zero, and the
	// 20 fps rendition had not yet reached the 4 s segment when it died.
	var cut []transcode.Sample
	for _, s := range before {
		if s.Rendition != 1 || s.DTS < 3900*time.Millisecond {
			cut = append(cut, s)
		}
	}
	pushAll(t, tracks, append(cut, ladderSamples(6*time.Second)...))

	for i, tr := range tracks {
		checkIndependent(t, "track", tr)
		var disc []*recSegment
		for _, s := range tr.rec.segs {
			if s.disc {
				disc = append(disc, s)
			}
		}
		if len(disc) != 1 {
			t.Fatalf("track %d: %d discontinuities, want 1", i, len(disc))
		}
		if want := g.cur.firstMSN; disc[0].msn != want {
			t.Errorf("track %d: discontinuity at msn %d, want %d", i, disc[0].msn, want)
		}
		prev := time.Time{}
		for _, s := range tr.rec.segs {
			if s.wall.Before(prev) {
				t.Errorf("track %d: segment %d PDT %v goes back from %v", i, s.msn, s.wall, prev)
			}
			prev = s.wall
		}
	}
	// The 20 fps track never opened segment base+2: a gap keeps it in line.
	gaps := 0
	for _, s := range tracks[1].rec.segs {
		if s.gap {
			gaps++
		}
	}
	if gaps != 1 {
		t.Errorf("20 fps track has %d gap segments, want 1", gaps)
	}
	checkAligned(t, tracks[:2])
}

func TestSegmenterRephasesOnAMovedIDRCadence(t *testing.T) {
	g := newGrid(2*time.Second, testWall, true)
	tracks := ladderTracks(g)
	// The encoder restarts quickly at 5.3 s without a jump in time: its
	// IDRs now fall at 5.3 s + 2k.
	samples := append(ladderSamples(5300*time.Millisecond), interleave(
		synthVideo(0, 30, 180, 2*time.Second, 5300*time.Millisecond),
		synthVideo(1, 20, 120, 2*time.Second, 5300*time.Millisecond),
		synthAudio(48000, 281, 5300*time.Millisecond),
	)...)
	pushAll(t, tracks, samples)

	// The IDR at 5.3 s may be a scene cut; only the missing one at 6 s
	// shows the cadence moved, so the segment from 6 s starts without an
	// IDR and the grid moves to the IDR at 7.3 s.
	base := g.cur.firstMSN - 4
	starts := []float64{0, 2, 4, 6, 7.3, 9.3}
	for i, tr := range tracks {
		dep := checkParts(t, "track", tr)
		if tr.cut.video && (len(dep) != 1 || dep[0] != base+3) {
			t.Errorf("track %d: segments %v start without an IDR, want only %d", i, dep, base+3)
		}
		if len(tr.rec.segs) != len(starts) {
			t.Fatalf("track %d: %d segments, want %d", i, len(tr.rec.segs), len(starts))
		}
		for j, s := range tr.rec.segs {
			if s.disc || s.gap {
				t.Errorf("track %d: segment %d disc=%v gap=%v: a re-phase is neither", i, s.msn, s.disc, s.gap)
			}
			at := float64(s.parts[0].baseTime)/float64(tr.timescale) - float64(testWall.UnixNano())/1e9
			if s.msn != base+uint64(j) || math.Abs(at-starts[j]) > 0.03 {
				t.Errorf("track %d: segment %d starts at %.3fs, want %d at %.1fs", i, s.msn, at, base+uint64(j), starts[j])
			}
		}
	}
	checkAligned(t, tracks)
}

func TestSegmenterFillsAHoleInTheInputWithAGapSegment(t *testing.T) {
	g := newGrid(2*time.Second, testWall, true)
	tracks := ladderTracks(g)
	var samples []transcode.Sample
	for _, s := range ladderSamples(10 * time.Second) {
		// Audio stops for 2.2 s, all of segment 2.
		if s.Rendition != transcode.AudioRendition || s.DTS < 3900*time.Millisecond || s.DTS >= 6100*time.Millisecond {
			samples = append(samples, s)
		}
	}
	pushAll(t, tracks, samples)

	audio := tracks[2].rec.segs
	base := g.cur.firstMSN
	checkIndependent(t, "audio", tracks[2])
	if len(audio) != 5 || !audio[2].gap || audio[1].gap || audio[3].gap || audio[3].disc {
		t.Fatalf("audio segments %+v, want 5 with only the third a gap", audio)
	}
	if audio[2].msn != base+2 {
		t.Errorf("gap is msn %d, want %d", audio[2].msn, base+2)
	}
	// The audio before the hole ends where its samples do, not at 6.1 s.
	if d := float64(audio[1].dur) / 48000; math.Abs(d-1.92) > 0.03 {
		t.Errorf("segment before the hole lasts %.3fs, want about 1.92s", d)
	}
	// The segment the audio resumes in starts late, and its parts with it;
	// the ones around it line up with the video.
	video, resumed := *tracks[0], *tracks[2]
	video.rec.segs = append(video.rec.segs[:3:3], video.rec.segs[4:]...)
	resumed.rec.segs = append(audio[:3:3], audio[4:]...)
	checkAligned(t, []*testTrack{&video, &resumed})
}
