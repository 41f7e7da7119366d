package signaling

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/starling-sfu/starling/sfu"
)

// session is one WHIP or WHEP resource: a peer connection and what it
// publishes or plays.
type session struct {
	id       string
	kind     string // "whip" or "whep"
	room     string
	identity string
	pc       *webrtc.PeerConnection
	log      *slog.Logger
	created  time.Time

	mu          sync.Mutex // guards etag, remoteOffer, downTracks, closed
	etag        string
	remoteOffer string
	participant *sfu.Participant // WHIP
	downTracks  []*sfu.DownTrack // WHEP
	subscriber  *sfu.Subscriber  // WHEP; set before the session is shared
	closed      bool
	done        chan struct{}
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// location is the session's resource URL path.
func (s *session) location() string { return "/" + s.kind + "/" + s.room + "/sessions/" + s.id }

// newETag derives an entity tag from the current ICE credentials, which is
// what changes with an ICE restart.
func newETag(ufrag string) string { return `"` + ufrag + `"` }

// sessions is the node's registry of live sessions, with a memory of recently
// ended ones so that a late DELETE is still answered.
type sessions struct {
	mu    sync.Mutex
	live  map[string]*session
	ended map[string]time.Time
	max   int
}

const endedMemory = 2 * time.Minute

func newSessions(max int) *sessions {
	return &sessions{live: map[string]*session{}, ended: map[string]time.Time{}, max: max}
}

// add registers s unless the node is full.
func (r *sessions) add(s *session) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.live) >= r.max {
		return false
	}
	r.live[s.id] = s
	now := time.Now()
	for id, t := range r.ended {
		if now.Sub(t) > endedMemory {
			delete(r.ended, id)
		}
	}
	return true
}

func (r *sessions) get(id string) (*session, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.live[id]
	return s, ok
}

// recentlyEnded reports whether id named a session that has since ended.
func (r *sessions) recentlyEnded(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.ended[id]
	return ok
}

func (r *sessions) remove(s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.live[s.id] == s {
		delete(r.live, s.id)
		r.ended[s.id] = time.Now()
	}
}

func (r *sessions) all() []*session {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*session, 0, len(r.live))
	for _, s := range r.live {
		out = append(out, s)
	}
	return out
}

// counts returns live sessions by kind.
func (r *sessions) counts() (whip, whep int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.live {
		if s.kind == "whip" {
			whip++
		} else {
			whep++
		}
	}
	return whip, whep
}

// close ends the session once: its peer connection, then what it published
// or played, then its registration.
func (s *session) close(reg *sessions, reason string) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	dts := s.downTracks
	p := s.participant
	close(s.done)
	s.mu.Unlock()

	for _, d := range dts {
		d.Close()
	}
	if err := s.pc.Close(); err != nil {
		s.log.Debug("close peer connection", "err", err)
	}
	if p != nil {
		p.Close()
	}
	reg.remove(s)
	s.log.Info("session ended", "reason", reason, "duration", time.Since(s.created).Round(time.Millisecond).String())
}
