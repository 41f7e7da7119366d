package rtc

import (
	"strings"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
	"github.com/starling-sfu/starling/sfu"
)

// proto is the room as the protocol describes it.
func (r *room) proto() *livekit.Room {
	r.mu.Lock()
	sr := r.sfuRoom
	out := &livekit.Room{
		Sid:             r.sid,
		Name:            r.name,
		EmptyTimeout:    r.emptyTimeout,
		MaxParticipants: r.maxParticipants,
		CreationTime:    r.created.Unix(),
		CreationTimeMs:  r.created.UnixMilli(),
		Metadata:        r.metadata,
	}
	r.mu.Unlock()
	if sr != nil {
		for _, p := range sr.Participants() {
			out.NumParticipants++
			if len(p.Tracks()) > 0 {
				out.NumPublishers++
			}
		}
	}
	return out
}

// participantInfo describes p: from its /rtc session when it has one,
// otherwise as an ingress (WHIP) participant.
func (r *room) participantInfo(p *sfu.Participant) *livekit.ParticipantInfo {
	if sess, ok := r.srv.session(p.SID()); ok && sess.participant() == p {
		return sess.info()
	}
	r.mu.Lock()
	var version uint32 = 1
	if in, ok := r.ingress[p.SID()]; ok {
		version = in.version
	}
	r.mu.Unlock()
	info := &livekit.ParticipantInfo{
		Sid:        p.SID(),
		Identity:   p.Identity(),
		Name:       p.Identity(),
		State:      livekit.ParticipantInfo_ACTIVE,
		JoinedAt:   p.JoinedAt().Unix(),
		JoinedAtMs: p.JoinedAt().UnixMilli(),
		Version:    version,
		Kind:       livekit.ParticipantInfo_INGRESS,
		Permission: &livekit.ParticipantPermission{CanPublish: true},
	}
	for _, t := range p.Tracks() {
		info.Tracks = append(info.Tracks, r.trackInfo(p, t))
	}
	info.IsPublisher = len(info.Tracks) > 0
	return info
}

// trackInfo describes a live track: from what its /rtc publisher announced
// when it did, otherwise from the media.
func (r *room) trackInfo(p *sfu.Participant, t *sfu.Track) *livekit.TrackInfo {
	if sess, ok := r.srv.session(p.SID()); ok {
		if ti := sess.publishedInfo(t.SID()); ti != nil {
			return ti
		}
	}
	return mediaTrackInfo(t)
}

// mediaTrackInfo describes a track from its media alone.
func mediaTrackInfo(t *sfu.Track) *livekit.TrackInfo {
	info := t.Info()
	ti := &livekit.TrackInfo{
		Sid:      t.SID(),
		Name:     info.ID,
		MimeType: info.Codec.MimeType,
		Stream:   info.StreamID,
	}
	if info.Kind == webrtc.RTPCodecTypeAudio {
		ti.Type = livekit.TrackType_AUDIO
		ti.Source = livekit.TrackSource_MICROPHONE
		ti.Stereo = strings.Contains(info.Codec.SDPFmtpLine, "stereo=1")
		return ti
	}
	ti.Type = livekit.TrackType_VIDEO
	ti.Source = livekit.TrackSource_CAMERA
	if info.ScreenShare {
		ti.Source = livekit.TrackSource_SCREEN_SHARE
	}
	ti.Simulcast = info.Layers > 1
	present, _ := t.Layers()
	for i, ok := range present {
		if !ok {
			continue
		}
		w, h := t.LayerSize(i)
		ti.Layers = append(ti.Layers, &livekit.VideoLayer{Quality: livekit.VideoQuality(i), Width: uint32(w), Height: uint32(h)})
		if uint32(w) > ti.Width {
			ti.Width, ti.Height = uint32(w), uint32(h)
		}
	}
	return ti
}
