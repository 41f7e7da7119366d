// Package webhooks delivers webhook events (room started and finished,
// participant joined and left, track published and unpublished) to HTTP
// receivers, signed as LiveKit signs them, so that receivers written for
// LiveKit (webhook.ReceiveWebhookEvent in its server SDKs) accept them
// unchanged.
//
// Notify never blocks: each URL has a bounded queue, drained by a few
// workers; events of one room go through one worker, so they arrive in
// order. Failed deliveries are retried with backoff on network errors, 429
// and 5xx, never on other 4xx answers.
package webhooks

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/webhook"
	"google.golang.org/protobuf/proto"
)

// The events Starling sends; the event's Event field holds one of them.
const (
	EventRoomStarted       = webhook.EventRoomStarted
	EventRoomFinished      = webhook.EventRoomFinished
	EventParticipantJoined = webhook.EventParticipantJoined
	EventParticipantLeft   = webhook.EventParticipantLeft
	EventTrackPublished    = webhook.EventTrackPublished
	EventTrackUnpublished  = webhook.EventTrackUnpublished
)

// lanesPerURL is how many workers deliver to one URL at once: enough that a
// slow answer for one room does not hold up the others.
const lanesPerURL = 4

// Config says where events go and how they are signed.
type Config struct {
	// URLs receive every event.
	URLs []string
	// APIKey and APISecret sign the events; the receiver checks them with
	// the same pair.
	APIKey, APISecret string
	// Timeout bounds one delivery attempt. Default 10s.
	Timeout time.Duration
	// QueueSize is how many events may wait for one URL; beyond it new
	// events are dropped. Default 1000.
	QueueSize int
	// Attempts is the most tries of one event. Default 5.
	Attempts int
	// Backoff is the wait after the first failed attempt, doubled after
	// each next one. Default 2s: 5 attempts span 30s.
	Backoff time.Duration
	// Client sends the requests. Default a client of its own.
	Client *http.Client
	// Log gets a line per failed attempt and per dropped event. Default
	// slog.Default().
	Log *slog.Logger
}

// Stats counts deliveries since the Notifier started.
type Stats struct {
	// Sent is events a receiver accepted (2xx).
	Sent uint64
	// Failed is delivery attempts that failed, retried or not.
	Failed uint64
	// Dropped is events given up: queue full, retries exhausted, not
	// retryable, or still queued at Close.
	Dropped uint64
}

// Notifier delivers events to every configured URL. Its zero value is not
// usable; a nil *Notifier ignores events.
type Notifier struct {
	cfg       Config
	ownClient bool // Close closes its idle connections
	log       *slog.Logger
	endpoints []*endpoint
	ctx       context.Context // ends deliveries when Close gives up waiting
	cancel    context.CancelFunc
	workers   sync.WaitGroup

	mu     sync.RWMutex // guards closed against Notify sending on closed lanes
	closed bool

	sent, failed, dropped atomic.Uint64
}

// endpoint is one receiving URL with its queue.
type endpoint struct {
	url    string // as configured
	name   string // scheme://host/path, for logs: no credentials or query
	lanes  [lanesPerURL]chan *livekit.WebhookEvent
	queued atomic.Int64 // events waiting in lanes, bounded by QueueSize
	full   atomic.Bool  // the last event was dropped for want of room: log only the first
}

// New starts a Notifier's workers. With no URLs it starts none and Notify
// does nothing.
func New(cfg Config) (*Notifier, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1000
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 5
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 2 * time.Second
	}
	ownClient := cfg.Client == nil
	if ownClient {
		cfg.Client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if len(cfg.URLs) > 0 && (cfg.APIKey == "" || cfg.APISecret == "") {
		return nil, errors.New("webhooks: an API key and secret are needed to sign events")
	}
	n := &Notifier{cfg: cfg, log: cfg.Log, ownClient: ownClient}
	for _, raw := range cfg.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("webhooks: %q is not an http(s) URL", raw)
		}
		e := &endpoint{url: raw, name: u.Scheme + "://" + u.Host + u.Path}
		for i := range e.lanes {
			// Each lane can hold the whole queue; queued bounds the sum, so
			// one busy room may use all of it and a send never blocks.
			e.lanes[i] = make(chan *livekit.WebhookEvent, cfg.QueueSize)
		}
		n.endpoints = append(n.endpoints, e)
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	for _, e := range n.endpoints {
		for _, lane := range e.lanes {
			n.workers.Add(1)
			go n.work(e, lane)
		}
	}
	return n, nil
}

// Notify queues ev for every URL and returns at once. It stamps an id and a
// creation time on ev when unset, on a copy: the caller keeps ev.
func (n *Notifier) Notify(ev *livekit.WebhookEvent) {
	if n == nil || len(n.endpoints) == 0 {
		return
	}
	ev = proto.Clone(ev).(*livekit.WebhookEvent)
	if ev.Id == "" {
		ev.Id = "EV_" + rand.Text()[:12]
	}
	if ev.CreatedAt == 0 {
		ev.CreatedAt = time.Now().Unix()
	}
	lane := laneOf(ev)

	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closed {
		n.dropped.Add(uint64(len(n.endpoints)))
		n.log.Debug("webhook dropped: notifier closed", "event", ev.Event, "id", ev.Id)
		return
	}
	for _, e := range n.endpoints {
		if e.queued.Add(1) > int64(n.cfg.QueueSize) {
			e.queued.Add(-1)
			n.dropped.Add(1)
			if e.full.CompareAndSwap(false, true) {
				n.log.Warn("webhook dropped: queue full", eventAttrs(ev, e)...)
			}
			continue
		}
		if e.full.Load() {
			e.full.Store(false)
		}
		e.lanes[lane] <- ev
	}
}

// Stats returns the counters so far.
func (n *Notifier) Stats() Stats {
	if n == nil {
		return Stats{}
	}
	return Stats{Sent: n.sent.Load(), Failed: n.failed.Load(), Dropped: n.dropped.Load()}
}

// Close stops taking events and delivers those queued until ctx ends; then
// it abandons the rest (counted as dropped) and returns once every worker
// has stopped.
func (n *Notifier) Close(ctx context.Context) error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	for _, e := range n.endpoints {
		for _, lane := range e.lanes {
			close(lane)
		}
	}
	n.mu.Unlock()

	done := make(chan struct{})
	go func() {
		n.workers.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		before := n.dropped.Load()
		n.cancel()
		<-done
		n.log.Warn("webhooks closed before every event was delivered", "dropped", n.dropped.Load()-before)
		err = fmt.Errorf("webhooks: close: %w", ctx.Err())
	}
	n.cancel()
	if n.ownClient {
		n.cfg.Client.CloseIdleConnections()
	}
	return err
}

// work delivers one lane's events in order until the lane is closed.
func (n *Notifier) work(e *endpoint, lane <-chan *livekit.WebhookEvent) {
	defer n.workers.Done()
	for ev := range lane {
		e.queued.Add(-1)
		n.deliver(e, ev)
	}
}

// laneOf picks the lane of ev's room, so that one room's events keep their
// order.
func laneOf(ev *livekit.WebhookEvent) int {
	key := ev.GetRoom().GetName()
	if key == "" {
		key = ev.GetParticipant().GetIdentity() + ev.GetTrack().GetSid()
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % lanesPerURL)
}

// eventAttrs are the log attributes naming ev and its destination.
func eventAttrs(ev *livekit.WebhookEvent, e *endpoint, more ...any) []any {
	return append([]any{"event", ev.Event, "id", ev.Id, "room", ev.GetRoom().GetName(), "url", e.name}, more...)
}
