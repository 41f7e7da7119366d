package sfu

import (
	"crypto/rand"
	"time"
)

// EventKind names a change in a room.
type EventKind int

// The changes an SFU reports, in the order they happen to one room.
const (
	RoomStarted EventKind = iota
	RoomFinished
	ParticipantJoined
	ParticipantLeft
	TrackPublished
	TrackUnpublished
)

var eventNames = [...]string{"room_started", "room_finished", "participant_joined", "participant_left", "track_published", "track_unpublished"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "unknown"
}

// Event is one change in a room. Participant is set for participant and
// track events, Track for track events.
type Event struct {
	Kind        EventKind
	Room        *Room
	Participant *Participant
	Track       *Track
	At          time.Time
}

// emit hands e to Settings.OnEvent. It is called without the SFU's locks
// held, from the goroutine that made the change.
func (s *SFU) emit(kind EventKind, r *Room, p *Participant, t *Track) {
	if s.settings.OnEvent != nil {
		s.settings.OnEvent(Event{Kind: kind, Room: r, Participant: p, Track: t, At: time.Now()})
	}
}

// newSID returns a LiveKit-style server id: prefix and 12 base62 characters.
func newSID(prefix string) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var b [12]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return prefix + string(b[:])
}
