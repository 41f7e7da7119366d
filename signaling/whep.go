package signaling

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/starling-sfu/starling/sfu"
)

// handleWHEP creates a playback session: POST /whep/{room}[/{participant}]
// with an SDP offer; it plays the named participant, else the room's first
// publisher. The SFU picks the layers the viewer's path carries;
// ?layer=q|h|f caps them at a simulcast layer and ?maxHeight=N at the
// lowest layer at least N pixels tall.
func (s *Server) handleWHEP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if err := s.play(w, r, start); err != nil {
		s.metrics.Failures[1].Add(1)
		writeError(w, r, s.log, err)
	}
}

func (s *Server) play(w http.ResponseWriter, r *http.Request, start time.Time) error {
	roomName, who := r.PathValue("room"), r.PathValue("participant")
	if !validName(roomName) || (who != "" && !validName(who)) {
		return errorf(http.StatusBadRequest, "invalid room or participant name")
	}
	grant, err := authorize(s.opts.Verifier, r, roomName, false, s.opts.PublicPlayback)
	if err != nil {
		return err
	}
	opts := sfu.DownTrackOptions{}
	if l := r.URL.Query().Get("layer"); l != "" {
		idx, ok := sfu.ParseLayer(l)
		if !ok {
			return errorf(http.StatusBadRequest, "layer must be q, h or f")
		}
		opts.Layer, opts.Pinned = idx, true
	}
	if h := r.URL.Query().Get("maxHeight"); h != "" {
		n, err := strconv.Atoi(h)
		if err != nil || n <= 0 {
			return errorf(http.StatusBadRequest, "maxHeight must be a positive number of pixels")
		}
		opts.MaxHeight = n
	}
	offer, parsed, err := s.readOffer(w, r)
	if err != nil {
		return err
	}
	wantAudio, wantVideo := mediaSections(parsed, false)
	if wantAudio+wantVideo == 0 {
		return errorf(http.StatusBadRequest, "SDP offer receives no audio or video")
	}
	pub, err := s.findPublisher(roomName, who)
	if err != nil {
		return err
	}
	waitCtx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	tracks := pub.WaitTracks(waitCtx)
	cancel()
	if len(tracks) == 0 {
		return errorf(http.StatusNotFound, "participant "+pub.Identity()+" publishes nothing")
	}

	identity := grant.Identity
	if identity == "" {
		identity = "viewer-" + newID()[:8]
	}
	pc, err := s.opts.Engine.Subscriber.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return err
	}
	sess := &session{
		id: newID(), kind: "whep", room: roomName, identity: identity, pc: pc,
		created: start, remoteOffer: offer, done: make(chan struct{}),
	}
	sess.log = s.log.With("session", sess.id, "kind", "whep", "room", roomName, "participant", identity, "publisher", pub.Identity())
	// The viewer's tracks share its connection's bandwidth.
	sess.subscriber = s.opts.SFU.NewSubscriber(identity)
	if err := s.admit(sess); err != nil {
		sess.subscriber.Close()
		_ = pc.Close()
		return err
	}
	go func() {
		<-sess.done
		sess.subscriber.Close()
	}()
	fail := func(err error) error {
		sess.close(s.sessions, "negotiation failed")
		return err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return fail(errorf(http.StatusBadRequest, "unusable SDP offer: "+err.Error()))
	}
	opts.SubscriberID = identity
	if err := s.attach(sess, parsed, tracks, opts, wantAudio, wantVideo); err != nil {
		return fail(err)
	}
	s.watch(sess, func() {
		sess.mu.Lock()
		dts := append([]*sfu.DownTrack(nil), sess.downTracks...)
		sess.mu.Unlock()
		for _, d := range dts {
			d.Start()
		}
	})

	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	ans, err := localAnswer(ctx, pc)
	if err != nil {
		return fail(err)
	}
	sess.mu.Lock()
	sess.etag = newETag(iceUfrag(ans))
	sess.mu.Unlock()
	s.writeCreated(w, sess, ans)
	s.metrics.Requests[1].Add(1)
	s.metrics.PostDuration[1].Add(uint64(time.Since(start)))
	sess.log.Info("playing", "tracks", len(sess.downTracks), "setup", time.Since(start).Round(time.Microsecond).String())
	return nil
}

func (s *Server) findPublisher(roomName, who string) (*sfu.Participant, error) {
	room, ok := s.opts.SFU.LookupRoom(roomName)
	if !ok {
		return nil, errorf(http.StatusNotFound, "room "+roomName+" is not live")
	}
	if who != "" {
		p, ok := room.Participant(who)
		if !ok {
			return nil, errorf(http.StatusNotFound, "participant "+who+" is not in room "+roomName)
		}
		return p, nil
	}
	p, ok := room.Publisher()
	if !ok {
		return nil, errorf(http.StatusNotFound, "nobody is publishing in room "+roomName)
	}
	return p, nil
}

// attach subscribes the session to at most one track per receiving section of
// the offer, of codecs the offer supports. When the publisher leaves, its
// tracks end and so does the session.
func (s *Server) attach(sess *session, offer *sdp.SessionDescription, tracks []*sfu.Track, opts sfu.DownTrackOptions, audio, video int) error {
	var unsupported []string
	for _, t := range tracks {
		info := t.Info()
		slots := &video
		if info.Kind == webrtc.RTPCodecTypeAudio {
			slots = &audio
		}
		if *slots == 0 {
			continue
		}
		if !offerHasCodec(offer, info.Kind.String(), info.Codec.MimeType) {
			unsupported = append(unsupported, info.Codec.MimeType)
			continue
		}
		d, err := sess.subscriber.Subscribe(t, opts)
		if errors.Is(err, sfu.ErrTooManySubscribers) {
			return errorf(http.StatusServiceUnavailable, "too many viewers for this stream")
		}
		if err != nil {
			return errorf(http.StatusNotFound, "stream ended")
		}
		if _, err := sess.pc.AddTrack(d); err != nil {
			d.Close()
			return err
		}
		*slots--
		sess.mu.Lock()
		sess.downTracks = append(sess.downTracks, d)
		sess.mu.Unlock()
		d.OnClose(func() { go s.trackEnded(sess) })
	}
	sess.mu.Lock()
	n := len(sess.downTracks)
	sess.mu.Unlock()
	if n == 0 {
		if len(unsupported) > 0 {
			return errorf(http.StatusBadRequest, "offer supports none of the published codecs: "+strings.Join(unsupported, ", "))
		}
		return errorf(http.StatusBadRequest, "offer receives none of the published kinds")
	}
	return nil
}

// handleWHEPStats answers GET on a WHEP session's resource with what the SFU
// sends it: the bandwidth estimate of its connection and, per track, the
// layer chosen, switches and time paused (sfu.SubscriberStats, as JSON).
// The session's URL, unguessable, is the credential, as for PATCH and DELETE.
func (s *Server) handleWHEPStats(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.lookup(r)
	if !ok || sess.subscriber == nil {
		writeError(w, r, s.log, errorf(http.StatusNotFound, "no such session"))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, sess.subscriber.Stats())
}

// trackEnded closes a WHEP session when the publisher behind it has gone.
func (s *Server) trackEnded(sess *session) {
	select {
	case <-sess.done:
	default:
		sess.close(s.sessions, "publisher left")
	}
}

func offerHasCodec(d *sdp.SessionDescription, kind, mimeType string) bool {
	_, name, _ := strings.Cut(mimeType, "/")
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media != kind {
			continue
		}
		for _, a := range m.Attributes {
			if a.Key != "rtpmap" {
				continue
			}
			// "96 VP8/90000"
			_, enc, _ := strings.Cut(a.Value, " ")
			codec, _, _ := strings.Cut(enc, "/")
			if strings.EqualFold(codec, name) {
				return true
			}
		}
	}
	return false
}
