package rtpsrc

import "github.com/pion/rtp"

// reorderSlots is how far past the next expected sequence number a packet
// may be held: a power of two, above what arrives during ReorderDelay at
// tens of megabits per second. A packet further ahead restarts numbering.
const reorderSlots = 1024

// heldPacket is a packet in the reorder buffer. Its payload buffer belongs
// to the slot and is reused.
type heldPacket struct {
	valid   bool
	seq     uint16
	ts      uint32
	marker  bool
	at      int64 // arrival, unix ns
	payload []byte
}

// reorder puts one SSRC's packets back in sequence order. A packet that
// follows a gap is held until the gap fills or the first held packet has
// waited maxDelay; then the missing packets count as lost. The first packets
// of a stream are all held for maxDelay, since the numbering starts at the
// lowest sequence number seen then, not at the first packet to arrive. It
// copies payloads into per-slot buffers, so steady state allocates nothing.
type reorder struct {
	slots    [reorderSlots]heldPacket
	started  bool
	warm     bool   // the first packets' hold is over
	firstAt  int64  // arrival of the stream's first packet
	next     uint16 // sequence number of the next packet to release
	highest  uint16 // highest sequence number held while warming up
	held     int
	maxDelay int64
	gap      int // packets given up on, reported with the next pop
}

// rewindLimit is how far before the first packet to arrive the stream may
// begin: packets that overtook it while the buffer warms up.
const rewindLimit = 256

// What push did with a packet.
type pushResult int

const (
	pushHeld      pushResult = iota
	pushDiscarded            // duplicate, or its place was already given up
	pushReset                // far from the expected numbering: started over
)

func (r *reorder) reset() {
	for i := range r.slots {
		r.slots[i].valid = false
	}
	r.started, r.warm, r.held, r.gap = false, false, 0, 0
}

// push stores p, arrived at the given unix ns.
func (r *reorder) push(p *rtp.Packet, at int64) pushResult {
	res := pushHeld
	seq := p.SequenceNumber
	if r.started {
		d := int16(seq - r.next)
		switch {
		case d >= reorderSlots || d < -reorderSlots:
			// A jump no reordering explains: a new numbering. What was held
			// is given up on, and so is the continuity.
			lost := r.gap + r.held + 1
			r.reset()
			r.gap = lost
			res = pushReset
		case d < 0 && !r.warm && d >= -rewindLimit && r.highest-seq < reorderSlots:
			r.next = seq // nothing it follows was released yet
		case d < 0:
			return pushDiscarded
		}
	}
	if !r.started {
		r.started, r.next, r.highest, r.firstAt = true, seq, seq, at
	}
	if int16(seq-r.highest) > 0 {
		r.highest = seq
	}
	s := &r.slots[seq%reorderSlots]
	if s.valid {
		return pushDiscarded // the same sequence number again
	}
	s.valid, s.seq, s.ts, s.marker, s.at = true, seq, p.Timestamp, p.Marker, at
	s.payload = append(s.payload[:0], p.Payload...)
	r.held++
	return res
}

// pop releases the next packet in order, if it is there, or, once the first
// packet held after a gap has waited maxDelay, the packet after the gap. lost
// is how many packets were given up on just before it. The packet stays
// valid until the next push.
func (r *reorder) pop(now int64) (p *heldPacket, lost int, ok bool) {
	if r.held == 0 {
		return nil, 0, false
	}
	if !r.warm {
		if now-r.firstAt < r.maxDelay {
			return nil, 0, false
		}
		r.warm = true
	}
	s := &r.slots[r.next%reorderSlots]
	if !s.valid {
		first := r.firstHeld()
		if first == nil { // cannot happen: every held packet is within reach
			r.reset()
			return nil, 0, false
		}
		if now-first.at < r.maxDelay {
			return nil, 0, false
		}
		r.gap += int(first.seq - r.next)
		r.next = first.seq
		s = first
	}
	s.valid = false
	r.held--
	r.next++
	lost, r.gap = r.gap, 0
	return s, lost, true
}

// firstHeld is the held packet nearest after next. Every held packet lies
// within reorderSlots of next, so it finds one whenever held > 0.
func (r *reorder) firstHeld() *heldPacket {
	for i := uint16(1); i < reorderSlots; i++ {
		if s := &r.slots[(r.next+i)%reorderSlots]; s.valid {
			return s
		}
	}
	return nil
}
