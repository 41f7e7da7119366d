package chat

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"time"
)

// Polls on the hub: tally messages coalesced per poll, and polls with a
// duration closed when due.

const (
	// tallyInterval spaces a poll's tally messages: at most 4 a second.
	tallyInterval = 250 * time.Millisecond
	// closeRetry is when a poll that failed to close is tried again.
	closeRetry = time.Second
)

// tallies coalesces a room's tally notices.
type tallies struct {
	sent    map[string]time.Time // when each poll's last tally went out
	pending map[string]bool      // polls whose tally changed since
	timer   *time.Timer          // armed for the earliest pending one
}

func (t *tallies) init() {
	t.sent, t.pending = make(map[string]time.Time), make(map[string]bool)
	t.timer = time.NewTimer(time.Hour)
	t.timer.Stop()
}

func (t *tallies) forget(id string) {
	delete(t.sent, id)
	delete(t.pending, id)
}

func (t *tallies) stop() { t.timer.Stop() }

// tallyChanged notes a changed tally and sends it now if the poll's last
// tally is old enough, else when it is. The tally sent is read after the
// notice, so the last one sent always shows the final count.
func (h *hub) tallyChanged(id string, now time.Time) {
	h.tallies.pending[id] = true
	h.flushTallies(now)
}

// flushTallies sends the pending tallies that are due and arms the timer for
// the rest.
func (h *hub) flushTallies(now time.Time) {
	t := &h.tallies
	var next time.Time
	for id := range t.pending {
		due := t.sent[id].Add(tallyInterval)
		if now.Before(due) {
			if next.IsZero() || due.Before(next) {
				next = due
			}
			continue
		}
		delete(t.pending, id)
		ctx, cancel := context.WithTimeout(h.ctx, storeTimeout)
		p, err := h.srv.opts.Store.Poll(ctx, h.room, id)
		cancel()
		if err != nil {
			h.log.Warn("chat room cannot read a tally", "poll", id, "err", err)
			continue
		}
		t.sent[id] = now
		if _, ok := h.polls[id]; ok && !p.Closed {
			h.polls[id] = p
		}
		h.broadcast(0, encode(tallyMsg{Type: "tally", Poll: &p}))
	}
	if !next.IsZero() {
		t.timer.Reset(next.Sub(now))
	}
}

// pollClosers closes a room's polls whose duration ends. Every node serving
// the room tries; the first wins and the others get ErrPollClosed.
type pollClosers struct {
	due   map[string]int64 // poll id → ClosesAt (Unix ms)
	timer *time.Timer
}

func (pc *pollClosers) init() {
	pc.due = make(map[string]int64)
	pc.timer = time.NewTimer(time.Hour)
	pc.timer.Stop()
}

func (pc *pollClosers) add(id string, closesAt int64, now time.Time) {
	pc.due[id] = closesAt
	pc.arm(now)
}

func (pc *pollClosers) remove(id string) { delete(pc.due, id) }

func (pc *pollClosers) stop() { pc.timer.Stop() }

// arm sets the timer for the earliest poll due.
func (pc *pollClosers) arm(now time.Time) {
	if len(pc.due) == 0 {
		pc.timer.Stop()
		return
	}
	earliest := int64(-1)
	for _, at := range pc.due {
		if earliest < 0 || at < earliest {
			earliest = at
		}
	}
	pc.timer.Reset(max(time.UnixMilli(earliest).Sub(now), 0))
}

// closeDuePolls closes the polls whose time has come.
func (h *hub) closeDuePolls(now time.Time) {
	pc := &h.closers
	for id, at := range pc.due {
		if now.UnixMilli() < at {
			continue
		}
		ctx, cancel := context.WithTimeout(h.ctx, storeTimeout)
		_, _, err := h.srv.opts.Store.ClosePoll(ctx, h.room, id, "")
		cancel()
		if err != nil && !errors.Is(err, ErrPollClosed) && !errors.Is(err, ErrNoPoll) {
			h.log.Warn("chat room cannot close a poll", "poll", id, "err", err)
			pc.due[id] = now.Add(closeRetry).UnixMilli()
			continue
		}
		delete(pc.due, id)
	}
	pc.arm(now)
}

// openPolls lists the room's polls that take votes at now, oldest first,
// with the latest tallies the hub has broadcast: a client that joins before
// a newer tally is broadcast gets that tally too.
func (h *hub) openPolls(now time.Time) []Poll {
	open := make([]Poll, 0, len(h.polls))
	for _, p := range h.polls {
		if p.OpenAt(now) {
			open = append(open, p)
		}
	}
	slices.SortFunc(open, func(a, b Poll) int {
		return cmp.Or(cmp.Compare(a.Created, b.Created), strings.Compare(a.ID, b.ID))
	})
	return open
}
