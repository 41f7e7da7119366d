package chat

import (
	"testing"
	"time"
)

func TestTokenBucketRefillsAtTheRateUpToTheBurst(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := newLimiters(2, 3).get("alice", t0)
	for i := range 3 {
		if wait, _ := l.take(t0); wait != 0 {
			t.Fatalf("token %d of the burst refused", i)
		}
	}
	if wait, _ := l.take(t0); wait != 500*time.Millisecond {
		t.Fatalf("empty bucket: wait %v, want 500ms at 2/s", wait)
	}
	if wait, _ := l.take(t0.Add(250 * time.Millisecond)); wait != 250*time.Millisecond {
		t.Fatalf("half a token back: wait %v, want 250ms", wait)
	}
	if wait, _ := l.take(t0.Add(500 * time.Millisecond)); wait != 0 {
		t.Fatalf("a token is back after 500ms, yet refused (%v)", wait)
	}
	// A long pause refills to the burst, not beyond.
	later := t0.Add(time.Hour)
	for i := range 3 {
		if wait, _ := l.take(later); wait != 0 {
			t.Fatalf("after an hour, token %d refused", i)
		}
	}
	if wait, _ := l.take(later); wait == 0 {
		t.Fatal("the bucket holds more than its burst")
	}
}

func TestFloodingIsTenBurstsOfRefusalsWithinTenSeconds(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := newLimiters(0.001, 2).get("alice", t0)
	l.take(t0)
	l.take(t0)
	// 19 refusals spread over 10 s are not flooding; the 20th within 10 s
	// of the first is.
	for i := range 19 {
		if _, flooding := l.take(t0.Add(time.Duration(i) * 500 * time.Millisecond)); flooding {
			t.Fatalf("flooding after %d refusals", i+1)
		}
	}
	if _, flooding := l.take(t0.Add(10 * time.Second)); !flooding {
		t.Fatal("20 refusals within 10 s are not flooding")
	}
	// Refusals spread wider than the window are not.
	l = newLimiters(0.001, 2).get("bob", t0)
	l.take(t0)
	l.take(t0)
	for i := range 40 {
		if _, flooding := l.take(t0.Add(time.Duration(i) * 600 * time.Millisecond)); flooding {
			t.Fatalf("flooding at refusal %d, one every 600ms", i+1)
		}
	}
}

func TestSlowModeWaitsFromTheLastMessage(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := newLimiters(2, 10).get("alice", t0)
	if w := l.slowWait(t0, 10*time.Second); w != 0 {
		t.Fatalf("first message waits %v", w)
	}
	l.sent(t0)
	if w := l.slowWait(t0.Add(4*time.Second), 10*time.Second); w != 6*time.Second {
		t.Fatalf("wait %v, want 6s", w)
	}
	if w := l.slowWait(t0.Add(10*time.Second), 10*time.Second); w != 0 {
		t.Fatalf("wait %v after the interval", w)
	}
	if w := l.slowWait(t0.Add(time.Second), 0); w != 0 {
		t.Fatalf("slow mode off, wait %v", w)
	}
}
