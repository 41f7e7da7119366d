package signaling

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"
)

// session looks up the session a PATCH or DELETE names, checking that its
// URL's kind and room match.
func (s *Server) lookup(r *http.Request) (*session, bool) {
	sess, ok := s.sessions.get(r.PathValue("id"))
	if !ok || sess.room != r.PathValue("room") || !strings.HasPrefix(r.URL.Path, "/"+sess.kind+"/") {
		return nil, false
	}
	return sess, true
}

// handleDelete ends a session. A session that already ended on its own (the
// peer went away first) is answered 200 too.
func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.lookup(r)
	if !ok {
		if s.sessions.recentlyEnded(r.PathValue("id")) {
			w.WriteHeader(http.StatusOK)
			return
		}
		writeError(w, r, s.log, errorf(http.StatusNotFound, "no such session"))
		return
	}
	sess.close(s.sessions, "deleted by client")
	w.WriteHeader(http.StatusOK)
}

// handlePatch takes trickled candidates (204) or, when the fragment carries
// new ICE credentials, restarts ICE and answers with the server's new
// credentials and candidates (200).
func (s *Server) handlePatch(w http.ResponseWriter, r *http.Request) {
	if err := s.patch(w, r); err != nil {
		writeError(w, r, s.log, err)
	}
}

func (s *Server) patch(w http.ResponseWriter, r *http.Request) error {
	sess, ok := s.lookup(r)
	if !ok {
		return errorf(http.StatusNotFound, "no such session")
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/trickle-ice-sdpfrag" {
		return errorf(http.StatusUnsupportedMediaType, "content type must be application/trickle-ice-sdpfrag")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		return errorf(http.StatusRequestEntityTooLarge, "fragment too large")
	}
	frag, err := parseSDPFrag(string(body))
	if err != nil {
		return errorf(http.StatusBadRequest, err.Error())
	}

	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.closed {
		return errorf(http.StatusNotFound, "session ended")
	}
	if m := r.Header.Get("If-Match"); m != "" && m != "*" && m != sess.etag {
		return errorf(http.StatusPreconditionFailed, "ETag does not match the session's current ICE state")
	}
	current := iceUfrag(sess.remoteOffer)
	if frag.pwd != "" && frag.ufrag != "" && frag.ufrag != current {
		return s.restartICE(w, r.Context(), sess, frag)
	}
	if frag.ufrag != "" && frag.ufrag != current {
		return errorf(http.StatusConflict, "fragment is for another ICE generation")
	}
	for _, c := range frag.candidates {
		mid := c.mid
		init := webrtc.ICECandidateInit{Candidate: c.candidate}
		if mid != "" {
			init.SDPMid = &mid
		}
		if err := sess.pc.AddICECandidate(init); err != nil {
			return errorf(http.StatusBadRequest, "candidate rejected: "+err.Error())
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// restartICE renegotiates with the client's new credentials. Caller holds sess.mu.
func (s *Server) restartICE(w http.ResponseWriter, ctx context.Context, sess *session, frag sdpFrag) error {
	// The new generation starts with no remote candidates: the old ones
	// belong to the old credentials (and often to a network the client left).
	offer := withoutCandidates(withICECredentials(sess.remoteOffer, frag.ufrag, frag.pwd))
	if err := sess.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return errorf(http.StatusBadRequest, "ICE restart refused: "+err.Error())
	}
	for _, c := range frag.candidates {
		mid := c.mid
		_ = sess.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: c.candidate, SDPMid: &mid})
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	ans, err := localAnswer(ctx, sess.pc)
	if err != nil {
		return err
	}
	sess.remoteOffer = offer
	sess.etag = newETag(iceUfrag(ans))
	sess.log.Info("ICE restarted")

	var b strings.Builder
	fmt.Fprintf(&b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", iceUfrag(ans), sdpAttr(ans, "ice-pwd"))
	for _, line := range strings.Split(ans, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "m="), strings.HasPrefix(line, "a=mid:"), strings.HasPrefix(line, "a=candidate:"), line == "a=end-of-candidates":
			b.WriteString(line + "\r\n")
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/trickle-ice-sdpfrag")
	h.Set("ETag", sess.etag)
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, b.String())
	return nil
}
