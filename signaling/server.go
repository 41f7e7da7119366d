// Package signaling answers WHIP (RFC 9725) and WHEP requests: it checks
// access tokens, negotiates peer connections, and attaches them to the SFU as
// publishers (WHIP) or as subscribers of a publisher's tracks (WHEP).
package signaling

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/starling-sfu/starling/access"
	"github.com/starling-sfu/starling/sfu"
	"github.com/starling-sfu/starling/transport"
)

// Options configure the signaling server.
type Options struct {
	SFU      *sfu.SFU
	Engine   *transport.Engine
	Verifier *access.Verifier
	// ICEServers returns the STUN/TURN servers offered to a client (Link
	// headers); nil offers none.
	ICEServers func(identity string) []webrtc.ICEServer
	// PublicPlayback lets WHEP requests without a token play.
	PublicPlayback bool
	MaxBodyBytes   int64
	MaxSessions    int
	// ConnectTimeout ends sessions whose connection is not up in time.
	ConnectTimeout time.Duration
	AllowOrigins   []string
	Logger         *slog.Logger
}

// Server is the WHIP/WHEP endpoint set.
type Server struct {
	opts     Options
	log      *slog.Logger
	sessions *sessions
	draining atomic.Bool
	metrics  Metrics
}

// Metrics counts signaling outcomes.
type Metrics struct {
	Requests     [2]atomic.Uint64 // [whip, whep] POSTs answered 201
	Failures     [2]atomic.Uint64 // POSTs answered with an error
	PostDuration [2]atomic.Uint64 // total nanoseconds spent answering 201s
}

// New returns a Server.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = 1000
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 64 << 10
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 15 * time.Second
	}
	return &Server{opts: o, log: o.Logger, sessions: newSessions(o.MaxSessions)}
}

// Metrics returns the live counters.
func (s *Server) Metrics() *Metrics { return &s.metrics }

// SessionCounts returns the live WHIP and WHEP sessions.
func (s *Server) SessionCounts() (whip, whep int) { return s.sessions.counts() }

// Handler returns the HTTP handler for /whip/ and /whep/ with CORS applied.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /whip/{room}", s.handleWHIP)
	mux.HandleFunc("POST /whep/{room}", s.handleWHEP)
	mux.HandleFunc("POST /whep/{room}/{participant}", s.handleWHEP)
	mux.HandleFunc("GET /whep/{room}/sessions/{id}", s.handleWHEPStats)
	for _, kind := range []string{"whip", "whep"} {
		mux.HandleFunc("PATCH /"+kind+"/{room}/sessions/{id}", s.handlePatch)
		mux.HandleFunc("DELETE /"+kind+"/{room}/sessions/{id}", s.handleDelete)
		mux.HandleFunc("OPTIONS /"+kind+"/", s.handleOptions)
	}
	mux.HandleFunc("GET /ice-servers", s.handleICEServers)
	mux.HandleFunc("OPTIONS /ice-servers", s.handleOptions)
	mux.HandleFunc("/whip/", s.methodNotAllowed)
	mux.HandleFunc("/whep/", s.methodNotAllowed)
	return cors(s.opts.AllowOrigins, mux)
}

func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, s.log, errorf(http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path))
}

func (s *Server) handleOptions(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if strings.Count(strings.Trim(r.URL.Path, "/"), "/") <= 2 {
		h.Set("Accept-Post", "application/sdp")
	}
	h.Set("Accept-Patch", "application/trickle-ice-sdpfrag")
	w.WriteHeader(http.StatusNoContent)
}

// handleICEServers answers GET /ice-servers?room=NAME with the STUN/TURN
// servers, with fresh credentials, as {"iceServers": [RTCIceServer…]}. WHIP
// and WHEP give them in the 201's Link headers (RFC 9725 §4.6), too late for
// a client that must create its peer connection with them, e.g. to force
// relaying. The room's token rules apply: a token for the room that may
// publish or play, or none where playback is public.
func (s *Server) handleICEServers(w http.ResponseWriter, r *http.Request) {
	room := r.URL.Query().Get("room")
	if !validName(room) {
		writeError(w, r, s.log, errorf(http.StatusBadRequest, "invalid or missing room"))
		return
	}
	identity := "viewer-" + newID()[:8]
	if tok, ok := bearer(r); ok {
		g, err := verify(s.opts.Verifier, tok)
		switch {
		case err != nil:
			writeError(w, r, s.log, err)
			return
		case g.Room != room:
			writeError(w, r, s.log, errorf(http.StatusForbidden, "token is not valid for room "+room))
			return
		case !g.CanPublish && !g.CanSubscribe:
			writeError(w, r, s.log, errorf(http.StatusForbidden, "token allows neither publishing nor subscribing"))
			return
		case g.Identity != "":
			identity = g.Identity
		}
	} else if !s.opts.PublicPlayback {
		writeError(w, r, s.log, errorf(http.StatusUnauthorized, "missing bearer token"))
		return
	}
	servers := []webrtc.ICEServer{}
	if s.opts.ICEServers != nil {
		servers = s.opts.ICEServers(identity)
	}
	writeJSON(w, http.StatusOK, map[string]any{"iceServers": servers})
}

// readOffer checks the content type and size and parses the SDP offer.
func (s *Server) readOffer(w http.ResponseWriter, r *http.Request) (string, *sdp.SessionDescription, error) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/sdp" {
		return "", nil, errorf(http.StatusUnsupportedMediaType, "content type must be application/sdp")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if asMaxBytes(err, &mbe) {
			return "", nil, errorf(http.StatusRequestEntityTooLarge, fmt.Sprintf("offer larger than %d bytes", s.opts.MaxBodyBytes))
		}
		return "", nil, errorf(http.StatusBadRequest, "read offer: "+err.Error())
	}
	var parsed sdp.SessionDescription
	if err := parsed.UnmarshalString(string(body)); err != nil {
		return "", nil, errorf(http.StatusBadRequest, "malformed SDP offer: "+err.Error())
	}
	if len(parsed.MediaDescriptions) == 0 {
		return "", nil, errorf(http.StatusBadRequest, "SDP offer has no media sections")
	}
	return string(body), &parsed, nil
}

// answer applies offer to pc and returns the local answer with the
// candidates gathered so far (host candidates on the muxed ports: at once).
func answer(ctx context.Context, pc *webrtc.PeerConnection, offer string) (string, error) {
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", errorf(http.StatusBadRequest, "unusable SDP offer: "+err.Error())
	}
	return localAnswer(ctx, pc)
}

func localAnswer(ctx context.Context, pc *webrtc.PeerConnection) (string, error) {
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", errorf(http.StatusBadRequest, "cannot answer offer: "+err.Error())
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		// A track whose codec the offer names but cannot carry (another
		// H.264 packetization mode, an unusable rtpmap) fails only here.
		if errors.Is(err, webrtc.ErrUnsupportedCodec) {
			return "", errorf(http.StatusBadRequest, "offer supports no usable form of the published codecs")
		}
		return "", fmt.Errorf("set local description: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
	case <-time.After(2 * time.Second):
	}
	return pc.LocalDescription().SDP, nil
}

// writeCreated answers a POST with 201 and the session's headers.
func (s *Server) writeCreated(w http.ResponseWriter, sess *session, sdpAnswer string) {
	h := w.Header()
	h.Set("Content-Type", "application/sdp")
	h.Set("Location", sess.location())
	sess.mu.Lock()
	h.Set("ETag", sess.etag)
	sess.mu.Unlock()
	h.Set("Accept-Patch", "application/trickle-ice-sdpfrag")
	h.Set("Cache-Control", "no-store")
	for _, l := range s.linkHeaders(sess.identity) {
		h.Add("Link", l)
	}
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, sdpAnswer)
}

// linkHeaders formats ICE servers as RFC 9725 §4.6 Link headers.
func (s *Server) linkHeaders(identity string) []string {
	if s.opts.ICEServers == nil {
		return nil
	}
	var out []string
	for _, srv := range s.opts.ICEServers(identity) {
		for _, u := range srv.URLs {
			l := "<" + u + `>; rel="ice-server"`
			if srv.Username != "" {
				l += `; username="` + srv.Username + `"; credential="` + fmt.Sprint(srv.Credential) + `"; credential-type="password"`
			}
			out = append(out, l)
		}
	}
	return out
}

// watch ties the session's lifetime to its connection: closed when the
// connection fails or closes, or is not up within the connect timeout.
func (s *Server) watch(sess *session, onConnected func()) {
	connected := make(chan struct{})
	var once atomic.Bool
	sess.pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		sess.log.Debug("connection state", "state", st.String())
		switch st {
		case webrtc.PeerConnectionStateConnected:
			if once.CompareAndSwap(false, true) {
				close(connected)
				sess.log.Info("session connected", "after", time.Since(sess.created).Round(time.Millisecond).String())
				if onConnected != nil {
					onConnected()
				}
			}
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			go sess.close(s.sessions, "connection "+st.String())
		}
	})
	go func() {
		t := time.NewTimer(s.opts.ConnectTimeout)
		defer t.Stop()
		select {
		case <-connected:
		case <-sess.done:
		case <-t.C:
			sess.close(s.sessions, "not connected within "+s.opts.ConnectTimeout.String())
		}
	}()
}

// Drain refuses new sessions, waits for the live ones to end until ctx is
// done, then closes what is left.
func (s *Server) Drain(ctx context.Context) {
	s.draining.Store(true)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for len(s.sessions.all()) > 0 {
		select {
		case <-ctx.Done():
			for _, sess := range s.sessions.all() {
				sess.close(s.sessions, "server shutting down")
			}
			return
		case <-tick.C:
		}
	}
}

// admit registers a new session or explains why not.
func (s *Server) admit(sess *session) error {
	if s.draining.Load() {
		return errorf(http.StatusServiceUnavailable, "server is shutting down")
	}
	if !s.sessions.add(sess) {
		return errorf(http.StatusServiceUnavailable, "session limit reached")
	}
	return nil
}

// mediaDirections counts the offer's audio and video sections the client
// sends (publish) or receives (play).
func mediaSections(d *sdp.SessionDescription, sending bool) (audio, video int) {
	for _, m := range d.MediaDescriptions {
		dir := "sendrecv"
		for _, a := range m.Attributes {
			switch a.Key {
			case "sendrecv", "sendonly", "recvonly", "inactive":
				dir = a.Key
			}
		}
		if m.MediaName.Port.Value == 0 {
			continue
		}
		ok := dir == "sendrecv" || (sending && dir == "sendonly") || (!sending && dir == "recvonly")
		if !ok {
			continue
		}
		switch m.MediaName.Media {
		case "audio":
			audio++
		case "video":
			video++
		}
	}
	return audio, video
}
