// Package storetest is the conformance suite every chat.Store passes: the
// hub relies on exactly what it checks.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/starling-sfu/starling/chat"
)

// Run checks the store open returns (a fresh, empty one per call) against
// the chat.Store contract.
func Run(t *testing.T, open func(t *testing.T) chat.Store) {
	for _, c := range []struct {
		name string
		fn   func(t *testing.T, s chat.Store)
	}{
		{"AppendNumbersEventsFromOne", appendNumbers},
		{"ResendWithSameClientIDIsLoggedOnce", idempotent},
		{"ConcurrentAppendsLeaveNoGap", concurrentAppends},
		{"RangeAndTailPage", rangeAndTail},
		{"RoomsHaveTheirOwnSequence", roomsIndependent},
		{"DeleteRedactsItsTarget", deleteRedacts},
		{"ModerationEventsApplySanctions", moderation},
		{"PollLifecycle", pollLifecycle},
		{"ThousandConcurrentVotersGiveAnExactTally", concurrentVotes},
		{"SubscribeDeliversEventsInOrderAndTallyNotices", subscribe},
		{"PresenceSumsLiveNodes", presence},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open(t)) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func send(t *testing.T, s chat.Store, room, from, cid, text string) chat.Event {
	t.Helper()
	e, dup, err := s.Append(ctx(t), room, chat.Event{Kind: chat.KindMessage, Identity: from, Name: from, ClientID: cid, Text: text})
	if err != nil {
		t.Fatalf("append %q: %v", text, err)
	}
	if dup {
		t.Fatalf("append %q: reported as a duplicate", text)
	}
	return e
}

func appendNumbers(t *testing.T, s chat.Store) {
	before := time.Now().UnixMilli()
	var sent []chat.Event
	for i := range 5 {
		e := send(t, s, "r", "alice", fmt.Sprint("c", i), fmt.Sprint("hello <b>", i, "</b>"))
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d got seq %d", i, e.Seq)
		}
		if e.TS < before-1000 || e.TS > time.Now().UnixMilli()+1000 {
			t.Errorf("seq %d: ts %d is not now", e.Seq, e.TS)
		}
		sent = append(sent, e)
	}
	last, err := s.LastSeq(ctx(t), "r")
	if err != nil || last != 5 {
		t.Fatalf("LastSeq = %d, %v; want 5", last, err)
	}
	got, err := s.Range(ctx(t), "r", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "Range(0)", got, sent)
	if last, err := s.LastSeq(ctx(t), "empty"); err != nil || last != 0 {
		t.Errorf("LastSeq of an empty room = %d, %v", last, err)
	}
}

// same checks that got equals want field by field (Poll pointers compared by value).
func same(t *testing.T, what string, got, want []chat.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, want %d", what, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		gp, wp, gs, ws := g.Poll, w.Poll, g.Sanction, w.Sanction
		g.Poll, w.Poll, g.Sanction, w.Sanction = nil, nil, nil, nil
		if g != w {
			t.Errorf("%s[%d] = %+v, want %+v", what, i, g, w)
		}
		if (gp == nil) != (wp == nil) || gp != nil && fmt.Sprint(*gp) != fmt.Sprint(*wp) {
			t.Errorf("%s[%d].Poll = %+v, want %+v", what, i, gp, wp)
		}
		if (gs == nil) != (ws == nil) || gs != nil && *gs != *ws {
			t.Errorf("%s[%d].Sanction = %+v, want %+v", what, i, gs, ws)
		}
	}
}

func idempotent(t *testing.T, s chat.Store) {
	first := send(t, s, "r", "alice", "same", "once")
	again, dup, err := s.Append(ctx(t), "r", chat.Event{Kind: chat.KindMessage, Identity: "alice", ClientID: "same", Text: "once"})
	if err != nil || !dup {
		t.Fatalf("resend: dup=%v err=%v", dup, err)
	}
	same(t, "resend", []chat.Event{again}, []chat.Event{first})
	// Another identity may use the same client id; no client id means no dedup.
	other := send(t, s, "r", "bob", "same", "mine")
	a := send(t, s, "r", "bob", "", "x")
	b := send(t, s, "r", "bob", "", "x")
	if other.Seq != 2 || a.Seq != 3 || b.Seq != 4 {
		t.Errorf("seqs %d %d %d, want 2 3 4", other.Seq, a.Seq, b.Seq)
	}
}

func concurrentAppends(t *testing.T, s chat.Store) {
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprint("c", i%50)
			// Each (identity, client id) pair is sent twice at once.
			_, _, err := s.Append(context.Background(), "r", chat.Event{Kind: chat.KindMessage, Identity: fmt.Sprint("u", i/50), ClientID: id, Text: id})
			errs <- err
			_, _, err = s.Append(context.Background(), "r", chat.Event{Kind: chat.KindMessage, Identity: fmt.Sprint("u", i/50), ClientID: id, Text: id})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Range(ctx(t), "r", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d events logged for %d distinct sends", len(got), n)
	}
	for i, e := range got {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d: a gap or a duplicate", i, e.Seq)
		}
	}
}

func rangeAndTail(t *testing.T, s chat.Store) {
	var all []chat.Event
	for i := range 10 {
		all = append(all, send(t, s, "r", "a", "", fmt.Sprint(i)))
	}
	page, err := s.Range(ctx(t), "r", 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "Range(3, 4)", page, all[3:7])
	if rest, err := s.Range(ctx(t), "r", 10, 5); err != nil || len(rest) != 0 {
		t.Errorf("Range past the end = %v, %v", rest, err)
	}
	tail, err := s.Tail(ctx(t), "r", 3)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "Tail(3)", tail, all[7:])
	if tail, err = s.Tail(ctx(t), "r", 50); err != nil {
		t.Fatal(err)
	}
	same(t, "Tail(50)", tail, all)
	if tail, err = s.Tail(ctx(t), "nobody", 5); err != nil || len(tail) != 0 {
		t.Errorf("Tail of an empty room = %v, %v", tail, err)
	}
}

func roomsIndependent(t *testing.T, s chat.Store) {
	send(t, s, "a", "x", "1", "in a")
	if e := send(t, s, "b", "x", "1", "in b"); e.Seq != 1 {
		t.Errorf("room b's first event has seq %d", e.Seq)
	}
	if e := send(t, s, "a", "x", "2", "in a"); e.Seq != 2 {
		t.Errorf("room a's second event has seq %d", e.Seq)
	}
}

func deleteRedacts(t *testing.T, s chat.Store) {
	bad := send(t, s, "r", "troll", "1", "something rude")
	keep := send(t, s, "r", "alice", "1", "fine")
	del, _, err := s.Append(ctx(t), "r", chat.Event{Kind: chat.KindDelete, Identity: "mod", Target: bad.Seq})
	if err != nil {
		t.Fatal(err)
	}
	if del.Seq != 3 || del.Target != bad.Seq {
		t.Errorf("delete event %+v", del)
	}
	got, err := s.Range(ctx(t), "r", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	redacted := bad
	redacted.Text, redacted.Deleted = "", true
	same(t, "after delete", got, []chat.Event{redacted, keep, del})
	if _, _, err := s.Append(ctx(t), "r", chat.Event{Kind: chat.KindDelete, Identity: "mod", Target: 99}); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("deleting a missing event: %v, want ErrNotFound", err)
	}
}

func moderate(t *testing.T, s chat.Store, sn chat.Sanction) {
	t.Helper()
	if _, _, err := s.Append(ctx(t), "r", chat.Event{Kind: chat.KindModeration, Identity: "mod", Sanction: &sn}); err != nil {
		t.Fatalf("moderation %+v: %v", sn, err)
	}
}

func moderation(t *testing.T, s chat.Store) {
	later := time.Now().Add(time.Hour).UnixMilli()
	moderate(t, s, chat.Sanction{Kind: chat.Mute, Identity: "loud", Until: later})
	moderate(t, s, chat.Sanction{Kind: chat.Mute, Identity: "past", Until: time.Now().Add(-time.Minute).UnixMilli()})
	moderate(t, s, chat.Sanction{Kind: chat.Ban, Identity: "troll"})
	moderate(t, s, chat.Sanction{Kind: chat.Ban, Identity: "forgiven"})
	moderate(t, s, chat.Sanction{Kind: chat.Unban, Identity: "forgiven"})
	moderate(t, s, chat.Sanction{Kind: chat.SlowMode, Seconds: 5})
	m, err := s.Moderation(ctx(t), "r")
	if err != nil {
		t.Fatal(err)
	}
	if until, ok := m.Muted["loud"]; !ok || until != later {
		t.Errorf("muted: %v", m.Muted)
	}
	if _, ok := m.Muted["past"]; ok {
		t.Errorf("an expired mute is standing: %v", m.Muted)
	}
	if until, ok := m.Banned["troll"]; !ok || until != 0 {
		t.Errorf("banned: %v", m.Banned)
	}
	if _, ok := m.Banned["forgiven"]; ok {
		t.Errorf("an unbanned identity is banned: %v", m.Banned)
	}
	if m.SlowMode != 5 {
		t.Errorf("slow mode %d, want 5", m.SlowMode)
	}
	moderate(t, s, chat.Sanction{Kind: chat.Unmute, Identity: "loud"})
	moderate(t, s, chat.Sanction{Kind: chat.SlowMode, Seconds: 0})
	if m, err = s.Moderation(ctx(t), "r"); err != nil || len(m.Muted) != 0 || m.SlowMode != 0 {
		t.Errorf("after unmute and slow mode off: %+v, %v", m, err)
	}
	if m.AnonymousRead != nil {
		t.Errorf("anonymous reading set though nobody set it: %v", *m.AnonymousRead)
	}
	for _, allow := range []bool{false, true} {
		moderate(t, s, chat.Sanction{Kind: chat.AnonymousRead, Allow: &allow})
		if m, err = s.Moderation(ctx(t), "r"); err != nil || m.AnonymousRead == nil || *m.AnonymousRead != allow {
			t.Errorf("after anonymous_read %v: %+v, %v", allow, m.AnonymousRead, err)
		}
	}
	if _, _, err := s.Append(ctx(t), "r", chat.Event{Kind: chat.KindModeration, Sanction: &chat.Sanction{Kind: chat.AnonymousRead}}); err == nil {
		t.Error("anonymous_read without allow was accepted")
	}
	if m, err = s.Moderation(ctx(t), "other"); err != nil || len(m.Banned)+len(m.Muted) != 0 || m.AnonymousRead != nil {
		t.Errorf("another room's moderation: %+v, %v", m, err)
	}
}

func pollLifecycle(t *testing.T, s chat.Store) {
	now := time.Now()
	p, ev, err := s.CreatePoll(ctx(t), "r", chat.Poll{Question: "Best codec?", Options: []string{"VP8", "H.264", "AV1"}, Creator: "host"})
	if err != nil {
		t.Fatal(err)
	}
	if p.ID == "" || len(p.Counts) != 3 || p.Closed || p.Created < now.UnixMilli()-1000 {
		t.Fatalf("created poll %+v", p)
	}
	if ev.Kind != chat.KindPoll || ev.Poll == nil || ev.Poll.ID != p.ID || ev.Seq != 1 {
		t.Fatalf("poll event %+v", ev)
	}
	vote := func(who string, opt int) (bool, error) { return s.Vote(ctx(t), "r", p.ID, who, opt, time.Now()) }
	for _, v := range []struct {
		who  string
		opt  int
		want bool
	}{{"a", 0, true}, {"b", 2, true}, {"c", 2, true}, {"a", 0, false}, {"a", 1, true}} {
		if changed, err := vote(v.who, v.opt); err != nil || changed != v.want {
			t.Errorf("%s votes %d: changed=%v err=%v, want changed=%v", v.who, v.opt, changed, err, v.want)
		}
	}
	if _, err := vote("d", 3); !errors.Is(err, chat.ErrBadOption) {
		t.Errorf("option out of range: %v", err)
	}
	if _, err := vote("d", -1); !errors.Is(err, chat.ErrBadOption) {
		t.Errorf("negative option: %v", err)
	}
	if _, err := s.Vote(ctx(t), "r", "nope", "d", 0, time.Now()); !errors.Is(err, chat.ErrNoPoll) {
		t.Errorf("voting on a missing poll: %v", err)
	}
	if _, err := s.Vote(ctx(t), "other", p.ID, "d", 0, time.Now()); !errors.Is(err, chat.ErrNoPoll) {
		t.Errorf("voting on another room's poll: %v", err)
	}
	got, err := s.Poll(ctx(t), "r", p.ID)
	if err != nil || fmt.Sprint(got.Counts) != "[0 1 2]" {
		t.Fatalf("tally %v (%v), want [0 1 2]", got.Counts, err)
	}
	closed, cev, err := s.ClosePoll(ctx(t), "r", p.ID, "host")
	if err != nil || !closed.Closed || fmt.Sprint(closed.Counts) != "[0 1 2]" {
		t.Fatalf("closed poll %+v, %v", closed, err)
	}
	if cev.Kind != chat.KindPollClosed || cev.Poll == nil || !cev.Poll.Closed || cev.Seq != 2 {
		t.Errorf("poll closed event %+v", cev)
	}
	if _, err := vote("e", 0); !errors.Is(err, chat.ErrPollClosed) {
		t.Errorf("vote after close: %v", err)
	}
	if _, _, err := s.ClosePoll(ctx(t), "r", p.ID, "host"); !errors.Is(err, chat.ErrPollClosed) {
		t.Errorf("closing twice: %v", err)
	}
	if _, _, err := s.ClosePoll(ctx(t), "r", "nope", "host"); !errors.Is(err, chat.ErrNoPoll) {
		t.Errorf("closing a missing poll: %v", err)
	}
	// A poll past its close time refuses votes though nobody closed it.
	timed, _, err := s.CreatePoll(ctx(t), "r", chat.Poll{Question: "q", Options: []string{"x", "y"}, ClosesAt: now.Add(time.Minute).UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Vote(ctx(t), "r", timed.ID, "a", 1, now); err != nil {
		t.Errorf("vote before the close time: %v", err)
	}
	if _, err := s.Vote(ctx(t), "r", timed.ID, "b", 1, now.Add(2*time.Minute)); !errors.Is(err, chat.ErrPollClosed) {
		t.Errorf("vote after the close time: %v", err)
	}
	all, err := s.Polls(ctx(t), "r")
	if err != nil || len(all) != 2 || all[0].ID != p.ID || all[1].ID != timed.ID || fmt.Sprint(all[1].Counts) != "[0 1]" {
		t.Errorf("Polls = %+v, %v", all, err)
	}
	if _, err := s.Poll(ctx(t), "r", "nope"); !errors.Is(err, chat.ErrNoPoll) {
		t.Errorf("Poll of a missing id: %v", err)
	}
}

func concurrentVotes(t *testing.T, s chat.Store) {
	p, _, err := s.CreatePoll(ctx(t), "r", chat.Poll{Question: "q", Options: []string{"a", "b", "c", "d"}})
	if err != nil {
		t.Fatal(err)
	}
	const voters = 1000
	want := make([]int64, 4)
	var wg sync.WaitGroup
	errs := make(chan error, voters)
	for i := range voters {
		// Every voter first votes for one option, then changes its mind.
		final := (i * 7) % 4
		want[final]++
		wg.Go(func() {
			who := fmt.Sprint("voter-", i)
			if _, err := s.Vote(context.Background(), "r", p.ID, who, (final+1)%4, time.Now()); err != nil {
				errs <- err
				return
			}
			_, err := s.Vote(context.Background(), "r", p.ID, who, final, time.Now())
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Poll(ctx(t), "r", p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got.Counts) != fmt.Sprint(want) {
		t.Errorf("tally %v, want %v", got.Counts, want)
	}
}

func subscribe(t *testing.T, s chat.Store) {
	c, cancel := context.WithCancel(ctx(t))
	feed, err := s.Subscribe(c, "r")
	if err != nil {
		t.Fatal(err)
	}
	var want []chat.Event
	for i := range 20 {
		want = append(want, send(t, s, "r", "a", fmt.Sprint(i), fmt.Sprint(i)))
	}
	send(t, s, "elsewhere", "a", "x", "not for r")
	p, pev, err := s.CreatePoll(ctx(t), "r", chat.Poll{Question: "q", Options: []string{"x", "y"}})
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, pev)
	if _, err := s.Vote(ctx(t), "r", p.ID, "a", 1, time.Now()); err != nil {
		t.Fatal(err)
	}
	var got []chat.Event
	timeout := time.After(10 * time.Second)
	for tally := false; len(got) < len(want) || !tally; {
		select {
		case n, ok := <-feed:
			if !ok {
				t.Fatal("feed closed early")
			}
			switch {
			case n.Event != nil:
				got = append(got, *n.Event)
			case n.PollID == p.ID:
				tally = true
			default:
				t.Errorf("unexpected notice %+v", n)
			}
		case <-timeout:
			t.Fatalf("got %d of %d events (tally notice %v)", len(got), len(want), tally)
		}
	}
	same(t, "feed", got, want)
	cancel()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-feed:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("feed not closed after its context ended")
		}
	}
}

func presence(t *testing.T, s chat.Store) {
	total := func(node string, n int, ttl time.Duration) int {
		t.Helper()
		got, err := s.Presence(ctx(t), "r", node, n, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := total("a", 3, time.Minute); got != 3 {
		t.Errorf("one node: %d", got)
	}
	if got := total("b", 4, 300*time.Millisecond); got != 7 {
		t.Errorf("two nodes: %d", got)
	}
	if got := total("a", 2, time.Minute); got != 6 {
		t.Errorf("after node a's update: %d", got)
	}
	// Node b stops renewing: its clients stop counting once its record expires.
	deadline := time.Now().Add(10 * time.Second)
	for total("a", 2, time.Minute) != 2 {
		if time.Now().After(deadline) {
			t.Fatal("an expired node still counts")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
