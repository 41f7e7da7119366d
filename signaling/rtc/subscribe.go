package rtc

import (
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
	"github.com/starling-sfu/starling/sfu"
)

// answerTimeout is how long an offer waits for its answer before the server
// offers again.
const answerTimeout = 10 * time.Second

// setupSubscriber wires the connection the server offers subscribed tracks
// on.
func (s *session) setupSubscriber() {
	s.sub.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		s.log.Debug("subscriber connection", "state", st.String())
		switch st {
		case webrtc.PeerConnectionStateConnected:
			s.startDowns()
		case webrtc.PeerConnectionStateFailed:
			s.closeIfStillFailed(s.sub)
		case webrtc.PeerConnectionStateClosed:
			go s.close("subscriber connection closed")
		}
	})
}

// offerTrack subscribes the participant to a track another one published,
// when it subscribes automatically and may.
func (s *session) offerTrack(owner *sfu.Participant, t *sfu.Track) {
	s.mu.Lock()
	auto := s.autoSubscribe && s.perm.GetCanSubscribe()
	s.mu.Unlock()
	if auto {
		s.subscribe(owner, t)
	}
}

// subscribe adds t to the subscriber connection and offers it.
func (s *session) subscribe(owner *sfu.Participant, t *sfu.Track) {
	// The join's catch-up and the room's events may offer one track at
	// once: the first to claim it subscribes.
	s.mu.Lock()
	_, dup := s.downs[t.SID()]
	dup = dup || s.subscribing[t.SID()]
	if dup || s.closed {
		s.mu.Unlock()
		return
	}
	s.subscribing[t.SID()] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.subscribing, t.SID())
		s.mu.Unlock()
	}()
	d, err := s.subscriber.Subscribe(t, sfu.DownTrackOptions{
		SubscriberID: s.identity, StreamID: owner.SID() + "|" + t.SID(), TrackID: t.SID(),
	})
	if err != nil {
		s.log.Info("subscription refused", "track", t.SID(), "err", err)
		return
	}
	sender, err := s.sub.AddTrack(d)
	if err != nil {
		d.Close()
		s.log.Warn("cannot add subscribed track", "track", t.SID(), "err", err)
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		d.Close()
		return
	}
	s.downs[t.SID()] = &subscription{down: d, sender: sender, owner: owner}
	s.mu.Unlock()
	d.OnClose(func() { go s.unsubscribed(t.SID(), d) })
	s.log.Debug("subscribed", "track", t.SID(), "publisher", owner.Identity())
	s.negotiate(false)
}

// unsubscribed removes an ended subscription from the connection.
func (s *session) unsubscribed(sid string, d *sfu.DownTrack) {
	s.mu.Lock()
	x, ok := s.downs[sid]
	if !ok || x.down != d {
		s.mu.Unlock()
		return
	}
	delete(s.downs, sid)
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return
	}
	if err := s.sub.RemoveTrack(x.sender); err != nil {
		s.log.Debug("remove subscribed track", "track", sid, "err", err)
	}
	s.negotiate(false)
}

// handleSubscription subscribes to or unsubscribes from tracks by sid.
func (s *session) handleSubscription(u *livekit.UpdateSubscription) {
	sids := append([]string(nil), u.GetTrackSids()...)
	for _, pt := range u.GetParticipantTracks() {
		sids = append(sids, pt.GetTrackSids()...)
	}
	s.setSubscribed(sids, u.GetSubscribe())
}

func (s *session) setSubscribed(sids []string, subscribe bool) {
	if subscribe {
		s.mu.Lock()
		may := s.perm.GetCanSubscribe()
		s.mu.Unlock()
		if !may {
			s.log.Info("subscription refused: token does not allow subscribing")
			return
		}
	}
	for _, sid := range sids {
		if !subscribe {
			s.mu.Lock()
			x, ok := s.downs[sid]
			s.mu.Unlock()
			if ok {
				x.down.Close()
			}
			continue
		}
		if owner, t, ok := s.room.findTrack(sid); ok && owner.SID() != s.sid {
			s.subscribe(owner, t)
		}
	}
}

// handleTrackSettings applies what the client's adaptive stream asks of a
// subscribed video: the size it is shown at picks the simulcast layer, a
// hidden one is paused.
func (s *session) handleTrackSettings(u *livekit.UpdateTrackSettings) {
	for _, sid := range u.GetTrackSids() {
		s.mu.Lock()
		x, ok := s.downs[sid]
		s.mu.Unlock()
		if !ok || x.down.Kind() != webrtc.RTPCodecTypeVideo {
			continue
		}
		x.down.SetDisabled(u.GetDisabled())
		layer := sfu.MaxLayers - 1
		if u.GetWidth() > 0 || u.GetHeight() > 0 {
			layer = s.room.layerFor(x.owner, x.down.Track(), u.GetWidth(), u.GetHeight())
		} else if q := u.GetQuality(); q <= livekit.VideoQuality_HIGH {
			layer = int(q)
		}
		x.down.SetMaxLayer(layer)
		s.log.Debug("track settings", "track", sid, "disabled", u.GetDisabled(), "width", u.GetWidth(),
			"height", u.GetHeight(), "layer", sfu.LayerName(layer))
		if owner, ok := s.srv.session(x.owner.SID()); ok {
			owner.updateDynacast(time.Now())
		}
	}
}

// negotiate makes a new offer on the subscriber connection, or marks one as
// needed once the outstanding offer is answered.
func (s *session) negotiate(iceRestart bool) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.neg.iceRestart = s.neg.iceRestart || iceRestart
	if s.neg.waiting || s.conn == nil {
		s.neg.again = true
		s.mu.Unlock()
		return
	}
	s.neg.waiting, s.neg.again = true, false
	restart := s.neg.iceRestart
	s.neg.iceRestart = false
	s.neg.offerID++
	id := s.neg.offerID
	s.neg.offerSentAt = time.Now()
	s.mu.Unlock()
	go s.offer(id, restart)
}

// offer sends offer id to the client.
func (s *session) offer(id uint32, restart bool) {
	fail := func(why string, err error) {
		s.log.Warn("subscriber offer failed", "why", why, "err", err)
		s.mu.Lock()
		if s.neg.offerID == id {
			s.neg.waiting = false
		}
		s.mu.Unlock()
	}
	if s.sub.SignalingState() == webrtc.SignalingStateHaveLocalOffer {
		// The last offer was never answered (lost with a websocket, or
		// late): send it again; changes since, and an ICE restart, follow
		// once it is answered.
		s.mu.Lock()
		s.neg.again = true
		s.neg.iceRestart = s.neg.iceRestart || restart
		s.mu.Unlock()
	} else {
		o, err := s.sub.CreateOffer(&webrtc.OfferOptions{ICERestart: restart})
		if err != nil {
			fail("create offer", err)
			return
		}
		gathered := webrtc.GatheringCompletePromise(s.sub)
		if err := s.sub.SetLocalDescription(o); err != nil {
			fail("set local description", err)
			return
		}
		select {
		case <-gathered:
		case <-time.After(2 * time.Second):
		case <-s.done:
			return
		}
	}
	mids := map[string]string{}
	for _, tr := range s.sub.GetTransceivers() {
		if snd := tr.Sender(); snd != nil && snd.Track() != nil && tr.Mid() != "" {
			mids[tr.Mid()] = snd.Track().ID()
		}
	}
	if !s.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Offer{Offer: &livekit.SessionDescription{
		Type: "offer", Sdp: s.sub.LocalDescription().SDP, Id: id, MidToTrackId: mids}}}) {
		// The websocket is down: offer again once the client resumes.
		s.mu.Lock()
		if s.neg.offerID == id {
			s.neg.waiting, s.neg.again = false, true
		}
		s.mu.Unlock()
		return
	}
	time.AfterFunc(answerTimeout, func() {
		s.mu.Lock()
		stuck := s.neg.waiting && s.neg.offerID == id && !s.closed
		if stuck {
			s.neg.waiting = false
		}
		s.mu.Unlock()
		if stuck {
			s.log.Warn("subscriber offer not answered; offering again", "offer", id)
			s.negotiate(false)
		}
	})
}

// handleAnswer applies the client's answer to the server's latest offer.
func (s *session) handleAnswer(sd *livekit.SessionDescription) {
	s.mu.Lock()
	current := s.neg.offerID
	s.mu.Unlock()
	if sd.GetId() != 0 && sd.GetId() != current {
		s.log.Debug("answer to an older offer ignored", "answer", sd.GetId(), "offer", current)
		return
	}
	if err := s.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sd.GetSdp()}); err != nil {
		s.log.Warn("subscriber answer refused", "err", err)
	} else {
		s.flushICE(1, s.sub)
	}
	s.mu.Lock()
	s.neg.waiting = false
	s.neg.lastAnswer = time.Now()
	again := s.neg.again
	s.mu.Unlock()
	if s.sub.ConnectionState() == webrtc.PeerConnectionStateConnected {
		s.startDowns()
	}
	if again {
		s.negotiate(false)
	}
}

// startDowns starts the subscriptions that are negotiated and not started:
// a DownTrack starts once its connection is up and bound.
func (s *session) startDowns() {
	s.mu.Lock()
	downs := make([]*sfu.DownTrack, 0, len(s.downs))
	for _, x := range s.downs {
		downs = append(downs, x.down)
	}
	s.mu.Unlock()
	for _, d := range downs {
		d.Start()
	}
}

// afterResume re-offers on the subscriber connection with an ICE restart,
// as livekit-server does on every resume: the client may have moved to
// another network. Without a subscriber connection yet, it offers only
// what the client lacks.
func (s *session) afterResume() {
	restart := s.sub.CurrentLocalDescription() != nil
	s.mu.Lock()
	pending := s.neg.again || s.neg.waiting
	s.neg.waiting = false
	s.mu.Unlock()
	if restart || pending {
		s.negotiate(restart)
	}
}

// findTrack finds a live track in the room by sid.
func (r *room) findTrack(sid string) (*sfu.Participant, *sfu.Track, bool) {
	r.mu.Lock()
	sr := r.sfuRoom
	r.mu.Unlock()
	if sr == nil {
		return nil, nil, false
	}
	for _, p := range sr.Participants() {
		for _, t := range p.Tracks() {
			if t.SID() == sid {
				return p, t, true
			}
		}
	}
	return nil, nil, false
}

// layerFor is the lowest simulcast layer of t at least width×height, from
// the layers its publisher announced, else the sizes its keyframes told.
func (r *room) layerFor(owner *sfu.Participant, t *sfu.Track, width, height uint32) int {
	var layers []*livekit.VideoLayer
	if sess, ok := r.srv.session(owner.SID()); ok {
		if ti := sess.publishedInfo(t.SID()); ti != nil {
			layers = ti.GetLayers()
		}
	}
	if len(layers) == 0 {
		layers = mediaTrackInfo(t).GetLayers()
	}
	best := -1
	for _, l := range layers {
		idx := int(l.GetQuality())
		if idx < 0 || idx >= sfu.MaxLayers {
			continue
		}
		if l.GetWidth() >= width && l.GetHeight() >= height && (best < 0 || idx < best) {
			best = idx
		}
	}
	if best < 0 {
		return sfu.MaxLayers - 1
	}
	return best
}
