package rtc

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/starling-sfu/starling/access"
	"github.com/starling-sfu/starling/roomapi"
	"github.com/starling-sfu/starling/sfu"
)

// The room service (package roomapi) manages rooms through these methods.
var _ roomapi.Rooms = (*Server)(nil)

// defaultEmptyTimeout is how long a room created through the room service
// waits for its first participant, and outlives its last, as in LiveKit.
const defaultEmptyTimeout = 300

func notFound(what string) error { return fmt.Errorf("%w: %s", roomapi.ErrNotFound, what) }

// CreateRoom creates a room ahead of its participants, or updates the
// limits and metadata of one that exists.
func (s *Server) CreateRoom(_ context.Context, req *livekit.CreateRoomRequest) (*livekit.Room, error) {
	if !access.ValidName(req.GetName()) {
		return nil, fmt.Errorf("%w: invalid room name", roomapi.ErrInvalid)
	}
	r := s.roomFor(req.GetName())
	r.mu.Lock()
	r.explicit = true
	r.emptyTimeout = req.GetEmptyTimeout()
	if r.emptyTimeout == 0 {
		r.emptyTimeout = defaultEmptyTimeout
	}
	r.maxParticipants = req.GetMaxParticipants()
	if req.GetMetadata() != "" {
		r.metadata = req.GetMetadata()
	}
	if r.sid == "" {
		r.sid = "RM_" + sfu.NewParticipantSID()[3:]
	}
	if r.sfuRoom == nil {
		r.emptySince = time.Now()
	}
	first := !r.started
	r.started = true
	r.mu.Unlock()
	info := r.proto()
	if first {
		s.notify(&livekit.WebhookEvent{Event: "room_started", Room: info})
	}
	return info, nil
}

// ListRooms lists the rooms, or those named.
func (s *Server) ListRooms(_ context.Context, names []string) ([]*livekit.Room, error) {
	var out []*livekit.Room
	for _, r := range s.roomList() {
		if len(names) == 0 || slices.Contains(names, r.name) {
			out = append(out, r.proto())
		}
	}
	slices.SortFunc(out, func(a, b *livekit.Room) int {
		if a.Name < b.Name {
			return -1
		}
		return 1
	})
	return out, nil
}

// DeleteRoom disconnects everyone in the room and forgets it.
func (s *Server) DeleteRoom(_ context.Context, name string) error {
	r, ok := s.lookupRoom(name)
	if !ok {
		return notFound("room " + name)
	}
	for _, x := range r.sessionList() {
		x.leave(livekit.DisconnectReason_ROOM_DELETED, "room deleted")
	}
	r.mu.Lock()
	sr := r.sfuRoom
	r.explicit = false
	r.mu.Unlock()
	if sr != nil {
		for _, p := range sr.Participants() {
			p.Remove()
		}
	}
	s.finishRoom(r)
	return nil
}

// participant finds a participant of a room.
func (s *Server) participant(room, identity string) (*room, *sfu.Participant, error) {
	r, ok := s.lookupRoom(room)
	if !ok {
		return nil, nil, notFound("room " + room)
	}
	r.mu.Lock()
	sr := r.sfuRoom
	r.mu.Unlock()
	if sr != nil {
		if p, ok := sr.Participant(identity); ok {
			return r, p, nil
		}
	}
	return nil, nil, notFound("participant " + identity + " in room " + room)
}

// ListParticipants lists a room's participants, hidden ones included.
func (s *Server) ListParticipants(_ context.Context, room string) ([]*livekit.ParticipantInfo, error) {
	r, ok := s.lookupRoom(room)
	if !ok {
		return nil, notFound("room " + room)
	}
	r.mu.Lock()
	sr := r.sfuRoom
	r.mu.Unlock()
	var out []*livekit.ParticipantInfo
	if sr != nil {
		for _, p := range sr.Participants() {
			out = append(out, r.participantInfo(p))
		}
	}
	return out, nil
}

// GetParticipant describes one participant.
func (s *Server) GetParticipant(_ context.Context, room, identity string) (*livekit.ParticipantInfo, error) {
	r, p, err := s.participant(room, identity)
	if err != nil {
		return nil, err
	}
	return r.participantInfo(p), nil
}

// RemoveParticipant disconnects a participant; it may join again.
func (s *Server) RemoveParticipant(_ context.Context, room, identity string) error {
	_, p, err := s.participant(room, identity)
	if err != nil {
		return err
	}
	if sess, ok := s.session(p.SID()); ok {
		sess.leave(livekit.DisconnectReason_PARTICIPANT_REMOVED, "removed by a room admin")
		return nil
	}
	p.Remove()
	return nil
}

// MutePublishedTrack mutes (or unmutes) a participant's track: its client
// is told to, and the room sees the track muted.
func (s *Server) MutePublishedTrack(_ context.Context, room, identity, trackSID string, muted bool) (*livekit.TrackInfo, error) {
	_, p, err := s.participant(room, identity)
	if err != nil {
		return nil, err
	}
	sess, ok := s.session(p.SID())
	if !ok || !sess.setMuted(trackSID, muted) {
		return nil, notFound("track " + trackSID + " of " + identity)
	}
	sess.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Mute{Mute: &livekit.MuteTrackRequest{Sid: trackSID, Muted: muted}}})
	sess.changed()
	return sess.publishedInfo(trackSID), nil
}

// UpdateParticipant changes a participant's name, metadata, attributes or
// permissions. Revoking canSubscribe ends its subscriptions.
func (s *Server) UpdateParticipant(_ context.Context, req *livekit.UpdateParticipantRequest) (*livekit.ParticipantInfo, error) {
	_, p, err := s.participant(req.GetRoom(), req.GetIdentity())
	if err != nil {
		return nil, err
	}
	sess, ok := s.session(p.SID())
	if !ok {
		return nil, fmt.Errorf("%w: participant %s did not join through /rtc", roomapi.ErrInvalid, req.GetIdentity())
	}
	sess.mu.Lock()
	if req.GetName() != "" {
		sess.name = req.GetName()
	}
	if req.GetMetadata() != "" {
		sess.metadata = req.GetMetadata()
	}
	if len(req.GetAttributes()) > 0 {
		next := map[string]string{}
		for k, v := range sess.attributes {
			next[k] = v
		}
		for k, v := range req.GetAttributes() {
			if v == "" {
				delete(next, k)
			} else {
				next[k] = v
			}
		}
		sess.attributes = next
	}
	var dropSubs []*subscription
	if perm := req.GetPermission(); perm != nil {
		sess.perm = perm
		if !perm.GetCanSubscribe() {
			for _, x := range sess.downs {
				dropSubs = append(dropSubs, x)
			}
		}
	}
	sess.mu.Unlock()
	for _, x := range dropSubs {
		x.down.Close()
	}
	sess.changed()
	info := sess.info()
	sess.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Update{Update: &livekit.ParticipantUpdate{
		Participants: []*livekit.ParticipantInfo{info}}}})
	return info, nil
}

// UpdateSubscriptions subscribes a participant to tracks, or unsubscribes it.
func (s *Server) UpdateSubscriptions(_ context.Context, req *livekit.UpdateSubscriptionsRequest) error {
	_, p, err := s.participant(req.GetRoom(), req.GetIdentity())
	if err != nil {
		return err
	}
	sess, ok := s.session(p.SID())
	if !ok {
		return fmt.Errorf("%w: participant %s did not join through /rtc", roomapi.ErrInvalid, req.GetIdentity())
	}
	sids := append([]string(nil), req.GetTrackSids()...)
	for _, pt := range req.GetParticipantTracks() {
		sids = append(sids, pt.GetTrackSids()...)
	}
	sess.setSubscribed(sids, req.GetSubscribe())
	return nil
}

// SendData sends a data packet from the server to a room's participants.
func (s *Server) SendData(_ context.Context, req *livekit.SendDataRequest) error {
	r, ok := s.lookupRoom(req.GetRoom())
	if !ok {
		return notFound("room " + req.GetRoom())
	}
	if len(req.GetData()) > maxDataPacket {
		return fmt.Errorf("%w: data over %d bytes", roomapi.ErrInvalid, maxDataPacket)
	}
	topic := req.Topic
	dp := &livekit.DataPacket{
		Kind:                  req.GetKind(),
		DestinationIdentities: req.GetDestinationIdentities(),
		Value: &livekit.DataPacket_User{User: &livekit.UserPacket{
			Payload: req.GetData(), Topic: topic, DestinationIdentities: req.GetDestinationIdentities()}},
	}
	r.sendData(dp, req.GetDestinationIdentities(), "")
	return nil
}

// UpdateRoomMetadata sets a room's metadata and tells its participants.
func (s *Server) UpdateRoomMetadata(_ context.Context, room, metadata string) (*livekit.Room, error) {
	r, ok := s.lookupRoom(room)
	if !ok {
		return nil, notFound("room " + room)
	}
	r.mu.Lock()
	r.metadata = metadata
	r.mu.Unlock()
	info := r.proto()
	r.broadcast(&livekit.SignalResponse{Message: &livekit.SignalResponse_RoomUpdate{RoomUpdate: &livekit.RoomUpdate{Room: info}}})
	return info, nil
}
