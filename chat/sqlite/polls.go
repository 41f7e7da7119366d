package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/starling-sfu/starling/chat"
)

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// CreatePoll stores p with a new ID, Created now and zero Counts, and logs
// a KindPoll event for it by p.Creator, in one transaction.
func (s *Store) CreatePoll(ctx context.Context, room string, p chat.Poll) (chat.Poll, chat.Event, error) {
	now := time.Now().UnixMilli()
	p.ID = newPollID()
	p.Options = slices.Clone(p.Options)
	p.Counts = make([]int64, len(p.Options))
	p.Created, p.Closed = now, false
	optionsJSON, err := json.Marshal(p.Options)
	if err != nil {
		return chat.Poll{}, chat.Event{}, fmt.Errorf("chat/sqlite: create poll: %w", err)
	}
	var ev chat.Event
	err = s.write(ctx, room, func(w *wtx) ([]chat.Notice, error) {
		var err error
		ev, err = insertEvent(w, room, chat.Event{Kind: chat.KindPoll, Identity: p.Creator, Poll: &p}, now)
		if err != nil {
			return nil, err
		}
		_, err = w.exec(qInsertPoll, room, p.ID, ev.Seq, p.Question, string(optionsJSON), p.Creator, p.Created, p.ClosesAt)
		if err != nil {
			return nil, err
		}
		return []chat.Notice{eventNotice(ev)}, nil
	})
	if err != nil {
		return chat.Poll{}, chat.Event{}, fmt.Errorf("chat/sqlite: create poll: %w", err)
	}
	return p, ev, nil
}

// newPollID returns 12 random hex digits.
func newPollID() string {
	var b [6]byte
	rand.Read(b[:]) // never fails; see crypto/rand.Read
	return hex.EncodeToString(b[:])
}

// Vote records identity's vote for option, replacing its earlier one, and
// keeps the poll's tally in the same transaction. When the vote changed,
// subscribers get a Notice with PollID.
func (s *Store) Vote(ctx context.Context, room, pollID, identity string, option int, now time.Time) (bool, error) {
	var changed bool
	err := s.write(ctx, room, func(w *wtx) ([]chat.Notice, error) {
		var err error
		changed, err = voteTx(w, room, pollID, identity, option, now)
		if err != nil || !changed {
			return nil, err
		}
		return []chat.Notice{{PollID: pollID}}, nil
	})
	if err != nil {
		return false, fmt.Errorf("chat/sqlite: vote: %w", err)
	}
	return changed, nil
}

// Queries of the write path; see preparedQueries.
const (
	qInsertPoll = `INSERT INTO polls (room, id, seq, question, options_json, creator, created, closes_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	qPollState = `SELECT json_array_length(options_json), closes_at, closed
		FROM polls WHERE room = ? AND id = ?`
	qVoteOf  = `SELECT option FROM votes WHERE room = ? AND poll_id = ? AND identity = ?`
	qSetVote = `INSERT INTO votes (room, poll_id, identity, option) VALUES (?, ?, ?, ?)
		ON CONFLICT (room, poll_id, identity) DO UPDATE SET option = excluded.option`
	qUntally = `UPDATE tallies SET n = n - 1 WHERE room = ? AND poll_id = ? AND option = ?`
	qTally   = `INSERT INTO tallies (room, poll_id, option, n) VALUES (?, ?, ?, 1)
		ON CONFLICT (room, poll_id, option) DO UPDATE SET n = n + 1`
	qClosePoll = `UPDATE polls SET closed = 1 WHERE room = ? AND id = ?`
)

// voteTx does Vote's work inside w.
func voteTx(w *wtx, room, pollID, identity string, option int, now time.Time) (bool, error) {
	var (
		p        chat.Poll
		nOptions int
	)
	err := w.queryRow(qPollState, room, pollID).Scan(&nOptions, &p.ClosesAt, &p.Closed)
	if errors.Is(err, sql.ErrNoRows) {
		return false, chat.ErrNoPoll
	}
	if err != nil {
		return false, err
	}
	if !p.OpenAt(now) {
		return false, chat.ErrPollClosed
	}
	if option < 0 || option >= nOptions {
		return false, chat.ErrBadOption
	}
	prev := -1
	err = w.queryRow(qVoteOf, room, pollID, identity).Scan(&prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, err
	}
	if prev == option {
		return false, nil
	}
	_, err = w.exec(qSetVote, room, pollID, identity, option)
	if err != nil {
		return false, err
	}
	if prev >= 0 {
		_, err = w.exec(qUntally, room, pollID, prev)
		if err != nil {
			return false, err
		}
	}
	_, err = w.exec(qTally, room, pollID, option)
	if err != nil {
		return false, err
	}
	return true, nil
}

// ClosePoll closes the poll and logs a KindPollClosed event by by with the
// final tally, in one transaction.
func (s *Store) ClosePoll(ctx context.Context, room, pollID, by string) (chat.Poll, chat.Event, error) {
	var (
		p  chat.Poll
		ev chat.Event
	)
	err := s.write(ctx, room, func(w *wtx) ([]chat.Notice, error) {
		var err error
		if p, err = loadPoll(ctx, w.tx, room, pollID); err != nil {
			return nil, err
		}
		if p.Closed {
			return nil, chat.ErrPollClosed
		}
		p.Closed = true
		_, err = w.exec(qClosePoll, room, pollID)
		if err != nil {
			return nil, err
		}
		ev, err = insertEvent(w, room, chat.Event{Kind: chat.KindPollClosed, Identity: by, Poll: &p}, time.Now().UnixMilli())
		if err != nil {
			return nil, err
		}
		return []chat.Notice{eventNotice(ev)}, nil
	})
	if err != nil {
		return chat.Poll{}, chat.Event{}, fmt.Errorf("chat/sqlite: close poll: %w", err)
	}
	return p, ev, nil
}

// Poll returns a poll with its current tally.
func (s *Store) Poll(ctx context.Context, room, pollID string) (chat.Poll, error) {
	p, err := loadPoll(ctx, s.reader, room, pollID)
	if err != nil {
		return chat.Poll{}, fmt.Errorf("chat/sqlite: poll: %w", err)
	}
	return p, nil
}

// Polls returns the room's polls with their tallies, oldest first.
func (s *Store) Polls(ctx context.Context, room string) ([]chat.Poll, error) {
	polls, err := loadPolls(ctx, s.reader, room)
	if err != nil {
		return nil, fmt.Errorf("chat/sqlite: polls: %w", err)
	}
	return polls, nil
}

// pollColumns is what scanPoll reads, in order.
const pollColumns = `id, question, options_json, creator, created, closes_at, closed`

// loadPoll reads a poll and its tally, or fails with chat.ErrNoPoll.
func loadPoll(ctx context.Context, q querier, room, pollID string) (chat.Poll, error) {
	row := q.QueryRowContext(ctx, `SELECT `+pollColumns+` FROM polls WHERE room = ? AND id = ?`, room, pollID)
	p, err := scanPoll(row)
	if errors.Is(err, sql.ErrNoRows) {
		return chat.Poll{}, chat.ErrNoPoll
	}
	if err != nil {
		return chat.Poll{}, err
	}
	rows, err := q.QueryContext(ctx, `SELECT poll_id, option, n FROM tallies WHERE room = ? AND poll_id = ?`, room, pollID)
	if err != nil {
		return chat.Poll{}, err
	}
	err = scanTallies(rows, func(string) *chat.Poll { return &p })
	return p, err
}

// loadPolls reads a room's polls and their tallies, oldest first.
func loadPolls(ctx context.Context, q querier, room string) ([]chat.Poll, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+pollColumns+` FROM polls WHERE room = ? ORDER BY seq`, room)
	if err != nil {
		return nil, err
	}
	polls := []chat.Poll{}
	byID := map[string]int{}
	for rows.Next() {
		p, err := scanPoll(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		byID[p.ID] = len(polls)
		polls = append(polls, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(polls) == 0 {
		return polls, nil
	}
	rows, err = q.QueryContext(ctx, `SELECT poll_id, option, n FROM tallies WHERE room = ?`, room)
	if err != nil {
		return nil, err
	}
	err = scanTallies(rows, func(id string) *chat.Poll {
		if i, ok := byID[id]; ok {
			return &polls[i]
		}
		return nil // a poll created after the first query
	})
	return polls, err
}

// scanPoll reads one row of pollColumns, with Counts zeroed.
func scanPoll(row scanner) (chat.Poll, error) {
	var (
		p           chat.Poll
		optionsJSON string
	)
	err := row.Scan(&p.ID, &p.Question, &optionsJSON, &p.Creator, &p.Created, &p.ClosesAt, &p.Closed)
	if err != nil {
		return chat.Poll{}, err
	}
	if err := json.Unmarshal([]byte(optionsJSON), &p.Options); err != nil {
		return chat.Poll{}, fmt.Errorf("poll %s: options: %w", p.ID, err)
	}
	p.Counts = make([]int64, len(p.Options))
	return p, nil
}

// scanTallies reads and closes rows of (poll_id, option, n), setting each
// count on the poll that pollOf returns for poll_id, if any.
func scanTallies(rows *sql.Rows, pollOf func(id string) *chat.Poll) error {
	defer rows.Close()
	for rows.Next() {
		var (
			id     string
			option int
			n      int64
		)
		if err := rows.Scan(&id, &option, &n); err != nil {
			return err
		}
		if p := pollOf(id); p != nil && option >= 0 && option < len(p.Counts) {
			p.Counts[option] = n
		}
	}
	return rows.Err()
}
