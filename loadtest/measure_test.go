package loadtest

import (
	"testing"
	"time"
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

func TestSendClockMatchesPayloads(t *testing.T) {
	c := newSendClock()
	for i := range 2 * sendClockGeneration {
		c.record([]byte{byte(i), byte(i >> 8), 1, 2, 3}, timeAt(int64(i)))
	}
	if at, ok := c.lookup([]byte{byte(5000 % 256), byte(5000 >> 8), 1, 2, 3}); !ok || at != int64(5000) {
		t.Fatalf("lookup: %d %v", at, ok)
	}
	if _, ok := c.lookup([]byte{9, 9, 9}); ok {
		t.Fatal("unknown payload matched")
	}
	c.record([]byte{7, 7}, timeAt(1))
	c.record([]byte{7, 7}, timeAt(2))
	if _, ok := c.lookup([]byte{7, 7}); ok {
		t.Fatal("a payload sent twice matched one of its sends")
	}
}

func timeAt(ns int64) time.Time { return time.Unix(0, ns) }
