package loadtest

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/starling-sfu/starling/clip"
)

// sendClock remembers when each recently sent payload left the publisher, so a
// subscriber can measure forwarding latency by matching payloads: the server
// rewrites SSRCs, sequence numbers and timestamps, but not payloads.
type sendClock struct {
	mu       sync.RWMutex
	sent     map[uint64]int64 // frame fingerprint → unix nanoseconds
	old      map[uint64]int64 // the previous generation, for lookups across a swap
	genStart int64
}

// sendClockGeneration is how long a generation of fingerprints lives. Two
// generations (at most 3 s) must stay shorter than one pass of the looping
// clips (4 s), so that a frame sent again on the next loop is not mistaken
// for the earlier send; latencies above 1.5 s go unmeasured.
const sendClockGeneration = int64(1500 * time.Millisecond)

func newSendClock() *sendClock {
	return &sendClock{sent: map[uint64]int64{}, old: map[uint64]int64{}}
}

// matchKey fingerprints the start of a media frame so that the same frame
// can be recognised at a subscriber even when the server re-packetizes it (as
// MediaMTX does): the first bytes of VP8 frame data after the payload
// descriptor, the first bytes of an H.264 slice after its NAL header, or a
// whole Opus packet. Packets that continue a frame have no key.
func matchKey(c clip.Codec, p []byte) (uint64, bool) {
	var data []byte
	switch c {
	case clip.VP8:
		data = vp8FrameStart(p)
	case clip.H264:
		data = h264SliceStart(p)
	default:
		data = p
	}
	if len(data) < 8 {
		return 0, false
	}
	h := fnv.New64a()
	_, _ = h.Write(data[:min(len(data), 48)])
	return h.Sum64(), true
}

// vp8FrameStart returns the frame data of a packet that starts a VP8 frame.
func vp8FrameStart(p []byte) []byte {
	if len(p) < 1 || p[0]&0x10 == 0 || p[0]&0x07 != 0 {
		return nil
	}
	i := 1
	if p[0]&0x80 != 0 {
		if len(p) < 2 {
			return nil
		}
		x := p[1]
		i = 2
		if x&0x80 != 0 {
			if len(p) > i && p[i]&0x80 != 0 {
				i++
			}
			i++
		}
		if x&0x40 != 0 {
			i++
		}
		if x&0x30 != 0 {
			i++
		}
	}
	if i >= len(p) {
		return nil
	}
	return p[i:]
}

// h264SliceStart returns the bytes after the NAL header of a packet that
// starts a coded slice (NAL types 1 and 5), however it is packetized.
func h264SliceStart(p []byte) []byte {
	if len(p) < 2 {
		return nil
	}
	switch t := p[0] & 0x1f; t {
	case 1, 5:
		return p[1:]
	case 28: // FU-A
		if p[1]&0x80 != 0 && (p[1]&0x1f == 1 || p[1]&0x1f == 5) {
			return p[2:]
		}
	case 24: // STAP-A
		for i := 1; i+2 < len(p); {
			n := int(p[i])<<8 | int(p[i+1])
			i += 2
			if i+n > len(p) || n == 0 {
				return nil
			}
			if nt := p[i] & 0x1f; nt == 1 || nt == 5 {
				return p[i+1 : i+n]
			}
			i += n
		}
	}
	return nil
}

func (c *sendClock) record(key uint64, at time.Time) {
	k := key
	now := at.UnixNano()
	c.mu.Lock()
	if now-c.genStart > sendClockGeneration {
		c.old, c.sent, c.genStart = c.sent, make(map[uint64]int64, len(c.sent)), now
	}
	// A payload sent twice (silence, a static picture) cannot tell which
	// copy arrived: mark it ambiguous rather than guess.
	if _, dup := c.sent[k]; dup {
		c.sent[k] = ambiguous
	} else {
		c.sent[k] = now
	}
	c.mu.Unlock()
}

func (c *sendClock) lookup(key uint64) (int64, bool) {
	k := key
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
	max     int64
	rng     *rand.Rand
}

// add records a sample; beyond the limit it keeps a uniform reservoir.
func (h *histogram) add(v int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen++
	h.max = max(h.max, v)
	if h.limit == 0 {
		h.limit = 200_000
	}
	if len(h.samples) < h.limit {
		h.samples = append(h.samples, v)
		return
	}
	// Reservoir sampling (Algorithm R): each of the seen samples stays with
	// probability limit/seen. A fixed seed keeps runs comparable.
	if h.rng == nil {
		h.rng = rand.New(rand.NewPCG(1, 2))
	}
	if j := h.rng.IntN(h.seen); j < h.limit {
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
	seen, top := h.seen, h.max
	h.mu.Unlock()
	if len(s) == 0 {
		return Percentiles{}
	}
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return float64(s[max(0, min(i, len(s)-1))]) / 1e6
	}
	return Percentiles{Count: seen, P50: at(0.50), P95: at(0.95), P99: at(0.99), Max: float64(top) / 1e6}
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
