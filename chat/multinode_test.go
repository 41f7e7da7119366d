package chat_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/starling-sfu/starling/chat"
)

// Two nodes on one Redis serve one room: a client that leaves node A
// resumes on node B with exactly what it missed, live messages cross
// between nodes in one order, and a ban issued on B disconnects its target
// on A.
func TestTwoNodesOnOneRedisServeOneRoom(t *testing.T) {
	url := startRedis(t)
	a := startNode(t, openRedis(t, url), chat.Options{Node: "a"})
	b := startNode(t, openRedis(t, url), chat.Options{Node: "b"})

	alice, _, _ := join(t, a.wsURL("r"), map[string]any{"token": token(t, "alice", grant{room: "r", write: true})})
	bob, _, _ := join(t, a.wsURL("r"), map[string]any{"token": token(t, "bob", grant{room: "r", write: true})})
	carol, _, _ := join(t, b.wsURL("r"), map[string]any{"token": token(t, "carol", grant{room: "r", write: true})})
	for i := range 4 {
		alice.ack(map[string]any{"type": "send", "client_id": fmt.Sprint(i), "text": "from a"})
	}
	bob.event(4)
	_ = bob.conn.Close()
	for i := 4; i < 7; i++ {
		alice.ack(map[string]any{"type": "send", "client_id": fmt.Sprint(i), "text": "while bob moves"})
	}
	carol.ack(map[string]any{"type": "send", "client_id": "c", "text": "from b"})

	bob2, welcome, missed := join(t, b.wsURL("r"), map[string]any{"token": token(t, "bob", grant{room: "r", write: true}), "since": 4})
	var seqs []uint64
	for _, e := range missed {
		seqs = append(seqs, e.Seq)
	}
	// Node B may not have relayed carol's message when bob arrives; what
	// it has not sent in the backlog comes live.
	if welcome.Seq < 7 || !slices.Equal(seqs, []uint64{5, 6, 7, 8}[:welcome.Seq-4]) {
		t.Fatalf("resume on node b: welcome.seq %d, missed %v", welcome.Seq, seqs)
	}
	alice.ack(map[string]any{"type": "send", "client_id": "live", "text": "live from a"})
	if e := bob2.event(9); e.Text != "live from a" {
		t.Fatalf("live from a on b: %+v", e)
	}
	consecutive(t, "bob on b", bob2.received(), 5)
	// Both nodes deliver one order.
	carol.event(9)
	alice.event(9)
	consecutive(t, "carol on b", carol.received(), 1)
	consecutive(t, "alice on a", alice.received(), 1)

	admin, _, _ := join(t, b.wsURL("r"), map[string]any{"token": token(t, "host", grant{room: "r", admin: true})})
	admin.ack(map[string]any{"type": "moderate", "action": "ban", "identity": "alice"})
	alice.expectClose(4003, "forbidden")
	again := dial(t, a.wsURL("r"))
	again.send(map[string]any{"type": "hello", "token": token(t, "alice", grant{room: "r", write: true})})
	again.expectClose(4003, "forbidden")
}

func TestPresenceCountsClientsOnEveryNode(t *testing.T) {
	url := startRedis(t)
	a := startNode(t, openRedis(t, url), chat.Options{Node: "a", AnonymousRead: true})
	b := startNode(t, openRedis(t, url), chat.Options{Node: "b", AnonymousRead: true})
	onA, _, _ := join(t, a.wsURL("r"), map[string]any{})
	join(t, b.wsURL("r"), map[string]any{})
	join(t, b.wsURL("r"), map[string]any{})
	onA.until("presence of 3", func(m msg) bool { return m.Type == "presence" && m.Viewers == 3 })
	_, welcome, _ := join(t, a.wsURL("r"), map[string]any{})
	if welcome.Viewers < 3 {
		t.Fatalf("welcome viewers %d, want at least 3", welcome.Viewers)
	}
}
