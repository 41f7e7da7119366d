package sqlite

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/starling-sfu/starling/chat"
)

// subscriberBuffer is how many notices a subscriber may fall behind before
// it starts missing them; it fills such gaps with Range.
const subscriberBuffer = 1024

// Subscribe delivers room's notices, in Seq order, until ctx ends or the
// store closes; then the channel is closed. A subscriber that falls
// subscriberBuffer notices behind misses the next ones rather than slow the
// writer. The events in notices are shared by every subscriber: read them,
// do not modify them.
func (s *Store) Subscribe(ctx context.Context, room string) (<-chan chat.Notice, error) {
	ch, err := s.subs.add(ctx, room)
	if err != nil {
		return nil, fmt.Errorf("chat/sqlite: subscribe: %w", err)
	}
	return ch, nil
}

// subscribers fans notices out to rooms' subscribers.
type subscribers struct {
	log *slog.Logger

	mu     sync.Mutex
	rooms  map[string]map[*subscriber]struct{} // guarded by mu
	closed bool                                // guarded by mu
}

// subscriber is one Subscribe call.
type subscriber struct {
	room    string
	ch      chan chat.Notice
	stop    func() bool // cancels the context.AfterFunc that removes it
	dropped bool        // it has missed a notice; guarded by subscribers.mu
}

func (ss *subscribers) init(log *slog.Logger) {
	ss.log = log
	ss.rooms = make(map[string]map[*subscriber]struct{})
}

// add registers a subscriber to room that is removed when ctx ends.
func (ss *subscribers) add(ctx context.Context, room string) (<-chan chat.Notice, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return nil, errClosed
	}
	sub := &subscriber{room: room, ch: make(chan chat.Notice, subscriberBuffer)}
	if ss.rooms[room] == nil {
		ss.rooms[room] = make(map[*subscriber]struct{})
	}
	ss.rooms[room][sub] = struct{}{}
	// No goroutine waits on ctx: AfterFunc runs remove when it ends.
	sub.stop = context.AfterFunc(ctx, func() { ss.remove(sub) })
	return sub.ch, nil
}

// remove unregisters sub and closes its channel, once.
func (ss *subscribers) remove(sub *subscriber) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	subs := ss.rooms[sub.room]
	if _, ok := subs[sub]; !ok {
		return
	}
	delete(subs, sub)
	if len(subs) == 0 {
		delete(ss.rooms, sub.room)
	}
	close(sub.ch)
}

// publish offers n to room's subscribers without waiting on any of them.
func (ss *subscribers) publish(room string, n chat.Notice) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for sub := range ss.rooms[room] {
		select {
		case sub.ch <- n:
		default:
			if !sub.dropped {
				sub.dropped = true
				ss.log.Warn("chat subscriber is behind; dropping notices", "room", room)
			}
		}
	}
}

// closeAll ends every subscription and refuses new ones.
func (ss *subscribers) closeAll() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.closed = true
	for _, subs := range ss.rooms {
		for sub := range subs {
			sub.stop()
			close(sub.ch)
		}
	}
	clear(ss.rooms)
}

// eventNotice is a notice of e that shares no memory with e.
func eventNotice(e chat.Event) chat.Notice {
	if e.Poll != nil {
		p := *e.Poll
		p.Options, p.Counts = slices.Clone(p.Options), slices.Clone(p.Counts)
		e.Poll = &p
	}
	if e.Sanction != nil {
		sc := *e.Sanction
		e.Sanction = &sc
	}
	return chat.Notice{Event: &e}
}
