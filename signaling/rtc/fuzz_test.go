package rtc

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"
)

// FuzzSignalRequest sends arbitrary frames to a joined participant's signal
// connection: the server must answer or close, and never crash or hang.
func FuzzSignalRequest(f *testing.F) {
	seeds := []*livekit.SignalRequest{
		{Message: &livekit.SignalRequest_Offer{Offer: &livekit.SessionDescription{Type: "offer", Sdp: "v=0\r\nbogus"}}},
		{Message: &livekit.SignalRequest_Answer{Answer: &livekit.SessionDescription{Type: "answer", Sdp: "", Id: 7}}},
		{Message: &livekit.SignalRequest_Trickle{Trickle: &livekit.TrickleRequest{CandidateInit: `{"candidate":"candidate:1 1 UDP 1 1.2.3.4 5 typ host"`}}},
		{Message: &livekit.SignalRequest_Trickle{Trickle: &livekit.TrickleRequest{CandidateInit: `{"candidate":"x"}`, Target: livekit.SignalTarget_SUBSCRIBER}}},
		{Message: &livekit.SignalRequest_AddTrack{AddTrack: &livekit.AddTrackRequest{Cid: "c", Type: livekit.TrackType_VIDEO,
			Layers: []*livekit.VideoLayer{{Quality: 9, Width: 1}}}}},
		{Message: &livekit.SignalRequest_AddTrack{AddTrack: &livekit.AddTrackRequest{}}},
		{Message: &livekit.SignalRequest_Mute{Mute: &livekit.MuteTrackRequest{Sid: "TR_nope", Muted: true}}},
		{Message: &livekit.SignalRequest_Subscription{Subscription: &livekit.UpdateSubscription{TrackSids: []string{"TR_x"}, Subscribe: true}}},
		{Message: &livekit.SignalRequest_TrackSetting{TrackSetting: &livekit.UpdateTrackSettings{TrackSids: []string{"TR_x"}, Width: 1 << 31, Quality: 99}}},
		{Message: &livekit.SignalRequest_UpdateMetadata{UpdateMetadata: &livekit.UpdateParticipantMetadata{Attributes: map[string]string{"": ""}}}},
		{Message: &livekit.SignalRequest_SyncState{SyncState: &livekit.SyncState{}}},
		{Message: &livekit.SignalRequest_PublishDataTrackRequest{PublishDataTrackRequest: &livekit.PublishDataTrackRequest{}}},
		{Message: &livekit.SignalRequest_Leave{Leave: &livekit.LeaveRequest{}}},
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xff, 0xff, 0x01})
	h := newHarness(f, nil)
	tok := h.token(everyone("fuzz", "fuzzer"))
	ping, _ := proto.Marshal(&livekit.SignalRequest{Message: &livekit.SignalRequest_PingReq{PingReq: &livekit.Ping{Timestamp: 1}}})
	var ws *websocket.Conn
	f.Cleanup(func() {
		if ws != nil {
			ws.Close()
		}
	})
	f.Fuzz(func(t *testing.T, frame []byte) {
		if ws == nil {
			var err error
			if ws, _, err = websocket.DefaultDialer.Dial(h.wsURL("/rtc", tok), nil); err != nil {
				t.Fatalf("join: %v", err)
			}
			readResponse(t, ws, func(r *livekit.SignalResponse) bool { return r.GetJoin() != nil })
		}
		if ws.WriteMessage(websocket.BinaryMessage, frame) != nil || ws.WriteMessage(websocket.BinaryMessage, ping) != nil {
			ws.Close()
			ws = nil
			return
		}
		// The frame was handled once the ping after it is answered, or the
		// server closed the connection.
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				if websocket.IsUnexpectedCloseError(err, websocket.CloseNormalClosure, websocket.CloseInvalidFramePayloadData,
					websocket.CloseMessageTooBig, websocket.ClosePolicyViolation) {
					t.Fatalf("connection ended without a clear close: %v", err)
				}
				ws.Close()
				ws = nil
				return
			}
			res := &livekit.SignalResponse{}
			if proto.Unmarshal(b, res) == nil && res.GetPongResp() != nil {
				return
			}
		}
	})
}
