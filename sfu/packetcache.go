package sfu

import (
	"sync"
)

// packetCacheSize is how many packets of one layer are kept for
// retransmission and for starting new subscribers on a cached keyframe; at
// 2.5 Mbit/s that is about 3.5 s of video.
const packetCacheSize = 1024

// maxPacketSize bounds an RTP packet; larger ones are not cached.
const maxPacketSize = 1500

type cacheEntry struct {
	seq      uint16
	length   uint16
	keyStart bool
	buf      [maxPacketSize]byte
}

// packetCache is a ring of fixed-size entries indexed by sequence number,
// holding whole RTP packets (header and payload) as they arrived.
type packetCache struct {
	mu      sync.Mutex
	entries [packetCacheSize]cacheEntry
	// lastKey is the sequence number of the newest keyframe's first
	// packet and lastKeyTs its RTP timestamp; hasKey says whether one has
	// been seen.
	lastKey   uint16
	lastKeyTs uint32
	hasKey    bool
	newest    uint16
	any       bool
}

func newPacketCache() *packetCache { return &packetCache{} }

// put stores a copy of packet under seq; ts is its RTP timestamp.
//
// A keyframe can start in more than one packet of the same picture: H.264's
// SPS/PPS (a STAP-A) and then the IDR's first fragment both start one, and
// a run that began at the IDR would lack the parameter sets a decoder needs.
// So the keyframe run begins at the picture's first keyframe-start packet.
func (c *packetCache) put(seq uint16, ts uint32, packet []byte, keyStart bool) {
	if len(packet) > maxPacketSize {
		return
	}
	c.mu.Lock()
	e := &c.entries[seq%packetCacheSize]
	e.seq, e.length, e.keyStart = seq, uint16(len(packet)), keyStart
	copy(e.buf[:], packet)
	if !c.any || seqNewer(seq, c.newest) {
		c.newest, c.any = seq, true
	}
	if keyStart && (!c.hasKey || (seqNewer(seq, c.lastKey) && ts != c.lastKeyTs)) {
		c.lastKey, c.lastKeyTs, c.hasKey = seq, ts, true
	}
	c.mu.Unlock()
}

// get copies the packet with sequence number seq into dst and returns its
// length, or 0 when it is no longer (or never was) cached.
func (c *packetCache) get(seq uint16, dst []byte) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := &c.entries[seq%packetCacheSize]
	if e.length == 0 || e.seq != seq || int(e.length) > len(dst) {
		return 0
	}
	return copy(dst, e.buf[:e.length])
}

// size returns the length of the packet cached under seq, 0 when none.
func (c *packetCache) size(seq uint16) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := &c.entries[seq%packetCacheSize]
	if e.seq != seq {
		return 0
	}
	return int(e.length)
}

// keyframeRun returns the sequence range [first, last] from the newest cached
// keyframe start to the newest packet, when the whole run is still cached.
func (c *packetCache) keyframeRun() (first, last uint16, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.hasKey {
		return 0, 0, false
	}
	n := c.newest - c.lastKey
	if n >= packetCacheSize-1 {
		return 0, 0, false
	}
	if e := &c.entries[c.lastKey%packetCacheSize]; e.seq != c.lastKey || !e.keyStart {
		return 0, 0, false
	}
	return c.lastKey, c.newest, true
}

// newestSeq returns the newest sequence number cached.
func (c *packetCache) newestSeq() (uint16, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.newest, c.any
}

// seqNewer reports whether a is after b in RTP sequence space.
func seqNewer(a, b uint16) bool {
	return a != b && a-b < 0x8000
}
