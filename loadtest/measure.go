package loadtest

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"sort"
	"sync"
	"time"
)

// sendClock remembers when each recently sent payload left the publisher, so a
// subscriber can measure forwarding latency by matching payloads: the server
// rewrites SSRCs, sequence numbers and timestamps, but not payloads.
type sendClock struct {
	mu   sync.RWMutex
	sent map[uint64]int64 // payload fingerprint → unix nanoseconds
	old  map[uint64]int64 // the previous generation, for lookups across a swap
	n    int
}

// sendClockGeneration bounds memory: the map is swapped out after this many
// entries (a few seconds of a simulcast publisher).
const sendClockGeneration = 4096

func newSendClock() *sendClock {
	return &sendClock{sent: make(map[uint64]int64, sendClockGeneration), old: map[uint64]int64{}}
}

// payloadKey fingerprints a payload from its length and first 64 bytes,
// which differ between any two packets of an encoded stream.
func payloadKey(p []byte) uint64 {
	h := fnv.New64a()
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(p)))
	_, _ = h.Write(l[:])
	_, _ = h.Write(p[:min(len(p), 64)])
	return h.Sum64()
}

func (c *sendClock) record(payload []byte, at time.Time) {
	k := payloadKey(payload)
	c.mu.Lock()
	if c.n >= sendClockGeneration {
		c.old, c.sent, c.n = c.sent, make(map[uint64]int64, sendClockGeneration), 0
	}
	// A payload sent twice (silence, a static picture) cannot tell which
	// copy arrived: mark it ambiguous rather than guess.
	if _, dup := c.sent[k]; dup {
		c.sent[k] = ambiguous
	} else {
		c.sent[k] = at.UnixNano()
	}
	c.n++
	c.mu.Unlock()
}

func (c *sendClock) lookup(payload []byte) (int64, bool) {
	k := payloadKey(payload)
	c.mu.RLock()
	defer c.mu.RUnlock()
	if t, ok := c.sent[k]; ok {
		return t, t != ambiguous
	}
	t, ok := c.old[k]
	return t, ok && t != ambiguous
}

// ambiguous marks a payload fingerprint seen more than once in a generation.
const ambiguous = -1

// histogram keeps samples (durations in nanoseconds) for percentiles.
type histogram struct {
	mu      sync.Mutex
	samples []int64
	limit   int
	seen    int
}

// add records a sample; beyond the limit it keeps a uniform reservoir.
func (h *histogram) add(v int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen++
	if h.limit == 0 {
		h.limit = 200_000
	}
	if len(h.samples) < h.limit {
		h.samples = append(h.samples, v)
		return
	}
	// Deterministic reservoir replacement keeps the test output stable.
	if j := int(uint64(h.seen)*2654435761) % h.seen; j < h.limit {
		h.samples[j] = v
	}
}

// Percentiles summarises a distribution in milliseconds.
type Percentiles struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

func (h *histogram) percentiles() Percentiles {
	h.mu.Lock()
	s := append([]int64(nil), h.samples...)
	seen := h.seen
	h.mu.Unlock()
	if len(s) == 0 {
		return Percentiles{}
	}
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return float64(s[max(0, min(i, len(s)-1))]) / 1e6
	}
	return Percentiles{Count: seen, P50: at(0.50), P95: at(0.95), P99: at(0.99), Max: float64(s[len(s)-1]) / 1e6}
}

// seqTracker counts the packets of one RTP stream that should have arrived
// (the span of sequence numbers since the first) and the distinct ones that
// did; retransmitted duplicates are not counted twice.
type seqTracker struct {
	started  bool
	base     uint16
	hi       int64 // highest packet index seen, relative to base
	received int64
	window   [1024]int64 // index+1 of recent packets seen
}

func (s *seqTracker) add(seq uint16) {
	if !s.started {
		s.started, s.base = true, seq
	}
	ext := s.hi + int64(int16(seq-(s.base+uint16(s.hi))))
	if ext < 0 || ext <= s.hi-int64(len(s.window)) {
		return // from before the first packet, or too late to tell
	}
	if ext > s.hi {
		s.hi = ext
	}
	slot := &s.window[ext%int64(len(s.window))]
	if *slot == ext+1 {
		return
	}
	*slot = ext + 1
	s.received++
}

// expected is how many packets the span covers.
func (s *seqTracker) expected() int64 {
	if !s.started {
		return 0
	}
	return s.hi + 1
}
