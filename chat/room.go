package chat

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// errHubStopped is a join that came too late: the hub ended or never
// started (the store failed).
var errHubStopped = errors.New("chat: room hub stopped")

// hubTick is how often a hub checks the store for events its feed lost.
const hubTick = time.Second

// hub relays one room's log to the room's clients on this node. It
// broadcasts only what the store's feed delivers, in seq order, with no gap
// (it fills gaps with Range), so every node delivers the same order.
// Requests do not pass through it: clients write to the store directly.
type hub struct {
	srv    *Server
	room   string
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	// prev is the room's previous hub on this node, which must be gone
	// (its presence withdrawn) before this one starts.
	prev *hub

	joins   chan joinRequest
	leaves  chan *client
	viewers chan int // room-wide client counts from the presence reporter

	// Shared with the clients' goroutines. sanctions is set before the
	// first join is answered.
	sanctions *sanctions
	limits    *limiters
	visible   atomic.Int64 // clients here that count in presence
	reported  atomic.Int64 // visible when presence was last reported
	total     atomic.Int64 // the room-wide count then

	refs    int  // clients using the hub; guarded by srv.mu
	stopped bool // refs fell to 0 and the hub was told to stop; guarded by srv.mu
	exited  bool // run returned; guarded by srv.mu

	// Owned by run.
	feed        <-chan Notice
	clients     map[*client]struct{}
	last        uint64          // the last seq broadcast
	polls       map[string]Poll // open polls with the latest tally broadcast, for welcomes
	tallies     tallies
	closers     pollClosers
	lastViewers int // the last presence count broadcast
}

type joinRequest struct {
	c     *client
	reply chan joinReply
}

// joinReply is the state a client joins at.
type joinReply struct {
	seq     uint64 // the last seq broadcast before the client's first
	polls   []Poll // open polls
	viewers int
	slow    int
	banned  bool
	// tokenRequired refuses an anonymous client: the room does not allow
	// reading without a token.
	tokenRequired bool
}

func newHub(s *Server, room string, prev *hub) *hub {
	h := &hub{
		srv:     s,
		room:    room,
		log:     s.log.With("room", room),
		done:    make(chan struct{}),
		prev:    prev,
		joins:   make(chan joinRequest),
		leaves:  make(chan *client),
		viewers: make(chan int, 1),
		limits:  newLimiters(s.opts.Rate, s.opts.Burst),
		clients: make(map[*client]struct{}),
		polls:   make(map[string]Poll),
	}
	h.ctx, h.cancel = context.WithCancel(s.ctx)
	h.tallies.init()
	h.closers.init()
	return h
}

// join registers c; from then on c gets every event after reply.seq.
func (h *hub) join(c *client) (joinReply, error) {
	req := joinRequest{c: c, reply: make(chan joinReply, 1)}
	select {
	case h.joins <- req:
		return <-req.reply, nil
	case <-h.done:
		return joinReply{}, errHubStopped
	}
}

func (h *hub) leave(c *client) {
	select {
	case h.leaves <- c:
	case <-h.done:
	}
}

func (h *hub) run() {
	defer close(h.done)
	defer h.srv.exited(h)
	defer h.cancel()
	if h.prev != nil {
		<-h.prev.done
		h.prev = nil
	}
	if err := h.load(); err != nil {
		if h.ctx.Err() == nil {
			h.log.Warn("chat room cannot start", "err", err)
		}
		return
	}
	h.log.Debug("chat room hub started", "seq", h.last)
	reporter := make(chan struct{})
	go func() {
		defer close(reporter)
		h.reportPresence()
	}()
	defer func() {
		h.cancel()
		<-reporter
		h.withdrawPresence()
		h.tallies.stop()
		h.closers.stop()
		h.log.Debug("chat room hub stopped", "seq", h.last)
	}()

	tick := time.NewTicker(hubTick)
	defer tick.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case n, ok := <-h.feed:
			if !ok {
				h.feed = nil // resubscribed on the next tick
				continue
			}
			h.notice(n)
		case r := <-h.joins:
			h.admit(r)
		case c := <-h.leaves:
			h.remove(c)
		case v := <-h.viewers:
			h.broadcastPresence(v)
		case now := <-tick.C:
			h.tick(now)
		case now := <-h.tallies.timer.C:
			h.flushTallies(now)
		case now := <-h.closers.timer.C:
			h.closeDuePolls(now)
		}
	}
}

// load subscribes to the room's feed, then reads where the log stands, so
// that nothing logged in between is missed.
func (h *hub) load() error {
	feed, err := h.srv.opts.Store.Subscribe(h.ctx, h.room)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(h.ctx, storeTimeout)
	defer cancel()
	last, err := h.srv.opts.Store.LastSeq(ctx, h.room)
	if err != nil {
		return err
	}
	mod, err := h.srv.opts.Store.Moderation(ctx, h.room)
	if err != nil {
		return err
	}
	polls, err := h.srv.opts.Store.Polls(ctx, h.room)
	if err != nil {
		return err
	}
	h.feed, h.last, h.sanctions = feed, last, newSanctions(mod)
	for _, p := range polls {
		if p.Closed {
			continue
		}
		h.polls[p.ID] = p
		if p.ClosesAt != 0 {
			h.closers.add(p.ID, p.ClosesAt, time.Now())
		}
	}
	return nil
}

func (h *hub) admit(r joinRequest) {
	c := r.c
	if !c.anonymous && h.sanctions.isBanned(c.identity, time.Now()) {
		r.reply <- joinReply{banned: true}
		return
	}
	if c.anonymous && !h.sanctions.anonymousRead(h.srv.opts.AnonymousRead) {
		r.reply <- joinReply{tokenRequired: true}
		return
	}
	h.clients[c] = struct{}{}
	if !c.hidden {
		h.visible.Add(1)
	}
	viewers := h.total.Load() - h.reported.Load() + h.visible.Load()
	r.reply <- joinReply{seq: h.last, polls: h.openPolls(time.Now()), viewers: int(max(viewers, 0)), slow: h.sanctions.slowMode()}
}

func (h *hub) remove(c *client) {
	if _, ok := h.clients[c]; !ok {
		return
	}
	delete(h.clients, c)
	if !c.hidden {
		h.visible.Add(-1)
	}
}

// notice handles one delivery of the feed.
func (h *hub) notice(n Notice) {
	if e := n.Event; e != nil && e.Seq > h.last {
		if e.Seq == h.last+1 || h.fill(e.Seq-1) {
			h.deliver(e)
		}
	}
	if n.PollID != "" {
		h.tallyChanged(n.PollID, time.Now())
	}
}

// tick catches up with events the feed lost and does housekeeping.
func (h *hub) tick(now time.Time) {
	if h.feed == nil {
		feed, err := h.srv.opts.Store.Subscribe(h.ctx, h.room)
		if err != nil {
			h.log.Warn("chat room cannot resubscribe", "err", err)
		} else {
			h.feed = feed
		}
	}
	ctx, cancel := context.WithTimeout(h.ctx, storeTimeout)
	last, err := h.srv.opts.Store.LastSeq(ctx, h.room)
	cancel()
	if err != nil {
		h.log.Warn("chat room cannot read the log", "err", err)
	} else if last > h.last {
		h.fill(last)
	}
	h.limits.sweep(now)
}

// fill broadcasts the logged events after h.last up to upto; false when the
// store could not supply them all.
func (h *hub) fill(upto uint64) bool {
	for h.last < upto {
		ctx, cancel := context.WithTimeout(h.ctx, storeTimeout)
		events, err := h.srv.opts.Store.Range(ctx, h.room, h.last, int(min(upto-h.last, backlogPage)))
		cancel()
		if err != nil || len(events) == 0 {
			h.log.Warn("chat room cannot fill a gap in its feed", "from", h.last, "to", upto, "err", err)
			return false
		}
		for i := range events {
			if events[i].Seq != h.last+1 {
				h.log.Error("chat store returned a gap", "after", h.last, "seq", events[i].Seq)
				return false
			}
			h.deliver(&events[i])
		}
	}
	return true
}

// deliver applies e's effect on the room and broadcasts it as the next
// event.
func (h *hub) deliver(e *Event) {
	now := time.Now()
	var banned string
	switch e.Kind {
	case KindModeration:
		if sn := e.Sanction; sn != nil {
			h.sanctions.apply(sn)
			if sn.Kind == Ban && h.sanctions.isBanned(sn.Identity, now) {
				banned = sn.Identity
			}
			if sn.Kind == AnonymousRead && !h.sanctions.anonymousRead(h.srv.opts.AnonymousRead) {
				defer h.expelAnonymous()
			}
		}
	case KindPoll:
		if p := e.Poll; p != nil && !p.Closed {
			h.polls[p.ID] = *p
			if p.ClosesAt != 0 {
				h.closers.add(p.ID, p.ClosesAt, now)
			}
		}
	case KindPollClosed:
		if p := e.Poll; p != nil {
			delete(h.polls, p.ID)
			h.closers.remove(p.ID)
			h.tallies.forget(p.ID)
		}
	}
	h.last = e.Seq
	h.broadcast(e.Seq, encode(eventMsg{Type: "event", Event: e}))
	if banned != "" {
		h.expel(banned)
	}
}

// broadcast queues one message, encoded once, to every client; a client
// whose queue is full is dropped rather than waited for.
func (h *hub) broadcast(seq uint64, data []byte) {
	f := frame{seq: seq}
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, data)
	if err != nil {
		f.data = data
	} else {
		f.pm = pm
	}
	for c := range h.clients {
		if !c.enqueue(f) {
			h.remove(c)
		}
	}
}

// expelAnonymous disconnects the clients without a token once the room
// stops allowing them.
func (h *hub) expelAnonymous() {
	n := 0
	for c := range h.clients {
		if c.anonymous {
			h.remove(c)
			c.close(closeUnauthorized, "a token is required", errorFrame(refuse(codeUnauthorized, "this room now needs a token")))
			n++
		}
	}
	h.log.Info("chat room closed to anonymous readers", "disconnected", n)
}

// expel disconnects identity's clients after a ban.
func (h *hub) expel(identity string) {
	for c := range h.clients {
		if c.identity == identity && !c.anonymous {
			h.remove(c)
			c.close(closeBanned, "banned", errorFrame(refuse(codeForbidden, "you are banned from this room")))
		}
	}
	h.log.Info("chat identity banned", "identity", identity)
}
