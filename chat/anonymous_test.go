package chat_test

import (
	"net/http"
	"testing"

	"github.com/starling-sfu/starling/chat"
)

// anonymousJoinRefused checks that a hello without a token is refused.
func anonymousJoinRefused(t *testing.T, url string) {
	t.Helper()
	c := dial(t, url)
	c.send(map[string]any{"type": "hello"})
	c.expectClose(4001, "unauthorized")
}

func TestARoomClosedToAnonymousReadersDisconnectsThemOnEveryNode(t *testing.T) {
	url := startRedis(t)
	a := startNode(t, openRedis(t, url), chat.Options{Node: "a", AnonymousRead: true})
	b := startNode(t, openRedis(t, url), chat.Options{Node: "b", AnonymousRead: true})
	host, _, _ := join(t, a.wsURL("r"), map[string]any{"token": token(t, "host", grant{room: "r", admin: true, write: true})})
	viewerA, _, _ := join(t, a.wsURL("r"), map[string]any{})
	viewerB, _, _ := join(t, b.wsURL("r"), map[string]any{})
	member, _, _ := join(t, b.wsURL("r"), map[string]any{"token": token(t, "bob", grant{room: "r"})})
	other, _, _ := join(t, b.wsURL("other"), map[string]any{})

	off := host.ack(map[string]any{"type": "anonymous_read", "allow": false})
	viewerA.expectClose(4001, "unauthorized")
	viewerB.expectClose(4001, "unauthorized")
	member.event(off.Seq)
	anonymousJoinRefused(t, a.wsURL("r"))
	anonymousJoinRefused(t, b.wsURL("r"))

	// Token holders go on; another room keeps the server's default.
	host.ack(map[string]any{"type": "send", "client_id": "1", "text": "members only"})
	member.until("the message after the change", func(m msg) bool { return m.Type == "event" && m.Event.Text == "members only" })
	other.ack(map[string]any{"type": "ping"})

	on := host.ack(map[string]any{"type": "anonymous_read", "allow": true})
	member.event(on.Seq)
	back, _, _ := join(t, b.wsURL("r"), map[string]any{})
	back.ack(map[string]any{"type": "ping"})

	// Only a room admin may change it, and allow is required.
	member.refused(map[string]any{"type": "anonymous_read", "allow": false}, "forbidden")
	host.refused(map[string]any{"type": "anonymous_read"}, "bad_request")
}

func TestARoomOpenToAnonymousReadersOverridesTheServerDefaultAcrossARestart(t *testing.T) {
	path := t.TempDir() + "/chat.db"
	st := openSQLite(t, path)
	n := startNode(t, st, chat.Options{AnonymousRead: false})
	anonymousJoinRefused(t, n.wsURL("r"))
	host, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "host", grant{room: "r", admin: true})})
	on := host.ack(map[string]any{"type": "anonymous_read", "allow": true})
	host.event(on.Seq) // the hub has applied it
	viewer, welcome, _ := join(t, n.wsURL("r"), map[string]any{})
	if welcome.CanWrite {
		t.Error("an anonymous reader may write")
	}
	viewer.refused(map[string]any{"type": "send", "client_id": "1", "text": "hi"}, "unauthorized")
	anonymousJoinRefused(t, n.wsURL("elsewhere"))

	n.close()
	viewer.closed()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	n2 := startNode(t, openSQLite(t, path), chat.Options{AnonymousRead: false})
	again, _, _ := join(t, n2.wsURL("r"), map[string]any{})
	again.ack(map[string]any{"type": "ping"})
	anonymousJoinRefused(t, n2.wsURL("elsewhere"))
}

func TestPollResultsFollowTheRoomsAnonymousReading(t *testing.T) {
	n := startNode(t, tempSQLite(t), chat.Options{AnonymousRead: false})
	host, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "host", grant{room: "r", admin: true})})
	var e struct{ Error string }
	getJSON(t, n.http.URL+"/chat/r/polls", "", http.StatusUnauthorized, &e)

	host.ack(map[string]any{"type": "anonymous_read", "allow": true})
	var list struct{ Polls []chat.Poll }
	getJSON(t, n.http.URL+"/chat/r/polls", "", http.StatusOK, &list)
	getJSON(t, n.http.URL+"/chat/elsewhere/polls", "", http.StatusUnauthorized, &e)

	host.ack(map[string]any{"type": "anonymous_read", "allow": false})
	getJSON(t, n.http.URL+"/chat/r/polls", "", http.StatusUnauthorized, &e)
	getJSON(t, n.http.URL+"/chat/r/polls", token(t, "x", grant{room: "r"}), http.StatusOK, &list)
}
