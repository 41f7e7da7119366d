package rtc

import (
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/starling-sfu/starling/sfu"
)

// room is a room as LiveKit clients see it: the SFU's room of that name
// while it runs, plus what the protocol adds (metadata, limits). A room
// created by the room service outlives its participants by its empty
// timeout.
type room struct {
	srv  *Server
	name string

	mu              sync.Mutex
	sid             string
	sfuRoom         *sfu.Room
	created         time.Time
	metadata        string
	maxParticipants uint32
	emptyTimeout    uint32 // seconds an empty, explicitly created room is kept
	emptySince      time.Time
	explicit        bool
	started         bool                   // room_started was told
	sessions        map[string]*session    // by participant sid
	ingress         map[string]*ingressPub // publishers that did not come through /rtc, by sid
	speaking        map[string]float32     // participant sid → level, of the last speaker update
	quality         map[string]livekit.ConnectionQuality
}

// ingressPub is a participant that publishes without /rtc (WHIP): it is
// shown to room participants as an ingress participant.
type ingressPub struct {
	p       *sfu.Participant
	version uint32
}

// roomFor returns the named room, creating it (without an SFU room yet).
func (s *Server) roomFor(name string) *room {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.rooms[name]
	if !ok {
		r = &room{srv: s, name: name, created: time.Now(), sessions: map[string]*session{},
			ingress: map[string]*ingressPub{}, speaking: map[string]float32{}, quality: map[string]livekit.ConnectionQuality{}}
		s.rooms[name] = r
	}
	return r
}

func (s *Server) lookupRoom(name string) (*room, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.rooms[name]
	return r, ok
}

// apply brings the rooms up to date with one SFU event and tells the
// participants who need to know.
func (s *Server) apply(ev sfu.Event) {
	name := ev.Room.Name()
	switch ev.Kind {
	case sfu.RoomStarted:
		r := s.roomFor(name)
		r.mu.Lock()
		r.sfuRoom = ev.Room
		first := !r.started
		r.started = true
		if r.sid == "" || !r.explicit {
			r.sid, r.created = ev.Room.SID(), ev.Room.Created()
		}
		r.mu.Unlock()
		if first {
			s.notify(&livekit.WebhookEvent{Event: "room_started", Room: r.proto()})
		}
	case sfu.RoomFinished:
		r, ok := s.lookupRoom(name)
		if !ok {
			return
		}
		r.mu.Lock()
		if r.sfuRoom == ev.Room {
			r.sfuRoom = nil
		}
		keep := r.explicit && r.emptyTimeout > 0
		r.emptySince = time.Now()
		r.mu.Unlock()
		if !keep {
			s.finishRoom(r)
		}
	case sfu.ParticipantJoined:
		r := s.roomFor(name)
		sess, own := s.session(ev.Participant.SID())
		if !own {
			r.mu.Lock()
			r.ingress[ev.Participant.SID()] = &ingressPub{p: ev.Participant, version: 1}
			r.mu.Unlock()
		}
		info := r.participantInfo(ev.Participant)
		if own {
			info = sess.info()
		}
		r.broadcastUpdate(info, ev.Participant.SID())
		s.notify(&livekit.WebhookEvent{Event: "participant_joined", Room: r.proto(), Participant: info})
	case sfu.ParticipantLeft:
		r, ok := s.lookupRoom(name)
		if !ok {
			return
		}
		info := r.participantInfo(ev.Participant)
		info.State = livekit.ParticipantInfo_DISCONNECTED
		r.mu.Lock()
		delete(r.ingress, ev.Participant.SID())
		delete(r.speaking, ev.Participant.SID())
		delete(r.quality, ev.Participant.SID())
		r.mu.Unlock()
		r.broadcastUpdate(info, ev.Participant.SID())
		s.notify(&livekit.WebhookEvent{Event: "participant_left", Room: r.proto(), Participant: info})
	case sfu.TrackPublished:
		r := s.roomFor(name)
		r.bumpIngress(ev.Participant)
		if sess, ok := s.session(ev.Participant.SID()); ok {
			sess.trackLive(ev.Track)
		}
		info := r.participantInfo(ev.Participant)
		r.broadcastUpdate(info, ev.Participant.SID())
		for _, x := range r.sessionList() {
			if x.sid != ev.Participant.SID() {
				x.offerTrack(ev.Participant, ev.Track)
			}
		}
		s.notify(&livekit.WebhookEvent{Event: "track_published", Room: r.proto(), Participant: info, Track: r.trackInfo(ev.Participant, ev.Track)})
	case sfu.TrackUnpublished:
		r, ok := s.lookupRoom(name)
		if !ok {
			return
		}
		r.bumpIngress(ev.Participant)
		info := r.participantInfo(ev.Participant)
		select {
		case <-ev.Participant.Done():
			// The participant is leaving; its update says so.
		default:
			r.broadcastUpdate(info, ev.Participant.SID())
		}
		s.notify(&livekit.WebhookEvent{Event: "track_unpublished", Room: r.proto(), Participant: info, Track: r.trackInfo(ev.Participant, ev.Track)})
	}
}

// finishRoom forgets a room that has ended.
func (s *Server) finishRoom(r *room) {
	s.mu.Lock()
	if s.rooms[r.name] == r {
		delete(s.rooms, r.name)
	}
	s.mu.Unlock()
	r.mu.Lock()
	told := r.started
	r.mu.Unlock()
	if told {
		s.notify(&livekit.WebhookEvent{Event: "room_finished", Room: r.proto()})
	}
}

// expireRooms forgets explicitly created rooms that stayed empty past their
// empty timeout.
func (s *Server) expireRooms(now time.Time) {
	for _, r := range s.roomList() {
		r.mu.Lock()
		expired := r.explicit && r.sfuRoom == nil && len(r.sessions) == 0 &&
			now.Sub(r.emptySince) > time.Duration(r.emptyTimeout)*time.Second
		r.mu.Unlock()
		if expired {
			s.finishRoom(r)
		}
	}
}

func (s *Server) notify(ev *livekit.WebhookEvent) {
	if s.opts.OnEvent == nil {
		return
	}
	ev.CreatedAt = time.Now().Unix()
	s.opts.OnEvent(ev)
}

func (r *room) bumpIngress(p *sfu.Participant) {
	r.mu.Lock()
	if in, ok := r.ingress[p.SID()]; ok {
		in.version++
	}
	r.mu.Unlock()
}

func (r *room) sessionList() []*session {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*session, 0, len(r.sessions))
	for _, x := range r.sessions {
		out = append(out, x)
	}
	return out
}

// broadcastUpdate sends a participant's new info to every other
// participant; a hidden participant's to nobody.
func (r *room) broadcastUpdate(info *livekit.ParticipantInfo, from string) {
	if info.GetPermission().GetHidden() {
		return
	}
	msg := &livekit.SignalResponse{Message: &livekit.SignalResponse_Update{
		Update: &livekit.ParticipantUpdate{Participants: []*livekit.ParticipantInfo{info}}}}
	for _, x := range r.sessionList() {
		if x.sid != from {
			x.send(msg)
		}
	}
}

// broadcast sends msg to every participant.
func (r *room) broadcast(msg *livekit.SignalResponse) {
	for _, x := range r.sessionList() {
		x.send(msg)
	}
}

// others lists the infos of every visible participant but the one with sid.
func (r *room) others(sid string) []*livekit.ParticipantInfo {
	r.mu.Lock()
	sr := r.sfuRoom
	r.mu.Unlock()
	if sr == nil {
		return nil
	}
	var out []*livekit.ParticipantInfo
	for _, p := range sr.Participants() {
		if p.SID() == sid {
			continue
		}
		info := r.participantInfo(p)
		if !info.GetPermission().GetHidden() {
			out = append(out, info)
		}
	}
	return out
}
