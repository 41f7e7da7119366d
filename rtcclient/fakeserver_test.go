package rtcclient

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livekit/protocol/livekit"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/proto"
)

// fakeServer is a test double speaking just enough of /rtc for the client's
// tests: it joins and resumes sessions, answers publisher offers and
// receives their media with pion, offers the subscriber one video track and
// a _reliable channel, and echoes data packets back. The token is the
// identity, except for a few that make it misbehave.
type fakeServer struct {
	t   *testing.T
	srv *httptest.Server
	api *webrtc.API

	// Knobs, set before the client joins.
	subscriberPrimary   bool
	withRemoteTrack     bool // offer the subscriber a video track from "other"
	pingInterval        int32
	pingTimeout         int32
	noSubscriberRestart atomic.Bool  // set at any time
	ignoreOffers        atomic.Int32 // publisher offers left unanswered

	mu       sync.Mutex
	sessions map[string]*fakeSession // by participant SID
	queries  []url.Values
}

type fakeSession struct {
	s        *fakeServer
	sid      string
	identity string
	pub, sub *webrtc.PeerConnection
	subDC    *webrtc.DataChannel
	stop     chan struct{}

	wmu    sync.Mutex
	conn   *websocket.Conn
	silent bool // drop every response, as a dead server

	mu          sync.Mutex
	requests    []*livekit.SignalRequest
	offerID     uint32
	pubRemote   bool
	subRemote   bool
	pubPending  []webrtc.ICECandidateInit
	subPending  []webrtc.ICECandidateInit
	ridPackets  map[string]int // publisher media received, by kind:rid ("video:f", "audio:")
	data        []*livekit.DataPacket
	reconnected int
}

func newFakeServer(t *testing.T) *fakeServer {
	api, err := NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{t: t, api: api, sessions: map[string]*fakeSession{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveRTC))
	t.Cleanup(func() {
		s.srv.CloseClientConnections()
		s.srv.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, fs := range s.sessions {
			fs.close()
		}
	})
	return s
}

func (s *fakeServer) URL() string { return s.srv.URL }

func (s *fakeServer) session(sid string) *fakeSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[sid]
}

func (s *fakeServer) lastQuery() url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[len(s.queries)-1]
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (s *fakeServer) serveRTC(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/rtc" {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	s.mu.Lock()
	s.queries = append(s.queries, q)
	s.mu.Unlock()
	token := q.Get("access_token")
	switch token {
	case "bad":
		http.Error(w, `{"error":"invalid token"}`, http.StatusUnauthorized)
		return
	case "forbidden":
		http.Error(w, `{"error":"no room join grant"}`, http.StatusForbidden)
		return
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	switch token {
	case "leave":
		writeResponse(conn, &livekit.SignalResponse{Message: &livekit.SignalResponse_Leave{Leave: &livekit.LeaveRequest{
			Reason: livekit.DisconnectReason_JOIN_FAILURE, Action: livekit.LeaveRequest_DISCONNECT,
		}}})
		_ = conn.Close()
		return
	case "pong":
		writeResponse(conn, &livekit.SignalResponse{Message: &livekit.SignalResponse_Pong{Pong: 1}})
		_ = conn.Close()
		return
	}
	if q.Get("reconnect") == "1" {
		fs := s.session(q.Get("sid"))
		if fs == nil {
			writeResponse(conn, &livekit.SignalResponse{Message: &livekit.SignalResponse_Leave{Leave: &livekit.LeaveRequest{
				Reason: livekit.DisconnectReason_STATE_MISMATCH,
			}}})
			_ = conn.Close()
			return
		}
		fs.resume(conn)
		return
	}
	fs, err := s.newSession(token, conn)
	if err != nil {
		s.t.Errorf("fake server: %v", err)
		_ = conn.Close()
		return
	}
	fs.readLoop(conn)
}

func writeResponse(conn *websocket.Conn, res *livekit.SignalResponse) {
	b, _ := proto.Marshal(res)
	_ = conn.WriteMessage(websocket.BinaryMessage, b)
}

func (s *fakeServer) newSession(identity string, conn *websocket.Conn) (*fakeSession, error) {
	fs := &fakeSession{s: s, sid: "PA_" + identity, identity: identity, conn: conn,
		stop: make(chan struct{}), ridPackets: map[string]int{}}
	var err error
	if fs.pub, err = s.api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		return nil, err
	}
	if fs.sub, err = s.api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		return nil, err
	}
	fs.pub.OnICECandidate(fs.trickle(livekit.SignalTarget_PUBLISHER))
	fs.sub.OnICECandidate(fs.trickle(livekit.SignalTarget_SUBSCRIBER))
	fs.pub.OnTrack(fs.readPublished)
	fs.pub.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnMessage(func(m webrtc.DataChannelMessage) { fs.echo(m.Data) })
	})
	if fs.subDC, err = fs.sub.CreateDataChannel(ReliableLabel, nil); err != nil {
		return nil, err
	}
	join := &livekit.JoinResponse{
		Room:              &livekit.Room{Sid: "RM_test", Name: "test"},
		Participant:       &livekit.ParticipantInfo{Sid: fs.sid, Identity: identity, State: livekit.ParticipantInfo_JOINED},
		SubscriberPrimary: s.subscriberPrimary,
		PingInterval:      s.pingInterval,
		PingTimeout:       s.pingTimeout,
		ServerVersion:     "fake",
	}
	if s.withRemoteTrack {
		track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "TR_remote", "PA_other|TR_remote")
		if err != nil {
			return nil, err
		}
		if _, err := fs.sub.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			return nil, err
		}
		join.OtherParticipants = []*livekit.ParticipantInfo{{
			Sid: "PA_other", Identity: "other", State: livekit.ParticipantInfo_ACTIVE,
			Tracks: []*livekit.TrackInfo{{Sid: "TR_remote", Type: livekit.TrackType_VIDEO, Name: "camera"}},
		}}
		go fs.sendMedia(track)
	}
	s.mu.Lock()
	s.sessions[fs.sid] = fs
	s.mu.Unlock()
	fs.write(&livekit.SignalResponse{Message: &livekit.SignalResponse_Join{Join: join}})
	fs.offerSubscriber(false)
	return fs, nil
}

func (fs *fakeSession) trickle(target livekit.SignalTarget) func(*webrtc.ICECandidate) {
	return func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		b, _ := json.Marshal(c.ToJSON())
		fs.write(&livekit.SignalResponse{Message: &livekit.SignalResponse_Trickle{Trickle: &livekit.TrickleRequest{
			CandidateInit: string(b), Target: target,
		}}})
	}
}

func (fs *fakeSession) write(res *livekit.SignalResponse) {
	fs.wmu.Lock()
	defer fs.wmu.Unlock()
	if fs.silent {
		return
	}
	writeResponse(fs.conn, res)
}

// silence stops every response, as a hung server.
func (fs *fakeSession) silence() {
	fs.wmu.Lock()
	fs.silent = true
	fs.wmu.Unlock()
}

func (fs *fakeSession) offerSubscriber(restart bool) {
	offer, err := fs.sub.CreateOffer(&webrtc.OfferOptions{ICERestart: restart})
	if err != nil {
		fs.s.t.Errorf("fake server: subscriber offer: %v", err)
		return
	}
	fs.mu.Lock()
	fs.offerID++
	id := fs.offerID
	fs.mu.Unlock()
	// Candidates wait for the write lock, so the offer goes first.
	fs.wmu.Lock()
	defer fs.wmu.Unlock()
	if err := fs.sub.SetLocalDescription(offer); err != nil {
		fs.s.t.Errorf("fake server: subscriber offer: %v", err)
		return
	}
	if !fs.silent {
		writeResponse(fs.conn, &livekit.SignalResponse{Message: &livekit.SignalResponse_Offer{Offer: &livekit.SessionDescription{
			Type: "offer", Sdp: offer.SDP, Id: id, MidToTrackId: map[string]string{},
		}}})
	}
}

func (fs *fakeSession) sendMedia(track *webrtc.TrackLocalStaticRTP) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, Marker: true}, Payload: []byte{0x10, 0x00, 0x00, 0x9d, 0x01, 0x2a}}
	for {
		select {
		case <-fs.stop:
			return
		case <-tick.C:
		}
		pkt.SequenceNumber++
		pkt.Timestamp += 1800
		_ = track.WriteRTP(pkt)
	}
}

func (fs *fakeSession) readPublished(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := tr.Read(buf); err != nil {
			return
		}
		fs.mu.Lock()
		fs.ridPackets[tr.Kind().String()+":"+tr.RID()]++
		fs.mu.Unlock()
	}
}

// echo records a data packet from the client and sends it back on the
// subscriber's _reliable channel, stamped with the sender.
func (fs *fakeSession) echo(b []byte) {
	dp := &livekit.DataPacket{}
	if err := proto.Unmarshal(b, dp); err != nil {
		fs.s.t.Errorf("fake server: data packet: %v", err)
		return
	}
	fs.mu.Lock()
	fs.data = append(fs.data, dp)
	fs.mu.Unlock()
	dp.ParticipantIdentity = fs.identity
	dp.ParticipantSid = fs.sid
	out, _ := proto.Marshal(dp)
	_ = fs.subDC.Send(out)
}

func (fs *fakeSession) resume(conn *websocket.Conn) {
	fs.wmu.Lock()
	_ = fs.conn.Close()
	fs.conn = conn
	fs.silent = false
	fs.wmu.Unlock()
	fs.mu.Lock()
	fs.reconnected++
	fs.mu.Unlock()
	fs.write(&livekit.SignalResponse{Message: &livekit.SignalResponse_Reconnect{Reconnect: &livekit.ReconnectResponse{}}})
	if !fs.s.noSubscriberRestart.Load() {
		fs.offerSubscriber(true)
	}
	fs.readLoop(conn)
}

func (fs *fakeSession) readLoop(conn *websocket.Conn) {
	for {
		_, b, err := conn.ReadMessage()
		if err != nil {
			return
		}
		req := &livekit.SignalRequest{}
		if err := proto.Unmarshal(b, req); err != nil {
			fs.s.t.Errorf("fake server: request: %v", err)
			return
		}
		fs.mu.Lock()
		fs.requests = append(fs.requests, req)
		fs.mu.Unlock()
		fs.handle(req)
	}
}

func (fs *fakeSession) handle(req *livekit.SignalRequest) {
	switch m := req.Message.(type) {
	case *livekit.SignalRequest_Offer:
		if fs.s.ignoreOffers.Add(-1) >= 0 {
			return
		}
		fs.answerPublisher(m.Offer)
	case *livekit.SignalRequest_Answer:
		if err := fs.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.Answer.Sdp}); err != nil {
			fs.s.t.Errorf("fake server: subscriber answer: %v", err)
			return
		}
		fs.mu.Lock()
		fs.subRemote = true
		pending := fs.subPending
		fs.subPending = nil
		fs.mu.Unlock()
		for _, c := range pending {
			_ = fs.sub.AddICECandidate(c)
		}
	case *livekit.SignalRequest_Trickle:
		var c webrtc.ICECandidateInit
		if err := json.Unmarshal([]byte(m.Trickle.CandidateInit), &c); err != nil {
			fs.s.t.Errorf("fake server: trickle %q: %v", m.Trickle.CandidateInit, err)
			return
		}
		fs.addCandidate(m.Trickle.Target, c)
	case *livekit.SignalRequest_AddTrack:
		fs.addTrack(m.AddTrack)
	case *livekit.SignalRequest_PingReq:
		fs.write(&livekit.SignalResponse{Message: &livekit.SignalResponse_PongResp{PongResp: &livekit.Pong{
			LastPingTimestamp: m.PingReq.Timestamp, Timestamp: time.Now().UnixMilli(),
		}}})
	}
}

func (fs *fakeSession) addCandidate(target livekit.SignalTarget, c webrtc.ICECandidateInit) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	pc, ready, pending := fs.pub, fs.pubRemote, &fs.pubPending
	if target == livekit.SignalTarget_SUBSCRIBER {
		pc, ready, pending = fs.sub, fs.subRemote, &fs.subPending
	}
	if !ready {
		*pending = append(*pending, c)
		return
	}
	_ = pc.AddICECandidate(c)
}

func (fs *fakeSession) answerPublisher(sd *livekit.SessionDescription) {
	if err := fs.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sd.Sdp}); err != nil {
		fs.s.t.Errorf("fake server: publisher offer: %v", err)
		return
	}
	fs.mu.Lock()
	fs.pubRemote = true
	pending := fs.pubPending
	fs.pubPending = nil
	fs.mu.Unlock()
	for _, c := range pending {
		_ = fs.pub.AddICECandidate(c)
	}
	answer, err := fs.pub.CreateAnswer(nil)
	if err != nil {
		fs.s.t.Errorf("fake server: publisher answer: %v", err)
		return
	}
	fs.wmu.Lock()
	defer fs.wmu.Unlock()
	if err := fs.pub.SetLocalDescription(answer); err != nil {
		fs.s.t.Errorf("fake server: publisher answer: %v", err)
		return
	}
	if !fs.silent {
		writeResponse(fs.conn, &livekit.SignalResponse{Message: &livekit.SignalResponse_Answer{Answer: &livekit.SessionDescription{
			Type: "answer", Sdp: answer.SDP, Id: sd.Id,
		}}})
	}
}

// addTrack answers an AddTrackRequest by its name: "refused" gets a
// NOT_ALLOWED request_response, "kick" a leave, "ignored" nothing.
func (fs *fakeSession) addTrack(req *livekit.AddTrackRequest) {
	switch req.Name {
	case "refused":
		fs.write(&livekit.SignalResponse{Message: &livekit.SignalResponse_RequestResponse{RequestResponse: &livekit.RequestResponse{
			Reason: livekit.RequestResponse_NOT_ALLOWED, Message: "no publish grant",
			Request: &livekit.RequestResponse_AddTrack{AddTrack: req},
		}}})
	case "kick":
		fs.write(&livekit.SignalResponse{Message: &livekit.SignalResponse_Leave{Leave: &livekit.LeaveRequest{
			Reason: livekit.DisconnectReason_STATE_MISMATCH, Action: livekit.LeaveRequest_DISCONNECT,
		}}})
	case "ignored":
	default:
		fs.write(&livekit.SignalResponse{Message: &livekit.SignalResponse_TrackPublished{TrackPublished: &livekit.TrackPublishedResponse{
			Cid: req.Cid,
			Track: &livekit.TrackInfo{
				Sid: "TR_" + strings.ReplaceAll(req.Cid, "-", "")[:12], Name: req.Name, Type: req.Type, Source: req.Source,
				Width: req.Width, Height: req.Height, Simulcast: len(req.Layers) > 1, Layers: req.Layers,
			},
		}}})
	}
}

// requestsOf returns the requests received so far whose message is of the
// same type as sample.
func requestsOf[T any](fs *fakeSession) []T {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var out []T
	for _, r := range fs.requests {
		if m, ok := r.Message.(T); ok {
			out = append(out, m)
		}
	}
	return out
}

func (fs *fakeSession) reconnects() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.reconnected
}

func (fs *fakeSession) packets() map[string]int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := map[string]int{}
	for k, v := range fs.ridPackets {
		out[k] = v
	}
	return out
}

func (fs *fakeSession) close() {
	select {
	case <-fs.stop:
	default:
		close(fs.stop)
	}
	_ = fs.pub.Close()
	_ = fs.sub.Close()
}
