package rtc

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/twitchtv/twirp"
)

// roomService is LiveKit's own generated twirp client, as server SDKs use it.
func (h *harness) roomService(vg *auth.VideoGrant) (livekit.RoomService, context.Context) {
	h.t.Helper()
	tok, err := auth.NewAccessToken(testKey, testSecret).SetVideoGrant(vg).SetValidFor(time.Hour).ToJWT()
	if err != nil {
		h.t.Fatal(err)
	}
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer "+tok)
	ctx, err := twirp.WithHTTPRequestHeaders(context.Background(), hdr)
	if err != nil {
		h.t.Fatal(err)
	}
	return livekit.NewRoomServiceProtobufClient(h.http.URL, http.DefaultClient), ctx
}

func TestRoomServiceManagesLiveRoomsAndRefusesNonAdmins(t *testing.T) {
	h := newHarness(t, nil)
	admin, ctx := h.roomService(&auth.VideoGrant{RoomAdmin: true, Room: "stage", RoomCreate: true, RoomList: true})

	created, err := admin.CreateRoom(ctx, &livekit.CreateRoomRequest{Name: "stage", MaxParticipants: 3, Metadata: "m0"})
	if err != nil {
		t.Fatal(err)
	}
	if created.GetSid() == "" || created.GetMaxParticipants() != 3 {
		t.Fatalf("created room %v", created)
	}
	alice, _ := h.rawJoin(h.token(everyone("stage", "alice")))
	ghost, _ := h.rawJoin(h.token(grant{room: "stage", identity: "ghost", subscribe: true, hidden: true}))
	_ = ghost
	_, bobJoin := h.rawJoin(h.token(everyone("stage", "bob")))
	for _, p := range bobJoin.GetOtherParticipants() {
		if p.GetIdentity() == "ghost" {
			t.Error("a hidden participant is listed to others")
		}
	}
	if len(bobJoin.GetOtherParticipants()) != 1 {
		t.Errorf("bob sees %d others, want 1 (alice)", len(bobJoin.GetOtherParticipants()))
	}
	if bobJoin.GetRoom().GetSid() != created.GetSid() {
		t.Errorf("room sid %q at join, %q at creation", bobJoin.GetRoom().GetSid(), created.GetSid())
	}
	// The room is full at 3.
	if _, resp, err := dialRaw(h, h.token(everyone("stage", "dave"))); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("a fourth participant in a room of 3 was not refused with 403: %v", err)
	}

	list, err := admin.ListParticipants(ctx, &livekit.ListParticipantsRequest{Room: "stage"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.GetParticipants()); n != 3 {
		t.Errorf("admin lists %d participants, want 3 (the hidden one too)", n)
	}
	rooms, err := admin.ListRooms(ctx, &livekit.ListRoomsRequest{})
	if err != nil || len(rooms.GetRooms()) != 1 || rooms.GetRooms()[0].GetNumParticipants() != 3 {
		t.Errorf("rooms %v, %v", rooms, err)
	}

	if _, err := admin.UpdateRoomMetadata(ctx, &livekit.UpdateRoomMetadataRequest{Room: "stage", Metadata: "m1"}); err != nil {
		t.Fatal(err)
	}
	up := readResponse(t, alice, func(r *livekit.SignalResponse) bool { return r.GetRoomUpdate() != nil })
	if up.GetRoomUpdate().GetRoom().GetMetadata() != "m1" {
		t.Errorf("room update %v", up.GetRoomUpdate())
	}

	p, err := admin.UpdateParticipant(ctx, &livekit.UpdateParticipantRequest{Room: "stage", Identity: "alice", Metadata: "speaker"})
	if err != nil || p.GetMetadata() != "speaker" {
		t.Fatalf("update participant: %v, %v", p, err)
	}

	if _, err := admin.RemoveParticipant(ctx, &livekit.RoomParticipantIdentity{Room: "stage", Identity: "alice"}); err != nil {
		t.Fatal(err)
	}
	leave := readResponse(t, alice, func(r *livekit.SignalResponse) bool { return r.GetLeave() != nil })
	if leave.GetLeave().GetReason() != livekit.DisconnectReason_PARTICIPANT_REMOVED {
		t.Errorf("alice left with %v", leave.GetLeave().GetReason())
	}
	if _, err := admin.GetParticipant(ctx, &livekit.RoomParticipantIdentity{Room: "stage", Identity: "alice"}); !isTwirp(err, twirp.NotFound) {
		t.Errorf("removed participant: %v, want not found", err)
	}

	// A participant's token is not an admin's.
	user, uctx := h.roomService(&auth.VideoGrant{RoomJoin: true, Room: "stage"})
	if _, err := user.RemoveParticipant(uctx, &livekit.RoomParticipantIdentity{Room: "stage", Identity: "bob"}); !isTwirp(err, twirp.PermissionDenied) {
		t.Errorf("non-admin removal: %v, want permission denied", err)
	}
	if _, err := user.ListRooms(uctx, &livekit.ListRoomsRequest{}); !isTwirp(err, twirp.PermissionDenied) {
		t.Errorf("non-admin list: %v, want permission denied", err)
	}

	if _, err := admin.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: "stage"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ListParticipants(ctx, &livekit.ListParticipantsRequest{Room: "stage"}); !isTwirp(err, twirp.NotFound) {
		t.Errorf("deleted room: %v, want not found", err)
	}

	// Webhook events, in the order the room lived them.
	var got []string
	eventually(t, 5*time.Second, "room_finished", func() bool {
		for {
			select {
			case ev := <-h.events:
				got = append(got, ev.GetEvent()+":"+ev.GetParticipant().GetIdentity())
				if ev.GetEvent() == "room_finished" {
					return true
				}
			default:
				return false
			}
		}
	})
	want := map[string]bool{"room_started:": true, "participant_joined:alice": true, "participant_joined:ghost": true,
		"participant_joined:bob": true, "participant_left:alice": true, "room_finished:": true}
	for _, e := range got {
		delete(want, e)
	}
	if len(want) > 0 || got[0] != "room_started:" {
		t.Errorf("events %v; missing %v", got, want)
	}
}

func isTwirp(err error, code twirp.ErrorCode) bool {
	var te twirp.Error
	return errors.As(err, &te) && te.Code() == code
}
