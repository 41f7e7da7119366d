// Package chat implements live chat and polls for a room's participants and
// viewers over a JSON websocket (docs/chat-protocol.md): a room-wide ordered
// log with idempotent sends, history and resume, reactions, moderation, rate
// limits and polls, kept in a Store (SQLite for one node, Redis for several).
package chat

import (
	"context"
	"errors"
	"time"
)

// Kind says what a logged Event is.
type Kind string

// The kinds of Event a room's log holds.
const (
	// KindMessage is a chat message: Text from Identity.
	KindMessage Kind = "message"
	// KindReaction is an emoji (Text) on the event Target.
	KindReaction Kind = "reaction"
	// KindDelete says a moderator deleted event Target; stores redact it.
	KindDelete Kind = "delete"
	// KindPoll announces a new poll (Poll).
	KindPoll Kind = "poll"
	// KindPollClosed announces a closed poll with its final tally (Poll).
	KindPollClosed Kind = "poll_closed"
	// KindModeration records a sanction or a slow-mode change (Sanction).
	KindModeration Kind = "moderation"
)

// Event is one entry of a room's log. Seq numbers a room's events 1, 2, 3…
// with no gap, across every node that shares the store.
type Event struct {
	Seq  uint64 `json:"seq"`
	Kind Kind   `json:"kind"`
	// TS is when the store logged it, in Unix milliseconds.
	TS       int64  `json:"ts"`
	Identity string `json:"from,omitempty"`
	Name     string `json:"name,omitempty"`
	// ClientID is the sender's id for the event; (room, Identity, ClientID)
	// is logged once however often it is sent.
	ClientID string `json:"client_id,omitempty"`
	Text     string `json:"text,omitempty"`
	// Target is the Seq a reaction or a delete is about.
	Target   uint64    `json:"target,omitempty"`
	Deleted  bool      `json:"deleted,omitempty"`
	Poll     *Poll     `json:"poll,omitempty"`
	Sanction *Sanction `json:"sanction,omitempty"`
}

// Poll is a question with options; Counts[i] is the number of identities
// whose vote is Options[i].
type Poll struct {
	ID       string   `json:"id"`
	Question string   `json:"question"`
	Options  []string `json:"options"`
	Counts   []int64  `json:"counts"`
	Creator  string   `json:"creator,omitempty"`
	// Created and ClosesAt are Unix milliseconds; ClosesAt 0 means open
	// until closed.
	Created  int64 `json:"created"`
	ClosesAt int64 `json:"closes_at,omitempty"`
	Closed   bool  `json:"closed"`
}

// OpenAt reports whether the poll takes votes at t.
func (p Poll) OpenAt(t time.Time) bool {
	return !p.Closed && (p.ClosesAt == 0 || t.UnixMilli() < p.ClosesAt)
}

// SanctionKind is what a moderator did.
type SanctionKind string

// Sanctions; Until 0 means until lifted.
const (
	Mute     SanctionKind = "mute"      // may read, may not write
	Unmute   SanctionKind = "unmute"    // ends a mute
	Ban      SanctionKind = "ban"       // disconnected and refused
	Unban    SanctionKind = "unban"     // ends a ban
	SlowMode SanctionKind = "slow_mode" // one message per Seconds per identity; 0 ends it
	// AnonymousRead sets whether clients without a token may read the
	// room (Allow), overriding the server's default for this room.
	AnonymousRead SanctionKind = "anonymous_read"
)

// Sanction is a moderation state change. Identity is empty for SlowMode and
// AnonymousRead.
type Sanction struct {
	Kind     SanctionKind `json:"kind"`
	Identity string       `json:"identity,omitempty"`
	// Until is Unix milliseconds; 0 is until lifted.
	Until int64 `json:"until,omitempty"`
	// Seconds is the slow-mode interval.
	Seconds int `json:"seconds,omitempty"`
	// Allow is the AnonymousRead setting; set for that kind only.
	Allow *bool  `json:"allow,omitempty"`
	By    string `json:"by,omitempty"`
}

// Moderation is a room's standing moderation state.
type Moderation struct {
	// Muted and Banned map identities to when their sanction ends (Unix
	// milliseconds, 0 for never).
	Muted  map[string]int64
	Banned map[string]int64
	// SlowMode is the seconds between one identity's messages; 0 is off.
	SlowMode int
	// AnonymousRead is the room's own setting for clients without a token;
	// nil when the room follows the server's default.
	AnonymousRead *bool
}

// Notice is what a store's subscription delivers: an Event appended by any
// node, or word that a poll's tally changed.
type Notice struct {
	Event  *Event
	PollID string
}

// Errors a Store returns that clients are told about.
var (
	ErrNoPoll     = errors.New("no such poll")
	ErrPollClosed = errors.New("poll is closed")
	ErrBadOption  = errors.New("no such option")
	ErrNotFound   = errors.New("no such event")
)

// Store keeps rooms' logs, polls and moderation state. SQLite serves one
// node; Redis lets several nodes serve one room. Every method is safe for
// concurrent use.
type Store interface {
	// Append logs e in room with the next Seq and the current time. When
	// e.ClientID is set and (room, e.Identity, e.ClientID) is logged
	// already, it logs nothing and returns that event with dup true.
	// Appending a KindDelete also redacts its Target (Text emptied,
	// Deleted set); appending a KindModeration also applies its Sanction.
	Append(ctx context.Context, room string, e Event) (stored Event, dup bool, err error)
	// Range returns at most limit events with Seq > after, in order.
	Range(ctx context.Context, room string, after uint64, limit int) ([]Event, error)
	// Tail returns the last n events, in order.
	Tail(ctx context.Context, room string, n int) ([]Event, error)
	// LastSeq is the Seq of the room's newest event, 0 for none.
	LastSeq(ctx context.Context, room string) (uint64, error)

	// CreatePoll stores p (ID, Created and zero Counts filled in) and logs
	// a KindPoll event for it.
	CreatePoll(ctx context.Context, room string, p Poll) (Poll, Event, error)
	// Vote records identity's vote, replacing its earlier one. It fails
	// with ErrNoPoll, ErrPollClosed (closed, or past ClosesAt at now) or
	// ErrBadOption. changed is false when the vote was already that option;
	// when it is true, subscribers get a Notice with PollID.
	Vote(ctx context.Context, room, pollID, identity string, option int, now time.Time) (changed bool, err error)
	// ClosePoll closes the poll and logs a KindPollClosed event with the
	// final tally; closing a closed poll returns ErrPollClosed.
	ClosePoll(ctx context.Context, room, pollID, by string) (Poll, Event, error)
	// Poll returns a poll with its current tally.
	Poll(ctx context.Context, room, pollID string) (Poll, error)
	// Polls returns the room's polls, oldest first.
	Polls(ctx context.Context, room string) ([]Poll, error)

	// Moderation returns the room's standing sanctions and slow mode.
	Moderation(ctx context.Context, room string) (Moderation, error)
	// Presence records that node has count clients in room (a record lives
	// for ttl unless renewed) and returns the sum over live nodes.
	Presence(ctx context.Context, room, node string, count int, ttl time.Duration) (int, error)

	// Subscribe delivers the room's notices until ctx ends, in Seq order.
	// A slow reader or a lost connection may skip notices; readers fill
	// gaps with Range.
	Subscribe(ctx context.Context, room string) (<-chan Notice, error)
	// Close releases the store.
	Close() error
}
