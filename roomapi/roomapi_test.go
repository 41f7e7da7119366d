package roomapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/twitchtv/twirp"
	"google.golang.org/protobuf/proto"

	"github.com/starling-sfu/starling/access"
)

const (
	apiKey    = "APIroomapi"
	apiSecret = "0123456789abcdef0123456789abcdef"
)

// lockedBuffer collects log output written from server goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newServer serves the room service over rooms and returns its base URL and
// the log it writes.
func newServer(t *testing.T, rooms Rooms) (string, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	v := access.NewVerifier(map[string]string{apiKey: apiSecret})
	srv := httptest.NewServer(New(rooms, v, log))
	t.Cleanup(srv.Close)
	return srv.URL, logs
}

// tokenWith mints an access token holding g, signed with secret.
func tokenWith(t *testing.T, secret string, g *auth.VideoGrant) string {
	t.Helper()
	tok, err := auth.NewAccessToken(apiKey, secret).SetIdentity("admin").SetVideoGrant(g).ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func token(t *testing.T, g *auth.VideoGrant) string { return tokenWith(t, apiSecret, g) }

// expiredToken is a roomList token that expired a minute ago (the auth
// package mints no such thing).
func expiredToken(t *testing.T) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": apiKey, "sub": "admin", "nbf": now.Add(-time.Hour).Unix(), "exp": now.Add(-time.Minute).Unix(),
		"video": map[string]any{"roomList": true},
	}).SignedString([]byte(apiSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// as returns a context whose twirp calls carry token.
func as(t *testing.T, token string) context.Context {
	t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	ctx, err := twirp.WithHTTPRequestHeaders(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	return ctx
}

func codeOf(err error) twirp.ErrorCode {
	var te twirp.Error
	if errors.As(err, &te) {
		return te.Code()
	}
	return ""
}

var (
	adminDemo = &auth.VideoGrant{RoomAdmin: true, Room: "demo"}
	creator   = &auth.VideoGrant{RoomCreate: true}
	lister    = &auth.VideoGrant{RoomList: true}
)

// clients are both generated twirp clients, as the server SDKs speak.
func clients(url string) map[string]livekit.RoomService {
	return map[string]livekit.RoomService{
		"protobuf": livekit.NewRoomServiceProtobufClient(url, http.DefaultClient),
		"json":     livekit.NewRoomServiceJSONClient(url, http.DefaultClient),
	}
}

func TestEveryMethodRoutesToRoomsAndReturnsTheirAnswer(t *testing.T) {
	for name := range clients("") {
		t.Run(name, func(t *testing.T) {
			rooms := newMemRooms()
			url, _ := newServer(t, rooms)
			c := clients(url)[name]
			create, list, admin := as(t, token(t, creator)), as(t, token(t, lister)), as(t, token(t, adminDemo))

			room, err := c.CreateRoom(create, &livekit.CreateRoomRequest{Name: "stage", EmptyTimeout: 30, Metadata: "m"})
			if err != nil || room.Name != "stage" || room.Sid != "RM_stage" || room.EmptyTimeout != 30 || room.Metadata != "m" {
				t.Fatalf("CreateRoom = %v, %v", room, err)
			}
			lr, err := c.ListRooms(list, &livekit.ListRoomsRequest{})
			if err != nil || len(lr.Rooms) != 2 || lr.Rooms[0].Name != "demo" || lr.Rooms[1].Name != "stage" {
				t.Fatalf("ListRooms = %v, %v", lr, err)
			}
			lr, err = c.ListRooms(list, &livekit.ListRoomsRequest{Names: []string{"stage"}})
			if err != nil || len(lr.Rooms) != 1 || lr.Rooms[0].Name != "stage" {
				t.Fatalf("ListRooms(stage) = %v, %v", lr, err)
			}
			lp, err := c.ListParticipants(admin, &livekit.ListParticipantsRequest{Room: "demo"})
			if err != nil || len(lp.Participants) != 1 || lp.Participants[0].Identity != "alice" {
				t.Fatalf("ListParticipants = %v, %v", lp, err)
			}
			p, err := c.GetParticipant(admin, &livekit.RoomParticipantIdentity{Room: "demo", Identity: "alice"})
			if err != nil || p.Sid != "PA_alice" || len(p.Tracks) != 1 {
				t.Fatalf("GetParticipant = %v, %v", p, err)
			}
			mt, err := c.MutePublishedTrack(admin, &livekit.MuteRoomTrackRequest{Room: "demo", Identity: "alice", TrackSid: "TR_cam", Muted: true})
			if err != nil || mt.Track.GetSid() != "TR_cam" || !mt.Track.Muted {
				t.Fatalf("MutePublishedTrack = %v, %v", mt, err)
			}
			perm := &livekit.ParticipantPermission{CanSubscribe: true}
			p, err = c.UpdateParticipant(admin, &livekit.UpdateParticipantRequest{Room: "demo", Identity: "alice", Metadata: "md", Name: "Alice", Permission: perm})
			if err != nil || p.Metadata != "md" || p.Name != "Alice" || !proto.Equal(p.Permission, perm) {
				t.Fatalf("UpdateParticipant = %v, %v", p, err)
			}
			subs := &livekit.UpdateSubscriptionsRequest{Room: "demo", Identity: "alice", TrackSids: []string{"TR_x"}, Subscribe: true}
			if _, err := c.UpdateSubscriptions(admin, subs); err != nil || !proto.Equal(rooms.lastSubs, subs) {
				t.Fatalf("UpdateSubscriptions: %v, Rooms got %v", err, rooms.lastSubs)
			}
			topic := "chat"
			data := &livekit.SendDataRequest{Room: "demo", Data: []byte{0, 1, 2, 255}, Kind: livekit.DataPacket_RELIABLE,
				DestinationIdentities: []string{"alice"}, Topic: &topic}
			if _, err := c.SendData(admin, data); err != nil || !proto.Equal(rooms.lastData, data) {
				t.Fatalf("SendData: %v, Rooms got %v", err, rooms.lastData)
			}
			room, err = c.UpdateRoomMetadata(admin, &livekit.UpdateRoomMetadataRequest{Room: "demo", Metadata: `{"title":"hi"}`})
			if err != nil || room.Name != "demo" || room.Metadata != `{"title":"hi"}` {
				t.Fatalf("UpdateRoomMetadata = %v, %v", room, err)
			}
			if _, err := c.RemoveParticipant(admin, &livekit.RoomParticipantIdentity{Room: "demo", Identity: "alice"}); err != nil {
				t.Fatalf("RemoveParticipant: %v", err)
			}
			if _, ok := rooms.parts["demo"]["alice"]; ok {
				t.Fatal("RemoveParticipant did not reach Rooms")
			}
			if _, err := c.DeleteRoom(create, &livekit.DeleteRoomRequest{Room: "stage"}); err != nil {
				t.Fatalf("DeleteRoom: %v", err)
			}
			if _, ok := rooms.rooms["stage"]; ok {
				t.Fatal("DeleteRoom did not reach Rooms")
			}
		})
	}
}

// adminCalls calls every roomAdmin method on room "demo".
var adminCalls = map[string]func(context.Context, livekit.RoomService) error{
	"ListParticipants": func(ctx context.Context, c livekit.RoomService) error {
		_, err := c.ListParticipants(ctx, &livekit.ListParticipantsRequest{Room: "demo"})
		return err
	},
	"GetParticipant": func(ctx context.Context, c livekit.RoomService) error {
		_, err := c.GetParticipant(ctx, &livekit.RoomParticipantIdentity{Room: "demo", Identity: "alice"})
		return err
	},
	"RemoveParticipant": func(ctx context.Context, c livekit.RoomService) error {
		_, err := c.RemoveParticipant(ctx, &livekit.RoomParticipantIdentity{Room: "demo", Identity: "alice"})
		return err
	},
	"MutePublishedTrack": func(ctx context.Context, c livekit.RoomService) error {
		_, err := c.MutePublishedTrack(ctx, &livekit.MuteRoomTrackRequest{Room: "demo", Identity: "alice", TrackSid: "TR_cam", Muted: true})
		return err
	},
	"UpdateParticipant": func(ctx context.Context, c livekit.RoomService) error {
		_, err := c.UpdateParticipant(ctx, &livekit.UpdateParticipantRequest{Room: "demo", Identity: "alice", Metadata: "x"})
		return err
	},
	"UpdateSubscriptions": func(ctx context.Context, c livekit.RoomService) error {
		_, err := c.UpdateSubscriptions(ctx, &livekit.UpdateSubscriptionsRequest{Room: "demo", Identity: "alice", TrackSids: []string{"TR_x"}})
		return err
	},
	"SendData": func(ctx context.Context, c livekit.RoomService) error {
		_, err := c.SendData(ctx, &livekit.SendDataRequest{Room: "demo", Data: []byte("x"), Kind: livekit.DataPacket_RELIABLE})
		return err
	},
	"UpdateRoomMetadata": func(ctx context.Context, c livekit.RoomService) error {
		_, err := c.UpdateRoomMetadata(ctx, &livekit.UpdateRoomMetadataRequest{Room: "demo", Metadata: "x"})
		return err
	},
}

func TestAdminMethodsNeedRoomAdminForTheRequestsRoom(t *testing.T) {
	url, _ := newServer(t, newMemRooms())
	c := livekit.NewRoomServiceProtobufClient(url, http.DefaultClient)
	refused := map[string]*auth.VideoGrant{
		"participant of the room":  {RoomJoin: true, Room: "demo", CanPublish: ptr(true), CanSubscribe: ptr(true)},
		"roomAdmin of other room":  {RoomAdmin: true, Room: "other"},
		"roomAdmin without a room": {RoomAdmin: true},
		"roomCreate and roomList":  {RoomCreate: true, RoomList: true},
	}
	for who, g := range refused {
		ctx := as(t, token(t, g))
		for method, call := range adminCalls {
			if err := call(ctx, c); codeOf(err) != twirp.PermissionDenied {
				t.Errorf("%s, %s: err = %v, want permission_denied", who, method, err)
			}
		}
	}
	// The same calls with roomAdmin for "demo" pass; RemoveParticipant goes
	// last since it takes alice away.
	ctx := as(t, token(t, adminDemo))
	for _, method := range []string{"ListParticipants", "GetParticipant", "MutePublishedTrack", "UpdateParticipant",
		"UpdateSubscriptions", "SendData", "UpdateRoomMetadata", "RemoveParticipant"} {
		if err := adminCalls[method](ctx, c); err != nil {
			t.Errorf("roomAdmin of demo, %s: %v", method, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestCreateAndDeleteNeedRoomCreateAndListNeedsRoomList(t *testing.T) {
	url, _ := newServer(t, newMemRooms())
	c := livekit.NewRoomServiceJSONClient(url, http.DefaultClient)
	for who, g := range map[string]*auth.VideoGrant{"admin": adminDemo, "lister": lister} {
		ctx := as(t, token(t, g))
		if _, err := c.CreateRoom(ctx, &livekit.CreateRoomRequest{Name: "x"}); codeOf(err) != twirp.PermissionDenied {
			t.Errorf("%s: CreateRoom err = %v, want permission_denied", who, err)
		}
		if _, err := c.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: "demo"}); codeOf(err) != twirp.PermissionDenied {
			t.Errorf("%s: DeleteRoom err = %v, want permission_denied", who, err)
		}
	}
	for who, g := range map[string]*auth.VideoGrant{"admin": adminDemo, "creator": creator} {
		if _, err := c.ListRooms(as(t, token(t, g)), &livekit.ListRoomsRequest{}); codeOf(err) != twirp.PermissionDenied {
			t.Errorf("%s: ListRooms err = %v, want permission_denied", who, err)
		}
	}
}

func TestTokenMissingOrInvalidIsUnauthenticated(t *testing.T) {
	url, _ := newServer(t, newMemRooms())
	c := livekit.NewRoomServiceProtobufClient(url, http.DefaultClient)
	for name, tok := range map[string]string{
		"no token":      "",
		"garbage":       "not-a-jwt",
		"wrong secret":  tokenWith(t, "ffffffffffffffffffffffffffffffff", lister),
		"expired token": expiredToken(t),
	} {
		if _, err := c.ListRooms(as(t, tok), &livekit.ListRoomsRequest{}); codeOf(err) != twirp.Unauthenticated {
			t.Errorf("%s: err = %v, want unauthenticated", name, err)
		}
	}
}

func TestUnknownRoomParticipantOrTrackIsNotFound(t *testing.T) {
	url, _ := newServer(t, newMemRooms())
	c := livekit.NewRoomServiceProtobufClient(url, http.DefaultClient)
	admin := as(t, token(t, adminDemo))
	if _, err := c.GetParticipant(admin, &livekit.RoomParticipantIdentity{Room: "demo", Identity: "bob"}); codeOf(err) != twirp.NotFound {
		t.Errorf("GetParticipant(bob) err = %v, want not_found", err)
	}
	if _, err := c.MutePublishedTrack(admin, &livekit.MuteRoomTrackRequest{Room: "demo", Identity: "alice", TrackSid: "TR_no"}); codeOf(err) != twirp.NotFound {
		t.Errorf("MutePublishedTrack(TR_no) err = %v, want not_found", err)
	}
	if _, err := c.DeleteRoom(as(t, token(t, creator)), &livekit.DeleteRoomRequest{Room: "gone"}); codeOf(err) != twirp.NotFound {
		t.Errorf("DeleteRoom(gone) err = %v, want not_found", err)
	}
}

func TestBadArgumentsAreInvalid(t *testing.T) {
	url, _ := newServer(t, newMemRooms())
	c := livekit.NewRoomServiceProtobufClient(url, http.DefaultClient)
	create := as(t, token(t, creator))
	if _, err := c.CreateRoom(create, &livekit.CreateRoomRequest{Name: "no spaces"}); codeOf(err) != twirp.InvalidArgument {
		t.Errorf("CreateRoom(bad name) err = %v, want invalid_argument", err)
	}
	if _, err := c.ListRooms(as(t, token(t, lister)), &livekit.ListRoomsRequest{Names: []string{"a/b"}}); codeOf(err) != twirp.InvalidArgument {
		t.Errorf("ListRooms(bad name) err = %v, want invalid_argument", err)
	}
	admin := as(t, token(t, adminDemo))
	if _, err := c.GetParticipant(admin, &livekit.RoomParticipantIdentity{Room: "demo"}); codeOf(err) != twirp.InvalidArgument {
		t.Errorf("GetParticipant(no identity) err = %v, want invalid_argument", err)
	}
	// An ErrInvalid from Rooms is the caller's mistake too.
	if _, err := c.SendData(admin, &livekit.SendDataRequest{Room: "demo", Kind: 7}); codeOf(err) != twirp.InvalidArgument {
		t.Errorf("SendData(bad kind) err = %v, want invalid_argument", err)
	}
}

func TestOtherRoomsErrorsAreInternalAndLogged(t *testing.T) {
	rooms := newMemRooms()
	rooms.err = errors.New("store: disk on fire")
	url, logs := newServer(t, rooms)
	c := livekit.NewRoomServiceJSONClient(url, http.DefaultClient)
	_, err := c.ListRooms(as(t, token(t, lister)), &livekit.ListRoomsRequest{})
	if codeOf(err) != twirp.Internal || strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("err = %v, want internal without the cause", err)
	}
	if !strings.Contains(logs.String(), "disk on fire") || !strings.Contains(logs.String(), "method=ListRooms") {
		t.Errorf("log lacks the cause and method:\n%s", logs.String())
	}
}

func TestCloudOnlyMethodsAreUnimplemented(t *testing.T) {
	url, _ := newServer(t, newMemRooms())
	c := livekit.NewRoomServiceProtobufClient(url, http.DefaultClient)
	ctx := as(t, token(t, adminDemo))
	_, err1 := c.ForwardParticipant(ctx, &livekit.ForwardParticipantRequest{Room: "demo", Identity: "alice", DestinationRoom: "b"})
	_, err2 := c.MoveParticipant(ctx, &livekit.MoveParticipantRequest{Room: "demo", Identity: "alice", DestinationRoom: "b"})
	_, err3 := c.PerformRpc(ctx, &livekit.PerformRpcRequest{Room: "demo", DestinationIdentity: "alice", Method: "m"})
	for i, err := range []error{err1, err2, err3} {
		if codeOf(err) != twirp.Unimplemented {
			t.Errorf("call %d: err = %v, want unimplemented", i, err)
		}
	}
}

// post sends body to method as a hand-written client would and returns the
// status and the decoded JSON answer.
func post(t *testing.T, url, method, contentType, token string, body []byte) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/twirp/livekit.RoomService/"+method, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s: answer is not JSON (%v): %q", method, err, raw)
	}
	return resp.StatusCode, out
}

func TestHandWrittenJSONRequests(t *testing.T) {
	url, _ := newServer(t, newMemRooms())
	status, out := post(t, url, "CreateRoom", "application/json", token(t, creator), []byte(`{"name": "stage", "emptyTimeout": 30}`))
	if status != http.StatusOK || out["name"] != "stage" || out["empty_timeout"] != float64(30) {
		t.Fatalf("CreateRoom: %d %v", status, out)
	}
	status, out = post(t, url, "ListRooms", "application/json", token(t, lister), []byte(`{"names": ["demo"]}`))
	rooms, _ := out["rooms"].([]any)
	if status != http.StatusOK || len(rooms) != 1 || rooms[0].(map[string]any)["name"] != "demo" {
		t.Fatalf("ListRooms: %d %v", status, out)
	}
	status, out = post(t, url, "ListParticipants", "application/json; charset=utf-8", token(t, adminDemo), []byte(`{"room":"demo"}`))
	if parts, _ := out["participants"].([]any); status != http.StatusOK || len(parts) != 1 {
		t.Fatalf("ListParticipants: %d %v", status, out)
	}
}

func TestErrorStatusesAndBodies(t *testing.T) {
	url, _ := newServer(t, newMemRooms())
	admin := token(t, adminDemo)
	tests := []struct {
		name, method, contentType, token string
		body                             []byte
		status                           int
		code                             twirp.ErrorCode
	}{
		{"no token", "ListRooms", "application/json", "", []byte(`{}`), 401, twirp.Unauthenticated},
		{"not admin", "ListParticipants", "application/json", token(t, lister), []byte(`{"room":"demo"}`), 403, twirp.PermissionDenied},
		{"not found", "GetParticipant", "application/json", admin, []byte(`{"room":"demo","identity":"bob"}`), 404, twirp.NotFound},
		{"bad room name", "CreateRoom", "application/json", token(t, creator), []byte(`{"name":"a b"}`), 400, twirp.InvalidArgument},
		{"garbage protobuf", "GetParticipant", "application/protobuf", admin, []byte{0x0a, 0x05, 'd'}, 400, twirp.Malformed},
		{"garbage JSON", "GetParticipant", "application/json", admin, []byte(`{"room": "demo",`), 400, twirp.Malformed},
		{"JSON of the wrong type", "GetParticipant", "application/json", admin, []byte(`{"room": 5}`), 400, twirp.Malformed},
		{"JSON not an object", "GetParticipant", "application/json", admin, []byte(`"demo"`), 400, twirp.Malformed},
		{"body too large", "SendData", "application/protobuf", admin, bytes.Repeat([]byte{0}, MaxBodyBytes+1), 400, twirp.Malformed},
		{"unknown content type", "ListRooms", "text/plain", token(t, lister), []byte(`{}`), 404, twirp.BadRoute},
		{"unknown method", "DropTables", "application/json", admin, []byte(`{}`), 404, twirp.BadRoute},
		{"cloud-only method", "MoveParticipant", "application/json", admin, []byte(`{"room":"demo"}`), 501, twirp.Unimplemented},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := post(t, url, tt.method, tt.contentType, tt.token, tt.body)
			if status != tt.status || out["code"] != string(tt.code) || out["msg"] == "" {
				t.Errorf("got %d %v, want %d with code %s and a msg", status, out, tt.status, tt.code)
			}
		})
	}
}
