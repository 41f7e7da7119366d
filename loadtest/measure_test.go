package loadtest

import (
	"testing"
	"time"

	"github.com/starling-sfu/starling/clip"
)

func TestSeqTrackerCountsLossAcrossWrapAndIgnoresDuplicates(t *testing.T) {
	var s seqTracker
	for i := range 100 {
		seq := uint16(65500 + i) // wraps at 36
		if i == 10 || i == 50 {
			continue // lost
		}
		s.add(seq)
		if i == 20 {
			s.add(seq) // duplicate
		}
	}
	s.add(uint16(65500 + 50 - 65536)) // late retransmission fills one hole
	if s.expected() != 100 || s.received != 99 {
		t.Fatalf("expected %d received %d, want 100 and 99", s.expected(), s.received)
	}
}

func TestHistogramPercentiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 100; i++ {
		h.add(int64(i) * 1e6)
	}
	p := h.percentiles()
	if p.P50 != 50 || p.P95 != 95 || p.P99 != 99 || p.Max != 100 || p.Count != 100 {
		t.Fatalf("%+v", p)
	}
}

func TestHistogramSamplesLateValuesOnceFull(t *testing.T) {
	h := histogram{limit: 1000}
	for i := 1; i <= 100_000; i++ {
		h.add(int64(i) * 1e6)
	}
	p := h.percentiles()
	// A uniform sample of 1..100000: the median is near 50000, not in the
	// first thousand values.
	if p.P50 < 45_000 || p.P50 > 55_000 || p.Max != 100_000 || p.Count != 100_000 {
		t.Fatalf("%+v", p)
	}
}

func TestSendClockMatchesFrames(t *testing.T) {
	c := newSendClock()
	frame := func(i int) []byte {
		return []byte{0x90, 0x80, 0x80 | byte(i>>8), byte(i), 0x00, 1, 2, 3, 4, 5, 6, 7, byte(i), byte(i >> 8)}
	}
	for i := range 8000 { // one frame a millisecond: 8 s, several generations
		k, ok := matchKey(clip.VP8, frame(i))
		if !ok {
			t.Fatalf("frame %d has no key", i)
		}
		c.record(k, timeAt(int64(i)*1e6))
	}
	// The same frame data behind a different descriptor (re-packetized,
	// other picture ID) still matches.
	other := append([]byte{0x10}, frame(7000)[4:]...)
	k, _ := matchKey(clip.VP8, other)
	if at, ok := c.lookup(k); !ok || at != 7000*1e6 {
		t.Fatalf("lookup: %d %v", at, ok)
	}
	// Frames older than two generations are forgotten.
	if k, _ := matchKey(clip.VP8, frame(1000)); true {
		if _, ok := c.lookup(k); ok {
			t.Fatal("a frame sent 7 s earlier is still matched")
		}
	}
	if _, ok := matchKey(clip.VP8, []byte{0x00, 1, 2, 3, 4, 5, 6, 7, 8, 9}); ok {
		t.Fatal("a continuation packet got a key")
	}
	k7, _ := matchKey(clip.Opus, []byte{7, 7, 7, 7, 7, 7, 7, 7})
	c.record(k7, timeAt(8000*1e6+1))
	c.record(k7, timeAt(8000*1e6+2))
	if _, ok := c.lookup(k7); ok {
		t.Fatal("a payload sent twice matched one of its sends")
	}
}

func TestH264SliceStartFindsSlicesInEveryPacketization(t *testing.T) {
	slice := []byte{0x65, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	single := h264SliceStart(slice)
	fua := h264SliceStart(append([]byte{0x7c, 0x85}, slice[1:]...))
	stap := h264SliceStart(append([]byte{0x18, 0, 2, 0x67, 0x42, 0, byte(len(slice))}, slice...))
	if string(single) != string(slice[1:]) || string(fua) != string(slice[1:]) || string(stap) != string(slice[1:]) {
		t.Fatalf("single % x, FU-A % x, STAP-A % x", single, fua, stap)
	}
}

func timeAt(ns int64) time.Time { return time.Unix(0, ns) }
