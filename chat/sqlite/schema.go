package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations[i] takes the schema from user_version i to i+1. Append new
// steps; never edit one that has shipped.
var migrations = []string{
	// 1: the log, polls with their votes and tallies, moderation.
	`
CREATE TABLE events (
	room          TEXT    NOT NULL,
	seq           INTEGER NOT NULL,
	kind          TEXT    NOT NULL,
	ts            INTEGER NOT NULL,
	identity      TEXT    NOT NULL DEFAULT '',
	name          TEXT    NOT NULL DEFAULT '',
	client_id     TEXT    NOT NULL DEFAULT '',
	text          TEXT    NOT NULL DEFAULT '',
	target        INTEGER NOT NULL DEFAULT 0,
	deleted       INTEGER NOT NULL DEFAULT 0,
	poll_json     TEXT,
	sanction_json TEXT,
	PRIMARY KEY (room, seq)
);
CREATE UNIQUE INDEX events_client_id ON events (room, identity, client_id) WHERE client_id != '';

CREATE TABLE polls (
	room         TEXT    NOT NULL,
	id           TEXT    NOT NULL,
	seq          INTEGER NOT NULL, -- of the poll's announcing event; orders the room's polls
	question     TEXT    NOT NULL,
	options_json TEXT    NOT NULL,
	creator      TEXT    NOT NULL DEFAULT '',
	created      INTEGER NOT NULL,
	closes_at    INTEGER NOT NULL DEFAULT 0,
	closed       INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (room, id)
);
CREATE INDEX polls_seq ON polls (room, seq);

CREATE TABLE votes (
	room     TEXT    NOT NULL,
	poll_id  TEXT    NOT NULL,
	identity TEXT    NOT NULL,
	option   INTEGER NOT NULL,
	PRIMARY KEY (room, poll_id, identity)
) WITHOUT ROWID;

-- tallies keeps each option's vote count, updated in the vote's
-- transaction, so reading a tally does not scan the votes.
CREATE TABLE tallies (
	room    TEXT    NOT NULL,
	poll_id TEXT    NOT NULL,
	option  INTEGER NOT NULL,
	n       INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (room, poll_id, option)
) WITHOUT ROWID;

CREATE TABLE sanctions (
	room     TEXT    NOT NULL,
	identity TEXT    NOT NULL,
	kind     TEXT    NOT NULL, -- mute or ban
	until    INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (room, identity, kind)
) WITHOUT ROWID;

CREATE TABLE rooms (
	room      TEXT    NOT NULL PRIMARY KEY,
	slow_mode INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
`,
	// 2: a room's own anonymous-reading setting; NULL follows the server.
	`ALTER TABLE rooms ADD COLUMN anonymous_read INTEGER;`,
}

// schemaVersion is the user_version this build migrates to.
var schemaVersion = len(migrations)

// migrate brings db's schema up to schemaVersion, one step per transaction.
func migrate(ctx context.Context, db *sql.DB) error {
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > schemaVersion {
		return fmt.Errorf("schema version %d is newer than this build's %d", version, schemaVersion)
	}
	for v := version; v < schemaVersion; v++ {
		if err := migrateStep(ctx, db, v); err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", v+1, err)
		}
	}
	return nil
}

// migrateStep applies migrations[v] and records version v+1 atomically.
func migrateStep(ctx context.Context, db *sql.DB, v int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
		return err
	}
	// PRAGMA takes no parameters; v is an int, so formatting it is safe.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
		return err
	}
	return tx.Commit()
}
