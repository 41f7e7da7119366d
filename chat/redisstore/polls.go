package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/starling-sfu/starling/chat"
)

// A poll is three hashes: the poll itself (question, options as JSON, n
// options, creator, created, closes_at, closed "0"|"1"), its tally
// (option → count) and its votes (identity → option); the room's poll
// index orders its polls by the Seq of their KindPoll events.

// CreatePoll stores p with a new ID, Created now and zero Counts, and logs
// a KindPoll event for it by p.Creator, in one script.
func (s *Store) CreatePoll(ctx context.Context, room string, p chat.Poll) (chat.Poll, chat.Event, error) {
	p.ID = newPollID()
	p.Options = slices.Clone(p.Options)
	p.Counts = make([]int64, len(p.Options))
	p.Created, p.Closed = time.Now().UnixMilli(), false
	options, err := json.Marshal(p.Options)
	if err != nil {
		return chat.Poll{}, chat.Event{}, fmt.Errorf("chat/redis: create poll: %w", err)
	}
	ev := chat.Event{Kind: chat.KindPoll, TS: p.Created, Identity: p.Creator, Poll: &p}
	body, err := json.Marshal(ev)
	if err != nil {
		return chat.Poll{}, chat.Event{}, fmt.Errorf("chat/redis: create poll: %w", err)
	}
	k := s.keys(room)
	seq, err := createPollScript.Run(ctx, s.rdb,
		[]string{k.seq(), k.stream(), k.poll(p.ID), k.polls()},
		k.channel(), s.maxLen, body, p.ID,
		p.Question, options, len(p.Options), p.Creator, p.Created, p.ClosesAt,
	).Int64()
	if err != nil {
		return chat.Poll{}, chat.Event{}, mapError("create poll", err)
	}
	ev.Seq = uint64(seq)
	evPoll := p
	ev.Poll = &evPoll
	return p, ev, nil
}

// newPollID returns 12 random hex digits.
func newPollID() string {
	var b [6]byte
	rand.Read(b[:]) // never fails; see crypto/rand.Read
	return hex.EncodeToString(b[:])
}

// Vote records identity's vote for option, replacing its earlier one. It
// fails with chat.ErrNoPoll, chat.ErrPollClosed (closed, or now is past
// ClosesAt) or chat.ErrBadOption. When the vote changed, subscribers get a
// Notice with PollID.
func (s *Store) Vote(ctx context.Context, room, pollID, identity string, option int, now time.Time) (bool, error) {
	notice, err := json.Marshal(envelope{Poll: pollID})
	if err != nil {
		return false, fmt.Errorf("chat/redis: vote: %w", err)
	}
	k := s.keys(room)
	changed, err := voteScript.Run(ctx, s.rdb,
		[]string{k.poll(pollID), k.pollCounts(pollID), k.pollVotes(pollID)},
		identity, option, now.UnixMilli(), k.channel(), notice,
	).Int64()
	if err != nil {
		return false, mapError("vote", err)
	}
	return changed == 1, nil
}

// ClosePoll closes the poll and logs a KindPollClosed event by by with the
// final tally, in one script. A poll past its ClosesAt that nobody closed
// may still be closed; closing a closed poll fails with chat.ErrPollClosed.
func (s *Store) ClosePoll(ctx context.Context, room, pollID, by string) (chat.Poll, chat.Event, error) {
	// Everything but the tally and closed is fixed at creation, so the
	// event can be written before the script; the script adds the tally.
	polls, err := s.loadPolls(ctx, room, []string{pollID})
	if err != nil {
		return chat.Poll{}, chat.Event{}, fmt.Errorf("chat/redis: close poll: %w", err)
	}
	p := polls[0]
	if p.Closed {
		return chat.Poll{}, chat.Event{}, fmt.Errorf("chat/redis: close poll: %w", chat.ErrPollClosed)
	}
	p.Closed, p.Counts = true, nil
	ev := chat.Event{Kind: chat.KindPollClosed, TS: time.Now().UnixMilli(), Identity: by, Poll: &p}
	body, err := json.Marshal(ev)
	if err != nil {
		return chat.Poll{}, chat.Event{}, fmt.Errorf("chat/redis: close poll: %w", err)
	}
	k := s.keys(room)
	res, err := closePollScript.Run(ctx, s.rdb,
		[]string{k.seq(), k.stream(), k.poll(pollID), k.pollCounts(pollID)},
		k.channel(), s.maxLen, body,
	).Slice()
	if err != nil {
		return chat.Poll{}, chat.Event{}, mapError("close poll", err)
	}
	if len(res) != 2 {
		return chat.Poll{}, chat.Event{}, fmt.Errorf("chat/redis: close poll: reply %v", res)
	}
	seq, _ := res[0].(int64)
	tally, _ := res[1].(string)
	if err := json.Unmarshal([]byte(tally), &p.Counts); err != nil {
		return chat.Poll{}, chat.Event{}, fmt.Errorf("chat/redis: close poll: tally %q: %w", tally, err)
	}
	ev.Seq = uint64(seq)
	evPoll := p
	ev.Poll = &evPoll
	return p, ev, nil
}

// Poll returns a poll with its current tally.
func (s *Store) Poll(ctx context.Context, room, pollID string) (chat.Poll, error) {
	polls, err := s.loadPolls(ctx, room, []string{pollID})
	if err != nil {
		return chat.Poll{}, fmt.Errorf("chat/redis: poll: %w", err)
	}
	return polls[0], nil
}

// Polls returns the room's polls, oldest first.
func (s *Store) Polls(ctx context.Context, room string) ([]chat.Poll, error) {
	ids, err := s.rdb.ZRange(ctx, s.keys(room).polls(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("chat/redis: polls: %w", err)
	}
	polls, err := s.loadPolls(ctx, room, ids)
	if err != nil {
		return nil, fmt.Errorf("chat/redis: polls: %w", err)
	}
	return polls, nil
}

// loadPolls reads the polls ids names in one transaction, so each tally
// is as of one instant. A missing poll is chat.ErrNoPoll.
func (s *Store) loadPolls(ctx context.Context, room string, ids []string) ([]chat.Poll, error) {
	if len(ids) == 0 {
		return []chat.Poll{}, nil
	}
	k := s.keys(room)
	type read struct{ poll, counts *redis.MapStringStringCmd }
	reads := make([]read, len(ids))
	_, err := s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, id := range ids {
			reads[i] = read{pipe.HGetAll(ctx, k.poll(id)), pipe.HGetAll(ctx, k.pollCounts(id))}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	polls := make([]chat.Poll, len(ids))
	for i, id := range ids {
		h, counts := reads[i].poll.Val(), reads[i].counts.Val()
		if len(h) == 0 {
			return nil, chat.ErrNoPoll
		}
		if polls[i], err = decodePoll(id, h, counts); err != nil {
			return nil, err
		}
	}
	return polls, nil
}

// decodePoll builds a poll from its hash and its tally hash.
func decodePoll(id string, h, counts map[string]string) (chat.Poll, error) {
	p := chat.Poll{ID: id, Question: h["question"], Creator: h["creator"], Closed: h["closed"] == "1"}
	if err := json.Unmarshal([]byte(h["options"]), &p.Options); err != nil {
		return chat.Poll{}, fmt.Errorf("poll %s options: %w", id, err)
	}
	p.Created, _ = strconv.ParseInt(h["created"], 10, 64)
	p.ClosesAt, _ = strconv.ParseInt(h["closes_at"], 10, 64)
	p.Counts = make([]int64, len(p.Options))
	for i := range p.Counts {
		p.Counts[i], _ = strconv.ParseInt(counts[strconv.Itoa(i)], 10, 64)
	}
	return p, nil
}
