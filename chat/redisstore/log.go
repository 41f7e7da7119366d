package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/starling-sfu/starling/chat"
)

// Append logs e with the next Seq and this node's clock as TS. A resend of
// (room, e.Identity, e.ClientID) within IdempotencyTTL returns the logged
// event with dup true; if the stream has trimmed that event since, it
// returns e as sent with the Seq it was logged under. A KindDelete whose
// Target is not in the stream fails with chat.ErrNotFound.
func (s *Store) Append(ctx context.Context, room string, e chat.Event) (chat.Event, bool, error) {
	e.Seq, e.Deleted = 0, false
	e.TS = time.Now().UnixMilli()
	body, err := json.Marshal(e)
	if err != nil {
		return chat.Event{}, false, fmt.Errorf("chat/redis: append: %w", err)
	}
	k := s.keys(room)
	idemTTL, target := "0", ""
	if e.ClientID != "" {
		idemTTL = strconv.FormatInt(s.idemMS, 10)
	}
	if e.Kind == chat.KindDelete {
		target = strconv.FormatUint(e.Target, 10)
	}
	var sn chat.Sanction
	if e.Kind == chat.KindModeration && e.Sanction != nil {
		sn = *e.Sanction
	}
	allow := ""
	if sn.Kind == chat.AnonymousRead {
		if sn.Allow == nil {
			return chat.Event{}, false, errors.New("chat/redis: append: anonymous_read without allow")
		}
		allow = "0"
		if *sn.Allow {
			allow = "1"
		}
	}
	res, err := appendScript.Run(ctx, s.rdb,
		[]string{k.seq(), k.stream(), k.redacted(), k.idem(e.Identity, e.ClientID), k.muted(), k.banned(), k.slow(), k.anonymous()},
		k.channel(), s.maxLen, body, idemTTL, target,
		string(sn.Kind), sn.Identity, sn.Until, sn.Seconds, allow,
	).Slice()
	if err != nil {
		return chat.Event{}, false, mapError("append", err)
	}
	if len(res) < 2 {
		return chat.Event{}, false, fmt.Errorf("chat/redis: append: reply %v", res)
	}
	dup, _ := res[0].(int64)
	seq, _ := res[1].(int64)
	e.Seq = uint64(seq)
	if dup == 1 && len(res) == 3 {
		if e, err = decodeEntry(res[2]); err != nil {
			return chat.Event{}, false, fmt.Errorf("chat/redis: append: %w", err)
		}
	}
	return e, dup == 1, nil
}

// Range returns at most limit events with Seq > after, in order; events
// the stream has trimmed are skipped.
func (s *Store) Range(ctx context.Context, room string, after uint64, limit int) ([]chat.Event, error) {
	if limit <= 0 {
		return nil, nil
	}
	evs, err := s.read(ctx, room, "range", after+1, limit)
	if err != nil {
		return nil, fmt.Errorf("chat/redis: range: %w", err)
	}
	return evs, nil
}

// Tail returns the last n events, in order.
func (s *Store) Tail(ctx context.Context, room string, n int) ([]chat.Event, error) {
	if n <= 0 {
		return nil, nil
	}
	evs, err := s.read(ctx, room, "tail", 0, n)
	if err != nil {
		return nil, fmt.Errorf("chat/redis: tail: %w", err)
	}
	slices.Reverse(evs)
	return evs, nil
}

// read runs rangeScript in mode "range" (from seq first) or "tail".
func (s *Store) read(ctx context.Context, room, mode string, first uint64, n int) ([]chat.Event, error) {
	k := s.keys(room)
	res, err := rangeScript.Run(ctx, s.rdb, []string{k.stream(), k.redacted()}, mode, first, n).Slice()
	if err != nil {
		return nil, err
	}
	evs := make([]chat.Event, 0, len(res))
	for _, r := range res {
		e, err := decodeEntry(r)
		if err != nil {
			return nil, err
		}
		evs = append(evs, e)
	}
	return evs, nil
}

// LastSeq is the Seq of the room's newest event, 0 for none.
func (s *Store) LastSeq(ctx context.Context, room string) (uint64, error) {
	seq, err := s.rdb.Get(ctx, s.keys(room).seq()).Uint64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("chat/redis: last seq: %w", err)
	}
	return seq, nil
}

// decodeEntry reads one entry as the scripts' entryReply formats it:
// {seq, redacted 0|1, [field, value, …]} with field e the event's JSON and
// field c, for a closed poll, its final tally.
func decodeEntry(v any) (chat.Event, error) {
	r, ok := v.([]any)
	if !ok || len(r) != 3 {
		return chat.Event{}, fmt.Errorf("malformed entry %v", v)
	}
	seqStr, _ := r[0].(string)
	redacted, _ := r[1].(int64)
	fields, _ := r[2].([]any)
	seq, err := strconv.ParseUint(seqStr, 10, 64)
	if err != nil {
		return chat.Event{}, fmt.Errorf("entry seq %q: %w", seqStr, err)
	}
	var body, counts string
	for i := 0; i+1 < len(fields); i += 2 {
		val, _ := fields[i+1].(string)
		switch fields[i] {
		case "e":
			body = val
		case "c":
			counts = val
		}
	}
	var e chat.Event
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		return chat.Event{}, fmt.Errorf("entry %d: %w", seq, err)
	}
	e.Seq = seq
	if counts != "" && e.Poll != nil {
		if err := json.Unmarshal([]byte(counts), &e.Poll.Counts); err != nil {
			return chat.Event{}, fmt.Errorf("entry %d tally: %w", seq, err)
		}
	}
	if redacted == 1 {
		e.Text, e.Deleted = "", true
	}
	return e, nil
}
