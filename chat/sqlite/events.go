package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/starling-sfu/starling/chat"
)

// eventColumns is what scanEvent reads, in order.
const eventColumns = `seq, kind, ts, identity, name, client_id, text, target, deleted, poll_json, sanction_json`

// Append logs e in room with the next Seq and the current time; see
// chat.Store. A resend of a logged (room, Identity, ClientID) returns the
// logged event, as it stands now, with dup true.
func (s *Store) Append(ctx context.Context, room string, e chat.Event) (chat.Event, bool, error) {
	var (
		stored chat.Event
		dup    bool
	)
	err := s.write(ctx, room, func(w *wtx) ([]chat.Notice, error) {
		var err error
		stored, dup, err = appendTx(w, room, e)
		if err != nil || dup {
			return nil, err
		}
		return []chat.Notice{eventNotice(stored)}, nil
	})
	if err != nil {
		return chat.Event{}, false, fmt.Errorf("chat/sqlite: append: %w", err)
	}
	return stored, dup, nil
}

// Queries of the write path; see preparedQueries.
const (
	// The client_id != '' term lets SQLite use the partial unique index.
	qEventByClientID = `SELECT ` + eventColumns + ` FROM events
		WHERE room = ? AND identity = ? AND client_id = ? AND client_id != ''`
	qLastSeq     = `SELECT COALESCE(MAX(seq), 0) FROM events WHERE room = ?`
	qInsertEvent = `INSERT INTO events (room, ` + eventColumns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`
	qRedact = `UPDATE events SET text = '', deleted = 1 WHERE room = ? AND seq = ?`
)

// appendTx does Append's work inside w.
func appendTx(w *wtx, room string, e chat.Event) (chat.Event, bool, error) {
	if e.ClientID != "" {
		prev, err := scanEvent(w.queryRow(qEventByClientID, room, e.Identity, e.ClientID))
		if err == nil {
			return prev, true, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return chat.Event{}, false, err
		}
	}
	switch e.Kind {
	case chat.KindDelete:
		if err := redact(w, room, e.Target); err != nil {
			return chat.Event{}, false, err
		}
	case chat.KindModeration:
		if err := applySanction(w, room, e.Sanction); err != nil {
			return chat.Event{}, false, err
		}
	}
	stored, err := insertEvent(w, room, e, time.Now().UnixMilli())
	return stored, false, err
}

// insertEvent logs e in room with the next Seq and TS ts, and returns it
// exactly as Range will read it back.
func insertEvent(w *wtx, room string, e chat.Event, ts int64) (chat.Event, error) {
	var last uint64
	if err := w.queryRow(qLastSeq, room).Scan(&last); err != nil {
		return chat.Event{}, err
	}
	e.Seq, e.TS, e.Deleted = last+1, ts, false
	pollJSON, err := encodeJSON(e.Poll)
	if err != nil {
		return chat.Event{}, err
	}
	sanctionJSON, err := encodeJSON(e.Sanction)
	if err != nil {
		return chat.Event{}, err
	}
	_, err = w.exec(qInsertEvent, room, e.Seq, string(e.Kind), e.TS, e.Identity, e.Name, e.ClientID, e.Text, e.Target,
		pollJSON, sanctionJSON)
	if err != nil {
		return chat.Event{}, err
	}
	// Decode what was stored rather than keep the caller's pointers, so
	// the event returned is the one later reads return, sharing nothing.
	if e.Poll, err = decodeJSON[chat.Poll](pollJSON); err != nil {
		return chat.Event{}, err
	}
	if e.Sanction, err = decodeJSON[chat.Sanction](sanctionJSON); err != nil {
		return chat.Event{}, err
	}
	return e, nil
}

// redact empties the text of event target and marks it deleted.
func redact(w *wtx, room string, target uint64) error {
	res, err := w.exec(qRedact, room, target)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("delete %d: %w", target, chat.ErrNotFound)
	}
	return nil
}

// Range returns at most limit of room's events with Seq > after, in order.
func (s *Store) Range(ctx context.Context, room string, after uint64, limit int) ([]chat.Event, error) {
	if limit <= 0 {
		return []chat.Event{}, nil
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT `+eventColumns+` FROM events
		WHERE room = ? AND seq > ? ORDER BY seq LIMIT ?`, room, after, limit)
	if err != nil {
		return nil, fmt.Errorf("chat/sqlite: range: %w", err)
	}
	events, err := scanEvents(rows, min(limit, 512))
	if err != nil {
		return nil, fmt.Errorf("chat/sqlite: range: %w", err)
	}
	return events, nil
}

// Tail returns room's last n events, in order.
func (s *Store) Tail(ctx context.Context, room string, n int) ([]chat.Event, error) {
	if n <= 0 {
		return []chat.Event{}, nil
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT * FROM (
		SELECT `+eventColumns+` FROM events WHERE room = ? ORDER BY seq DESC LIMIT ?
	) ORDER BY seq`, room, n)
	if err != nil {
		return nil, fmt.Errorf("chat/sqlite: tail: %w", err)
	}
	events, err := scanEvents(rows, min(n, 512))
	if err != nil {
		return nil, fmt.Errorf("chat/sqlite: tail: %w", err)
	}
	return events, nil
}

// LastSeq returns the Seq of room's newest event, 0 for none.
func (s *Store) LastSeq(ctx context.Context, room string) (uint64, error) {
	var last uint64
	err := s.reader.QueryRowContext(ctx, qLastSeq, room).Scan(&last)
	if err != nil {
		return 0, fmt.Errorf("chat/sqlite: last seq: %w", err)
	}
	return last, nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// scanEvent reads one row of eventColumns.
func scanEvent(row scanner) (chat.Event, error) {
	var (
		e                      chat.Event
		kind                   string
		pollJSON, sanctionJSON sql.NullString
	)
	err := row.Scan(&e.Seq, &kind, &e.TS, &e.Identity, &e.Name, &e.ClientID, &e.Text, &e.Target,
		&e.Deleted, &pollJSON, &sanctionJSON)
	if err != nil {
		return chat.Event{}, err
	}
	e.Kind = chat.Kind(kind)
	if e.Poll, err = decodeJSON[chat.Poll](pollJSON); err != nil {
		return chat.Event{}, fmt.Errorf("event %d: %w", e.Seq, err)
	}
	if e.Sanction, err = decodeJSON[chat.Sanction](sanctionJSON); err != nil {
		return chat.Event{}, fmt.Errorf("event %d: %w", e.Seq, err)
	}
	return e, nil
}

// scanEvents reads and closes rows.
func scanEvents(rows *sql.Rows, sizeHint int) ([]chat.Event, error) {
	defer rows.Close()
	events := make([]chat.Event, 0, sizeHint)
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		events = append(events, e)
	}
	return events, rows.Err()
}

// encodeJSON stores a nil v as NULL.
func encodeJSON[T any](v *T) (sql.NullString, error) {
	if v == nil {
		return sql.NullString{}, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return sql.NullString{}, err
	}
	return sql.NullString{String: string(b), Valid: true}, nil
}

// decodeJSON reads what encodeJSON stored.
func decodeJSON[T any](s sql.NullString) (*T, error) {
	if !s.Valid {
		return nil, nil
	}
	v := new(T)
	if err := json.Unmarshal([]byte(s.String), v); err != nil {
		return nil, err
	}
	return v, nil
}
