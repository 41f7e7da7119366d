package rtc

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
)

// readLoop reads the client's messages until the websocket ends. A leave
// ends the session; any other end starts the resume window.
func (s *session) readLoop(c *signalConn) {
	limit := rateLimit{rate: s.srv.opts.MessagesPerSecond, burst: s.srv.opts.MessageBurst}
	for {
		_ = c.ws.SetReadDeadline(time.Now().Add(s.srv.opts.PingTimeout))
		mt, b, err := c.ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				s.srv.metrics.BadMessages.Add(1)
				s.log.Warn("signal message over the size limit; closing", "limit", s.srv.opts.MaxMessageBytes)
				c.close(closeTooBig, "message over the size limit")
			} else {
				c.close(closeNormal, "")
			}
			break
		}
		if !limit.allow(time.Now()) {
			s.srv.metrics.BadMessages.Add(1)
			s.log.Warn("signal messages over the rate limit; closing", "per_second", limit.rate, "burst", limit.burst)
			c.close(closePolicy, "too many signal messages")
			break
		}
		req, err := c.decode(mt, b)
		if err != nil {
			s.srv.metrics.BadMessages.Add(1)
			s.log.Warn("undecodable signal message; closing", "bytes", len(b), "err", err)
			c.close(closeBadMessage, "malformed SignalRequest")
			break
		}
		if !s.handle(req) {
			c.close(closeNormal, "left")
			return
		}
	}
	s.signalLost(c)
}

// handle acts on one request; false when the participant left.
func (s *session) handle(req *livekit.SignalRequest) bool {
	switch m := req.Message.(type) {
	case *livekit.SignalRequest_Offer:
		s.handleOffer(m.Offer)
	case *livekit.SignalRequest_Answer:
		s.handleAnswer(m.Answer)
	case *livekit.SignalRequest_Trickle:
		s.handleTrickle(m.Trickle)
	case *livekit.SignalRequest_AddTrack:
		s.handleAddTrack(m.AddTrack)
	case *livekit.SignalRequest_Mute:
		s.handleMute(m.Mute)
	case *livekit.SignalRequest_Subscription:
		s.handleSubscription(m.Subscription)
	case *livekit.SignalRequest_TrackSetting:
		s.handleTrackSettings(m.TrackSetting)
	case *livekit.SignalRequest_UpdateMetadata:
		s.handleUpdateMetadata(m.UpdateMetadata)
	case *livekit.SignalRequest_Leave:
		s.log.Info("participant left", "reason", m.Leave.GetReason().String())
		s.close("left: " + m.Leave.GetReason().String())
		return false
	case *livekit.SignalRequest_Ping:
		s.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Pong{Pong: m.Ping}})
	case *livekit.SignalRequest_PingReq:
		s.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_PongResp{PongResp: &livekit.Pong{
			LastPingTimestamp: m.PingReq.GetTimestamp(), Timestamp: time.Now().UnixMilli()}}})
	case *livekit.SignalRequest_SyncState:
		// The client's view after a resume. The server's own state is the
		// truth: it re-offers what the client lacks (afterResume).
		s.log.Debug("sync state", "published", len(m.SyncState.GetPublishTracks()))
	case *livekit.SignalRequest_SubscriptionPermission, *livekit.SignalRequest_Simulate,
		*livekit.SignalRequest_UpdateLayers, *livekit.SignalRequest_UpdateAudioTrack, *livekit.SignalRequest_UpdateVideoTrack:
		s.log.Debug("signal request ignored", "type", typeName(req))
	case *livekit.SignalRequest_PublishDataTrackRequest:
		s.send(notAllowed(&livekit.RequestResponse{Request: &livekit.RequestResponse_PublishDataTrack{PublishDataTrack: m.PublishDataTrackRequest}},
			"data tracks are not supported by this server"))
	default:
		s.srv.metrics.UnknownMessages.Add(1)
		s.log.Warn("unsupported signal request ignored", "type", typeName(req))
	}
	return true
}

func typeName(req *livekit.SignalRequest) string {
	if req.Message == nil {
		return "unknown"
	}
	return string(req.ProtoReflect().WhichOneof(req.ProtoReflect().Descriptor().Oneofs().ByName("message")).Name())
}

func notAllowed(rr *livekit.RequestResponse, msg string) *livekit.SignalResponse {
	rr.Reason, rr.Message = livekit.RequestResponse_NOT_ALLOWED, msg
	return &livekit.SignalResponse{Message: &livekit.SignalResponse_RequestResponse{RequestResponse: rr}}
}

// handleTrickle adds one of the client's ICE candidates to the connection
// it names, holding it until that connection has a remote description.
func (s *session) handleTrickle(t *livekit.TrickleRequest) {
	var c webrtc.ICECandidateInit
	if err := json.Unmarshal([]byte(t.GetCandidateInit()), &c); err != nil {
		s.log.Warn("unreadable ICE candidate ignored", "err", err)
		return
	}
	if c.Candidate == "" {
		return // end of candidates
	}
	idx, pc := 0, s.pub
	if t.GetTarget() == livekit.SignalTarget_SUBSCRIBER {
		idx, pc = 1, s.sub
	}
	s.mu.Lock()
	if pc.RemoteDescription() == nil {
		if len(s.pendingICE[idx]) < 64 {
			s.pendingICE[idx] = append(s.pendingICE[idx], c)
		}
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	if err := pc.AddICECandidate(c); err != nil {
		s.log.Debug("ICE candidate refused", "target", t.GetTarget().String(), "err", err)
	}
}

// flushICE adds the candidates held for connection idx.
func (s *session) flushICE(idx int, pc *webrtc.PeerConnection) {
	s.mu.Lock()
	held := s.pendingICE[idx]
	s.pendingICE[idx] = nil
	s.mu.Unlock()
	for _, c := range held {
		if err := pc.AddICECandidate(c); err != nil {
			s.log.Debug("held ICE candidate refused", "err", err)
		}
	}
}

// handleUpdateMetadata changes the participant's own name, metadata or
// attributes, when its token allows.
func (s *session) handleUpdateMetadata(u *livekit.UpdateParticipantMetadata) {
	s.mu.Lock()
	allowed := s.perm.GetCanUpdateMetadata()
	s.mu.Unlock()
	if !allowed {
		s.send(notAllowed(&livekit.RequestResponse{RequestId: u.GetRequestId(),
			Request: &livekit.RequestResponse_UpdateMetadata{UpdateMetadata: u}}, "token does not allow updating own metadata"))
		return
	}
	s.mu.Lock()
	if u.Name != "" {
		s.name = u.Name
	}
	if u.Metadata != "" {
		s.metadata = u.Metadata
	}
	if len(u.Attributes) > 0 {
		next := map[string]string{}
		for k, v := range s.attributes {
			next[k] = v
		}
		for k, v := range u.Attributes {
			if v == "" {
				delete(next, k)
			} else {
				next[k] = v
			}
		}
		s.attributes = next
	}
	s.mu.Unlock()
	s.changed()
	s.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Update{Update: &livekit.ParticipantUpdate{
		Participants: []*livekit.ParticipantInfo{s.info()}}}})
}

// sendRefreshToken gives the client a fresh token with the participant's
// current grants, for its reconnects.
func (s *session) sendRefreshToken() {
	s.mu.Lock()
	tok := s.token
	s.refreshedAt = time.Now()
	s.mu.Unlock()
	fresh, err := s.srv.opts.Verifier.Refresh(tok, tokenValidity)
	if err != nil {
		s.log.Debug("token refresh failed", "err", err)
		return
	}
	s.mu.Lock()
	s.token = fresh
	s.mu.Unlock()
	s.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_RefreshToken{RefreshToken: fresh}})
}

// Tokens the server hands out are valid this long, and refreshed this
// often.
const (
	tokenValidity = 10 * time.Minute
	tokenRefresh  = 5 * time.Minute
)
