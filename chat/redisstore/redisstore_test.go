package redisstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starling-sfu/starling/chat"
	"github.com/starling-sfu/starling/chat/redisstore/redistest"
	"github.com/starling-sfu/starling/chat/storetest"
)

// prefixes gives every store under test its own key space on a shared
// server.
var prefixes atomic.Int64

func freshPrefix() string {
	return fmt.Sprintf("test%d:", prefixes.Add(1))
}

// open returns a Store on url, closed when the test ends.
func open(t testing.TB, url string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// twoNodes returns two Stores on one Redis and one key prefix, as two
// Starling nodes serving the same rooms.
func twoNodes(t *testing.T, opts Options) (a, b *Store) {
	url := redistest.Start(t)
	opts.KeyPrefix = freshPrefix()
	return open(t, url, opts), open(t, url, opts)
}

func TestStoreConformance(t *testing.T) {
	url := redistest.Start(t)
	storetest.Run(t, func(t *testing.T) chat.Store {
		return open(t, url, Options{KeyPrefix: freshPrefix()})
	})
}

func message(from, cid, text string) chat.Event {
	return chat.Event{Kind: chat.KindMessage, Identity: from, ClientID: cid, Text: text}
}

func TestAppendsFromTwoNodesShareOneGapFreeSequence(t *testing.T) {
	a, b := twoNodes(t, Options{})
	const perNode = 100
	var wg sync.WaitGroup
	errs := make(chan error, 2*perNode)
	for i := range perNode {
		for name, s := range map[string]*Store{"a": a, "b": b} {
			wg.Go(func() {
				_, _, err := s.Append(context.Background(), "r", message(name, fmt.Sprint(i), fmt.Sprint(name, i)))
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := b.Range(context.Background(), "r", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2*perNode {
		t.Fatalf("%d events, want %d", len(got), 2*perNode)
	}
	texts := map[string]bool{}
	for i, e := range got {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
		texts[e.Text] = true
	}
	if len(texts) != 2*perNode {
		t.Errorf("%d distinct messages logged, want %d", len(texts), 2*perNode)
	}
}

func TestSubscriberOnOneNodeGetsBothNodesEventsInSeqOrder(t *testing.T) {
	a, b := twoNodes(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	feed, err := b.Subscribe(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	const n = 100 // below feedSize, so nothing is dropped
	var wg sync.WaitGroup
	for i := range n {
		s := a
		if i%3 == 0 {
			s = b
		}
		wg.Go(func() {
			if _, _, err := s.Append(ctx, "r", message("x", "", fmt.Sprint(i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for want := uint64(1); want <= n; want++ {
		select {
		case note := <-feed:
			if note.Event == nil || note.Event.Seq != want {
				t.Fatalf("notice %+v, want event seq %d", note, want)
			}
		case <-ctx.Done():
			t.Fatalf("waiting for seq %d: %v", want, ctx.Err())
		}
	}
}

func TestResendToAnotherNodeIsADuplicate(t *testing.T) {
	a, b := twoNodes(t, Options{})
	ctx := context.Background()
	first, dup, err := a.Append(ctx, "r", message("alice", "c1", "hi"))
	if err != nil || dup {
		t.Fatalf("first send: dup=%v err=%v", dup, err)
	}
	again, dup, err := b.Append(ctx, "r", message("alice", "c1", "hi"))
	if err != nil || !dup {
		t.Fatalf("resend: dup=%v err=%v", dup, err)
	}
	if again != first {
		t.Errorf("resend returned %+v, want %+v", again, first)
	}
	// A resend of a deleted message returns it redacted.
	if _, _, err := b.Append(ctx, "r", chat.Event{Kind: chat.KindDelete, Identity: "mod", Target: first.Seq}); err != nil {
		t.Fatal(err)
	}
	again, _, err = a.Append(ctx, "r", message("alice", "c1", "hi"))
	if err != nil || !again.Deleted || again.Text != "" {
		t.Errorf("resend after delete: %+v, %v", again, err)
	}
}

func TestVotesSplitOverTwoNodesGiveAnExactTally(t *testing.T) {
	a, b := twoNodes(t, Options{})
	ctx := context.Background()
	p, _, err := a.CreatePoll(ctx, "r", chat.Poll{Question: "q", Options: []string{"x", "y", "z"}})
	if err != nil {
		t.Fatal(err)
	}
	const voters = 1000
	want := make([]int64, 3)
	var wg sync.WaitGroup
	for i := range voters {
		s := a
		if i%2 == 1 {
			s = b
		}
		want[i%3]++
		wg.Go(func() {
			if _, err := s.Vote(ctx, "r", p.ID, fmt.Sprint("v", i), i%3, time.Now()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	closed, ev, err := b.ClosePoll(ctx, "r", p.ID, "host")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(closed.Counts) != fmt.Sprint(want) || fmt.Sprint(ev.Poll.Counts) != fmt.Sprint(want) {
		t.Errorf("final tally %v (event %v), want %v", closed.Counts, ev.Poll.Counts, want)
	}
	logged, err := a.Range(ctx, "r", ev.Seq-1, 1)
	if err != nil || len(logged) != 1 || fmt.Sprint(logged[0].Poll.Counts) != fmt.Sprint(want) {
		t.Errorf("logged close event %+v, %v", logged, err)
	}
}

func TestStreamCapTrimsTheOldestEvents(t *testing.T) {
	url := redistest.Start(t)
	s := open(t, url, Options{KeyPrefix: freshPrefix(), MaxEvents: 10})
	ctx := context.Background()
	const n = 500
	for i := range n {
		if _, _, err := s.Append(ctx, "r", message("a", fmt.Sprint(i), fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.Range(ctx, "r", 0, n)
	if err != nil {
		t.Fatal(err)
	}
	// MAXLEN ~ trims whole stream nodes (100 entries by default).
	if len(all) >= n || len(all) < 10 {
		t.Fatalf("%d events kept of %d with MaxEvents 10", len(all), n)
	}
	for i, e := range all {
		if e.Seq != uint64(n-len(all)+i+1) {
			t.Fatalf("kept event %d has seq %d", i, e.Seq)
		}
	}
	if last, err := s.LastSeq(ctx, "r"); err != nil || last != n {
		t.Errorf("LastSeq = %d, %v", last, err)
	}
	if _, _, err := s.Append(ctx, "r", chat.Event{Kind: chat.KindDelete, Target: 1}); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("deleting a trimmed event: %v, want ErrNotFound", err)
	}
	resent, dup, err := s.Append(ctx, "r", message("a", "0", "0"))
	if err != nil || !dup || resent.Seq != 1 {
		t.Errorf("resend of a trimmed event: seq %d dup=%v err=%v", resent.Seq, dup, err)
	}
}

func TestCloseEndsSubscriptions(t *testing.T) {
	url := redistest.Start(t)
	s, err := Open(context.Background(), url, Options{KeyPrefix: freshPrefix()})
	if err != nil {
		t.Fatal(err)
	}
	feed, err := s.Subscribe(context.Background(), "r")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-feed:
		if ok {
			t.Error("a notice after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("feed still open after Close")
	}
}

func TestSlowSubscriberDropsInsteadOfBlocking(t *testing.T) {
	url := redistest.Start(t)
	s := open(t, url, Options{KeyPrefix: freshPrefix()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	feed, err := s.Subscribe(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	const n = feedSize + 50
	for i := range n {
		if _, _, err := s.Append(ctx, "r", message("a", "", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	// The last append is logged last: once it is in, Range has them all,
	// and the feed holds the first feedSize.
	for len(feed) < feedSize && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	for want := uint64(1); want <= feedSize; want++ {
		if note := <-feed; note.Event == nil || note.Event.Seq != want {
			t.Fatalf("notice %+v, want seq %d", note, want)
		}
	}
	if rest, err := s.Range(ctx, "r", feedSize, n); err != nil || len(rest) != n-feedSize {
		t.Errorf("Range fills the gap with %d events, %v; want %d", len(rest), err, n-feedSize)
	}
}

func TestEndedSubscriptionsLeaveNoGoroutines(t *testing.T) {
	url := redistest.Start(t)
	s := open(t, url, Options{KeyPrefix: freshPrefix()})
	if _, err := s.LastSeq(context.Background(), "r"); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	var feeds []<-chan chat.Notice
	for range 10 {
		feed, err := s.Subscribe(ctx, "r")
		if err != nil {
			t.Fatal(err)
		}
		feeds = append(feeds, feed)
	}
	cancel()
	for _, feed := range feeds {
		for range feed {
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after the subscriptions ended, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOpenFailsWithoutRedis(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := Open(ctx, "redis://127.0.0.1:1/0", Options{}); err == nil {
		t.Error("Open succeeded with nothing listening")
	}
	if _, err := Open(ctx, "http://x", Options{}); err == nil {
		t.Error("Open accepted a non-redis URL")
	}
}

func BenchmarkAppend(b *testing.B) {
	url := redistest.Start(b)
	s := open(b, url, Options{KeyPrefix: freshPrefix()})
	ctx := context.Background()
	var n atomic.Int64
	// Many clients append at once, as a busy room's do.
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, _, err := s.Append(ctx, "r", message("bench", fmt.Sprint(i), "hello")); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}
