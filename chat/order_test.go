package chat_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starling-sfu/starling/chat"
)

// consecutive fails unless seqs run from..from+len-1 with no gap or repeat.
func consecutive(t testing.TB, who string, seqs []uint64, from uint64) {
	t.Helper()
	for i, s := range seqs {
		if s != from+uint64(i) {
			t.Fatalf("%s: event %d has seq %d, want %d (seqs %v)", who, i, s, from+uint64(i), seqs)
		}
	}
}

func TestConcurrentSendersAllSeeOneGapFreeOrder(t *testing.T) {
	n := startNode(t, tempSQLite(t), chat.Options{})
	const clients, each = 8, 25
	var cs []*wsClient
	for i := range clients {
		c, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, fmt.Sprint("u", i), grant{room: "r", write: true})})
		cs = append(cs, c)
	}
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			for j := range each {
				if err := c.conn.WriteJSON(map[string]any{"type": "send", "client_id": fmt.Sprint(j), "text": fmt.Sprintf("%d says %d", i, j)}); err != nil {
					t.Errorf("client %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	var first []chat.Event
	for i, c := range cs {
		var got []chat.Event
		acks := 0
		for len(got) < clients*each || acks < each {
			switch m := c.next(); m.Type {
			case "event":
				got = append(got, *m.Event)
			case "ack":
				acks++
			case "presence":
			default:
				t.Fatalf("client %d got %s", i, m.raw)
			}
		}
		seqs := make([]uint64, len(got))
		for k, e := range got {
			seqs[k] = e.Seq
		}
		consecutive(t, fmt.Sprint("client ", i), seqs, 1)
		if i == 0 {
			first = got
		} else if !slices.EqualFunc(got, first, func(a, b chat.Event) bool {
			return a.Seq == b.Seq && a.Text == b.Text && a.Identity == b.Identity
		}) {
			t.Fatalf("client %d saw another order than client 0", i)
		}
	}
}

// A client that joins while others send gets its backlog and then the live
// events with nothing missing and nothing twice, wherever the join falls.
func TestJoinDuringSendsHasNoGapOrDuplicate(t *testing.T) {
	n := startNode(t, tempSQLite(t), chat.Options{AnonymousRead: true})
	sender, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "sender", grant{room: "r", write: true})})
	const total, joiners = 300, 20
	var acked atomic.Int64
	sent := make(chan error, 1)
	joined := make(chan struct{}, joiners)
	go func() {
		// Each send waits for its ack, and every total/joiners sends for
		// the next joiner, so each join falls among sends in flight.
		for i := range total {
			if i > 0 && i%(total/joiners) == 0 {
				select {
				case <-joined:
				case <-time.After(wait):
					sent <- fmt.Errorf("no joiner after %d sends", i)
					return
				}
			}
			if err := sender.conn.WriteJSON(map[string]any{"type": "send", "client_id": fmt.Sprint(i), "text": fmt.Sprint(i)}); err != nil {
				sent <- err
				return
			}
			cid := fmt.Sprint(i)
			if _, _, err := sender.await(0, func(m msg) bool { return m.Type == "ack" && m.ClientID == cid }); err != nil {
				sent <- err
				return
			}
			acked.Add(1)
		}
		sent <- nil
	}()

	type joiner struct {
		c    *wsClient
		from uint64 // the first seq it should get
	}
	var js []joiner
	midway := 0
	for i := range joiners {
		eventually(t, "the sender's progress", func() bool { return acked.Load() >= int64(i*total/joiners) })
		hello := map[string]any{}
		switch i % 3 {
		case 0:
			hello["since"] = 0
		case 1:
			hello["history"] = 7
		}
		c, welcome, backlog := join(t, n.wsURL("r"), hello)
		last := welcome.Seq
		if last > 0 && last < total {
			midway++
		}
		if len(backlog) > 0 && backlog[len(backlog)-1].Seq != last {
			t.Fatalf("joiner %d: backlog ends at %d, welcome.seq is %d", i, backlog[len(backlog)-1].Seq, last)
		}
		from := uint64(1)
		switch i % 3 {
		case 1:
			from = last - min(last, 7) + 1
		case 2:
			from = last - min(last, 50) + 1
		}
		js = append(js, joiner{c, from})
		joined <- struct{}{}
	}
	for i, j := range js {
		eventually(t, "every message", func() bool { r := j.c.received(); return len(r) > 0 && r[len(r)-1] >= total })
		seqs := j.c.received()
		consecutive(t, fmt.Sprint("joiner ", i), seqs, j.from)
		if seqs[len(seqs)-1] != total {
			t.Fatalf("joiner %d: last seq %d", i, seqs[len(seqs)-1])
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of %d joined while messages were being sent", midway, joiners)
	if midway < joiners/2 {
		t.Errorf("only %d joins fell among the sends: the test did not test much", midway)
	}
}

func TestResendWithTheSameClientIDIsLoggedOnce(t *testing.T) {
	n := startNode(t, tempSQLite(t), chat.Options{})
	tok := token(t, "alice", grant{room: "r", write: true})
	a, _, _ := join(t, n.wsURL("r"), map[string]any{"token": tok})
	first := a.ack(map[string]any{"type": "send", "client_id": "a-1", "text": "once"})
	if first.Duplicate || first.Seq != 1 {
		t.Fatalf("first send: %s", first.raw)
	}
	again := a.ack(map[string]any{"type": "send", "client_id": "a-1", "text": "once"})
	if !again.Duplicate || again.Seq != first.Seq {
		t.Fatalf("resend: %s, want duplicate of seq %d", again.raw, first.Seq)
	}
	// After a reconnect, too.
	a.event(1)
	_ = a.conn.Close()
	b, _, backlog := join(t, n.wsURL("r"), map[string]any{"token": tok, "since": 0})
	if len(backlog) != 1 {
		t.Fatalf("history holds %d events, want 1", len(backlog))
	}
	if m := b.ack(map[string]any{"type": "send", "client_id": "a-1", "text": "once"}); !m.Duplicate {
		t.Fatalf("resend after reconnect: %s", m.raw)
	}
	b.ack(map[string]any{"type": "send", "client_id": "a-2", "text": "twice"})
	if e := b.event(2); e.ClientID != "a-2" {
		t.Fatalf("seq 2 is %+v, want a-2", e)
	}
}

func TestResumeDeliversExactlyTheMissedEvents(t *testing.T) {
	n := startNode(t, tempSQLite(t), chat.Options{})
	alice, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "alice", grant{room: "r", write: true})})
	bob, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "bob", grant{room: "r"})})
	for i := range 5 {
		alice.ack(map[string]any{"type": "send", "client_id": fmt.Sprint(i), "text": "before"})
	}
	bob.event(5)
	_ = bob.conn.Close()
	for i := 5; i < 12; i++ {
		alice.ack(map[string]any{"type": "send", "client_id": fmt.Sprint(i), "text": "missed"})
	}
	alice.event(12) // the room's hub has relayed them all
	bob2, welcome, backlog := join(t, n.wsURL("r"), map[string]any{"token": token(t, "bob", grant{room: "r"}), "since": 5})
	if welcome.Seq != 12 {
		t.Fatalf("welcome.seq %d, want 12", welcome.Seq)
	}
	var seqs []uint64
	for _, e := range backlog {
		seqs = append(seqs, e.Seq)
		if e.Text != "missed" {
			t.Fatalf("resumed with %+v", e)
		}
	}
	if !slices.Equal(seqs, []uint64{6, 7, 8, 9, 10, 11, 12}) {
		t.Fatalf("resume since 5 got %v", seqs)
	}
	alice.ack(map[string]any{"type": "send", "client_id": "live", "text": "live"})
	if e := bob2.event(13); e.Text != "live" {
		t.Fatalf("live event %+v", e)
	}
	consecutive(t, "bob2", bob2.received(), 6)
}

func TestHistorySurvivesARestart(t *testing.T) {
	path := t.TempDir() + "/chat.db"
	st := openSQLite(t, path)
	n := startNode(t, st, chat.Options{})
	alice, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "alice", grant{room: "r", write: true})})
	for i := range 3 {
		alice.ack(map[string]any{"type": "send", "client_id": fmt.Sprint(i), "text": fmt.Sprint("kept ", i)})
	}
	n.close()
	alice.closed()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	n2 := startNode(t, openSQLite(t, path), chat.Options{})
	c, welcome, history := join(t, n2.wsURL("r"), map[string]any{"token": token(t, "alice", grant{room: "r", write: true})})
	if welcome.Seq != 3 || len(history) != 3 || history[2].Text != "kept 2" {
		t.Fatalf("after restart: welcome.seq %d, history %+v", welcome.Seq, history)
	}
	if m := c.ack(map[string]any{"type": "send", "client_id": "0", "text": "kept 0"}); !m.Duplicate {
		t.Fatalf("resend after restart logged again: %s", m.raw)
	}
	if m := c.ack(map[string]any{"type": "send", "client_id": "3", "text": "new"}); m.Seq != 4 {
		t.Fatalf("next seq after restart: %s", m.raw)
	}
}

func TestServerCloseSays1001(t *testing.T) {
	n := startNode(t, tempSQLite(t), chat.Options{AnonymousRead: true})
	c, _, _ := join(t, n.wsURL("r"), map[string]any{})
	n.close()
	c.expectClose(1001, "")
}
