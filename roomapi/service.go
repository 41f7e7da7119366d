package roomapi

import (
	"context"
	"errors"
	"log/slog"

	"github.com/livekit/protocol/livekit"
	"github.com/twitchtv/twirp"
)

// service adapts Rooms to the generated livekit.RoomService: it checks each
// method's grant and arguments, calls Rooms, and turns its errors into twirp
// errors.
type service struct {
	rooms Rooms
	log   *slog.Logger
}

var _ livekit.RoomService = (*service)(nil)

func (s *service) CreateRoom(ctx context.Context, req *livekit.CreateRoomRequest) (*livekit.Room, error) {
	if err := requireCreate(ctx); err != nil {
		return nil, err
	}
	if err := validRoom(req.Name); err != nil {
		return nil, err
	}
	room, err := s.rooms.CreateRoom(ctx, req)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return room, nil
}

func (s *service) ListRooms(ctx context.Context, req *livekit.ListRoomsRequest) (*livekit.ListRoomsResponse, error) {
	if err := requireList(ctx); err != nil {
		return nil, err
	}
	for _, name := range req.Names {
		if err := validRoom(name); err != nil {
			return nil, err
		}
	}
	rooms, err := s.rooms.ListRooms(ctx, req.Names)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &livekit.ListRoomsResponse{Rooms: rooms}, nil
}

func (s *service) DeleteRoom(ctx context.Context, req *livekit.DeleteRoomRequest) (*livekit.DeleteRoomResponse, error) {
	if err := requireCreate(ctx); err != nil {
		return nil, err
	}
	if err := validRoom(req.Room); err != nil {
		return nil, err
	}
	if err := s.rooms.DeleteRoom(ctx, req.Room); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &livekit.DeleteRoomResponse{}, nil
}

func (s *service) ListParticipants(ctx context.Context, req *livekit.ListParticipantsRequest) (*livekit.ListParticipantsResponse, error) {
	if err := requireAdmin(ctx, req.Room); err != nil {
		return nil, err
	}
	ps, err := s.rooms.ListParticipants(ctx, req.Room)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &livekit.ListParticipantsResponse{Participants: ps}, nil
}

func (s *service) GetParticipant(ctx context.Context, req *livekit.RoomParticipantIdentity) (*livekit.ParticipantInfo, error) {
	if err := s.adminOf(ctx, req.Room, req.Identity); err != nil {
		return nil, err
	}
	p, err := s.rooms.GetParticipant(ctx, req.Room, req.Identity)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return p, nil
}

func (s *service) RemoveParticipant(ctx context.Context, req *livekit.RoomParticipantIdentity) (*livekit.RemoveParticipantResponse, error) {
	if err := s.adminOf(ctx, req.Room, req.Identity); err != nil {
		return nil, err
	}
	if err := s.rooms.RemoveParticipant(ctx, req.Room, req.Identity); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &livekit.RemoveParticipantResponse{}, nil
}

func (s *service) MutePublishedTrack(ctx context.Context, req *livekit.MuteRoomTrackRequest) (*livekit.MuteRoomTrackResponse, error) {
	if err := s.adminOf(ctx, req.Room, req.Identity); err != nil {
		return nil, err
	}
	if req.TrackSid == "" {
		return nil, twirp.NewError(twirp.InvalidArgument, "track_sid is empty")
	}
	track, err := s.rooms.MutePublishedTrack(ctx, req.Room, req.Identity, req.TrackSid, req.Muted)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &livekit.MuteRoomTrackResponse{Track: track}, nil
}

func (s *service) UpdateParticipant(ctx context.Context, req *livekit.UpdateParticipantRequest) (*livekit.ParticipantInfo, error) {
	if err := s.adminOf(ctx, req.Room, req.Identity); err != nil {
		return nil, err
	}
	p, err := s.rooms.UpdateParticipant(ctx, req)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return p, nil
}

func (s *service) UpdateSubscriptions(ctx context.Context, req *livekit.UpdateSubscriptionsRequest) (*livekit.UpdateSubscriptionsResponse, error) {
	if err := s.adminOf(ctx, req.Room, req.Identity); err != nil {
		return nil, err
	}
	if err := s.rooms.UpdateSubscriptions(ctx, req); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &livekit.UpdateSubscriptionsResponse{}, nil
}

func (s *service) SendData(ctx context.Context, req *livekit.SendDataRequest) (*livekit.SendDataResponse, error) {
	if err := requireAdmin(ctx, req.Room); err != nil {
		return nil, err
	}
	if err := s.rooms.SendData(ctx, req); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &livekit.SendDataResponse{}, nil
}

func (s *service) UpdateRoomMetadata(ctx context.Context, req *livekit.UpdateRoomMetadataRequest) (*livekit.Room, error) {
	if err := requireAdmin(ctx, req.Room); err != nil {
		return nil, err
	}
	room, err := s.rooms.UpdateRoomMetadata(ctx, req.Room, req.Metadata)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return room, nil
}

func (s *service) ForwardParticipant(context.Context, *livekit.ForwardParticipantRequest) (*livekit.ForwardParticipantResponse, error) {
	return nil, unimplemented("ForwardParticipant")
}

func (s *service) MoveParticipant(context.Context, *livekit.MoveParticipantRequest) (*livekit.MoveParticipantResponse, error) {
	return nil, unimplemented("MoveParticipant")
}

func (s *service) PerformRpc(context.Context, *livekit.PerformRpcRequest) (*livekit.PerformRpcResponse, error) {
	return nil, unimplemented("PerformRpc")
}

func unimplemented(method string) error {
	return twirp.NewError(twirp.Unimplemented, "RoomService."+method+" is not implemented by Starling")
}

// adminOf checks a participant method: roomAdmin in room and an identity.
func (s *service) adminOf(ctx context.Context, room, identity string) error {
	if err := requireAdmin(ctx, room); err != nil {
		return err
	}
	return requireIdentity(identity)
}

// fail turns an error from Rooms into the twirp error answered: its own
// message for not found and invalid requests, a generic one (and a log line)
// for anything else.
func (s *service) fail(ctx context.Context, err error) error {
	var te twirp.Error
	switch {
	case errors.As(err, &te):
		return te
	case errors.Is(err, ErrNotFound):
		return twirp.NewError(twirp.NotFound, err.Error())
	case errors.Is(err, ErrInvalid):
		return twirp.NewError(twirp.InvalidArgument, err.Error())
	case errors.Is(err, context.Canceled):
		return twirp.NewError(twirp.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return twirp.NewError(twirp.DeadlineExceeded, "request timed out")
	}
	method, _ := twirp.MethodName(ctx)
	s.log.ErrorContext(ctx, "room service request failed", "method", method, "err", err)
	return twirp.InternalError("internal error")
}
