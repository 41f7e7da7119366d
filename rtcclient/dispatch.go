package rtcclient

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
)

// errPingTimeout is a signal connection that stopped answering pings.
var errPingTimeout = errors.New("rtcclient: no message from the server within the ping timeout")

// readLoop handles s's responses in order until it fails. Descriptions and
// candidates are applied here, on one goroutine, so that a candidate is
// never applied before the description read ahead of it.
func (c *Client) readLoop(s *signalConn) {
	for {
		res, err := s.read()
		if err != nil {
			if cause := s.cause(); cause != nil {
				err = cause
			}
			c.signalEnded(s, err)
			return
		}
		c.handle(res)
	}
}

// pingLoop sends ping and ping_req every interval and, when timeout is set,
// drops s once nothing was read from it for that long, as SignalClient's
// ping timeout does.
func (c *Client) pingLoop(s *signalConn, interval, timeout time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var expired <-chan time.Time
	var timer *time.Timer
	if timeout > 0 {
		timer = time.NewTimer(timeout)
		defer timer.Stop()
		expired = timer.C
	}
	for {
		select {
		case <-s.done:
			return
		case <-s.recv:
			if timer != nil {
				timer.Reset(timeout)
			}
		case <-tick.C:
			c.sendPing(s)
		case <-expired:
			c.log.Warn("rtcclient: ping timeout", "timeout", timeout)
			s.fail(errPingTimeout)
			return
		}
	}
}

// sendPing sends both the legacy ping and ping_req, for old and new
// servers, as SignalClient.sendPing does.
func (c *Client) sendPing(s *signalConn) {
	now := time.Now().UnixMilli()
	_ = s.write(&livekit.SignalRequest{Message: &livekit.SignalRequest_Ping{Ping: now}})
	_ = s.write(&livekit.SignalRequest{Message: &livekit.SignalRequest_PingReq{PingReq: &livekit.Ping{
		Timestamp: now,
		Rtt:       c.RTT().Milliseconds(),
	}}})
}

// signalEnded handles the end of s: nothing when it was replaced or the
// client is closing; else the signal is lost, and resumed if asked to.
func (c *Client) signalEnded(s *signalConn, err error) {
	s.close()
	c.sigMu.Lock()
	current := c.sig == s
	if current {
		c.sig = nil
		if c.opts.AutoResume && !c.isClosed() {
			c.resuming = true
		}
	}
	c.sigMu.Unlock()
	if !current || c.isClosed() {
		return
	}
	c.log.Info("rtcclient: signal connection lost", "err", err)
	c.post(func(h *Handlers) {
		if h.OnSignalLost != nil {
			h.OnSignalLost(err)
		}
	})
	if c.opts.AutoResume {
		c.goOwned(func() { c.autoResume() })
	}
}

// handle applies one response to the client's state.
func (c *Client) handle(res *livekit.SignalResponse) {
	switch m := res.Message.(type) {
	case *livekit.SignalResponse_Answer:
		if err := c.pub.setAnswer(m.Answer.GetSdp(), m.Answer.GetId()); err != nil {
			c.log.Warn("rtcclient: answer", "err", err)
		}
	case *livekit.SignalResponse_Offer:
		c.setMidToTrack(m.Offer.GetMidToTrackId())
		if err := c.sub.answerOffer(m.Offer.GetSdp(), m.Offer.GetId()); err != nil {
			c.log.Warn("rtcclient: offer", "err", err)
		}
	case *livekit.SignalResponse_Trickle:
		c.onTrickle(m.Trickle)
	case *livekit.SignalResponse_Update:
		c.onParticipants(m.Update.GetParticipants())
	case *livekit.SignalResponse_TrackPublished:
		c.onTrackPublished(m.TrackPublished)
	case *livekit.SignalResponse_Leave:
		c.onLeave(m.Leave)
	case *livekit.SignalResponse_Mute:
		c.onMute(m.Mute.GetSid(), m.Mute.GetMuted())
	case *livekit.SignalResponse_SpeakersChanged:
		c.onSpeakers(m.SpeakersChanged.GetSpeakers())
	case *livekit.SignalResponse_RoomUpdate:
		c.mu.Lock()
		c.room = m.RoomUpdate.GetRoom()
		c.mu.Unlock()
		c.post(func(h *Handlers) {
			if h.OnRoomUpdate != nil {
				h.OnRoomUpdate(m.RoomUpdate.GetRoom())
			}
		})
	case *livekit.SignalResponse_ConnectionQuality:
		c.mu.Lock()
		for _, q := range m.ConnectionQuality.GetUpdates() {
			c.connQuality[q.GetParticipantSid()] = q
		}
		c.mu.Unlock()
		c.post(func(h *Handlers) {
			if h.OnConnectionQuality != nil {
				h.OnConnectionQuality(m.ConnectionQuality.GetUpdates())
			}
		})
	case *livekit.SignalResponse_SubscribedQualityUpdate:
		c.mu.Lock()
		c.qualities[m.SubscribedQualityUpdate.GetTrackSid()] = m.SubscribedQualityUpdate
		c.mu.Unlock()
		c.post(func(h *Handlers) {
			if h.OnSubscribedQuality != nil {
				h.OnSubscribedQuality(m.SubscribedQualityUpdate)
			}
		})
	case *livekit.SignalResponse_RefreshToken:
		c.mu.Lock()
		c.token = m.RefreshToken
		c.mu.Unlock()
	case *livekit.SignalResponse_TrackUnpublished:
		c.onTrackUnpublished(m.TrackUnpublished.GetTrackSid())
	case *livekit.SignalResponse_PongResp:
		rtt := time.Duration(time.Now().UnixMilli()-m.PongResp.GetLastPingTimestamp()) * time.Millisecond
		c.mu.Lock()
		c.rtt = rtt
		c.mu.Unlock()
	case *livekit.SignalResponse_RequestResponse:
		c.onRequestResponse(m.RequestResponse)
	case *livekit.SignalResponse_RoomMoved:
		c.mu.Lock()
		c.token = m.RoomMoved.GetToken()
		if p := m.RoomMoved.GetParticipant(); p != nil {
			c.local = p
		}
		if r := m.RoomMoved.GetRoom(); r != nil {
			c.room = r
		}
		c.mu.Unlock()
	}
	c.post(func(h *Handlers) {
		if h.OnSignal != nil {
			h.OnSignal(res)
		}
	})
}

// onTrickle applies a remote candidate: candidateInit is the JSON of an
// RTCIceCandidateInit, as livekit-client sends and reads it.
func (c *Client) onTrickle(t *livekit.TrickleRequest) {
	var init webrtc.ICECandidateInit
	if err := json.Unmarshal([]byte(t.GetCandidateInit()), &init); err != nil {
		c.log.Warn("rtcclient: bad trickle candidate", "candidate", t.GetCandidateInit(), "err", err)
		return
	}
	if t.GetTarget() == livekit.SignalTarget_SUBSCRIBER {
		c.sub.addCandidate(init)
	} else {
		c.pub.addCandidate(init)
	}
}

func (c *Client) setMidToTrack(m map[string]string) {
	if len(m) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for mid, sid := range m {
		c.midToTrack[mid] = sid
	}
}

// onParticipants applies a participant update: newer versions replace older
// ones, DISCONNECTED removes, and a new session of an identity replaces the
// old one, as livekit-client's Room does.
func (c *Client) onParticipants(list []*livekit.ParticipantInfo) {
	c.mu.Lock()
	for _, p := range list {
		if p.GetSid() == c.local.GetSid() || p.GetIdentity() == c.local.GetIdentity() {
			if p.GetSid() == c.local.GetSid() && p.GetVersion() >= c.local.GetVersion() {
				c.local = p
			}
			continue
		}
		if p.GetState() == livekit.ParticipantInfo_DISCONNECTED {
			delete(c.participants, p.GetSid())
			continue
		}
		if old, ok := c.participants[p.GetSid()]; ok && old.GetVersion() > p.GetVersion() {
			continue
		}
		for sid, q := range c.participants {
			if q.GetIdentity() == p.GetIdentity() && sid != p.GetSid() {
				delete(c.participants, sid)
			}
		}
		c.participants[p.GetSid()] = p
	}
	c.mu.Unlock()
	c.post(func(h *Handlers) {
		if h.OnParticipantUpdate != nil {
			h.OnParticipantUpdate(list)
		}
	})
}

// onSpeakers merges a speakers_changed: it lists only the speakers that
// changed, an inactive one leaving the set.
func (c *Client) onSpeakers(list []*livekit.SpeakerInfo) {
	c.mu.Lock()
	for _, s := range list {
		if s.GetActive() {
			c.speakers[s.GetSid()] = s
		} else {
			delete(c.speakers, s.GetSid())
		}
	}
	c.mu.Unlock()
	c.post(func(h *Handlers) {
		if h.OnSpeakersChanged != nil {
			h.OnSpeakersChanged(list)
		}
	})
}

// onLeave ends the session on a leave, except one asking to resume, which is
// a lost signal connection.
func (c *Client) onLeave(l *livekit.LeaveRequest) {
	c.log.Info("rtcclient: leave from server", "reason", l.GetReason(), "action", l.GetAction())
	c.post(func(h *Handlers) {
		if h.OnLeave != nil {
			h.OnLeave(l)
		}
	})
	if l.GetAction() == livekit.LeaveRequest_RESUME {
		c.sigMu.Lock()
		s := c.sig
		c.sigMu.Unlock()
		if s != nil {
			s.fail(&LeaveError{Leave: l})
		}
		return
	}
	// DISCONNECT ends the session; so does RECONNECT, since this client
	// does not rejoin from scratch.
	err := &LeaveError{Leave: l}
	c.post(func(h *Handlers) {
		if h.OnDisconnected != nil {
			h.OnDisconnected(err)
		}
	})
	c.shutdown(err)
}
