package sfu

// rewriter maps the sequence numbers and timestamps of whichever source layer
// is being forwarded onto one continuous outgoing stream, so that a receiver
// sees no gap and no jump when the SFU switches layers.
type rewriter struct {
	clockRate uint32
	started   bool
	seqOffset uint16
	tsOffset  uint32
	// first source sequence number of the current run; older packets belong
	// to a previous layer's numbering and are dropped.
	runStart uint16
	// highest source sequence number forwarded in this run
	lastSrcSeq uint16
	// highest outgoing sequence number and timestamp, and when it was sent
	lastSeq  uint16
	lastTs   uint32
	lastSent int64 // unix nanoseconds
}

// switchTo starts a new run at a source keyframe (srcSeq, srcTs) arriving at
// now. The first outgoing packet of the run follows the previous one directly;
// its timestamp advances by the wall-clock time elapsed since.
func (r *rewriter) switchTo(srcSeq uint16, srcTs uint32, now int64) {
	if !r.started {
		r.started = true
		r.seqOffset, r.tsOffset = 0, 0
	} else {
		r.seqOffset = r.lastSeq + 1 - srcSeq
		elapsed := now - r.lastSent
		if elapsed < 0 {
			elapsed = 0
		}
		delta := uint32(elapsed * int64(r.clockRate) / 1e9)
		if delta == 0 {
			delta = 1
		}
		r.tsOffset = r.lastTs + delta - srcTs
	}
	r.runStart = srcSeq
	r.lastSrcSeq = srcSeq - 1
}

// rewrite maps a source packet of the current run. ok is false for a packet
// that precedes the run (a late packet of the old numbering).
func (r *rewriter) rewrite(srcSeq uint16, srcTs uint32, now int64) (seq uint16, ts uint32, ok bool) {
	if srcSeq != r.runStart && !seqNewer(srcSeq, r.runStart) {
		return 0, 0, false
	}
	seq, ts = srcSeq+r.seqOffset, srcTs+r.tsOffset
	if seqNewer(srcSeq, r.lastSrcSeq) {
		r.lastSrcSeq, r.lastSeq, r.lastSent = srcSeq, seq, now
		if ts-r.lastTs < 0x80000000 {
			r.lastTs = ts
		}
	}
	return seq, ts, true
}

// skip removes an in-order source packet that will not be forwarded (padding)
// from the numbering, so the receiver sees no gap where it was.
func (r *rewriter) skip(srcSeq uint16) {
	if srcSeq == r.lastSrcSeq+1 {
		r.seqOffset--
		r.lastSrcSeq = srcSeq
	}
}

// pad takes the next outgoing sequence number for a packet of padding the
// SFU adds, and moves the source numbering after it.
func (r *rewriter) pad() uint16 {
	r.seqOffset++
	r.lastSeq++
	return r.lastSeq
}
