package llhls

import (
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/starling-sfu/starling/transcode"
)

// track is one media playlist: a video rendition or the audio. Its
// packaging state is guarded by Stream.mu; readers use the published view.
type track struct {
	name      string
	video     bool
	rendition transcode.Rendition // video only
	timescale int64
	cfg       Config
	log       *slog.Logger
	stats     *counters
	cut       segmenter

	// Playlist constants, formatted once.
	partTarget string // PART-TARGET, seconds, rounded up to whole frames
	holdBack   string // PART-HOLD-BACK
	partLimit  int    // the spec's Advance Part Limit, in parts
	perSegment int    // parts in a full segment

	segs    []*segment // complete (and gap) segments kept, oldest first
	open    *segment
	inits   []*initSection
	discs   uint64 // discontinuities so far
	seq     uint32 // mfhd sequence number of the next part
	dirty   bool
	newInit bool // a video init section was added since the last publish
	initErr bool // an init section failed; logged once

	view atomic.Pointer[view]
}

type segment struct {
	msn     uint64
	wall    time.Time // PROGRAM-DATE-TIME
	disc    bool      // EXT-X-DISCONTINUITY before it
	discSeq uint64    // discontinuities up to and including this one
	gap     bool      // EXT-X-GAP: numbered, but no media
	init    *initSection
	parts   []*part
	dur     int64 // ticks; set once complete
}

type part struct {
	dur         int64 // ticks
	independent bool
	data        []byte
}

type initSection struct {
	name string
	data []byte
	sps  []byte // video
}

func newTrack(name string, video bool, timescale, frameTicks int64, cfg Config, g *grid, st *counters, log *slog.Logger) *track {
	t := &track{name: name, video: video, timescale: timescale, cfg: cfg, log: log, stats: st}
	partTicks := durTicks(cfg.PartTarget, timescale)
	// A part holds the frames that start in a span of PartTarget: at most
	// ceil(P/frame) of them.
	frames := (partTicks + frameTicks - 1) / frameTicks
	maxPart := float64(frames*frameTicks) / float64(timescale)
	if cfg.Passthrough && video {
		ticks := keyedPartTarget(partTicks, frameTicks)
		maxPart = float64(ticks) / float64(timescale)
	}
	pt := math.Ceil(maxPart*1e5-1e-6) / 1e5
	t.partTarget = strconv.FormatFloat(pt, 'f', -1, 64)
	t.holdBack = strconv.FormatFloat(math.Ceil(3*pt*1e3-1e-6)/1e3, 'f', -1, 64)
	t.partLimit = 3
	if pt < 1 {
		t.partLimit = int(math.Ceil(3 / pt))
	}
	t.perSegment = int(cfg.SegmentTarget / cfg.PartTarget)
	t.cut = newSegmenter(cfg, g, t, video, timescale, frameTicks, &st.dropped, log)
	return t
}

func (t *track) openSegment(msn uint64, wall time.Time, disc bool, sps, pps []byte) {
	if sps != nil {
		t.newVideoInit(msn, sps, pps)
	}
	if disc {
		t.discs++
		t.stats.discontinuities.Add(1)
	}
	t.open = &segment{msn: msn, wall: wall, disc: disc, discSeq: t.discs, init: t.currentInit()}
	t.dirty = true
}

func (t *track) newVideoInit(msn uint64, sps, pps []byte) {
	data, err := videoInit(sps, pps)
	if err != nil {
		if !t.initErr {
			t.log.Error("llhls: cannot build init section", "track", t.name, "error", err)
			t.initErr = true
		}
		return
	}
	t.addInit(&initSection{name: fmt.Sprintf("init-%d.mp4", msn), data: data, sps: sps})
	t.newInit = true
}

func (t *track) addInit(in *initSection) { t.inits = append(t.inits, in) }

func (t *track) currentInit() *initSection {
	if len(t.inits) == 0 {
		return nil
	}
	return t.inits[len(t.inits)-1]
}

func (t *track) gapSegment(msn uint64, wall time.Time, dur int64) {
	t.appendSegment(&segment{msn: msn, wall: wall, gap: true, dur: dur, discSeq: t.discs, init: t.currentInit()})
	t.stats.gaps.Add(1)
}

func (t *track) closePart(p cutPart) {
	data, err := marshalPart(t.seq, p)
	if err != nil {
		t.log.Error("llhls: cannot write part", "track", t.name, "error", err)
		return
	}
	t.seq++
	t.open.parts = append(t.open.parts, &part{dur: p.duration, independent: p.independent, data: data})
	t.stats.parts.Add(1)
	t.dirty = true
}

func (t *track) closeSegment() {
	s := t.open
	t.open = nil
	if len(s.parts) == 0 {
		return
	}
	for _, p := range s.parts {
		s.dur += p.dur
	}
	t.appendSegment(s)
	t.stats.segments.Add(1)
}

// appendSegment adds a complete segment and forgets old ones. Segments stay
// a playlist's length after leaving it, as the spec asks.
func (t *track) appendSegment(s *segment) {
	t.segs = append(t.segs, s)
	if keep := 2 * t.cfg.PlaylistSegments; len(t.segs) > keep {
		t.segs = t.segs[len(t.segs)-keep:]
		oldest := t.segs[0].init
		for len(t.inits) > 1 && t.inits[0] != oldest {
			t.inits = t.inits[1:]
		}
	}
	t.dirty = true
}

// head is the last part this track has: LAST-MSN and LAST-PART of its
// rendition report. ok is false while it has none.
func (t *track) head() (msn uint64, part int, ok bool) {
	if t.open != nil && len(t.open.parts) > 0 {
		return t.open.msn, len(t.open.parts) - 1, true
	}
	if n := len(t.segs); n > 0 {
		return t.segs[n-1].msn, len(t.segs[n-1].parts) - 1, true
	}
	return 0, 0, false
}

// publish replaces the view readers see and wakes those waiting on the old
// one.
func (t *track) publish(reports []report, ended bool) {
	v := &view{
		t:       t,
		segs:    t.segs,
		inits:   t.inits,
		ended:   ended,
		reports: reports,
		changed: make(chan struct{}),
	}
	if t.open != nil {
		v.open = t.open
		v.openParts = t.open.parts[:len(t.open.parts):len(t.open.parts)]
	}
	v.headMSN, v.headPart, v.hasHead = t.head()
	t.dirty = false
	if old := t.view.Swap(v); old != nil {
		close(old.changed)
	}
}
