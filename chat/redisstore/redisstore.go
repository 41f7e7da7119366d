// Package redisstore implements chat.Store on Redis, so that several nodes
// sharing one Redis serve one room's chat: a stream per room holds the log,
// pub/sub fans events out, and hashes hold polls, tallies and moderation.
//
// Every write is one Lua script, so it is atomic across nodes and an
// event's number, its entry in the stream and its publication happen
// together: subscribers on every node see events in Seq order.
//
// A room's keys share the hash tag {room}, so one room lives on one
// cluster slot. Redis 6 or later is needed.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/starling-sfu/starling/chat"
)

// Options tunes a Store; the zero value takes the defaults.
type Options struct {
	// KeyPrefix namespaces every key and channel, default "starling:chat:".
	KeyPrefix string
	// MaxEvents caps each room's stream, default 100000. Trimming is
	// approximate (XADD MAXLEN ~) and drops the oldest events: Range from
	// before the trimmed point starts at the oldest kept event, and what was
	// trimmed cannot be returned.
	MaxEvents int64
	// IdempotencyTTL is how long a (room, identity, client id) is
	// remembered, default 24h. A resend after that is logged again.
	IdempotencyTTL time.Duration
	// Logger receives subscription problems; default slog.Default().
	Logger *slog.Logger
}

// Store is a chat.Store on Redis. Event timestamps (TS) and poll creation
// times come from the appending node's clock: Seq, not TS, orders the log.
// Presence expiry uses Redis' clock.
type Store struct {
	rdb    *redis.Client
	prefix string
	maxLen int64
	idemMS int64
	log    *slog.Logger

	// closing is closed by Close to end every subscription; subs counts
	// the goroutines that serve them. mu orders subs.Add after a check of
	// closed against Close's subs.Wait.
	closing chan struct{}
	mu      sync.Mutex
	closed  bool
	subs    sync.WaitGroup
}

var _ chat.Store = (*Store)(nil)

// Open connects to the Redis at url (redis://host:port/db, as
// redis.ParseURL reads it) and checks it with PING.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	ro, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("chat/redis: open: %w", err)
	}
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = "starling:chat:"
	}
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = 100000
	}
	if opts.IdempotencyTTL <= 0 {
		opts.IdempotencyTTL = 24 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	rdb := redis.NewClient(ro)
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("chat/redis: ping %s: %w", ro.Addr, err)
	}
	return &Store{
		rdb:     rdb,
		prefix:  opts.KeyPrefix,
		maxLen:  opts.MaxEvents,
		idemMS:  max(1, opts.IdempotencyTTL.Milliseconds()),
		log:     opts.Logger,
		closing: make(chan struct{}),
	}, nil
}

// Close ends every subscription and closes the connections.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("chat/redis: close: already closed")
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	s.subs.Wait()
	if err := s.rdb.Close(); err != nil {
		return fmt.Errorf("chat/redis: close: %w", err)
	}
	return nil
}

// track counts one more subscription goroutine unless the Store is
// closed.
func (s *Store) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.subs.Add(1)
	return true
}

// roomKeys names one room's keys: base is "<prefix>{<room>}:".
type roomKeys struct{ base string }

func (s *Store) keys(room string) roomKeys {
	return roomKeys{s.prefix + "{" + room + "}:"}
}

func (k roomKeys) seq() string       { return k.base + "seq" }      // string: last Seq
func (k roomKeys) stream() string    { return k.base + "log" }      // stream: the events
func (k roomKeys) redacted() string  { return k.base + "redacted" } // zset: deleted seqs
func (k roomKeys) muted() string     { return k.base + "muted" }    // hash: identity → until
func (k roomKeys) banned() string    { return k.base + "banned" }   // hash: identity → until
func (k roomKeys) slow() string      { return k.base + "slow" }     // string: slow-mode seconds
func (k roomKeys) anonymous() string { return k.base + "anon" }     // string: "1" or "0", the room's anonymous reading
func (k roomKeys) polls() string     { return k.base + "polls" }    // zset: poll id by seq
func (k roomKeys) nodes() string     { return k.base + "nodes" }    // zset: node by expiry
func (k roomKeys) counts() string    { return k.base + "present" }  // hash: node → clients
func (k roomKeys) channel() string   { return k.base + "notices" }  // pub/sub channel

// Poll ids are generated hex, so they cannot collide with the suffixes.
func (k roomKeys) poll(id string) string       { return k.base + "poll:" + id }
func (k roomKeys) pollCounts(id string) string { return k.base + "poll:" + id + ":counts" }
func (k roomKeys) pollVotes(id string) string  { return k.base + "poll:" + id + ":votes" }

// idem is the key remembering (identity, client id); the identity's length
// keeps "a:b"+"c" apart from "a"+"b:c".
func (k roomKeys) idem(identity, clientID string) string {
	return k.base + "sent:" + strconv.Itoa(len(identity)) + ":" + identity + ":" + clientID
}

// mapError turns a script's error reply into chat's sentinel errors and
// wraps anything else with op.
func mapError(op string, err error) error {
	if err == nil {
		return nil
	}
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return fmt.Errorf("chat/redis: %s: %w", op, err)
	}
	var sentinel error
	msg := rerr.Error()
	switch {
	case strings.Contains(msg, codeNotFound):
		sentinel = chat.ErrNotFound
	case strings.Contains(msg, codeNoPoll):
		sentinel = chat.ErrNoPoll
	case strings.Contains(msg, codePollClosed):
		sentinel = chat.ErrPollClosed
	case strings.Contains(msg, codeBadOption):
		sentinel = chat.ErrBadOption
	default:
		return fmt.Errorf("chat/redis: %s: %w", op, err)
	}
	return fmt.Errorf("chat/redis: %s: %w", op, sentinel)
}
