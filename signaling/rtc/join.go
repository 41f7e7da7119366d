package rtc

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
	"github.com/starling-sfu/starling/access"
	"github.com/starling-sfu/starling/sfu"
)

var upgrader = websocket.Upgrader{
	ReadBufferSize:  16 << 10,
	WriteBufferSize: 16 << 10,
	// Access tokens, not origins, decide who joins, as in LiveKit: rooms
	// are joined from pages on any origin.
	CheckOrigin: func(*http.Request) bool { return true },
}

// httpError is a refusal before the websocket opens.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func refuse(code int, msg string) error { return &httpError{code: code, msg: msg} }

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	s.metrics.Refused.Add(1)
	var he *httpError
	if !errors.As(err, &he) {
		he = &httpError{code: http.StatusInternalServerError, msg: "internal error"}
		s.log.Error("join failed", "err", err)
	}
	s.log.Info("join refused", "status", he.code, "reason", he.msg, "remote", r.RemoteAddr)
	writeError(w, he.code, he.msg)
}

// admitToken checks a join's access token: it must allow joining a named
// room as a named identity.
func (s *Server) admitToken(r *http.Request) (access.Grant, string, error) {
	tok := r.URL.Query().Get("access_token")
	if tok == "" {
		if h := r.Header.Get("Authorization"); strings.HasPrefix(strings.ToLower(h), "bearer ") {
			tok = strings.TrimSpace(h[len("bearer "):])
		}
	}
	if tok == "" {
		return access.Grant{}, "", refuse(http.StatusUnauthorized, "missing access_token")
	}
	g, err := s.opts.Verifier.Verify(tok)
	if err != nil {
		return access.Grant{}, "", refuse(http.StatusUnauthorized, err.Error())
	}
	switch {
	case !g.RoomJoin:
		return g, "", refuse(http.StatusForbidden, "token does not grant roomJoin")
	case !access.ValidName(g.Room):
		return g, "", refuse(http.StatusForbidden, "token names no valid room")
	case g.Identity == "":
		return g, "", refuse(http.StatusForbidden, "token has no identity")
	}
	return g, tok, nil
}

// handleValidate answers livekit-client's check after a failed websocket:
// 200 when the token could join, else the reason with its status.
func (s *Server) handleValidate(w http.ResponseWriter, r *http.Request) {
	g, _, err := s.admitToken(r)
	if err == nil {
		err = s.checkCapacity(g.Room, "")
	}
	if err != nil {
		var he *httpError
		if errors.As(err, &he) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(he.code)
			_, _ = w.Write([]byte(he.msg))
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("success"))
}

// checkCapacity refuses a join when the node or the room is full.
func (s *Server) checkCapacity(roomName, resumingSID string) error {
	s.mu.Lock()
	closed, n := s.closed, len(s.sessions)
	s.mu.Unlock()
	if closed {
		return refuse(http.StatusServiceUnavailable, "server is shutting down")
	}
	if resumingSID != "" {
		return nil
	}
	if n >= s.opts.MaxSessions {
		return refuse(http.StatusServiceUnavailable, "server is full")
	}
	max := uint32(s.opts.MaxParticipants)
	if r, ok := s.lookupRoom(roomName); ok {
		r.mu.Lock()
		if r.maxParticipants > 0 {
			max = r.maxParticipants
		}
		sr := r.sfuRoom
		r.mu.Unlock()
		if max > 0 && sr != nil && uint32(len(sr.Participants())) >= max {
			return refuse(http.StatusForbidden, "room "+roomName+" is full")
		}
	}
	return nil
}

// handleJoin is GET /rtc: a new participant joins, or one whose websocket
// dropped resumes (reconnect=1&sid=…).
func (s *Server) handleJoin(w http.ResponseWriter, r *http.Request) {
	g, tok, err := s.admitToken(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	resume := q.Get("reconnect") == "1" && q.Get("sid") != ""
	if err := s.checkCapacity(g.Room, q.Get("sid")); err != nil {
		s.fail(w, r, err)
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.log.Debug("websocket upgrade failed", "err", err)
		return
	}
	ws.SetReadLimit(s.opts.MaxMessageBytes)
	c := newSignalConn(ws)
	var sess *session
	if resume {
		sess = s.resume(c, g, tok, q.Get("sid"))
	} else {
		sess, err = s.join(c, g, tok, r)
		if err != nil {
			s.log.Error("join failed", "room", g.Room, "participant", g.Identity, "err", err)
			c.close(websocket.CloseInternalServerErr, "join failed")
			return
		}
	}
	if sess == nil {
		return
	}
	sess.readLoop(c)
}

// join makes a new session for a verified token and sends the JoinResponse.
func (s *Server) join(c *signalConn, g access.Grant, tok string, r *http.Request) (*session, error) {
	q := r.URL.Query()
	rm := s.roomFor(g.Room)
	sess := &session{
		srv: s, room: rm, sid: sfu.NewParticipantSID(), identity: g.Identity, created: time.Now(),
		autoSubscribe: q.Get("auto_subscribe") != "0",
		client:        clientInfo(q),
		grant:         g, token: tok, conn: c,
		name: g.Name, metadata: g.Metadata, attributes: g.Attributes, perm: permissionOf(g),
		version: 1, state: livekit.ParticipantInfo_JOINED, refreshedAt: time.Now(), joining: true,
		published: map[string]*publication{}, downs: map[string]*subscription{}, subscribing: map[string]bool{},
		done: make(chan struct{}),
	}
	sess.log = s.log.With("room", g.Room, "participant", g.Identity, "sid", sess.sid)
	var err error
	if sess.pub, err = s.opts.Engine.Publisher.NewPeerConnection(webrtc.Configuration{}); err != nil {
		return nil, err
	}
	if sess.sub, err = s.opts.Engine.Subscriber.NewPeerConnection(webrtc.Configuration{}); err != nil {
		_ = sess.pub.Close()
		return nil, err
	}
	sess.subscriber = s.opts.SFU.NewSubscriber(g.Identity)
	sess.setupPublisher()
	sess.setupSubscriber()

	s.mu.Lock()
	s.sessions[sess.sid] = sess
	s.mu.Unlock()
	rm.mu.Lock()
	rm.sessions[sess.sid] = sess
	rm.mu.Unlock()
	sr := s.opts.SFU.Room(g.Room)
	rm.mu.Lock()
	if rm.sfuRoom == nil {
		// The room's start event may not be applied yet; the JoinResponse
		// names the room as it is.
		rm.sfuRoom = sr
	}
	if rm.sid == "" {
		rm.sid, rm.created = sr.SID(), sr.Created()
	}
	rm.mu.Unlock()
	part := sr.JoinWithSID(g.Identity, sess.sid, func() {
		go sess.leave(livekit.DisconnectReason_DUPLICATE_IDENTITY, "replaced by a new session of the same identity")
	})
	sess.mu.Lock()
	sess.part = part
	sess.mu.Unlock()

	info := sess.info()
	join := &livekit.JoinResponse{
		Room:                rm.proto(),
		Participant:         info,
		OtherParticipants:   rm.others(sess.sid),
		ServerVersion:       s.opts.Version,
		IceServers:          s.iceServers(g.Identity),
		SubscriberPrimary:   false,
		ClientConfiguration: &livekit.ClientConfiguration{ResumeConnection: livekit.ClientConfigSetting_ENABLED},
		ServerInfo:          s.serverInfo(),
		PingTimeout:         int32(s.opts.PingTimeout / time.Second),
		PingInterval:        int32(s.opts.PingInterval / time.Second),
	}
	c.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Join{Join: join}})
	sess.mu.Lock()
	backlog := sess.backlog
	sess.joining, sess.backlog = false, nil
	sess.mu.Unlock()
	for _, m := range backlog {
		c.send(m)
	}
	s.metrics.Joins.Add(1)
	sess.log.Info("participant joined over /rtc", "sdk", sess.client.GetSdk().String(), "version", sess.client.GetVersion(),
		"protocol", sess.client.GetProtocol(), "auto_subscribe", sess.autoSubscribe)
	sess.sendRefreshToken()

	// What the room publishes already.
	for _, p := range s.opts.SFU.Room(g.Room).Participants() {
		if p.SID() == sess.sid {
			continue
		}
		for _, t := range p.Tracks() {
			sess.offerTrack(p, t)
		}
	}
	return sess, nil
}

// resume attaches a new websocket to a session whose websocket dropped.
// Without such a session the client is told to join afresh.
func (s *Server) resume(c *signalConn, g access.Grant, tok, sid string) *session {
	sess, ok := s.session(sid)
	if !ok || sess.identity != g.Identity || sess.room.name != g.Room {
		s.log.Info("resume refused: no such session; the client must rejoin", "room", g.Room, "participant", g.Identity, "sid", sid)
		c.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Leave{Leave: &livekit.LeaveRequest{
			CanReconnect: true, Reason: livekit.DisconnectReason_STATE_MISMATCH, Action: livekit.LeaveRequest_RECONNECT}}})
		c.close(closeNormal, "no session to resume")
		return nil
	}
	sess.mu.Lock()
	old := sess.conn
	sess.conn, sess.lost = c, time.Time{}
	sess.grant, sess.token = g, tok
	sess.mu.Unlock()
	if old != nil {
		old.close(closeNormal, "replaced by a resumed connection")
	}
	s.metrics.Resumes.Add(1)
	c.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Reconnect{Reconnect: &livekit.ReconnectResponse{
		IceServers:          s.iceServers(g.Identity),
		ClientConfiguration: &livekit.ClientConfiguration{ResumeConnection: livekit.ClientConfigSetting_ENABLED},
		ServerInfo:          s.serverInfo(),
	}}})
	sess.log.Info("participant resumed")
	// Catch up on what changed while the websocket was down.
	if others := sess.room.others(sess.sid); len(others) > 0 {
		c.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Update{Update: &livekit.ParticipantUpdate{Participants: others}}})
	}
	sess.afterResume()
	return sess
}

func (s *Server) serverInfo() *livekit.ServerInfo {
	return &livekit.ServerInfo{Edition: livekit.ServerInfo_Standard, Version: s.opts.Version, Protocol: ProtocolVersion, NodeId: s.opts.NodeID}
}

// iceServers converts the configured STUN/TURN servers to the protocol's.
func (s *Server) iceServers(identity string) []*livekit.ICEServer {
	if s.opts.ICEServers == nil {
		return nil
	}
	var out []*livekit.ICEServer
	for _, is := range s.opts.ICEServers(identity) {
		cred, _ := is.Credential.(string)
		out = append(out, &livekit.ICEServer{Urls: is.URLs, Username: is.Username, Credential: cred})
	}
	return out
}

func clientInfo(q map[string][]string) *livekit.ClientInfo {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	ci := &livekit.ClientInfo{Version: get("version"), Os: get("os"), OsVersion: get("os_version"),
		Browser: get("browser"), BrowserVersion: get("browser_version"), DeviceModel: get("device_model"), Network: get("network")}
	if v, ok := livekit.ClientInfo_SDK_value[upper(get("sdk"))]; ok {
		ci.Sdk = livekit.ClientInfo_SDK(v)
	}
	var p int32
	for _, ch := range get("protocol") {
		if ch < '0' || ch > '9' || p > 1000 {
			break
		}
		p = p*10 + ch - '0'
	}
	ci.Protocol = p
	return ci
}

func upper(s string) string { return strings.ToUpper(s) }
