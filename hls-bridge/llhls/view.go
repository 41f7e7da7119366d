package llhls

import (
	"sort"
	"sync"
)

// view is an immutable snapshot of one track's playlist, published after
// every change. Requests read views without locks; a blocked request waits
// for changed, which is closed when a newer view replaces this one.
type view struct {
	t         *track // constants only
	segs      []*segment
	open      *segment // nil between segments
	openParts []*part
	inits     []*initSection
	ended     bool
	reports   []report
	changed   chan struct{}

	headMSN  uint64
	headPart int
	hasHead  bool

	// Rendered lazily, once per view: [0] full, [1] delta update.
	render [2]rendering
}

// rendering is a playlist body, plain and gzipped, each made on first use.
type rendering struct {
	plainOnce, gzOnce sync.Once
	plain, gz         []byte
}

// report is an EXT-X-RENDITION-REPORT.
type report struct {
	name     string
	lastMSN  uint64
	lastPart int
}

// listed is the complete segments the playlist names.
func (v *view) listed() []*segment {
	if n := v.t.cfg.PlaylistSegments; len(v.segs) > n {
		return v.segs[len(v.segs)-n:]
	}
	return v.segs
}

// hasPart says whether the playlist contains part p of segment m or anything
// after it: what a blocking request with _HLS_msn and _HLS_part waits for.
func (v *view) hasPart(m uint64, p int) bool {
	if !v.hasHead {
		return false
	}
	// Past the last part of a complete segment m, the next part is part 0
	// of segment m+1, which makes headMSN > m.
	return v.headMSN > m || (v.headMSN == m && p <= v.headPart)
}

// hasSegment says whether segment m or a later one is complete.
func (v *view) hasSegment(m uint64) bool {
	n := len(v.segs)
	return n > 0 && v.segs[n-1].msn >= m
}

// hint is the part EXT-X-PRELOAD-HINT names: the next one.
func (v *view) hint() (msn uint64, part int, ok bool) {
	switch {
	case v.ended:
		return 0, 0, false
	case v.open != nil:
		return v.open.msn, len(v.openParts), true
	case len(v.segs) > 0:
		return v.segs[len(v.segs)-1].msn + 1, 0, true
	}
	return 0, 0, false
}

func (v *view) segment(msn uint64) *segment {
	i := sort.Search(len(v.segs), func(i int) bool { return v.segs[i].msn >= msn })
	if i == len(v.segs) || v.segs[i].msn != msn {
		return nil
	}
	return v.segs[i]
}

func (v *view) part(msn uint64, n int) *part {
	parts := v.openParts
	if v.open == nil || v.open.msn != msn {
		s := v.segment(msn)
		if s == nil {
			return nil
		}
		parts = s.parts
	}
	if n < 0 || n >= len(parts) {
		return nil
	}
	return parts[n]
}

func (v *view) initNamed(name string) *initSection {
	if name == "init.mp4" && len(v.inits) > 0 {
		return v.inits[len(v.inits)-1]
	}
	for _, in := range v.inits {
		if in.name == name {
			return in
		}
	}
	return nil
}
