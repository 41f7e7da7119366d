package chat_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/starling-sfu/starling/chat"
)

// vote connects as identity, votes for each of options in turn, waits for
// each ack, and returns the open connection.
func vote(url, tok, poll string, options ...int) (*websocket.Conn, error) {
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		return nil, err
	}
	await := func(want string) error {
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		for {
			var m msg
			if err := conn.ReadJSON(&m); err != nil {
				return err
			}
			if m.Type == want {
				return nil
			}
			if m.Type == "error" {
				return fmt.Errorf("error %s: %s", m.Code, m.Message)
			}
		}
	}
	if err := conn.WriteJSON(map[string]any{"type": "hello", "token": tok, "history": 0}); err != nil {
		return conn, err
	}
	if err := await("synced"); err != nil {
		return conn, err
	}
	for i, o := range options {
		if err := conn.WriteJSON(map[string]any{"type": "vote", "client_id": fmt.Sprint(i), "poll": poll, "option": o}); err != nil {
			return conn, err
		}
		if err := await("ack"); err != nil {
			return conn, err
		}
	}
	return conn, nil
}

// A thousand identities vote at once, each on its own connection (a vote
// needs an identity, and an identity is a token, which is a connection);
// some change their vote, some vote twice for the same option. The stored
// tally, the HTTP result and the observer's last tally all equal the votes
// cast.
func TestAThousandConcurrentVotersAreCountedExactly(t *testing.T) {
	n := startNode(t, openRedis(t, startRedis(t)), chat.Options{AnonymousRead: true})
	host, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "host", grant{room: "r", admin: true})})
	observer, _, _ := join(t, n.wsURL("r"), map[string]any{})
	poll := host.ack(map[string]any{"type": "poll_create", "question": "Best?", "options": []string{"a", "b", "c", "d"}}).pollID(t)

	const voters, workers = 1000, 32
	tokens := make([]string, voters)
	for i := range tokens {
		tokens[i] = token(t, fmt.Sprint("voter-", i), grant{room: "r"})
	}
	want := make([]int64, 4)
	plans := make([][]int, voters)
	for i := range plans {
		final := i % 4
		switch {
		case i%10 == 0: // changes its mind
			plans[i] = []int{(final + 1) % 4, final}
		case i%7 == 0: // votes twice for the same
			plans[i] = []int{final, final}
		default:
			plans[i] = []int{final}
		}
		want[final]++
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []*websocket.Conn
		next  = make(chan int)
	)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range workers {
		wg.Go(func() {
			for i := range next {
				conn, err := vote(n.wsURL("r"), tokens[i], poll, plans[i]...)
				if conn != nil {
					mu.Lock()
					conns = append(conns, conn)
					mu.Unlock()
				}
				if err != nil {
					t.Errorf("voter %d: %v", i, err)
					return
				}
			}
		})
	}
	start := time.Now()
	for i := range voters {
		next <- i
	}
	close(next)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d voters on %d connections in %v", voters, len(conns), time.Since(start))

	// The observer's tallies end with the exact count; then the poll closes
	// with it, and no tally differs after it is reached.
	observer.until("the final tally", func(m msg) bool { return m.Type == "tally" && slices.Equal(m.tally(t).Counts, want) })
	host.ack(map[string]any{"type": "poll_close", "poll": poll})
	for {
		m := observer.next()
		if m.Type == "tally" && !slices.Equal(m.tally(t).Counts, want) {
			t.Fatalf("a tally after the final one: %v, want %v", m.tally(t).Counts, want)
		}
		if m.Type == "event" && m.Event.Kind == chat.KindPollClosed {
			if got := m.Event.Poll.Counts; !slices.Equal(got, want) || !m.Event.Poll.Closed {
				t.Fatalf("poll_closed carries %+v, want counts %v", m.Event.Poll, want)
			}
			break
		}
	}
	if got := n.srv.Stats().Votes.Load(); got < voters {
		t.Errorf("stats count %d votes, want at least %d", got, voters)
	}

	var p chat.Poll
	getJSON(t, n.http.URL+"/chat/r/polls/"+poll, "", http.StatusOK, &p)
	if !slices.Equal(p.Counts, want) || !p.Closed || p.Question != "Best?" {
		t.Fatalf("GET poll: %+v, want counts %v, closed", p, want)
	}
}

func TestVotesAreOnePerIdentityAndRefusedAfterClose(t *testing.T) {
	n := startNode(t, tempSQLite(t), chat.Options{AnonymousRead: true})
	host, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "host", grant{room: "r", admin: true})})
	alice, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "alice", grant{room: "r"})})
	viewer, welcome, _ := join(t, n.wsURL("r"), map[string]any{})
	if welcome.CanWrite || len(welcome.Identity) != len("viewer-12345678") {
		t.Fatalf("anonymous welcome %s", welcome.raw)
	}

	alice.refused(map[string]any{"type": "poll_create", "question": "q", "options": []string{"x", "y"}}, "forbidden")
	host.refused(map[string]any{"type": "poll_create", "question": "q", "options": []string{"x"}}, "bad_request")
	host.refused(map[string]any{"type": "poll_create", "question": "q", "options": []string{"x", string(make([]rune, 201))}}, "too_long")
	ack := host.ack(map[string]any{"type": "poll_create", "question": "Lunch?", "options": []string{"pizza", "soup"}})
	poll := ack.pollID(t)
	created := alice.event(ack.Seq)
	if created.Kind != chat.KindPoll || created.Poll.ID != poll || created.Poll.Creator != "host" {
		t.Fatalf("poll event %+v", created)
	}

	alice.ack(map[string]any{"type": "vote", "poll": poll, "option": 1})
	alice.ack(map[string]any{"type": "vote", "poll": poll, "option": 1})
	alice.refused(map[string]any{"type": "vote", "poll": poll, "option": 2}, "bad_option")
	alice.refused(map[string]any{"type": "vote", "poll": "nope", "option": 0}, "no_poll")
	viewer.refused(map[string]any{"type": "vote", "poll": poll, "option": 0}, "unauthorized")
	tally := alice.until("a tally", func(m msg) bool { return m.Type == "tally" }).tally(t)
	if !slices.Equal(tally.Counts, []int64{0, 1}) {
		t.Fatalf("after a double vote the tally is %v", tally.Counts)
	}

	// A late joiner sees the open poll in its welcome.
	_, welcome, _ = join(t, n.wsURL("r"), map[string]any{"token": token(t, "dave", grant{room: "r"})})
	if len(welcome.Polls) != 1 || welcome.Polls[0].ID != poll || !slices.Equal(welcome.Polls[0].Counts, []int64{0, 1}) {
		t.Fatalf("welcome polls %+v", welcome.Polls)
	}

	host.ack(map[string]any{"type": "poll_close", "poll": poll})
	alice.refused(map[string]any{"type": "vote", "poll": poll, "option": 0}, "poll_closed")
	host.refused(map[string]any{"type": "poll_close", "poll": poll}, "poll_closed")

	var list struct{ Polls []chat.Poll }
	getJSON(t, n.http.URL+"/chat/r/polls", "", http.StatusOK, &list)
	if len(list.Polls) != 1 || !list.Polls[0].Closed || !slices.Equal(list.Polls[0].Counts, []int64{0, 1}) {
		t.Fatalf("GET polls: %+v", list.Polls)
	}
}

func TestAPollWithADurationClosesItself(t *testing.T) {
	n := startNode(t, tempSQLite(t), chat.Options{})
	host, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "host", grant{room: "r", admin: true})})
	ack := host.ack(map[string]any{"type": "poll_create", "question": "Quick?", "options": []string{"y", "n"}, "duration_s": 1})
	host.ack(map[string]any{"type": "vote", "poll": ack.pollID(t), "option": 0})
	closed := host.until("poll_closed", func(m msg) bool { return m.Type == "event" && m.Event.Kind == chat.KindPollClosed })
	if p := closed.Event.Poll; p.ID != ack.pollID(t) || !slices.Equal(p.Counts, []int64{1, 0}) {
		t.Fatalf("closed %+v", p)
	}
}

func TestPollResultsNeedATokenForTheRoom(t *testing.T) {
	n := startNode(t, tempSQLite(t), chat.Options{})
	host, _, _ := join(t, n.wsURL("r"), map[string]any{"token": token(t, "host", grant{room: "r", admin: true})})
	poll := host.ack(map[string]any{"type": "poll_create", "question": "q", "options": []string{"x", "y"}}).pollID(t)
	var e struct{ Error string }
	getJSON(t, n.http.URL+"/chat/r/polls", "", http.StatusUnauthorized, &e)
	getJSON(t, n.http.URL+"/chat/r/polls", "garbage", http.StatusUnauthorized, &e)
	getJSON(t, n.http.URL+"/chat/r/polls", token(t, "x", grant{room: "other"}), http.StatusForbidden, &e)
	getJSON(t, n.http.URL+"/chat/r/polls/nope", token(t, "x", grant{room: "r"}), http.StatusNotFound, &e)
	if e.Error == "" {
		t.Fatal("an error without a JSON body")
	}
	var p chat.Poll
	getJSON(t, n.http.URL+"/chat/r/polls/"+poll, token(t, "x", grant{room: "r"}), http.StatusOK, &p)
	if p.ID != poll || p.Closed {
		t.Fatalf("poll %+v", p)
	}
}

// getJSON GETs url with a Bearer token (if any), checks the status and
// decodes the JSON body into v.
func getJSON(t *testing.T, url, tok string, status int, v any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != status {
		t.Fatalf("GET %s: %s, want %d", url, resp.Status, status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("GET %s: Content-Type %q", url, ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
