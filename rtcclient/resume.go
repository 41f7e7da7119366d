package rtcclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/livekit/protocol/livekit"
)

// Resume attempts and timing for AutoResume, close to livekit-client's
// default reconnect policy for a resume.
const (
	resumeAttempts = 5
	resumeTimeout  = 15 * time.Second
	resumeBackoff  = 500 * time.Millisecond
)

// DropSignal closes the signal websocket without a leave or a close frame,
// as a network blip would, and leaves the peer connections alone. The client
// then reports the loss (OnSignalLost) and resumes if AutoResume is set.
func (c *Client) DropSignal() {
	c.sigMu.Lock()
	s := c.sig
	c.sigMu.Unlock()
	if s != nil {
		s.close()
	}
}

// Resume resumes the session over a new signal connection, as
// RTCEngine.resumeConnection does: it closes the current websocket, redials
// with reconnect=1, our participant SID and the newest token, expects a
// reconnect response first, applies its ICE servers, sends sync_state
// (subscriber answer and offer, subscriptions, published tracks, data
// channels), and restarts ICE on the publisher with a new offer, answering
// whatever the server offers on the subscriber meanwhile. It returns once
// both connections are connected again (with Options.StrictResume, only
// after the server's ICE-restart offer on the subscriber too). A leave in
// place of the reconnect response ends the session.
func (c *Client) Resume(ctx context.Context) error {
	return c.resume(ctx, livekit.ReconnectReason_RR_SIGNAL_DISCONNECTED, false)
}

// autoResume resumes after a lost signal connection, a few times, and ends
// the session when it cannot.
func (c *Client) autoResume() {
	var err error
	for attempt := 0; attempt < resumeAttempts; attempt++ {
		if attempt > 0 {
			select {
			case <-c.lifetime.Done():
				return
			case <-time.After(time.Duration(attempt) * resumeBackoff):
			}
		}
		ctx, cancel := context.WithTimeout(c.lifetime, resumeTimeout)
		err = c.resume(ctx, livekit.ReconnectReason_RR_SIGNAL_DISCONNECTED, true)
		cancel()
		var leave *LeaveError
		if err == nil || errors.As(err, &leave) || c.isClosed() {
			return
		}
		var refused *HandshakeError
		if errors.As(err, &refused) && (refused.Status == 401 || refused.Status == 403) {
			break // the token will not get better, as RTCEngine judges a NotAllowed
		}
		c.log.Warn("rtcclient: resume failed", "attempt", attempt+1, "err", err)
	}
	err = fmt.Errorf("rtcclient: gave up resuming: %w", err)
	c.post(func(h *Handlers) {
		if h.OnDisconnected != nil {
			h.OnDisconnected(err)
		}
	})
	c.shutdown(err)
}

func (c *Client) resume(ctx context.Context, reason livekit.ReconnectReason, onlyIfDown bool) error {
	c.resumeMu.Lock()
	defer c.resumeMu.Unlock()
	if c.isClosed() {
		return ErrClosed
	}
	c.sigMu.Lock()
	old := c.sig
	if onlyIfDown && old != nil {
		c.sigMu.Unlock()
		return nil
	}
	c.sig = nil
	c.resuming = true
	c.sigMu.Unlock()
	if old != nil {
		old.close()
	}
	err := c.reconnect(ctx, reason)
	c.sigMu.Lock()
	c.resuming = false
	held := c.held
	c.held = nil
	c.sigMu.Unlock()
	if err != nil {
		var leave *LeaveError
		if errors.As(err, &leave) {
			c.post(func(h *Handlers) {
				if h.OnDisconnected != nil {
					h.OnDisconnected(err)
				}
			})
			c.shutdown(err)
		}
		return fmt.Errorf("rtcclient: resume: %w", err)
	}
	for _, req := range held {
		if err := c.send(req); err != nil {
			c.log.Warn("rtcclient: held request not sent", "err", err)
		}
	}
	c.log.Info("rtcclient: resumed")
	c.post(func(h *Handlers) {
		if h.OnResumed != nil {
			h.OnResumed()
		}
	})
	return nil
}

// reconnect does the steps of a resume between closing the old websocket and
// letting held requests go.
func (c *Client) reconnect(ctx context.Context, reason livekit.ReconnectReason) (err error) {
	p := c.connectParams()
	p.token = c.Token()
	p.reconnect = true
	p.sid = c.SID()
	p.reconnectReason = reason
	u, err := RTCURL(c.opts.URL, p.query())
	if err != nil {
		return err
	}
	conn, _, err := dial(ctx, c.opts.Dialer, u)
	if err != nil {
		return err
	}
	s := newSignalConn(conn)
	res, err := s.readFirst(ctx, true)
	if err != nil {
		s.close()
		return err
	}
	rr := res.GetReconnect()
	cfg := rtcConfiguration(rr.GetIceServers(), rr.GetClientConfiguration())
	for _, t := range []*transport{c.pub, c.sub} {
		if err := t.pc.SetConfiguration(cfg); err != nil {
			c.log.Warn("rtcclient: resume: ICE servers not applied", "pc", targetName(t.target), "err", err)
		}
	}

	// What counts as reconnected, taken before the new connection can
	// deliver anything.
	subOffers, subUfrag := c.sub.offersAnswered(), c.sub.remoteUfrag()
	needSub := subOffers > 0
	needPub := c.pub.wasNegotiated()

	join := c.JoinResponse()
	c.installSignal(s, join.GetPingInterval(), join.GetPingTimeout())
	defer func() {
		if err != nil {
			// Down again, so that the next attempt starts over.
			c.sigMu.Lock()
			if c.sig == s {
				c.sig = nil
			}
			c.sigMu.Unlock()
			s.close()
		}
	}()
	if err := s.write(&livekit.SignalRequest{Message: &livekit.SignalRequest_SyncState{SyncState: c.syncState()}}); err != nil {
		return err
	}
	var checkpoint uint32
	if needPub {
		checkpoint = c.pub.restartICE()
		if err := c.pub.waitAnswered(ctx, checkpoint); err != nil {
			return fmt.Errorf("publisher ICE restart: %w", err)
		}
		if err := c.waitConnected(ctx, c.pub); err != nil {
			return err
		}
	}
	if needSub && c.opts.StrictResume {
		err := c.sub.changed.waitFor(ctx, func() bool {
			return (c.sub.offersAnswered() > subOffers && c.sub.remoteUfrag() != subUfrag) || c.isClosed()
		})
		if err != nil {
			return fmt.Errorf("no ICE-restart subscriber offer from the server after reconnect: %w", err)
		}
	}
	if needSub {
		if err := c.waitConnected(ctx, c.sub); err != nil {
			return err
		}
	}
	return nil
}

// syncState describes the session as RTCEngine.sendSyncState does in dual
// peer connection mode.
func (c *Client) syncState() *livekit.SyncState {
	st := &livekit.SyncState{
		DataChannels:             c.dataChannelInfos(),
		DatachannelReceiveStates: c.receiveStates(),
	}
	if d := c.sub.pc.CurrentLocalDescription(); d != nil {
		st.Answer = &livekit.SessionDescription{Type: d.Type.String(), Sdp: d.SDP}
	}
	if d := c.sub.pc.CurrentRemoteDescription(); d != nil {
		st.Offer = &livekit.SessionDescription{Type: d.Type.String(), Sdp: d.SDP}
	}
	autoSubscribe := !c.opts.DisableAutoSubscribe
	// With auto-subscribe on, the tracks listed are the ones unsubscribed
	// from; with it off, the ones subscribed to.
	sub := &livekit.UpdateSubscription{Subscribe: !autoSubscribe}
	c.mu.Lock()
	for _, p := range c.participants {
		for _, ti := range p.GetTracks() {
			desired, asked := c.desired[ti.GetSid()]
			if !asked {
				desired = autoSubscribe
			}
			if desired != autoSubscribe {
				sub.TrackSids = append(sub.TrackSids, ti.GetSid())
			}
			if c.disabled[ti.GetSid()] {
				st.TrackSidsDisabled = append(st.TrackSidsDisabled, ti.GetSid())
			}
		}
	}
	tracks := make([]*LocalTrack, 0, len(c.localTracks))
	for _, t := range c.localTracks {
		tracks = append(tracks, t)
	}
	c.mu.Unlock()
	st.Subscription = sub
	for _, t := range tracks {
		st.PublishTracks = append(st.PublishTracks, &livekit.TrackPublishedResponse{Cid: t.CID(), Track: t.Info()})
	}
	return st
}
