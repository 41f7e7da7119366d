package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/starling-sfu/starling/chat"
)

// Moderation returns the room's standing sanctions and slow mode. Mutes
// and bans whose Until has passed are left out; the append script keeps
// the hashes, Until is checked here.
func (s *Store) Moderation(ctx context.Context, room string) (chat.Moderation, error) {
	k := s.keys(room)
	var (
		muted, banned *redis.MapStringStringCmd
		slow, anon    *redis.StringCmd
	)
	_, err := s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		muted = pipe.HGetAll(ctx, k.muted())
		banned = pipe.HGetAll(ctx, k.banned())
		slow = pipe.Get(ctx, k.slow())
		anon = pipe.Get(ctx, k.anonymous())
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return chat.Moderation{}, fmt.Errorf("chat/redis: moderation: %w", err)
	}
	now := time.Now().UnixMilli()
	m := chat.Moderation{
		Muted:  standing(muted.Val(), now),
		Banned: standing(banned.Val(), now),
	}
	if v := slow.Val(); v != "" {
		m.SlowMode, _ = strconv.Atoi(v)
	}
	if v := anon.Val(); v != "" {
		allow := v == "1"
		m.AnonymousRead = &allow
	}
	return m, nil
}

// standing returns the sanctions in h (identity → until) still in force at
// now.
func standing(h map[string]string, now int64) map[string]int64 {
	out := make(map[string]int64, len(h))
	for identity, v := range h {
		until, _ := strconv.ParseInt(v, 10, 64)
		if until != 0 && until <= now {
			continue
		}
		out[identity] = until
	}
	return out
}

// Presence records that node has count clients in room for ttl unless
// renewed, and returns the sum over live nodes. A count of 0 removes the
// node's record at once.
func (s *Store) Presence(ctx context.Context, room, node string, count int, ttl time.Duration) (int, error) {
	k := s.keys(room)
	sum, err := presenceScript.Run(ctx, s.rdb, []string{k.nodes(), k.counts()},
		node, count, max(1, ttl.Milliseconds())).Int()
	if err != nil {
		return 0, fmt.Errorf("chat/redis: presence: %w", err)
	}
	return sum, nil
}
