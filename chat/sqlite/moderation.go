package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/starling-sfu/starling/chat"
)

// Queries of the write path; see preparedQueries.
const (
	qImpose = `INSERT INTO sanctions (room, identity, kind, until) VALUES (?, ?, ?, ?)
		ON CONFLICT (room, identity, kind) DO UPDATE SET until = excluded.until`
	qLift        = `DELETE FROM sanctions WHERE room = ? AND identity = ? AND kind = ?`
	qSetSlowMode = `INSERT INTO rooms (room, slow_mode) VALUES (?, ?)
		ON CONFLICT (room) DO UPDATE SET slow_mode = excluded.slow_mode`
	qSetAnonymousRead = `INSERT INTO rooms (room, anonymous_read) VALUES (?, ?)
		ON CONFLICT (room) DO UPDATE SET anonymous_read = excluded.anonymous_read`
)

// applySanction records sc as room's standing state, inside the
// transaction that logs it.
func applySanction(w *wtx, room string, sc *chat.Sanction) error {
	if sc == nil {
		return errors.New("moderation event without a sanction")
	}
	if sc.Kind != chat.SlowMode && sc.Kind != chat.AnonymousRead && sc.Identity == "" {
		return fmt.Errorf("%s without an identity", sc.Kind)
	}
	var err error
	switch sc.Kind {
	case chat.Mute, chat.Ban:
		_, err = w.exec(qImpose, room, sc.Identity, string(sc.Kind), sc.Until)
	case chat.Unmute, chat.Unban:
		lifted := chat.Mute
		if sc.Kind == chat.Unban {
			lifted = chat.Ban
		}
		_, err = w.exec(qLift, room, sc.Identity, string(lifted))
	case chat.SlowMode:
		if sc.Seconds < 0 {
			return fmt.Errorf("slow mode of %d seconds", sc.Seconds)
		}
		_, err = w.exec(qSetSlowMode, room, sc.Seconds)
	case chat.AnonymousRead:
		if sc.Allow == nil {
			return errors.New("anonymous_read without allow")
		}
		_, err = w.exec(qSetAnonymousRead, room, *sc.Allow)
	default:
		return fmt.Errorf("unknown sanction %q", sc.Kind)
	}
	return err
}

// Moderation returns room's standing mutes and bans, leaving out those
// that have expired, and its slow mode.
func (s *Store) Moderation(ctx context.Context, room string) (chat.Moderation, error) {
	m := chat.Moderation{Muted: map[string]int64{}, Banned: map[string]int64{}}
	var anon sql.NullBool
	err := s.reader.QueryRowContext(ctx, `SELECT slow_mode, anonymous_read FROM rooms WHERE room = ?`, room).Scan(&m.SlowMode, &anon)
	if anon.Valid {
		m.AnonymousRead = &anon.Bool
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return chat.Moderation{}, fmt.Errorf("chat/sqlite: moderation: %w", err)
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT identity, kind, until FROM sanctions
		WHERE room = ? AND (until = 0 OR until > ?)`, room, time.Now().UnixMilli())
	if err != nil {
		return chat.Moderation{}, fmt.Errorf("chat/sqlite: moderation: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			identity, kind string
			until          int64
		)
		if err := rows.Scan(&identity, &kind, &until); err != nil {
			return chat.Moderation{}, fmt.Errorf("chat/sqlite: moderation: %w", err)
		}
		switch chat.SanctionKind(kind) {
		case chat.Mute:
			m.Muted[identity] = until
		case chat.Ban:
			m.Banned[identity] = until
		}
	}
	if err := rows.Err(); err != nil {
		return chat.Moderation{}, fmt.Errorf("chat/sqlite: moderation: %w", err)
	}
	return m, nil
}

// Presence records that node has count clients in room until ttl from now
// and returns the sum over nodes whose record has not expired. One process
// serves a SQLite store, so presence is kept in memory.
func (s *Store) Presence(ctx context.Context, room, node string, count int, ttl time.Duration) (int, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("chat/sqlite: presence: %w", errClosed)
	}
	return s.presence.set(room, node, count, ttl, time.Now()), nil
}

// presence is each room's client count per node, with expiry.
type presence struct {
	mu    sync.Mutex
	rooms map[string]map[string]presenceRecord // room → node; guarded by mu
}

// presenceRecord is one node's count in a room.
type presenceRecord struct {
	count   int
	expires time.Time
}

func (p *presence) init() {
	p.rooms = make(map[string]map[string]presenceRecord)
}

// set records node's count in room and returns the room's live total,
// forgetting expired records on the way.
func (p *presence) set(room, node string, count int, ttl time.Duration, now time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	nodes := p.rooms[room]
	if nodes == nil {
		nodes = make(map[string]presenceRecord)
		p.rooms[room] = nodes
	}
	nodes[node] = presenceRecord{count: count, expires: now.Add(ttl)}
	total := 0
	for n, r := range nodes {
		if !now.Before(r.expires) {
			delete(nodes, n)
			continue
		}
		total += r.count
	}
	if len(nodes) == 0 {
		delete(p.rooms, room)
	}
	return total
}
