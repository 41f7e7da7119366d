package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/starling-sfu/starling/chat"
)

// feedSize is how many notices a subscription buffers for a slow reader
// before it drops.
const feedSize = 256

// envelope is a message on a room's channel: an event as the scripts
// publish it ({"seq":…,"counts":…,"event":…}, the event without its Seq,
// counts a closed poll's tally), or a tally notice ({"poll":id}).
type envelope struct {
	Seq    uint64      `json:"seq,omitempty"`
	Counts []int64     `json:"counts,omitempty"`
	Event  *chat.Event `json:"event,omitempty"`
	Poll   string      `json:"poll,omitempty"`
}

// notice turns an envelope into the chat.Notice it carries.
func (env envelope) notice() (chat.Notice, bool) {
	switch {
	case env.Event != nil:
		e := env.Event
		e.Seq = env.Seq
		if env.Counts != nil && e.Poll != nil {
			e.Poll.Counts = env.Counts
		}
		return chat.Notice{Event: e}, true
	case env.Poll != "":
		return chat.Notice{PollID: env.Poll}, true
	}
	return chat.Notice{}, false
}

// Subscribe delivers the room's notices until ctx ends or the Store is
// closed, then closes the channel. It returns once Redis has confirmed the
// subscription, so every event appended after it returns is delivered
// unless the reader falls feedSize notices behind (then notices are
// dropped) or the connection is lost (go-redis reconnects; what was
// published meanwhile is lost). Readers fill gaps with Range.
func (s *Store) Subscribe(ctx context.Context, room string) (<-chan chat.Notice, error) {
	channel := s.keys(room).channel()
	ps := s.rdb.Subscribe(ctx)
	if err := ps.Subscribe(ctx, channel); err != nil {
		ps.Close()
		return nil, fmt.Errorf("chat/redis: subscribe: %w", err)
	}
	// The first reply on a fresh connection is the confirmation.
	if _, err := ps.ReceiveTimeout(ctx, s.rdb.Options().ReadTimeout); err != nil {
		ps.Close()
		return nil, fmt.Errorf("chat/redis: subscribe: %w", err)
	}
	if !s.track() {
		ps.Close()
		return nil, errors.New("chat/redis: subscribe: store closed")
	}
	out := make(chan chat.Notice, feedSize)
	log := s.log.With("room", room)
	go func() {
		defer s.subs.Done()
		stopped := make(chan struct{})
		relayed := make(chan struct{})
		go func() {
			defer close(relayed)
			relay(ps, out, stopped, log)
		}()
		select {
		case <-ctx.Done():
		case <-s.closing:
		}
		// Closing the PubSub unblocks the relay's read; the relay closes
		// nothing itself, so out is closed only after it has returned.
		close(stopped)
		ps.Close()
		<-relayed
		close(out)
	}()
	return out, nil
}

// relay copies ps's messages to out until stopped is closed, dropping
// notices when out is full.
func relay(ps *redis.PubSub, out chan<- chat.Notice, stopped <-chan struct{}, log *slog.Logger) {
	var dropped int
	defer func() {
		if dropped > 0 {
			log.Warn("chat/redis: subscriber fell behind; notices dropped", "dropped", dropped)
		}
	}()
	backoff := 50 * time.Millisecond
	for {
		msg, err := ps.ReceiveMessage(context.Background())
		if err != nil {
			select {
			case <-stopped:
				return
			default:
			}
			log.Warn("chat/redis: subscription", "err", err)
			// go-redis redials and resubscribes on the next read; wait
			// so that a Redis that is down is not dialled in a loop.
			select {
			case <-stopped:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		var env envelope
		if err := json.Unmarshal([]byte(msg.Payload), &env); err != nil {
			log.Warn("chat/redis: undecodable notice", "err", err)
			continue
		}
		n, ok := env.notice()
		if !ok {
			continue
		}
		select {
		case out <- n:
		default:
			dropped++
		}
	}
}
