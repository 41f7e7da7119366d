package chat_test

import (
	"fmt"
	"testing"

	"github.com/starling-sfu/starling/chat"
)

func TestDeleteRedactsTheMessageInHistory(t *testing.T) {
	n := startNode(t, tempSQLite(t), chat.Options{})
	host, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "host", grant{room: "r", admin: true})})
	alice, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "alice", grant{room: "r", write: true})})
	sent := alice.ack(map[string]any{"type": "send", "client_id": "a", "text": "regrettable"})
	alice.ack(map[string]any{"type": "send", "client_id": "b", "text": "fine"})

	alice.refused(map[string]any{"type": "delete", "target": sent.Seq}, "forbidden")
	host.refused(map[string]any{"type": "delete", "target": 99}, "not_found")
	del := host.ack(map[string]any{"type": "delete", "target": sent.Seq})
	if e := alice.event(del.Seq); e.Kind != chat.KindDelete || e.Target != sent.Seq || e.Identity != "host" {
		t.Fatalf("delete event %+v", e)
	}
	alice.refused(map[string]any{"type": "react", "client_id": "r", "target": sent.Seq, "emoji": "👍"}, "not_found")

	_, _, history := join(t, n.wsURL("r"), map[string]any{"token": token(t, "bob", grant{room: "r"})})
	if len(history) != 3 {
		t.Fatalf("history %+v", history)
	}
	if h := history[0]; h.Seq != sent.Seq || !h.Deleted || h.Text != "" {
		t.Fatalf("deleted message in history: %+v", h)
	}
	if h := history[1]; h.Deleted || h.Text != "fine" {
		t.Fatalf("the other message: %+v", h)
	}
}

func TestReactionsAreLoggedOnceAgainstAMessage(t *testing.T) {
	n := startNode(t, tempSQLite(t), chat.Options{})
	alice, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "alice", grant{room: "r", write: true})})
	sent := alice.ack(map[string]any{"type": "send", "client_id": "m", "text": "react to me"})
	r := alice.ack(map[string]any{"type": "react", "client_id": "r1", "target": sent.Seq, "emoji": "🎉"})
	if again := alice.ack(map[string]any{"type": "react", "client_id": "r1", "target": sent.Seq, "emoji": "🎉"}); !again.Duplicate || again.Seq != r.Seq {
		t.Fatalf("resent reaction %s", again.raw)
	}
	if e := alice.event(r.Seq); e.Kind != chat.KindReaction || e.Target != sent.Seq || e.Text != "🎉" {
		t.Fatalf("reaction event %+v", e)
	}
	alice.refused(map[string]any{"type": "react", "client_id": "r2", "target": r.Seq, "emoji": "🎉"}, "not_found")
	alice.refused(map[string]any{"type": "react", "client_id": "r3", "target": sent.Seq, "emoji": "0123456789abcdef0123456789abcdefX"}, "too_long")
}

func TestMutedIdentitiesCannotWriteUntilUnmuted(t *testing.T) {
	n := startNode(t, tempSQLite(t), chat.Options{})
	host, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "host", grant{room: "r", admin: true})})
	alice, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "alice", grant{room: "r", write: true})})

	alice.refused(map[string]any{"type": "moderate", "action": "mute", "identity": "host"}, "forbidden")
	m := host.ack(map[string]any{"type": "moderate", "action": "mute", "identity": "alice"})
	if e := alice.event(m.Seq); e.Kind != chat.KindModeration || e.Sanction.Kind != chat.Mute || e.Sanction.Identity != "alice" {
		t.Fatalf("moderation event %+v", e)
	}
	alice.refused(map[string]any{"type": "send", "client_id": "1", "text": "hello?"}, "muted")
	u := host.ack(map[string]any{"type": "moderate", "action": "unmute", "identity": "alice"})
	alice.event(u.Seq)
	alice.ack(map[string]any{"type": "send", "client_id": "2", "text": "back"})

	// A mute for a second stops applying when it expires.
	m = host.ack(map[string]any{"type": "moderate", "action": "mute", "identity": "alice", "seconds": 1})
	alice.event(m.Seq)
	alice.refused(map[string]any{"type": "send", "client_id": "3", "text": "hello?"}, "muted")
	eventually(t, "the mute to expire", func() bool {
		return alice.reply(map[string]any{"type": "send", "client_id": "4", "text": "free"}).Type == "ack"
	})

	// A hub that starts after a mute reads it from the store.
	m = host.ack(map[string]any{"type": "moderate", "action": "mute", "identity": "alice", "seconds": 3600})
	alice.event(m.Seq)
	_ = alice.conn.Close()
	_ = host.conn.Close()
	eventually(t, "the room to empty", func() bool { return n.srv.Stats().Clients.Load() == 0 })
	alice2, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "alice", grant{room: "r", write: true})})
	alice2.refused(map[string]any{"type": "send", "client_id": "5", "text": "still?"}, "muted")
}

func TestBannedIdentitiesAreDisconnectedAndRefused(t *testing.T) {
	n := startNode(t, tempSQLite(t), chat.Options{})
	host, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "host", grant{room: "r", admin: true})})
	alice, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "alice", grant{room: "r", write: true})})
	alice2, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "alice", grant{room: "r", write: true})})
	bob, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "bob", grant{room: "r", write: true})})

	ban := host.ack(map[string]any{"type": "moderate", "action": "ban", "identity": "alice"})
	alice.expectClose(4003, "forbidden")
	alice2.expectClose(4003, "forbidden")
	bob.event(ban.Seq)
	refused := dial(t, n.wsURL("r"))
	refused.send(map[string]any{"type": "hello", "token": token(t, "alice", grant{room: "r", write: true})})
	refused.expectClose(4003, "forbidden")
	bob.ack(map[string]any{"type": "send", "client_id": "1", "text": "still here"})

	unban := host.ack(map[string]any{"type": "moderate", "action": "unban", "identity": "alice"})
	host.event(unban.Seq) // the hub has lifted it
	back, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "alice", grant{room: "r", write: true})})
	back.ack(map[string]any{"type": "send", "client_id": "1", "text": "back"})

	// A ban for a second has lapsed by the time alice comes back.
	host.ack(map[string]any{"type": "moderate", "action": "ban", "identity": "alice", "seconds": 1})
	back.expectClose(4003, "forbidden")
	eventually(t, "the ban to lapse", func() bool {
		c := dial(t, n.wsURL("r"))
		c.send(map[string]any{"type": "hello", "token": token(t, "alice", grant{room: "r", write: true})})
		first := c.next()
		_ = c.conn.Close()
		return first.Type == "welcome"
	})
}

func TestSlowModeAllowsOneMessagePerInterval(t *testing.T) {
	n := startNode(t, tempSQLite(t), chat.Options{})
	host, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "host", grant{room: "r", admin: true, write: true})})
	alice, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "alice", grant{room: "r", write: true})})
	on := host.ack(map[string]any{"type": "slow_mode", "seconds": 30})
	if e := alice.event(on.Seq); e.Sanction == nil || e.Sanction.Kind != chat.SlowMode || e.Sanction.Seconds != 30 {
		t.Fatalf("slow mode event %+v", e)
	}
	_, welcome, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "bob", grant{room: "r"})})
	if welcome.SlowMode != 30 {
		t.Fatalf("welcome slow_mode %d", welcome.SlowMode)
	}
	alice.ack(map[string]any{"type": "send", "client_id": "1", "text": "one"})
	m := alice.refused(map[string]any{"type": "send", "client_id": "2", "text": "two"}, "slow_mode")
	if m.RetryAfterMS <= 25_000 || m.RetryAfterMS > 30_001 {
		t.Fatalf("retry_after_ms %d, want about 30000", m.RetryAfterMS)
	}
	// Moderators are not slowed.
	host.ack(map[string]any{"type": "send", "client_id": "1", "text": "one"})
	host.ack(map[string]any{"type": "send", "client_id": "2", "text": "two"})
	off := host.ack(map[string]any{"type": "slow_mode", "seconds": 0})
	alice.event(off.Seq)
	alice.ack(map[string]any{"type": "send", "client_id": "3", "text": "free again"})
}

func TestRateLimitRefusesOverTheBurstAndClosesFlooders(t *testing.T) {
	n := startNode(t, tempSQLite(t), chat.Options{Rate: 1, Burst: 3})
	alice, welcome, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "alice", grant{room: "r", write: true})})
	if welcome.raw == nil || !welcome.CanWrite {
		t.Fatalf("welcome %s", welcome.raw)
	}
	bob, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "bob", grant{room: "r", write: true})})
	for i := range 3 {
		alice.ack(map[string]any{"type": "send", "client_id": fmt.Sprint(i), "text": "burst"})
	}
	m := alice.refused(map[string]any{"type": "send", "client_id": "x", "text": "over"}, "rate_limited")
	if m.RetryAfterMS <= 0 || m.RetryAfterMS > 1001 {
		t.Fatalf("retry_after_ms %d, want (0, 1000]", m.RetryAfterMS)
	}
	// Another identity has its own bucket.
	bob.ack(map[string]any{"type": "send", "client_id": "b", "text": "mine"})

	// 10× the burst of refusals within 10 s is flooding. One refusal is in
	// already; the tokens that come back meanwhile are few.
	for i := range 40 {
		// The server may close before all are written.
		if alice.conn.WriteJSON(map[string]any{"type": "send", "client_id": fmt.Sprint("f", i), "text": "flood"}) != nil {
			break
		}
	}
	alice.expectClose(4029, "rate_limited")
	bob.ack(map[string]any{"type": "send", "client_id": "b2", "text": "unaffected"})
}

func TestTextIsDeliveredExactlyAsSent(t *testing.T) {
	n := startNode(t, tempSQLite(t), chat.Options{})
	alice, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "alice", grant{room: "r", write: true})})
	bob, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "bob", grant{room: "r"})})
	for i, text := range []string{
		`<script>alert(1)</script>`,
		`<b>bold</b> & <i>"quoted"</i> 'single' &amp; &lt;`,
		"line\nbreak\ttab \u2028 \u00e9\u0301 👩‍👩‍👧 \\ / \"",
		`</script><img src=x onerror=alert(1)>`,
	} {
		a := alice.ack(map[string]any{"type": "send", "client_id": fmt.Sprint(i), "text": text})
		if got := bob.event(a.Seq).Text; got != text {
			t.Fatalf("sent %q, delivered %q", text, got)
		}
	}
	_, _, history := join(t, n.wsURL("r"), map[string]any{"token": token(t, "carol", grant{room: "r"})})
	if history[0].Text != `<script>alert(1)</script>` {
		t.Fatalf("history holds %q", history[0].Text)
	}
}
