package rtc

import (
	"log/slog"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
	"github.com/starling-sfu/starling/access"
	"github.com/starling-sfu/starling/sfu"
)

// session is one participant that joined through /rtc: its websocket
// (replaced when the client resumes), its two peer connections and what it
// publishes and receives.
type session struct {
	srv      *Server
	room     *room
	sid      string
	identity string
	log      *slog.Logger
	created  time.Time

	autoSubscribe bool
	client        *livekit.ClientInfo

	part       *sfu.Participant // set once joined, under mu
	pub, sub   *webrtc.PeerConnection
	subscriber *sfu.Subscriber

	mu    sync.Mutex
	grant access.Grant
	token string
	conn  *signalConn // nil while the websocket is down
	// joining holds what the room sends before the JoinResponse is out:
	// a client's first message must be the JoinResponse.
	joining     bool
	backlog     []*livekit.SignalResponse
	lost        time.Time // when it went down
	name        string
	metadata    string
	attributes  map[string]string
	perm        *livekit.ParticipantPermission
	version     uint32
	state       livekit.ParticipantInfo_State
	published   map[string]*publication // by track sid
	downs       map[string]*subscription
	subscribing map[string]bool        // track sids being subscribed to
	dcs         [2]*webrtc.DataChannel // the client's reliable and lossy channels
	neg         negotiation
	pendingICE  [2][]webrtc.ICECandidateInit // candidates that came before a remote description
	refreshedAt time.Time
	remb        bool // the publisher is being told the bitrate the SFU wants
	closed      bool
	done        chan struct{}
}

// publication is a track the participant announced with AddTrack.
type publication struct {
	cid  string
	info *livekit.TrackInfo
	// track is the SFU's track once media arrived.
	track *sfu.Track
	// enabled is the highest layer the publisher was last told to send
	// (dynacast); lowerSince is when fewer layers became enough.
	enabled    int
	lowerSince time.Time
}

// subscription is one track the participant receives.
type subscription struct {
	down   *sfu.DownTrack
	sender *webrtc.RTPSender
	owner  *sfu.Participant
}

// negotiation is the state of the server's offers on the subscriber
// connection: one outstanding at a time.
type negotiation struct {
	offerID     uint32
	waiting     bool // an offer awaits its answer
	again       bool // another offer is needed once it comes
	iceRestart  bool
	lastAnswer  time.Time
	offerSentAt time.Time
}

// info is the participant as the protocol describes it.
func (s *session) info() *livekit.ParticipantInfo {
	s.mu.Lock()
	info := &livekit.ParticipantInfo{
		Sid:        s.sid,
		Identity:   s.identity,
		Name:       s.name,
		State:      s.state,
		Metadata:   s.metadata,
		Attributes: s.attributes,
		JoinedAt:   s.created.Unix(),
		JoinedAtMs: s.created.UnixMilli(),
		Version:    s.version,
		Permission: s.perm,
		Kind:       kindOf(s.grant.Kind),
	}
	s.mu.Unlock()
	if part := s.participant(); part != nil {
		for _, t := range part.Tracks() {
			ti := s.publishedInfo(t.SID())
			if ti == nil {
				ti = mediaTrackInfo(t)
			}
			info.Tracks = append(info.Tracks, ti)
		}
	}
	info.IsPublisher = len(info.Tracks) > 0
	return info
}

// participant is the session's SFU participant; nil until it joined.
func (s *session) participant() *sfu.Participant {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.part
}

// publishedInfo is a copy of what the participant announced of track sid,
// with what the media told since; nil for a track it did not announce.
func (s *session) publishedInfo(sid string) *livekit.TrackInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.published[sid]
	if !ok {
		return nil
	}
	ti := cloneTrackInfo(p.info)
	if p.track != nil {
		ti.MimeType = p.track.Info().Codec.MimeType
		ti.Codecs = []*livekit.SimulcastCodecInfo{{MimeType: ti.MimeType, Cid: p.cid, Layers: ti.Layers}}
	}
	return ti
}

// changed bumps the participant's version and tells the room.
func (s *session) changed() {
	s.mu.Lock()
	s.version++
	s.mu.Unlock()
	s.room.broadcastUpdate(s.info(), s.sid)
}

// send queues msg on the websocket; while it is down, msg is dropped (a
// resume brings the client up to date).
func (s *session) send(msg *livekit.SignalResponse) bool {
	s.mu.Lock()
	if s.joining {
		if len(s.backlog) < outboundMessages {
			s.backlog = append(s.backlog, msg)
		}
		s.mu.Unlock()
		return true
	}
	c := s.conn
	s.mu.Unlock()
	if c == nil {
		return false
	}
	return c.send(msg)
}

// leave ends the session: the client is told why, when its websocket is up,
// and the participant leaves the room.
func (s *session) leave(reason livekit.DisconnectReason, why string) {
	s.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Leave{Leave: &livekit.LeaveRequest{
		Reason: reason, Action: livekit.LeaveRequest_DISCONNECT}}})
	s.close(why)
}

// close ends the session once.
func (s *session) close(why string) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	c := s.conn
	s.conn = nil
	subs := s.downs
	s.downs = map[string]*subscription{}
	close(s.done)
	s.mu.Unlock()

	if c != nil {
		c.close(closeNormal, why)
	}
	for _, x := range subs {
		x.down.Close()
	}
	s.subscriber.Close()
	if err := s.sub.Close(); err != nil {
		s.log.Debug("close subscriber connection", "err", err)
	}
	if err := s.pub.Close(); err != nil {
		s.log.Debug("close publisher connection", "err", err)
	}
	if part := s.participant(); part != nil {
		part.Close()
	}

	s.srv.mu.Lock()
	if s.srv.sessions[s.sid] == s {
		delete(s.srv.sessions, s.sid)
	}
	s.srv.mu.Unlock()
	s.room.mu.Lock()
	if s.room.sessions[s.sid] == s {
		delete(s.room.sessions, s.sid)
	}
	s.room.mu.Unlock()
	s.log.Info("participant session ended", "reason", why, "duration", time.Since(s.created).Round(time.Millisecond).String())
}

// signalLost starts the resume window after the websocket c dropped.
func (s *session) signalLost(c *signalConn) {
	s.mu.Lock()
	if s.conn != c || s.closed {
		s.mu.Unlock()
		return
	}
	s.conn = nil
	s.lost = time.Now()
	s.mu.Unlock()
	s.log.Info("signal connection lost; waiting for the client to resume", "window", s.srv.opts.ResumeWindow.String())
	time.AfterFunc(s.srv.opts.ResumeWindow, func() {
		s.mu.Lock()
		expired := s.conn == nil && !s.closed
		s.mu.Unlock()
		if expired {
			s.close("not resumed within " + s.srv.opts.ResumeWindow.String())
		}
	})
}

func kindOf(k string) livekit.ParticipantInfo_Kind {
	switch k {
	case "ingress":
		return livekit.ParticipantInfo_INGRESS
	case "egress":
		return livekit.ParticipantInfo_EGRESS
	case "sip":
		return livekit.ParticipantInfo_SIP
	case "agent":
		return livekit.ParticipantInfo_AGENT
	}
	return livekit.ParticipantInfo_STANDARD
}

func permissionOf(g access.Grant) *livekit.ParticipantPermission {
	p := &livekit.ParticipantPermission{
		CanSubscribe:      g.CanSubscribe,
		CanPublish:        g.CanPublish,
		CanPublishData:    g.CanPublishData,
		Hidden:            g.Hidden,
		CanUpdateMetadata: g.CanUpdateOwnMetadata,
	}
	for _, src := range g.CanPublishSources {
		if v, ok := livekit.TrackSource_value[upper(src)]; ok {
			p.CanPublishSources = append(p.CanPublishSources, livekit.TrackSource(v))
		}
	}
	return p
}
