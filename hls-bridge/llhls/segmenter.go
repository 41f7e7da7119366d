package llhls

import (
	"bytes"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
)

// jumpGap is the largest forward step in DTS that is still the same
// timeline; a larger one (or any step back) is a discontinuity.
const jumpGap = 3 * time.Second

// accessUnit is one sample as the segmenter takes it.
type accessUnit struct {
	dts, pts time.Duration
	key      bool   // video IDR
	payload  []byte // AVCC NAL units (video) or one raw AAC frame
	sps, pps []byte // parameter sets carried by a video IDR
}

// cutPart is a finished part.
type cutPart struct {
	baseTime    uint64 // tfdt, in the track's timescale
	samples     []*fmp4.Sample
	duration    int64 // ticks
	independent bool
}

// segmentSink receives a segmenter's cuts in order: openSegment, then
// closePart for each part, then closeSegment. sps and pps are set when the
// segment needs a new init section.
type segmentSink interface {
	openSegment(msn uint64, wall time.Time, disc bool, sps, pps []byte)
	gapSegment(msn uint64, wall time.Time, dur int64)
	closePart(p cutPart)
	closeSegment()
}

// segmenter cuts one track's samples into parts and segments on the
// Stream's grid. A sample is held until the next one arrives, since only
// then is its duration known. Parts start at the first sample at or after
// segmentStart + n×PartTarget, so a part holds at most ceil(P/frame) frames;
// segments start at the first sample at or after the grid line (an IDR up to
// half a part early also counts).
type segmenter struct {
	log       *slog.Logger
	grid      *grid
	sink      segmentSink
	video     bool
	timescale int64
	nominal   int64 // ticks of one frame
	partTicks int64
	segTicks  int64
	// keyed is passthrough video (Config.Passthrough): segments start at
	// IDRs, parts take frames while they fit in maxPart ticks.
	keyed       bool
	maxPart     int64
	early, late int64 // how far from its line a segment's IDR may be
	lateWarned  bool

	tl         *timeline // nil until started, and after a jump until resumed
	jumpedFrom *timeline // the timeline left at a jump, until resumed
	waitSince  time.Duration
	base       int64 // tfdt of the timeline's origin
	lastDTS    time.Duration
	lastDur    int64
	lastMSN    uint64
	hasMSN     bool
	shift      uint64    // msn offset when this track fell out of line
	synced     bool      // the open segment began with an IDR
	endWall    time.Time // wall clock where this track's media ends
	sps, pps   []byte

	segIdx    int64 // grid index of the open segment
	segStart  int64 // ticks from origin of its first sample
	partIdx   int
	partBase  int64 // ticks from origin of the open part's first sample
	partIndep bool
	samples   []*fmp4.Sample
	pend      *accessUnit // newest sample, duration not yet known
	pendAt    int64

	dropped *atomic.Uint64 // samples that could not be placed
}

func newSegmenter(cfg Config, g *grid, sink segmentSink, video bool, timescale, frameTicks int64, dropped *atomic.Uint64, log *slog.Logger) segmenter {
	c := segmenter{
		log: log, grid: g, sink: sink, video: video, timescale: timescale, nominal: frameTicks,
		partTicks: durTicks(cfg.PartTarget, timescale), segTicks: durTicks(cfg.SegmentTarget, timescale),
		dropped: dropped,
	}
	if cfg.Passthrough && video {
		c.keyed = true
		c.maxPart = keyedPartTarget(c.partTicks, frameTicks)
		// A segment may start early or late by this much in all, and still
		// round to at most EXT-X-TARGETDURATION (a frame of margin for
		// where the next one starts): half a second or more.
		budget := durTicks(cfg.targetDuration()+time.Second/2-cfg.SegmentTarget, timescale)
		c.early = min(c.partTicks, budget/2)
		c.late = max(budget-c.early-2*frameTicks, frameTicks)
	}
	return c
}

// keyedPartTarget is a passthrough track's PART-TARGET, in ticks: the
// configured part target, or eight nominal frames if longer. Its parts take
// frames while they fit (see closeSample), so a part falls below 85% of the
// target only when the frame that did not fit lasted more than 15% of it:
// 1.2 frames at eight. A publisher's clock drifts and jitters that much
// (Chromium's "20 fps" camera sends 5 frames in 231 ms one moment and 270
// the next), which parts of a fixed frame count cannot absorb, nor a target
// of fewer frames.
func keyedPartTarget(partTicks, frameTicks int64) int64 {
	return max(partTicks, 8*frameTicks)
}

func (c *segmenter) ticks(d time.Duration) int64 { return durTicks(d, c.timescale) }

func (c *segmenter) tickDur(t int64) time.Duration {
	return time.Duration(t) * time.Second / time.Duration(c.timescale)
}

// slack is how far before a grid line x may start the segment.
func (c *segmenter) slack(x *accessUnit) int64 {
	switch {
	case !c.video:
		return c.nominal / 2
	case x.key && c.keyed:
		return c.early
	case x.key:
		return c.partTicks / 2
	}
	return 0
}

func (c *segmenter) push(x accessUnit) {
	if c.tl != nil && c.pend == nil { // finished: a new timeline follows
		c.jumpedFrom, c.tl, c.waitSince = c.tl, nil, x.dts
	}
	if c.tl == nil {
		c.begin(&x)
		return
	}
	if x.dts <= c.lastDTS || x.dts-c.lastDTS > jumpGap {
		c.log.Info("llhls: timeline discontinuity", "from", c.lastDTS, "to", x.dts)
		c.finish()
		c.jumpedFrom, c.tl, c.waitSince = c.tl, nil, x.dts
		c.begin(&x)
		return
	}
	c.advance(&x)
}

// begin opens the first segment of a timeline: at start, or after a jump.
func (c *segmenter) begin(x *accessUnit) {
	if c.video && !x.key {
		c.dropped.Add(1)
		return
	}
	tl := c.grid.cur
	if c.jumpedFrom != nil {
		tl = c.grid.joinAfterJump(c.jumpedFrom, x.dts)
		if tl == nil {
			// Audio waits for video to fork the new timeline, so that the
			// grid is phased on the IDRs; unless video never does.
			if !c.video && c.grid.hasVideo && x.dts-c.waitSince < 2*c.grid.seg {
				c.dropped.Add(1)
				return
			}
			tl = c.grid.fork(c.jumpedFrom, x.dts, false)
		}
	}
	c.base = durTicks(time.Duration(tl.wall.UnixNano()), c.timescale)
	if !c.openOn(tl, x, c.jumpedFrom != nil) {
		c.dropped.Add(1)
		return
	}
	c.jumpedFrom = nil
}

// advance places x on the running timeline.
func (c *segmenter) advance(x *accessUnit) {
	at := c.ticks(x.dts - c.tl.origin)
	if at <= c.pendAt {
		c.dropped.Add(1) // closer than one tick to the previous sample
		return
	}
	dur := at - c.pendAt
	if dur > c.partTicks && dur > 2*c.nominal {
		// A hole in the input: keep the part short and let the next
		// part's decode time jump.
		dur = c.typicalDur()
	}
	changed := c.video && x.key && !(bytes.Equal(x.sps, c.sps) && bytes.Equal(x.pps, c.pps))
	if child := c.switchable(x); child != nil {
		c.closeSegment(dur)
		c.base += at - durTicks(x.dts-child.origin, c.timescale)
		c.openOn(child, x, false)
		return
	}
	nextLine := (c.segIdx + 1) * c.segTicks
	// Passthrough video waits past the line for the IDR it asked for.
	waitIDR := c.keyed && !x.key && at < nextLine+c.late
	switch {
	case at >= nextLine-c.slack(x) && !waitIDR:
		if c.keyed && !x.key && !c.lateWarned {
			c.lateWarned = true
			c.log.Warn("llhls: the publisher sent no IDR for a segment start; segments start without one until it does",
				"late", c.tickDur(at-nextLine))
		}
		c.closeSegment(dur)
		c.openOn(c.tl, x, false)
	case changed || (c.video && x.key && !c.synced && !c.keyed):
		// New parameters or an IDR cadence that left the grid (a
		// restarted encoder): re-phase the grid on this IDR. (A
		// publisher's IDR that comes late stays a frame: the next line's
		// is asked for.)
		c.log.Info("llhls: grid re-phased on an IDR", "dts", x.dts, "new_parameters", changed)
		c.closeSegment(dur)
		child := c.grid.fork(c.tl, x.dts, true)
		c.base += at
		c.openOn(child, x, false)
	case c.keyed:
		c.closeSample(dur)
		c.pend, c.pendAt = x, at
	case at >= c.segStart+int64(c.partIdx+1)*c.partTicks:
		c.closeSample(dur)
		c.closePart()
		c.partIdx++
		c.startPart(x, at)
	default:
		c.closeSample(dur)
		c.pend, c.pendAt = x, at
	}
	c.lastDTS = x.dts
}

// switchable returns the re-phased timeline x should move to, if any.
func (c *segmenter) switchable(x *accessUnit) *timeline {
	child := c.grid.rephased(c.tl)
	if child == nil || (c.video && !x.key) || x.dts < child.origin-c.tickDur(c.slack(x)) {
		return nil
	}
	return child
}

// openOn opens the segment x starts on tl; false when x lies before the
// timeline's first grid line.
func (c *segmenter) openOn(tl *timeline, x *accessUnit, disc bool) bool {
	at := c.ticks(x.dts - tl.origin)
	j := floorDiv(at+c.slack(x), c.segTicks)
	if j < 0 {
		return false
	}
	if tl != c.tl {
		c.shift = 0
	}
	msn := tl.firstMSN + uint64(j) + c.shift
	if c.hasMSN && msn <= c.lastMSN {
		c.shift += c.lastMSN + 1 - msn
		c.log.Warn("llhls: segment numbers fell out of line with the ladder", "msn", c.lastMSN+1, "grid_msn", msn)
		msn = c.lastMSN + 1
	}
	if c.hasMSN {
		c.fillGaps(msn, tl.wallAt(x.pts))
	}
	c.tl = tl
	var sps, pps []byte
	if c.video && !(bytes.Equal(x.sps, c.sps) && bytes.Equal(x.pps, c.pps)) {
		c.sps, c.pps = x.sps, x.pps
		sps, pps = x.sps, x.pps
	}
	c.sink.openSegment(msn, tl.wallAt(x.pts), disc, sps, pps)
	c.grid.noteOpened(msn)
	c.lastMSN, c.hasMSN = msn, true
	c.synced = !c.video || x.key
	c.segIdx, c.segStart, c.partIdx = j, at, 0
	c.startPart(x, at)
	c.lastDTS = x.dts
	return true
}

// fillGaps emits EXT-X-GAP segments for the numbers between the last
// segment and msn, so that numbers stay consecutive and aligned; they
// share the time from this track's last media to next.
func (c *segmenter) fillGaps(msn uint64, next time.Time) {
	if msn <= c.lastMSN+1 {
		return
	}
	n := int64(msn - c.lastMSN - 1)
	span := durTicks(next.Sub(c.endWall), c.timescale)
	each := max(span/n, c.nominal)
	for i := int64(0); i < n; i++ {
		c.sink.gapSegment(c.lastMSN+1+uint64(i), c.endWall.Add(c.tickDur(i*each)), each)
	}
}

func (c *segmenter) startPart(x *accessUnit, at int64) {
	c.partBase = at
	c.partIndep = !c.video || x.key
	c.pend, c.pendAt = x, at
}

// closeSample moves the pending sample, now of known duration, into the
// open part.
func (c *segmenter) closeSample(dur int64) {
	if c.keyed && len(c.samples) > 0 && c.pendAt+dur-c.partBase > c.maxPart {
		// The pending frame would make the part longer than PART-TARGET:
		// it starts the next part.
		c.closePart()
		c.partIdx++
		c.partBase, c.partIndep = c.pendAt, c.pend.key
	}
	x := c.pend
	c.samples = append(c.samples, &fmp4.Sample{
		Duration:        uint32(dur),
		PTSOffset:       int32(c.ticks(x.pts - x.dts)),
		IsNonSyncSample: c.video && !x.key,
		Payload:         x.payload,
	})
	c.lastDur = dur
	c.endWall = c.tl.wallAt(x.dts).Add(c.tickDur(dur))
	c.grid.noteWall(c.endWall)
	c.pend = nil
}

func (c *segmenter) closePart() {
	var total int64
	for _, s := range c.samples {
		total += int64(s.Duration)
	}
	c.sink.closePart(cutPart{
		baseTime:    uint64(c.base + c.partBase),
		samples:     c.samples,
		duration:    total,
		independent: c.partIndep,
	})
	c.samples = nil
}

func (c *segmenter) closeSegment(dur int64) {
	c.closeSample(dur)
	c.closePart()
	c.sink.closeSegment()
}

func (c *segmenter) typicalDur() int64 {
	if c.lastDur > 0 {
		return c.lastDur
	}
	return c.nominal
}

// finish closes the open part and segment: at the end of the stream or of a
// timeline.
func (c *segmenter) finish() {
	if c.tl == nil || c.pend == nil {
		return
	}
	c.closeSegment(c.typicalDur())
}

// durTicks converts d to ticks of timescale, rounding to nearest, without
// overflow for any time.Duration.
func durTicks(d time.Duration, timescale int64) int64 {
	sec, rem := int64(d/time.Second), int64(d%time.Second)
	r := rem * timescale
	if r >= 0 {
		r = (r + 5e8) / 1e9
	} else {
		r = -((-r + 5e8) / 1e9)
	}
	return sec*timescale + r
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
