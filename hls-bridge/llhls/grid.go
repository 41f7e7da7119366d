package llhls

import "time"

// timeline maps one stretch of input time onto the segment grid: grid line
// j (segment firstMSN+j) lies at origin + j×SegmentTarget.
type timeline struct {
	id       uint64
	origin   time.Duration // input time of grid line 0
	firstMSN uint64
	wall     time.Time // wall clock at origin, for PROGRAM-DATE-TIME
	// parent is the timeline this one re-phases without a break in input
	// time (the encoder's IDRs moved); nil after a discontinuity.
	parent *timeline
}

// wallAt is the wall clock of input time at.
func (tl *timeline) wallAt(at time.Duration) time.Time { return tl.wall.Add(at - tl.origin) }

// grid is the timeline every track of a Stream cuts on. A video track that
// meets a discontinuity or a re-phased IDR cadence forks a new timeline; the
// other tracks join it, so segment numbers stay aligned across the ladder.
// Guarded by Stream.mu.
type grid struct {
	seg      time.Duration
	cur      *timeline
	maxMSN   uint64    // highest msn any track has opened
	opened   bool      // whether maxMSN is set
	wallEnd  time.Time // latest wall clock any track has reached
	lastID   uint64
	hasVideo bool
}

func newGrid(seg time.Duration, start time.Time, hasVideo bool) *grid {
	base := uint64(0)
	if ns := start.UnixNano(); ns > 0 {
		base = uint64(ns / int64(seg))
	}
	return &grid{
		seg:      seg,
		cur:      &timeline{origin: 0, firstMSN: base, wall: start},
		wallEnd:  start,
		hasVideo: hasVideo,
	}
}

// noteOpened records that a track opened segment msn.
func (g *grid) noteOpened(msn uint64) {
	if !g.opened || msn > g.maxMSN {
		g.maxMSN, g.opened = msn, true
	}
}

// noteWall records that a track has media up to wall clock w.
func (g *grid) noteWall(w time.Time) {
	if w.After(g.wallEnd) {
		g.wallEnd = w
	}
}

// fork starts a timeline at input time at, numbered after every segment any
// track has opened. Its wall clock continues prev's when input time runs on
// (re-phase, forward jump) and never goes back.
func (g *grid) fork(prev *timeline, at time.Duration, rephase bool) *timeline {
	g.lastID++
	wall := prev.wallAt(at)
	if wall.Before(g.wallEnd) && !rephase {
		wall = g.wallEnd
	}
	next := g.maxMSN + 1
	if !g.opened {
		next = prev.firstMSN
	}
	tl := &timeline{id: g.lastID, origin: at, firstMSN: next, wall: wall}
	if rephase {
		tl.parent = prev
	}
	g.cur = tl
	return tl
}

// joinAfterJump returns the timeline a track whose input jumped from prev
// to at should continue on: one another track forked for the same jump, or
// nil when there is none yet.
func (g *grid) joinAfterJump(prev *timeline, at time.Duration) *timeline {
	cur := g.cur
	if cur.id <= prev.id || cur.parent != nil {
		return nil
	}
	if d := at - cur.origin; d < -g.seg/2 || d > g.seg/2 {
		return nil
	}
	return cur
}

// rephased returns a newer timeline that re-phases tl, if a video track
// forked one.
func (g *grid) rephased(tl *timeline) *timeline {
	if g.cur != tl && g.cur.parent == tl {
		return g.cur
	}
	return nil
}
