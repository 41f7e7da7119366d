package signaling

import (
	"context"
	"github.com/starling-sfu/starling/access"
	"net/http"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/starling-sfu/starling/sfu"
)

// handleWHIP creates a publishing session: POST /whip/{room} with an SDP
// offer and a token that may publish in the room.
func (s *Server) handleWHIP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if err := s.publish(w, r, start); err != nil {
		s.metrics.Failures[0].Add(1)
		writeError(w, r, s.log, err)
	}
}

func (s *Server) publish(w http.ResponseWriter, r *http.Request, start time.Time) error {
	room := r.PathValue("room")
	if !validName(room) {
		return errorf(http.StatusBadRequest, "invalid room name")
	}
	grant, err := authorize(s.opts.Verifier, r, room, true, false)
	if err != nil {
		return err
	}
	offer, parsed, err := s.readOffer(w, r)
	if err != nil {
		return err
	}
	audio, video := mediaSections(parsed, true)
	if audio+video == 0 {
		return errorf(http.StatusBadRequest, "SDP offer sends no audio or video")
	}
	identity := grant.Identity
	if identity == "" {
		identity = "whip-" + newID()[:8]
	}
	pc, err := s.opts.Engine.Publisher.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return err
	}
	sess := &session{
		id: newID(), kind: "whip", room: room, identity: identity, pc: pc,
		created: start, remoteOffer: offer, done: make(chan struct{}),
	}
	sess.log = s.log.With("session", sess.id, "kind", "whip", "room", room, "participant", identity)
	if err := s.admit(sess); err != nil {
		_ = pc.Close()
		return err
	}
	fail := func(err error) error {
		sess.close(s.sessions, "negotiation failed")
		return err
	}

	// The participant joins the room only once negotiation succeeded, so a
	// bad offer under a live publisher's identity does not replace it.
	// Tracks arrive after the client has the answer, so after the join.
	joined := make(chan *sfu.Participant, 1)
	pc.OnTrack(func(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
		var part *sfu.Participant
		select {
		case part = <-joined:
			joined <- part
		case <-sess.done:
			return
		}
		info := sfu.TrackInfo{ID: remote.ID(), StreamID: remote.StreamID(), Kind: remote.Kind(), Codec: remote.Codec(),
			Layers: len(receiver.Tracks())}
		if _, err := part.AddLayer(info, remote.RID(), uint32(remote.SSRC()), remote); err != nil {
			sess.log.Warn("track refused", "track", remote.ID(), "rid", remote.RID(), "err", err)
		}
	})
	s.watch(sess, nil)

	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	ans, err := answer(ctx, pc, offer)
	if err != nil {
		return fail(err)
	}
	part := s.opts.SFU.Room(room).Join(identity, func() { sess.close(s.sessions, "replaced by a new session") })
	part.ExpectTracks(audio + video)
	part.SetKeyframeRequester(func(ssrc uint32) error {
		return pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
	})
	part.SetRTCPWriter(pc.WriteRTCP) // REMB: the bitrate the SFU wants from it
	sess.mu.Lock()
	sess.participant = part
	closed := sess.closed
	sess.mu.Unlock()
	if closed {
		part.Close()
		return errorf(http.StatusServiceUnavailable, "session ended during negotiation")
	}
	joined <- part
	sess.mu.Lock()
	sess.etag = newETag(iceUfrag(ans))
	sess.mu.Unlock()
	s.writeCreated(w, sess, ans)
	s.metrics.Requests[0].Add(1)
	s.metrics.PostDuration[0].Add(uint64(time.Since(start)))
	sess.log.Info("publishing", "audio", audio, "video", video, "setup", time.Since(start).Round(time.Microsecond).String())
	return nil
}

// validName accepts room and participant names that are safe in URLs and logs.
func validName(s string) bool { return access.ValidName(s) }
