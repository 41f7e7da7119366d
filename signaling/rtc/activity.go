package rtc

import (
	"math"
	"sort"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/starling-sfu/starling/sfu"
)

const (
	speakerInterval = 300 * time.Millisecond
	qualityInterval = 2 * time.Second
	// dynacastHold is how long fewer layers must be enough before the
	// publisher is told to stop the others: a window resized back and
	// forth does not make its encoder stop and start.
	dynacastHold = 3 * time.Second
)

// updateSpeakers measures who speaks, from the audio levels publishers put
// on their packets, and tells the room who started or stopped; it also
// applies dynacast to the room's publishers.
func (r *room) updateSpeakers() {
	r.mu.Lock()
	sr := r.sfuRoom
	r.mu.Unlock()
	if sr == nil {
		return
	}
	now := time.Now()
	levels := map[string]float32{}
	for _, p := range sr.Participants() {
		sess, own := r.srv.session(p.SID())
		if own {
			sess.updateDynacast(now)
		}
		for _, t := range p.Tracks() {
			level, speaking := t.TakeAudioLevel()
			if !speaking || (own && sess.muted(t.SID())) {
				continue
			}
			if float32(level) > levels[p.SID()] {
				levels[p.SID()] = float32(level)
			}
		}
		if own && sess.hidden() {
			delete(levels, p.SID())
		}
	}
	var changed []*livekit.SpeakerInfo
	r.mu.Lock()
	for sid, level := range levels {
		if old, ok := r.speaking[sid]; !ok || math.Abs(float64(old-level)) > 0.05 {
			changed = append(changed, &livekit.SpeakerInfo{Sid: sid, Level: level, Active: true})
			r.speaking[sid] = level
		}
	}
	for sid := range r.speaking {
		if _, ok := levels[sid]; !ok {
			changed = append(changed, &livekit.SpeakerInfo{Sid: sid, Active: false})
			delete(r.speaking, sid)
		}
	}
	r.mu.Unlock()
	if len(changed) == 0 {
		return
	}
	sort.Slice(changed, func(i, j int) bool { return changed[i].Level > changed[j].Level })
	r.broadcast(&livekit.SignalResponse{Message: &livekit.SignalResponse_SpeakersChanged{
		SpeakersChanged: &livekit.SpeakersChanged{Speakers: changed}}})
}

func (s *session) muted(trackSID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.published[trackSID]
	return ok && p.info.Muted
}

func (s *session) hidden() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perm.GetHidden()
}

// updateDynacast tells the publisher which simulcast layers of each of its
// video tracks some subscriber wants (LiveKit's dynacast): the lowest
// always, higher ones up to the highest any subscriber's size asks for.
// More layers are asked for at once; fewer only after dynacastHold.
func (s *session) updateDynacast(now time.Time) {
	type update struct {
		sid, codec string
		top        int
	}
	var updates []update
	s.mu.Lock()
	for sid, p := range s.published {
		if p.track == nil || p.info.Type != livekit.TrackType_VIDEO || !p.info.Simulcast {
			continue
		}
		want := max(p.track.WantedLayer(), 0)
		switch {
		case want > p.enabled:
			p.enabled, p.lowerSince = want, time.Time{}
		case want == p.enabled:
			p.lowerSince = time.Time{}
			continue
		case p.lowerSince.IsZero():
			p.lowerSince = now
			continue
		case now.Sub(p.lowerSince) < dynacastHold:
			continue
		default:
			p.enabled, p.lowerSince = want, time.Time{}
		}
		updates = append(updates, update{sid: sid, codec: codecName(p.track), top: p.enabled})
	}
	s.mu.Unlock()
	for _, u := range updates {
		var qs []*livekit.SubscribedQuality
		for i := range sfu.MaxLayers {
			qs = append(qs, &livekit.SubscribedQuality{Quality: livekit.VideoQuality(i), Enabled: i <= u.top})
		}
		s.log.Info("dynacast: publisher asked for layers", "track", u.sid, "up_to", sfu.LayerName(u.top))
		s.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_SubscribedQualityUpdate{
			SubscribedQualityUpdate: &livekit.SubscribedQualityUpdate{
				TrackSid:            u.sid,
				SubscribedQualities: qs,
				SubscribedCodecs:    []*livekit.SubscribedCodec{{Codec: u.codec, Qualities: qs}},
			}}})
	}
}

// codecName is the codec as LiveKit names it in dynacast updates: "vp8".
func codecName(t *sfu.Track) string {
	m := t.Info().Codec.MimeType
	for i := len(m) - 1; i >= 0; i-- {
		if m[i] == '/' {
			m = m[i+1:]
			break
		}
	}
	b := []byte(m)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// updateQuality tells the room each participant's connection quality, when
// it changed: lost while its signal is down, poor while video it receives
// is paused for lack of bandwidth, good while it receives less than its
// subscriptions ask, excellent otherwise.
func (r *room) updateQuality() {
	now := time.Now()
	var changed []*livekit.ConnectionQualityInfo
	for _, x := range r.sessionList() {
		q := x.quality()
		if now.Sub(x.refreshed()) > tokenRefresh {
			x.sendRefreshToken()
		}
		r.mu.Lock()
		old, ok := r.quality[x.sid]
		r.quality[x.sid] = q
		r.mu.Unlock()
		if !ok || old != q {
			changed = append(changed, &livekit.ConnectionQualityInfo{ParticipantSid: x.sid, Quality: q, Score: qualityScore(q)})
		}
	}
	if len(changed) > 0 {
		r.broadcast(&livekit.SignalResponse{Message: &livekit.SignalResponse_ConnectionQuality{
			ConnectionQuality: &livekit.ConnectionQualityUpdate{Updates: changed}}})
	}
}

func (s *session) refreshed() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshedAt
}

func (s *session) quality() livekit.ConnectionQuality {
	s.mu.Lock()
	lost := s.conn == nil
	s.mu.Unlock()
	if lost {
		return livekit.ConnectionQuality_LOST
	}
	st := s.subscriber.Stats()
	q := livekit.ConnectionQuality_EXCELLENT
	for _, t := range st.Tracks {
		switch {
		case t.Kind == "video" && t.Paused && !t.Disabled:
			return livekit.ConnectionQuality_POOR
		case t.Kind == "video" && t.Target >= 0 && t.Layer >= 0 && t.Layer < t.Target:
			q = livekit.ConnectionQuality_GOOD
		}
	}
	return q
}

func qualityScore(q livekit.ConnectionQuality) float32 {
	switch q {
	case livekit.ConnectionQuality_EXCELLENT:
		return 4.5
	case livekit.ConnectionQuality_GOOD:
		return 3.5
	case livekit.ConnectionQuality_POOR:
		return 2
	}
	return 0
}
