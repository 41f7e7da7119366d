package roomapi

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"
)

// memRooms is an in-memory Rooms: rooms by name, each with participants by
// identity. It records the last UpdateSubscriptions and SendData requests,
// and answers every call with err when err is set.
type memRooms struct {
	mu       sync.Mutex
	rooms    map[string]*livekit.Room
	parts    map[string]map[string]*livekit.ParticipantInfo
	lastSubs *livekit.UpdateSubscriptionsRequest
	lastData *livekit.SendDataRequest
	err      error
}

// newMemRooms holds room "demo" with participant "alice", who publishes
// track "TR_cam".
func newMemRooms() *memRooms {
	m := &memRooms{rooms: map[string]*livekit.Room{}, parts: map[string]map[string]*livekit.ParticipantInfo{}}
	m.rooms["demo"] = &livekit.Room{Sid: "RM_demo", Name: "demo", NumParticipants: 1}
	m.parts["demo"] = map[string]*livekit.ParticipantInfo{
		"alice": {Sid: "PA_alice", Identity: "alice", State: livekit.ParticipantInfo_ACTIVE,
			Tracks: []*livekit.TrackInfo{{Sid: "TR_cam", Type: livekit.TrackType_VIDEO, Name: "camera"}}},
	}
	return m
}

func (m *memRooms) CreateRoom(_ context.Context, req *livekit.CreateRoomRequest) (*livekit.Room, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, m.err
	}
	if r, ok := m.rooms[req.Name]; ok {
		return proto.Clone(r).(*livekit.Room), nil
	}
	r := &livekit.Room{Sid: "RM_" + req.Name, Name: req.Name, EmptyTimeout: req.EmptyTimeout,
		MaxParticipants: req.MaxParticipants, Metadata: req.Metadata}
	m.rooms[req.Name] = r
	m.parts[req.Name] = map[string]*livekit.ParticipantInfo{}
	return proto.Clone(r).(*livekit.Room), nil
}

func (m *memRooms) ListRooms(_ context.Context, names []string) ([]*livekit.Room, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, m.err
	}
	var out []*livekit.Room
	for name, r := range m.rooms {
		if len(names) == 0 || slices.Contains(names, name) {
			out = append(out, proto.Clone(r).(*livekit.Room))
		}
	}
	slices.SortFunc(out, func(a, b *livekit.Room) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (m *memRooms) DeleteRoom(_ context.Context, room string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.room(room); err != nil {
		return err
	}
	delete(m.rooms, room)
	delete(m.parts, room)
	return nil
}

func (m *memRooms) ListParticipants(_ context.Context, room string) ([]*livekit.ParticipantInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.room(room); err != nil {
		return nil, err
	}
	var out []*livekit.ParticipantInfo
	for _, p := range m.parts[room] {
		out = append(out, proto.Clone(p).(*livekit.ParticipantInfo))
	}
	return out, nil
}

func (m *memRooms) GetParticipant(_ context.Context, room, identity string) (*livekit.ParticipantInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.participant(room, identity)
	if err != nil {
		return nil, err
	}
	return proto.Clone(p).(*livekit.ParticipantInfo), nil
}

func (m *memRooms) RemoveParticipant(_ context.Context, room, identity string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.participant(room, identity); err != nil {
		return err
	}
	delete(m.parts[room], identity)
	return nil
}

func (m *memRooms) MutePublishedTrack(_ context.Context, room, identity, trackSID string, muted bool) (*livekit.TrackInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.participant(room, identity)
	if err != nil {
		return nil, err
	}
	for _, t := range p.Tracks {
		if t.Sid == trackSID {
			t.Muted = muted
			return proto.Clone(t).(*livekit.TrackInfo), nil
		}
	}
	return nil, fmt.Errorf("track %q: %w", trackSID, ErrNotFound)
}

func (m *memRooms) UpdateParticipant(_ context.Context, req *livekit.UpdateParticipantRequest) (*livekit.ParticipantInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.participant(req.Room, req.Identity)
	if err != nil {
		return nil, err
	}
	if req.Metadata != "" {
		p.Metadata = req.Metadata
	}
	if req.Name != "" {
		p.Name = req.Name
	}
	if req.Permission != nil {
		p.Permission = req.Permission
	}
	return proto.Clone(p).(*livekit.ParticipantInfo), nil
}

func (m *memRooms) UpdateSubscriptions(_ context.Context, req *livekit.UpdateSubscriptionsRequest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.participant(req.Room, req.Identity); err != nil {
		return err
	}
	m.lastSubs = proto.Clone(req).(*livekit.UpdateSubscriptionsRequest)
	return nil
}

func (m *memRooms) SendData(_ context.Context, req *livekit.SendDataRequest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.room(req.Room); err != nil {
		return err
	}
	if req.Kind != livekit.DataPacket_RELIABLE && req.Kind != livekit.DataPacket_LOSSY {
		return fmt.Errorf("data kind %v: %w", req.Kind, ErrInvalid)
	}
	m.lastData = proto.Clone(req).(*livekit.SendDataRequest)
	return nil
}

func (m *memRooms) UpdateRoomMetadata(_ context.Context, room, metadata string) (*livekit.Room, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.room(room)
	if err != nil {
		return nil, err
	}
	r.Metadata = metadata
	return proto.Clone(r).(*livekit.Room), nil
}

func (m *memRooms) room(name string) (*livekit.Room, error) {
	if m.err != nil {
		return nil, m.err
	}
	r, ok := m.rooms[name]
	if !ok {
		return nil, fmt.Errorf("room %q: %w", name, ErrNotFound)
	}
	return r, nil
}

func (m *memRooms) participant(room, identity string) (*livekit.ParticipantInfo, error) {
	if _, err := m.room(room); err != nil {
		return nil, err
	}
	p, ok := m.parts[room][identity]
	if !ok {
		return nil, fmt.Errorf("participant %q in room %q: %w", identity, room, ErrNotFound)
	}
	return p, nil
}
