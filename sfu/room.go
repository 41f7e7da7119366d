package sfu

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"
)

// Room is a named set of participants.
type Room struct {
	name    string
	sid     string
	sfu     *SFU
	created time.Time

	mu           sync.Mutex
	participants map[string]*Participant
	joined       uint64
}

// Name is the room's name.
func (r *Room) Name() string { return r.name }

// SID is the room's server id, new each time a room of this name starts.
func (r *Room) SID() string { return r.sid }

// Created is when the room started.
func (r *Room) Created() time.Time { return r.created }

// Join adds a participant whose transport closeTransport shuts down. An
// identity already present is replaced: the old participant's transport is
// closed and it leaves, as when a publisher reconnects.
func (r *Room) Join(identity string, closeTransport func()) *Participant {
	return r.JoinWithSID(identity, newSID("PA_"), closeTransport)
}

// NewParticipantSID makes a participant server id, for JoinWithSID.
func NewParticipantSID() string { return newSID("PA_") }

// JoinWithSID is Join with the participant's server id chosen by the
// caller, which can then register the participant under it before the
// room's event for the join is emitted.
func (r *Room) JoinWithSID(identity, sid string, closeTransport func()) *Participant {
	r.mu.Lock()
	old := r.participants[identity]
	r.joined++
	p := &Participant{
		identity: identity,
		sid:      sid,
		joinedAt: time.Now(),
		room:     r,
		closeTr:  closeTransport,
		joinSeq:  r.joined,
		tracks:   map[string]*Track{},
		changed:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	r.participants[identity] = p
	r.mu.Unlock()
	if old != nil {
		r.sfu.log.Info("participant replaced", "room", r.name, "participant", identity)
		if old.closeTr != nil {
			old.closeTr()
		}
		old.close(false)
	}
	r.sfu.log.Info("participant joined", "room", r.name, "participant", identity)
	r.sfu.emit(ParticipantJoined, r, p, nil)
	return p
}

// Participants lists the room's participants, oldest first.
func (r *Room) Participants() []*Participant {
	r.mu.Lock()
	ps := make([]*Participant, 0, len(r.participants))
	for _, p := range r.participants {
		ps = append(ps, p)
	}
	r.mu.Unlock()
	sort.Slice(ps, func(i, j int) bool { return ps[i].joinSeq < ps[j].joinSeq })
	return ps
}

// Participant returns the participant with this identity.
func (r *Room) Participant(identity string) (*Participant, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.participants[identity]
	return p, ok
}

// Publisher returns the oldest participant that publishes, or has announced
// tracks that have not started yet (WaitTracks waits for them).
func (r *Room) Publisher() (*Participant, bool) {
	for _, p := range r.Participants() {
		p.mu.Lock()
		publishes := len(p.order) > 0 || p.expected > 0
		p.mu.Unlock()
		if publishes {
			return p, true
		}
	}
	return nil, false
}

func (r *Room) leave(p *Participant) {
	r.mu.Lock()
	if r.participants[p.identity] == p {
		delete(r.participants, p.identity)
	}
	r.mu.Unlock()
	r.sfu.removeIfEmpty(r)
}

// ErrParticipantClosed is returned when adding a track to a participant that left.
var ErrParticipantClosed = errors.New("sfu: participant closed")

// Participant is one publisher (and, later, subscriber) in a room.
type Participant struct {
	identity string
	sid      string
	joinedAt time.Time
	room     *Room
	joinSeq  uint64
	closeTr  func()

	mu        sync.Mutex
	tracks    map[string]*Track
	order     []*Track
	expected  int
	requestKF KeyframeRequester
	changed   chan struct{} // closed and replaced whenever tracks change
	closed    bool
	done      chan struct{}
}

// Identity is the participant's identity.
func (p *Participant) Identity() string { return p.identity }

// SID is the participant's server id, new with every join.
func (p *Participant) SID() string { return p.sid }

// JoinedAt is when the participant joined.
func (p *Participant) JoinedAt() time.Time { return p.joinedAt }

// Room is the participant's room.
func (p *Participant) Room() *Room { return p.room }

// Done is closed when the participant has left.
func (p *Participant) Done() <-chan struct{} { return p.done }

// SetKeyframeRequester sets how keyframes are asked of this publisher.
func (p *Participant) SetKeyframeRequester(kf KeyframeRequester) {
	p.mu.Lock()
	p.requestKF = kf
	p.mu.Unlock()
}

// ExpectTracks records how many tracks the publisher announced, so that
// WaitTracks can wait until all of them have started.
func (p *Participant) ExpectTracks(n int) {
	p.mu.Lock()
	p.expected = n
	p.mu.Unlock()
}

// AddLayer adds one received encoding to the participant's track info.ID,
// creating the track on its first layer.
func (p *Participant) AddLayer(info TrackInfo, rid string, ssrc uint32, r RTPReader) (*Track, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrParticipantClosed
	}
	t, ok := p.tracks[info.ID]
	if !ok {
		s := p.room.sfu
		kf := p.requestKF
		t = newTrack(info, &s.settings, &s.stats, kf, s.log.With("room", p.room.name, "participant", p.identity))
		p.tracks[info.ID] = t
		p.order = append(p.order, t)
		close(p.changed)
		p.changed = make(chan struct{})
		s.log.Info("track published", "room", p.room.name, "participant", p.identity,
			"track", info.ID, "sid", t.sid, "kind", info.Kind.String(), "codec", info.Codec.MimeType)
	}
	p.mu.Unlock()
	if !ok {
		p.room.sfu.emit(TrackPublished, p.room, p, t)
	}
	if _, err := t.AddLayer(rid, ssrc, r); err != nil {
		return nil, err
	}
	return t, nil
}

// Tracks lists the participant's tracks in publication order.
func (p *Participant) Tracks() []*Track {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*Track(nil), p.order...)
}

// WaitTracks waits until every announced track has started, or ctx ends, and
// returns the tracks there are by then.
func (p *Participant) WaitTracks(ctx context.Context) []*Track {
	for {
		p.mu.Lock()
		n, want, changed := len(p.order), p.expected, p.changed
		p.mu.Unlock()
		if n >= want && n > 0 {
			return p.Tracks()
		}
		select {
		case <-changed:
		case <-p.done:
			return nil
		case <-ctx.Done():
			return p.Tracks()
		}
	}
}

// Close removes the participant from its room and ends its tracks, which ends
// every subscription to them. Its transport is closed by its owner.
func (p *Participant) Close() { p.close(true) }

// Remove closes the participant's transport, as its owner would, and the
// participant: a room admin removing it.
func (p *Participant) Remove() {
	if p.closeTr != nil {
		p.closeTr()
	}
	p.close(true)
}

func (p *Participant) close(leave bool) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	tracks := p.order
	close(p.done)
	p.mu.Unlock()
	for _, t := range tracks {
		t.close()
		p.room.sfu.log.Info("track unpublished", "room", p.room.name, "participant", p.identity, "track", t.info.ID)
		p.room.sfu.emit(TrackUnpublished, p.room, p, t)
	}
	p.room.sfu.log.Info("participant left", "room", p.room.name, "participant", p.identity)
	p.room.sfu.emit(ParticipantLeft, p.room, p, nil)
	if leave {
		p.room.leave(p)
	}
}
