package rtc

import (
	"context"
	"slices"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/starling-sfu/starling/sfu"
	"google.golang.org/protobuf/proto"
)

// maxPublications bounds the tracks one participant may announce.
const maxPublications = 16

const audioLevelURI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

// setupPublisher wires the connection the client publishes on: its tracks
// become SFU tracks, its data channels carry data packets.
func (s *session) setupPublisher() {
	s.pub.OnTrack(s.onTrack)
	s.pub.OnDataChannel(s.onDataChannel)
	s.pub.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		s.log.Debug("publisher connection", "state", st.String())
		switch st {
		case webrtc.PeerConnectionStateConnected:
			s.mu.Lock()
			first := s.state == livekit.ParticipantInfo_JOINED
			if first {
				s.state = livekit.ParticipantInfo_ACTIVE
			}
			s.mu.Unlock()
			if first {
				s.log.Info("participant connected", "after", time.Since(s.created).Round(time.Millisecond).String())
				s.changed()
			}
		case webrtc.PeerConnectionStateFailed:
			s.closeIfStillFailed(s.pub)
		case webrtc.PeerConnectionStateClosed:
			// The client closed it (DTLS close_notify), or the session did.
			go s.close("publisher connection closed")
		}
	})
}

// closeIfStillFailed ends the session when pc has not recovered (the client
// resumes with an ICE restart) within the resume window.
func (s *session) closeIfStillFailed(pc *webrtc.PeerConnection) {
	time.AfterFunc(s.srv.opts.ResumeWindow, func() {
		if pc.ConnectionState() == webrtc.PeerConnectionStateFailed {
			s.close("peer connection failed")
		}
	})
}

// handleOffer answers the client's offer on its publisher connection.
func (s *session) handleOffer(sd *livekit.SessionDescription) {
	if err := s.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sd.GetSdp()}); err != nil {
		s.log.Warn("publisher offer refused", "err", err)
		s.leave(livekit.DisconnectReason_STATE_MISMATCH, "unusable publisher offer: "+err.Error())
		return
	}
	s.flushICE(0, s.pub)
	ans, err := s.pub.CreateAnswer(nil)
	if err != nil {
		s.log.Warn("cannot answer publisher offer", "err", err)
		s.leave(livekit.DisconnectReason_STATE_MISMATCH, "cannot answer publisher offer: "+err.Error())
		return
	}
	gathered := webrtc.GatheringCompletePromise(s.pub)
	if err := s.pub.SetLocalDescription(ans); err != nil {
		s.log.Warn("cannot apply publisher answer", "err", err)
		s.leave(livekit.DisconnectReason_STATE_MISMATCH, "cannot answer publisher offer: "+err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	select {
	case <-gathered:
	case <-ctx.Done():
	}
	s.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Answer{Answer: &livekit.SessionDescription{
		Type: "answer", Sdp: s.pub.LocalDescription().SDP, Id: sd.GetId()}}})
}

// handleAddTrack announces a track the client is about to publish, when
// its token allows the source.
func (s *session) handleAddTrack(req *livekit.AddTrackRequest) {
	refuse := func(reason livekit.RequestResponse_Reason, msg string) {
		s.log.Info("track refused", "cid", req.GetCid(), "source", req.GetSource().String(), "reason", msg)
		s.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_RequestResponse{RequestResponse: &livekit.RequestResponse{
			Reason: reason, Message: msg, Request: &livekit.RequestResponse_AddTrack{AddTrack: req}}}})
	}
	s.mu.Lock()
	perm := s.perm
	n := len(s.published)
	var existing *publication
	for _, p := range s.published {
		if p.cid == req.GetCid() {
			existing = p
		}
	}
	s.mu.Unlock()
	switch {
	case !perm.GetCanPublish():
		refuse(livekit.RequestResponse_NOT_ALLOWED, "token does not allow publishing")
		return
	case len(perm.GetCanPublishSources()) > 0 && !slices.Contains(perm.GetCanPublishSources(), req.GetSource()):
		refuse(livekit.RequestResponse_NOT_ALLOWED, "token does not allow publishing "+req.GetSource().String())
		return
	case req.GetCid() == "":
		refuse(livekit.RequestResponse_UNCLASSIFIED_ERROR, "track has no cid")
		return
	case existing != nil:
		s.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_TrackPublished{TrackPublished: &livekit.TrackPublishedResponse{
			Cid: req.GetCid(), Track: cloneTrackInfo(existing.info)}}})
		return
	case n >= maxPublications:
		refuse(livekit.RequestResponse_LIMIT_EXCEEDED, "too many tracks")
		return
	}
	info := &livekit.TrackInfo{
		Sid:        newTrackSID(),
		Type:       req.GetType(),
		Name:       req.GetName(),
		Muted:      req.GetMuted(),
		Width:      req.GetWidth(),
		Height:     req.GetHeight(),
		Simulcast:  len(req.GetLayers()) > 1,
		DisableDtx: req.GetDisableDtx(),
		Source:     req.GetSource(),
		Layers:     req.GetLayers(),
		Stereo:     req.GetStereo(),
		Encryption: req.GetEncryption(),
		Stream:     req.GetStream(),
	}
	if info.Source == livekit.TrackSource_UNKNOWN {
		info.Source = livekit.TrackSource_CAMERA
		if info.Type == livekit.TrackType_AUDIO {
			info.Source = livekit.TrackSource_MICROPHONE
		}
	}
	s.mu.Lock()
	s.published[info.Sid] = &publication{cid: req.GetCid(), info: info, enabled: sfu.MaxLayers - 1}
	s.mu.Unlock()
	s.log.Info("track announced", "cid", req.GetCid(), "sid", info.Sid, "type", info.Type.String(),
		"source", info.Source.String(), "layers", len(info.Layers))
	s.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_TrackPublished{TrackPublished: &livekit.TrackPublishedResponse{
		Cid: req.GetCid(), Track: cloneTrackInfo(info)}}})
}

// onTrack feeds one incoming encoding to the SFU, as the track the client
// announced under the same cid (the media's msid track id).
func (s *session) onTrack(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	kind := livekit.TrackType_AUDIO
	if remote.Kind() == webrtc.RTPCodecTypeVideo {
		kind = livekit.TrackType_VIDEO
	}
	s.mu.Lock()
	var pub *publication
	for _, p := range s.published {
		if p.cid == remote.ID() && p.info.Type == kind {
			pub = p
		}
	}
	if pub == nil {
		// A client whose media ids differ from its cids (Firefox): the
		// oldest announced track of the kind still without media.
		for _, p := range s.published {
			if p.track == nil && p.info.Type == kind && (pub == nil || p.info.Sid < pub.info.Sid) {
				pub = p
			}
		}
	}
	var info *livekit.TrackInfo
	if pub != nil {
		info = pub.info
	}
	s.mu.Unlock()
	if pub == nil {
		s.log.Warn("media for a track that was not announced (or was refused) ignored", "track", remote.ID(), "kind", remote.Kind().String())
		return
	}
	ti := sfu.TrackInfo{
		SID: info.Sid, ID: remote.ID(), StreamID: remote.StreamID(), Kind: remote.Kind(), Codec: remote.Codec(),
		ScreenShare: info.Source == livekit.TrackSource_SCREEN_SHARE, Layers: len(receiver.Tracks()),
	}
	for _, ext := range receiver.GetParameters().HeaderExtensions {
		if ext.URI == audioLevelURI {
			ti.AudioLevelExt = uint8(ext.ID)
		}
	}
	s.part.SetKeyframeRequester(func(ssrc uint32) error {
		return s.pub.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
	})
	if _, err := s.part.AddLayer(ti, remote.RID(), uint32(remote.SSRC()), remote); err != nil {
		s.log.Warn("track refused by the SFU", "sid", info.Sid, "rid", remote.RID(), "err", err)
	}
}

// trackLive records that an announced track's media arrived.
func (s *session) trackLive(t *sfu.Track) {
	s.mu.Lock()
	if p, ok := s.published[t.SID()]; ok {
		p.track = t
	}
	first := !s.remb
	s.remb = true
	s.mu.Unlock()
	if first {
		s.part.SetRTCPWriter(s.pub.WriteRTCP) // REMB: the bitrate the SFU wants
	}
}

// handleMute records that the client muted or unmuted one of its tracks,
// and tells the room.
func (s *session) handleMute(m *livekit.MuteTrackRequest) {
	if !s.setMuted(m.GetSid(), m.GetMuted()) {
		s.log.Debug("mute for an unknown track ignored", "sid", m.GetSid())
		return
	}
	s.changed()
}

func (s *session) setMuted(sid string, muted bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.published[sid]
	if !ok {
		return false
	}
	if p.info.Muted != muted {
		p.info.Muted = muted
		s.log.Info("track muted", "sid", sid, "muted", muted)
	}
	return true
}

func cloneTrackInfo(ti *livekit.TrackInfo) *livekit.TrackInfo {
	return proto.Clone(ti).(*livekit.TrackInfo)
}

// newTrackSID makes a LiveKit-style track id.
func newTrackSID() string { return "TR_" + sfu.NewParticipantSID()[3:] }
