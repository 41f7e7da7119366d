package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starling-sfu/starling/chat"
	"github.com/starling-sfu/starling/chat/storetest"
)

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// openTemp opens a store in a fresh directory and closes it when t ends.
func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data", "chat.db")
	s, err := Open(path, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) chat.Store {
		s, _ := openTemp(t)
		return s
	})
}

func TestHistoryPollsAndModerationSurviveReopen(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	if _, _, err := s.Append(ctx, "r", chat.Event{Kind: chat.KindMessage, Identity: "a", ClientID: "1", Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	p, _, err := s.CreatePoll(ctx, "r", chat.Poll{Question: "q", Options: []string{"x", "y"}, Creator: "host"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Vote(ctx, "r", p.ID, "a", 1, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, sc := range []chat.Sanction{{Kind: chat.Ban, Identity: "troll"}, {Kind: chat.SlowMode, Seconds: 3}} {
		if _, _, err := s.Append(ctx, "r", chat.Event{Kind: chat.KindModeration, Identity: "host", Sanction: &sc}); err != nil {
			t.Fatal(err)
		}
	}
	before, err := s.Range(ctx, "r", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2, err := Open(path, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	after, err := s2.Range(ctx, "r", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(after, before) {
		t.Errorf("history after reopen:\n%+v\nwant\n%+v", after, before)
	}
	got, err := s2.Poll(ctx, "r", p.ID)
	if err != nil || fmt.Sprint(got.Counts) != "[0 1]" || got.Question != "q" {
		t.Errorf("poll after reopen: %+v, %v", got, err)
	}
	m, err := s2.Moderation(ctx, "r")
	if _, banned := m.Banned["troll"]; err != nil || !banned || m.SlowMode != 3 {
		t.Errorf("moderation after reopen: %+v, %v", m, err)
	}
	// The log goes on from where it stopped, and resends are still caught.
	e, dup, err := s2.Append(ctx, "r", chat.Event{Kind: chat.KindMessage, Identity: "a", ClientID: "1", Text: "hi"})
	if err != nil || !dup || e.Seq != 1 {
		t.Errorf("resend after reopen: seq %d dup %v, %v", e.Seq, dup, err)
	}
	e, _, err = s2.Append(ctx, "r", chat.Event{Kind: chat.KindMessage, Identity: "a", ClientID: "2", Text: "again"})
	if err != nil || e.Seq != uint64(len(before)+1) {
		t.Errorf("first append after reopen: seq %d, %v; want %d", e.Seq, err, len(before)+1)
	}
}

func TestOpenSetsSchemaVersion(t *testing.T) {
	s, _ := openTemp(t)
	var version int
	if err := s.reader.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version != schemaVersion || version < 1 {
		t.Errorf("user_version %d, want %d", version, schemaVersion)
	}
	var mode string
	if err := s.reader.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode %q, %v; want wal", mode, err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	s, path := openTemp(t)
	if _, err := s.writer.Exec(fmt.Sprintf("PRAGMA user_version = %d", schemaVersion+1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s2, err := Open(path, quietLog()); err == nil {
		s2.Close()
		t.Fatal("opened a database from a newer build")
	}
}

func TestTwoHundredConcurrentAppendersLeaveNoGapAndNoDuplicate(t *testing.T) {
	s, _ := openTemp(t)
	const n = 200
	var (
		wg   sync.WaitGroup
		dups atomic.Int64
	)
	errs := make(chan error, 2*n)
	for i := range 2 * n {
		// Each send goes out twice at once, as a client's retry might.
		wg.Go(func() {
			_, dup, err := s.Append(context.Background(), "r", chat.Event{Kind: chat.KindMessage, Identity: "u", ClientID: fmt.Sprint(i / 2), Text: "x"})
			if dup {
				dups.Add(1)
			}
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
	if dups.Load() != n {
		t.Errorf("%d resends reported as duplicates, want %d", dups.Load(), n)
	}
	got, err := s.Range(context.Background(), "r", 0, 2*n)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d events, want %d", len(got), n)
	}
	for i, e := range got {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
}

func TestDuplicateModerationIsNotAppliedTwice(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	ban := chat.Event{Kind: chat.KindModeration, Identity: "mod", ClientID: "m1", Sanction: &chat.Sanction{Kind: chat.Ban, Identity: "x"}}
	if _, _, err := s.Append(ctx, "r", ban); err != nil {
		t.Fatal(err)
	}
	unban := chat.Event{Kind: chat.KindModeration, Identity: "mod", ClientID: "m2", Sanction: &chat.Sanction{Kind: chat.Unban, Identity: "x"}}
	if _, _, err := s.Append(ctx, "r", unban); err != nil {
		t.Fatal(err)
	}
	if _, dup, err := s.Append(ctx, "r", ban); err != nil || !dup {
		t.Fatalf("resent ban: dup %v, %v", dup, err)
	}
	if m, err := s.Moderation(ctx, "r"); err != nil || len(m.Banned) != 0 {
		t.Errorf("a resent ban was applied again: %+v, %v", m, err)
	}
}

func TestCloseEndsSubscriptionsAndLaterCallsFail(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	feed, err := s.Subscribe(ctx, "r")
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
		t.Fatal("feed not closed by Close")
	}
	if _, _, err := s.Append(ctx, "r", chat.Event{Kind: chat.KindMessage, Text: "x"}); err == nil {
		t.Error("Append after Close succeeded")
	}
	if _, err := s.Range(ctx, "r", 0, 10); err == nil {
		t.Error("Range after Close succeeded")
	}
	if _, err := s.Subscribe(ctx, "r"); err == nil {
		t.Error("Subscribe after Close succeeded")
	}
	if _, err := s.Presence(ctx, "r", "n", 1, time.Second); err == nil {
		t.Error("Presence after Close succeeded")
	}
	if err := s.Close(); err == nil {
		t.Error("second Close succeeded")
	}
}

func TestConcurrentWritersNotifyInSeqOrder(t *testing.T) {
	s, _ := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	feed, err := s.Subscribe(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, _, err := s.Append(ctx, "r", chat.Event{Kind: chat.KindMessage, Identity: "u", Text: fmt.Sprint(i)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for want := uint64(1); want <= n; want++ {
		n := <-feed
		if n.Event == nil || n.Event.Seq != want {
			t.Fatalf("notice %+v, want the event with seq %d", n, want)
		}
	}
}

func TestSlowSubscriberDoesNotBlockWriters(t *testing.T) {
	s, _ := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	feed, err := s.Subscribe(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	for i := range subscriberBuffer + 10 {
		if _, _, err := s.Append(ctx, "r", chat.Event{Kind: chat.KindMessage, Text: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(feed) != subscriberBuffer {
		t.Errorf("%d notices buffered, want %d", len(feed), subscriberBuffer)
	}
	if first := <-feed; first.Event == nil || first.Event.Seq != 1 {
		t.Errorf("first notice %+v", first)
	}
}

func TestErrorsKeepSentinels(t *testing.T) {
	s, _ := openTemp(t)
	_, err := s.Vote(context.Background(), "r", "nope", "a", 0, time.Now())
	if !errors.Is(err, chat.ErrNoPoll) {
		t.Errorf("err %v is not ErrNoPoll", err)
	}
}

func BenchmarkAppend(b *testing.B) {
	s, _ := openTemp(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := s.Append(ctx, "r", chat.Event{Kind: chat.KindMessage, Identity: "u", Text: "hello"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkVote(b *testing.B) {
	s, _ := openTemp(b)
	ctx := context.Background()
	p, _, err := s.CreatePoll(ctx, "r", chat.Poll{Question: "q", Options: []string{"a", "b", "c", "d"}})
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	next := 0
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			i := next
			next++
			mu.Unlock()
			if _, err := s.Vote(ctx, "r", p.ID, fmt.Sprint("v", i), i%4, time.Now()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkPoll(b *testing.B) {
	s, _ := openTemp(b)
	ctx := context.Background()
	p, _, err := s.CreatePoll(ctx, "r", chat.Poll{Question: "q", Options: []string{"a", "b", "c", "d"}})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 10000 {
		if _, err := s.Vote(ctx, "r", p.ID, fmt.Sprint("v", i), i%4, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if _, err := s.Poll(ctx, "r", p.ID); err != nil {
			b.Fatal(err)
		}
	}
}

func TestOpenMigratesAVersionOneDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	// The first release's schema, with a room in slow mode.
	if err := migrateStep(context.Background(), db, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO rooms (room, slow_mode) VALUES ('r', 7)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(path, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m, err := s.Moderation(context.Background(), "r")
	if err != nil || m.SlowMode != 7 || m.AnonymousRead != nil {
		t.Fatalf("after migrating: %+v, %v", m, err)
	}
	off := false
	if _, _, err := s.Append(context.Background(), "r", chat.Event{Kind: chat.KindModeration, Sanction: &chat.Sanction{Kind: chat.AnonymousRead, Allow: &off}}); err != nil {
		t.Fatal(err)
	}
	if m, err = s.Moderation(context.Background(), "r"); err != nil || m.AnonymousRead == nil || *m.AnonymousRead || m.SlowMode != 7 {
		t.Errorf("after anonymous_read off: %+v, %v", m, err)
	}
}
