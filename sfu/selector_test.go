package sfu

import (
	"testing"
	"time"
)

func TestLossSelectorStepsDownOnLossAndBackUpAfterACleanPeriod(t *testing.T) {
	var s lossSelector
	sec := int64(time.Second)
	now := int64(100 * sec)
	if got := s.desired(now); got != 2 {
		t.Fatalf("starts at layer %d, want the top (2)", got)
	}
	// Heavy loss right away: held for the settle time, then one step down.
	s.onReport(60, now+sec)
	if got := s.desired(now + sec); got != 2 {
		t.Fatalf("stepped down before the settle time: %d", got)
	}
	s.onReport(60, now+3*sec)
	if got := s.desired(now + 3*sec); got != 1 {
		t.Fatalf("after loss got layer %d, want 1", got)
	}
	// Moderate loss (between clean and step-down) neither moves it.
	s.onReport(15, now+4*sec)
	if got := s.desired(now + 20*sec); got != 1 {
		t.Fatalf("moderate loss moved the layer to %d", got)
	}
	// Clean for longer than the first wait: back up.
	s.onReport(0, now+21*sec)
	if got := s.desired(now + 25*sec); got != 1 {
		t.Fatalf("stepped up after only 4 s clean: %d", got)
	}
	if got := s.desired(now + 30*sec); got != 2 {
		t.Fatalf("clean for 9 s, got layer %d, want 2", got)
	}
	// Loss soon after stepping up: down again, and the next attempt waits
	// twice as long.
	s.onReport(80, now+33*sec)
	if got := s.desired(now + 33*sec); got != 1 {
		t.Fatalf("loss after the step up: layer %d, want 1", got)
	}
	s.onReport(0, now+34*sec)
	if got := s.desired(now + 34*sec + int64(firstUpWait) + sec); got != 1 {
		t.Fatalf("stepped up again without backing off: %d", got)
	}
	if got := s.desired(now + 34*sec + 2*int64(firstUpWait) + sec); got != 2 {
		t.Fatalf("never stepped up again: %d", got)
	}
}

func TestLossSelectorNeverGoesBelowTheLowestLayer(t *testing.T) {
	var s lossSelector
	now := int64(0)
	for i := range 20 {
		now += int64(3 * time.Second)
		s.onReport(255, now)
		if got := s.desired(now); got < 0 {
			t.Fatalf("report %d: layer %d", i, got)
		}
	}
	if got := s.desired(now); got != 0 {
		t.Fatalf("under constant loss settled on %d, want 0", got)
	}
}
