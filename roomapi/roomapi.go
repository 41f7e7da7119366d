// Package roomapi serves LiveKit's RoomService, the HTTP room admin API
// (POST /twirp/livekit.RoomService/{Method}, JSON or protobuf bodies), so
// that LiveKit server SDKs and hand-written curl calls manage Starling's
// rooms unchanged. Tokens and grants are checked as LiveKit checks them; the
// rooms themselves are behind the Rooms interface.
package roomapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/livekit/protocol/livekit"
	"github.com/twitchtv/twirp"

	"github.com/starling-sfu/starling/access"
)

// Rooms is the node's live rooms, as the room service manages them.
type Rooms interface {
	CreateRoom(ctx context.Context, req *livekit.CreateRoomRequest) (*livekit.Room, error)
	ListRooms(ctx context.Context, names []string) ([]*livekit.Room, error)
	DeleteRoom(ctx context.Context, room string) error
	ListParticipants(ctx context.Context, room string) ([]*livekit.ParticipantInfo, error)
	GetParticipant(ctx context.Context, room, identity string) (*livekit.ParticipantInfo, error)
	RemoveParticipant(ctx context.Context, room, identity string) error
	MutePublishedTrack(ctx context.Context, room, identity, trackSID string, muted bool) (*livekit.TrackInfo, error)
	UpdateParticipant(ctx context.Context, req *livekit.UpdateParticipantRequest) (*livekit.ParticipantInfo, error)
	UpdateSubscriptions(ctx context.Context, req *livekit.UpdateSubscriptionsRequest) error
	SendData(ctx context.Context, req *livekit.SendDataRequest) error
	UpdateRoomMetadata(ctx context.Context, room, metadata string) (*livekit.Room, error)
}

// ErrNotFound is wrapped by Rooms errors for a room, participant or track that does not exist.
var ErrNotFound = errors.New("not found")

// ErrInvalid is wrapped by Rooms errors for a request that cannot be carried out as asked.
var ErrInvalid = errors.New("invalid request")

// MaxBodyBytes bounds a request body; LiveKit's largest requests (SendData,
// metadata updates) are far smaller.
const MaxBodyBytes = 1 << 20

// New returns the room service handler. Mount it at /twirp/: it answers
// every path under that prefix, with twirp's JSON errors for unknown ones.
func New(rooms Rooms, v *access.Verifier, log *slog.Logger) http.Handler {
	svc := &service{rooms: rooms, log: log}
	return authenticate(v, livekit.NewRoomServiceServer(svc))
}

type grantKey struct{}

// authenticate verifies the bearer token, as LiveKit does before any method
// runs, and hands its grant to the methods in the request context.
func authenticate(v *access.Verifier, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" {
			_ = twirp.WriteError(w, twirp.NewError(twirp.Unauthenticated, "missing Authorization: Bearer <token>"))
			return
		}
		g, err := v.Verify(strings.TrimSpace(token))
		if err != nil {
			_ = twirp.WriteError(w, twirp.NewError(twirp.Unauthenticated, err.Error()))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), grantKey{}, g)))
	})
}

func grantFrom(ctx context.Context) access.Grant {
	g, _ := ctx.Value(grantKey{}).(access.Grant)
	return g
}

func requireCreate(ctx context.Context) error {
	if !grantFrom(ctx).RoomCreate {
		return twirp.NewError(twirp.PermissionDenied, "token lacks the roomCreate grant")
	}
	return nil
}

func requireList(ctx context.Context) error {
	if !grantFrom(ctx).RoomList {
		return twirp.NewError(twirp.PermissionDenied, "token lacks the roomList grant")
	}
	return nil
}

// requireAdmin checks for roomAdmin in room, then that room is a valid name:
// a grant for another room says nothing about this one.
func requireAdmin(ctx context.Context, room string) error {
	g := grantFrom(ctx)
	if !g.RoomAdmin || g.Room != room {
		return twirp.NewError(twirp.PermissionDenied, "token lacks the roomAdmin grant for room "+quote(room))
	}
	return validRoom(room)
}

func validRoom(room string) error {
	if !access.ValidName(room) {
		return twirp.NewError(twirp.InvalidArgument, "room name "+quote(room)+" is not 1-128 letters, digits, '-', '_' or '.'")
	}
	return nil
}

func requireIdentity(identity string) error {
	if identity == "" {
		return twirp.NewError(twirp.InvalidArgument, "identity is empty")
	}
	return nil
}

// quote quotes s for an error message, cut short so a huge name cannot bloat
// the response or the log.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.Quote(s)
}
