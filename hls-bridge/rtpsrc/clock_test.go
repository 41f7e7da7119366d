package rtpsrc

import (
	"testing"
	"time"
)

func TestUnwrapperCrossesTimestampWraparound(t *testing.T) {
	var u unwrapper
	start := uint32(1<<32 - 4500)
	if got := u.extend(start); got != int64(start) {
		t.Fatalf("first: %d", got)
	}
	steps := []struct {
		ts   uint32
		want int64
	}{
		{start + 4500, 1 << 32},             // wraps to 0
		{start + 9000, 1<<32 + 4500},        // after the wrap
		{start + 3000, int64(start) + 3000}, // reordered, from before the wrap
		{start + 13500, 1<<32 + 9000},
	}
	for _, s := range steps {
		if got := u.extend(s.ts); got != s.want {
			t.Fatalf("extend(%d) = %d, want %d", s.ts, got, s.want)
		}
	}
}

func TestRTPNanosDoesNotOverflow(t *testing.T) {
	ext := int64(1) << 40 // 139 days at 90 kHz
	want := ext / 90000 * 1e9
	if got := rtpNanos(ext, 90000); got < want || got > want+1e9 {
		t.Fatalf("rtpNanos(2^40) = %d, want about %d", got, want)
	}
	if got := rtpNanos(-90000, 90000); got != -1e9 {
		t.Fatalf("rtpNanos(-1 s) = %d", got)
	}
}

func TestNTPToUnixNano(t *testing.T) {
	when := time.Date(2026, 5, 6, 7, 8, 9, 500_000_000, time.UTC)
	ntp := uint64(when.Unix()+ntpEpochOffset)<<32 | 1<<31
	if got := ntpToUnixNano(ntp); got != when.UnixNano() {
		t.Fatalf("got %v, want %v", time.Unix(0, got).UTC(), when)
	}
	// NTP era 1: seconds wrapped in 2036.
	later := time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)
	ntp = uint64(later.Unix()+ntpEpochOffset-1<<32) << 32
	if got := ntpToUnixNano(ntp); got != later.UnixNano() {
		t.Fatalf("era 1: got %v, want %v", time.Unix(0, got).UTC(), later)
	}
}

func TestTrackClockFollowsTheLeastDelayedPacket(t *testing.T) {
	ms := int64(time.Millisecond)
	c := trackClock{rate: 90000}
	const base = 900000                 // 10 s
	c.observe(base, 1000*ms+30*ms)      // first packet 30 ms late
	c.observe(base+4500, 1050*ms+5*ms)  // second 5 ms late
	c.observe(base+9000, 1100*ms+20*ms) // third 20 ms late
	c.observe(base+4600, 1120*ms)       // reordered: no restart
	if want := 1005*ms - 10000*ms; c.arrOff != want {
		t.Fatalf("arrival offset %d ms, want %d", c.arrOff/ms, want/ms)
	}
	// A timestamp far back is a restarted sender, not reordering.
	c.observe(base-2*90000, 5000*ms)
	if c.arrOff != 5000*ms-rtpNanos(base-2*90000, 90000) {
		t.Fatalf("after going back: arrival offset %d ms", c.arrOff/ms)
	}
}
