package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/webhook"
	"google.golang.org/protobuf/proto"
)

const (
	apiKey    = "APIwebhooks"
	apiSecret = "0123456789abcdef0123456789abcdef"
)

// receiver is a webhook endpoint that verifies every request as LiveKit
// users do and answers its n-th request (from 1), carrying ev, with
// status(n, ev).
type receiver struct {
	t      *testing.T
	status func(n int, ev *livekit.WebhookEvent) int
	hits   atomic.Int32

	mu     sync.Mutex
	events []*livekit.WebhookEvent // accepted (2xx) ones, in arrival order
	got    chan struct{}           // a token per accepted event
}

func newReceiver(t *testing.T, status func(n int, ev *livekit.WebhookEvent) int) (*receiver, *httptest.Server) {
	rc := &receiver{t: t, status: status, got: make(chan struct{}, 1000)}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return rc, srv
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := int(rc.hits.Add(1))
	if ct := r.Header.Get("Content-Type"); ct != webhook.ContentType {
		rc.t.Errorf("Content-Type %q, want %q", ct, webhook.ContentType)
	}
	ev, err := webhook.ReceiveWebhookEvent(r, auth.NewSimpleKeyProvider(apiKey, apiSecret))
	if err != nil {
		rc.t.Errorf("delivery %d does not verify: %v", n, err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	status := rc.status(n, ev)
	if status/100 == 2 {
		rc.mu.Lock()
		rc.events = append(rc.events, ev)
		rc.mu.Unlock()
		rc.got <- struct{}{}
	}
	w.WriteHeader(status)
}

// wait returns the first count accepted events, failing after 5s.
func (rc *receiver) wait(count int) []*livekit.WebhookEvent {
	rc.t.Helper()
	for range count {
		select {
		case <-rc.got:
		case <-time.After(5 * time.Second):
			rc.t.Fatalf("%d events arrived, want %d", len(rc.accepted()), count)
		}
	}
	return rc.accepted()
}

func (rc *receiver) accepted() []*livekit.WebhookEvent {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.events)
}

func always(status int) func(int, *livekit.WebhookEvent) int {
	return func(int, *livekit.WebhookEvent) int { return status }
}

// newNotifier starts a Notifier with fast retries that is closed at the
// end of the test.
func newNotifier(t *testing.T, cfg Config) *Notifier {
	t.Helper()
	cfg.APIKey, cfg.APISecret = apiKey, apiSecret
	if cfg.Backoff == 0 {
		cfg.Backoff = 5 * time.Millisecond
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Close(ctx)
	})
	return n
}

// eventually polls cond for up to 5s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// waitStats waits for n's counters to read want: the receiver sees an event
// before the Notifier sees the answer.
func waitStats(t *testing.T, n *Notifier, want Stats) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); n.Stats() != want; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want %+v", n.Stats(), want)
		}
	}
}

func joined(room, identity string) *livekit.WebhookEvent {
	return &livekit.WebhookEvent{Event: EventParticipantJoined, Room: &livekit.Room{Name: room, Sid: "RM_" + room},
		Participant: &livekit.ParticipantInfo{Identity: identity, Sid: "PA_" + identity}}
}

func TestDeliveredEventsVerifyAndArriveIntact(t *testing.T) {
	rc, srv := newReceiver(t, always(http.StatusOK))
	n := newNotifier(t, Config{URLs: []string{srv.URL + "/hook"}})
	started := &livekit.WebhookEvent{Event: EventRoomStarted, Room: &livekit.Room{Name: "demo", Sid: "RM_demo", Metadata: `{"a":1}`}}
	published := &livekit.WebhookEvent{Event: EventTrackPublished, Id: "EV_mine", CreatedAt: 1700000000,
		Room:        &livekit.Room{Name: "demo", Sid: "RM_demo"},
		Participant: &livekit.ParticipantInfo{Identity: "alice", Sid: "PA_alice"},
		Track:       &livekit.TrackInfo{Sid: "TR_cam", Type: livekit.TrackType_VIDEO, Width: 1280, Height: 720}}
	n.Notify(started)
	n.Notify(published)
	got := rc.wait(2)

	if started.Id != "" || started.CreatedAt != 0 {
		t.Error("Notify changed the caller's event")
	}
	first := got[0]
	if !strings.HasPrefix(first.Id, "EV_") || len(first.Id) != 15 {
		t.Errorf("id %q, want EV_ and 12 characters", first.Id)
	}
	if age := time.Now().Unix() - first.CreatedAt; age < 0 || age > 5 {
		t.Errorf("created_at %d is not now", first.CreatedAt)
	}
	want := proto.Clone(started).(*livekit.WebhookEvent)
	want.Id, want.CreatedAt = first.Id, first.CreatedAt
	if !proto.Equal(first, want) {
		t.Errorf("got %v\nwant %v", first, want)
	}
	if !proto.Equal(got[1], published) {
		t.Errorf("got %v\nwant %v (a set id and created_at are kept)", got[1], published)
	}
	waitStats(t, n, Stats{Sent: 2})
}

func TestTamperedBodyFailsVerification(t *testing.T) {
	type capture struct {
		header http.Header
		body   []byte
	}
	caught := make(chan capture, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		caught <- capture{r.Header.Clone(), body}
	}))
	t.Cleanup(srv.Close)
	n := newNotifier(t, Config{URLs: []string{srv.URL}})
	n.Notify(joined("demo", "alice"))
	c := <-caught

	replay := func(body []byte, secret string) error {
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		r.Header = c.header.Clone()
		_, err := webhook.ReceiveWebhookEvent(r, auth.NewSimpleKeyProvider(apiKey, secret))
		return err
	}
	if err := replay(c.body, apiSecret); err != nil {
		t.Fatalf("the delivery as sent does not verify: %v", err)
	}
	tampered := bytes.Replace(c.body, []byte("alice"), []byte("mallory"), 1)
	if err := replay(tampered, apiSecret); !errors.Is(err, webhook.ErrInvalidChecksum) {
		t.Errorf("tampered body: err = %v, want %v", err, webhook.ErrInvalidChecksum)
	}
	if err := replay(c.body, "ffffffffffffffffffffffffffffffff"); err == nil {
		t.Error("verified with another secret")
	}
}

func TestServerErrorsAreRetriedUntilAccepted(t *testing.T) {
	rc, srv := newReceiver(t, func(n int, _ *livekit.WebhookEvent) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	n := newNotifier(t, Config{URLs: []string{srv.URL}})
	n.Notify(joined("demo", "alice"))
	got := rc.wait(1)
	if got[0].Participant.GetIdentity() != "alice" || rc.hits.Load() != 3 {
		t.Fatalf("got %v after %d attempts, want alice on the third", got, rc.hits.Load())
	}
	waitStats(t, n, Stats{Sent: 1, Failed: 2})
}

func TestClientErrorIsNotRetried(t *testing.T) {
	rc, srv := newReceiver(t, always(http.StatusBadRequest))
	n := newNotifier(t, Config{URLs: []string{srv.URL}})
	n.Notify(joined("demo", "alice"))
	eventually(t, "the event to be dropped", func() bool { return n.Stats().Dropped == 1 })
	time.Sleep(50 * time.Millisecond) // ten backoffs: time for a retry that must not come
	if hits := rc.hits.Load(); hits != 1 {
		t.Errorf("%d attempts, want 1", hits)
	}
	if s := n.Stats(); s != (Stats{Failed: 1, Dropped: 1}) {
		t.Errorf("stats %+v", s)
	}
}

func TestExhaustedRetriesDropTheEventAndDeliveryGoesOn(t *testing.T) {
	rc, srv := newReceiver(t, func(n int, _ *livekit.WebhookEvent) int {
		if n <= 3 {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	n := newNotifier(t, Config{URLs: []string{srv.URL}, Attempts: 3})
	n.Notify(joined("demo", "alice"))
	eventually(t, "the event to be dropped", func() bool { return n.Stats().Dropped == 1 })
	n.Notify(joined("demo", "bob"))
	got := rc.wait(1)
	if got[0].Participant.GetIdentity() != "bob" {
		t.Errorf("got %v, want bob", got[0])
	}
	waitStats(t, n, Stats{Sent: 1, Failed: 3, Dropped: 1})
}

func TestEventsOfARoomArriveInOrder(t *testing.T) {
	// Every fifth event fails once, so retries interleave with the rest.
	var mu sync.Mutex
	failed := map[string]bool{}
	rc, srv := newReceiver(t, func(_ int, ev *livekit.WebhookEvent) int {
		mu.Lock()
		defer mu.Unlock()
		key := ev.Room.GetName() + "/" + ev.Participant.GetIdentity()
		if strings.HasSuffix(key, "0") || strings.HasSuffix(key, "5") {
			if !failed[key] {
				failed[key] = true
				return http.StatusInternalServerError
			}
		}
		return http.StatusOK
	})
	n := newNotifier(t, Config{URLs: []string{srv.URL}})
	rooms := []string{"a", "b", "c"}
	for i := range 50 {
		for _, room := range rooms {
			n.Notify(joined(room, fmt.Sprintf("p%02d", i)))
		}
	}
	got := rc.wait(50 * len(rooms))
	next := map[string]int{}
	for _, ev := range got {
		room := ev.Room.GetName()
		if want := fmt.Sprintf("p%02d", next[room]); ev.Participant.GetIdentity() != want {
			t.Fatalf("room %s: got %s, want %s", room, ev.Participant.GetIdentity(), want)
		}
		next[room]++
	}
}

func TestFullQueueDropsInsteadOfBlocking(t *testing.T) {
	release := make(chan struct{})
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	n := newNotifier(t, Config{URLs: []string{srv.URL}, QueueSize: 10})
	t.Cleanup(func() { close(release) }) // cleanups run last first: before n.Close and srv.Close
	n.Notify(joined("demo", "first"))
	eventually(t, "the first delivery to be stuck", func() bool { return hits.Load() == 1 })

	start := time.Now()
	for i := range 200 {
		n.Notify(joined("demo", fmt.Sprint(i)))
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("200 Notify calls took %v with a stuck receiver", d)
	}
	if s := n.Stats(); s.Dropped != 190 || s.Sent != 0 {
		t.Errorf("stats %+v, want 190 dropped: 10 queued behind the stuck one", s)
	}
}

func TestCloseDeliversWhatIsQueued(t *testing.T) {
	rc, srv := newReceiver(t, func(int, *livekit.WebhookEvent) int {
		time.Sleep(2 * time.Millisecond)
		return http.StatusOK
	})
	n := newNotifier(t, Config{URLs: []string{srv.URL}})
	for i := range 30 {
		n.Notify(joined("demo", fmt.Sprint(i)))
	}
	if err := n.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := len(rc.accepted()); got != 30 || n.Stats().Sent != 30 {
		t.Errorf("%d delivered by Close (stats %+v), want 30", got, n.Stats())
	}
}

func TestCloseGivesUpAtTheDeadlineAndStopsEveryGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	n, err := New(Config{URLs: []string{srv.URL, srv.URL + "/second"}, APIKey: apiKey, APISecret: apiSecret,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		n.Notify(joined(fmt.Sprint("room", i%3), fmt.Sprint(i)))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := n.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want the deadline's error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v past a 100ms deadline", d)
	}
	if s := n.Stats(); s.Dropped != 40 || s.Sent != 0 {
		t.Errorf("stats %+v, want all 40 deliveries dropped", s)
	}
	n.Notify(joined("late", "x")) // after Close: dropped, not a panic
	if s := n.Stats(); s.Dropped != 42 {
		t.Errorf("dropped %d after a late Notify, want 42", s.Dropped)
	}
	if err := n.Close(context.Background()); err != nil {
		t.Errorf("second Close = %v", err)
	}

	close(release)
	srv.Close()
	eventually(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

func TestNilAndEmptyNotifiersIgnoreEvents(t *testing.T) {
	var nilN *Notifier
	nilN.Notify(joined("demo", "a"))
	if nilN.Stats() != (Stats{}) || nilN.Close(context.Background()) != nil {
		t.Error("nil Notifier is not a no-op")
	}
	n, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	n.Notify(joined("demo", "a"))
	if err := n.Close(context.Background()); err != nil || n.Stats() != (Stats{}) {
		t.Errorf("empty Notifier: Close %v, stats %+v", err, n.Stats())
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no secret":       {URLs: []string{"http://example.com/hook"}, APIKey: apiKey},
		"not a URL":       {URLs: []string{"::"}, APIKey: apiKey, APISecret: apiSecret},
		"not http":        {URLs: []string{"ftp://example.com/hook"}, APIKey: apiKey, APISecret: apiSecret},
		"no host":         {URLs: []string{"http:///hook"}, APIKey: apiKey, APISecret: apiSecret},
		"relative":        {URLs: []string{"/hook"}, APIKey: apiKey, APISecret: apiSecret},
		"one bad of many": {URLs: []string{"https://example.com", "example.com"}, APIKey: apiKey, APISecret: apiSecret},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
}
