// Package sqlite implements chat.Store on a SQLite file for a single node:
// rooms' logs, polls with their tallies and moderation state survive a
// restart, and subscribers are served in-process.
//
// Writes go through one connection, one at a time, under a mutex that is
// also held while the committed change is published, so subscribers see
// events in Seq order. Reads use a separate pool; in WAL mode they never
// wait for the writer.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/starling-sfu/starling/chat"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// errClosed is returned by every method called after Close.
var errClosed = errors.New("store closed")

// readConns bounds the read pool; WAL readers run in parallel.
const readConns = 4

// Store is a chat.Store on one SQLite file. Create it with Open.
type Store struct {
	log    *slog.Logger
	writer *sql.DB // one connection; used only under wmu
	reader *sql.DB
	// prepared maps each of preparedQueries to its statement on writer.
	prepared map[string]*sql.Stmt

	// wmu serialises write transactions and the publishing of what they
	// committed, which keeps notices in commit (Seq) order.
	wmu    sync.Mutex
	closed atomic.Bool // set under wmu

	subs     subscribers
	presence presence
}

var _ chat.Store = (*Store)(nil)

// Open opens the chat database at path (for example ./data/chat.db),
// creating it and its parent directory if needed, and migrates its schema.
func Open(path string, log *slog.Logger) (*Store, error) {
	if path == "" {
		return nil, errors.New("chat/sqlite: open: empty path")
	}
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("chat/sqlite: open: %w", err)
	}
	writer, err := openDB(path, 1, "&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("chat/sqlite: open: %w", err)
	}
	if err := migrate(context.Background(), writer); err != nil {
		writer.Close()
		return nil, fmt.Errorf("chat/sqlite: open %s: %w", path, err)
	}
	prepared, err := prepare(writer, preparedQueries)
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("chat/sqlite: open: %w", err)
	}
	reader, err := openDB(path, readConns, "&_pragma=query_only(1)")
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("chat/sqlite: open: %w", err)
	}
	s := &Store{
		log:      log.With("store", "sqlite", "path", path),
		writer:   writer,
		reader:   reader,
		prepared: prepared,
	}
	s.subs.init(s.log)
	s.presence.init()
	return s, nil
}

// openDB opens a pool of at most conns connections; the pragmas sit in the
// DSN so that every connection the pool makes gets them.
func openDB(path string, conns int, extra string) (*sql.DB, error) {
	// In a SQLite URI filename these three characters are syntax.
	escaped := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	dsn := "file:" + escaped +
		"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)" + extra
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Close ends every subscription and closes the database. Calls after the
// first return an error.
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return fmt.Errorf("chat/sqlite: close: %w", errClosed)
	}
	s.closed.Store(true)
	s.subs.closeAll()
	err := errors.Join(s.writer.Close(), s.reader.Close())
	if err != nil {
		return fmt.Errorf("chat/sqlite: close: %w", err)
	}
	return nil
}

// preparedQueries are the write path's statements, prepared once at Open:
// parsing SQL costs about a third of a small write.
var preparedQueries = []string{
	qEventByClientID, qLastSeq, qInsertEvent, qRedact,
	qImpose, qLift, qSetSlowMode, qSetAnonymousRead,
	qInsertPoll, qPollState, qVoteOf, qSetVote, qUntally, qTally, qClosePoll,
}

// prepare prepares queries on db.
func prepare(db *sql.DB, queries []string) (map[string]*sql.Stmt, error) {
	prepared := make(map[string]*sql.Stmt, len(queries))
	for _, q := range queries {
		st, err := db.Prepare(q)
		if err != nil {
			return nil, fmt.Errorf("prepare %q: %w", q, err)
		}
		prepared[q] = st
	}
	return prepared, nil
}

// wtx is a write transaction; it runs a query on its prepared statement
// when there is one.
type wtx struct {
	ctx      context.Context
	tx       *sql.Tx
	prepared map[string]*sql.Stmt
}

func (w *wtx) exec(query string, args ...any) (sql.Result, error) {
	if st := w.prepared[query]; st != nil {
		return w.tx.StmtContext(w.ctx, st).ExecContext(w.ctx, args...)
	}
	return w.tx.ExecContext(w.ctx, query, args...)
}

func (w *wtx) queryRow(query string, args ...any) *sql.Row {
	if st := w.prepared[query]; st != nil {
		return w.tx.StmtContext(w.ctx, st).QueryRowContext(w.ctx, args...)
	}
	return w.tx.QueryRowContext(w.ctx, query, args...)
}

// write runs fn in a write transaction and, once it has committed,
// publishes the room's notices fn returned. Only one write runs at a time.
func (s *Store) write(ctx context.Context, room string, fn func(w *wtx) ([]chat.Notice, error)) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return errClosed
	}
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	notices, err := fn(&wtx{ctx: ctx, tx: tx, prepared: s.prepared})
	if err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	for _, n := range notices {
		s.subs.publish(room, n)
	}
	return nil
}
