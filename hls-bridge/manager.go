package hlsbridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starling-sfu/starling/hls-bridge/llhls"
	"github.com/starling-sfu/starling/sfu"
	"github.com/starling-sfu/starling/transcode"
)

// Modes say when a publisher's ladder starts.
const (
	ModeLive     = "live"      // as soon as the publisher is live
	ModeOnDemand = "on-demand" // at the first HLS request for it
	ModeOff      = "off"       // never: HLS requests are answered 503
)

// Passthrough settings say when a publisher's own layers are the ladder.
const (
	// PassthroughSimulcast serves an H.264 simulcast publisher's layers
	// as the ladder, transcoding only its audio.
	PassthroughSimulcast = "simulcast"
	// PassthroughOff transcodes every publisher.
	PassthroughOff = "off"
)

// Config configures the bridge.
type Config struct {
	Mode string
	// Passthrough is PassthroughSimulcast or PassthroughOff (default).
	Passthrough string
	Transcode   transcode.Config
	HLS         llhls.Config
	// IdleTimeout stops an on-demand ladder nobody has requested for this
	// long (default 60 s). Live ladders run while their publisher does.
	IdleTimeout time.Duration
	// StartTimeout bounds how long a request waits for a ladder to start
	// serving (default 10 s).
	StartTimeout time.Duration
	Logger       *slog.Logger
}

// Manager runs the ladders of one node's publishers and serves them under
// /hls/{room}/{participant}/.
type Manager struct {
	cfg Config
	sfu *sfu.SFU
	log *slog.Logger

	tcOnce    sync.Once
	tc        *transcode.Transcoder
	tcErr     error
	probeDone atomic.Bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	bridges map[string]*bridge // by "room/participant"
}

// New starts the manager. In live mode it probes ffmpeg now and watches
// the SFU for publishers; otherwise the probe waits for the first request.
func New(cfg Config, s *sfu.SFU) *Manager {
	if cfg.Mode == "" {
		cfg.Mode = ModeOnDemand
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = time.Minute
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Transcode.Logger == nil {
		cfg.Transcode.Logger = cfg.Logger
	}
	if cfg.Transcode.KeyframeInterval == 0 {
		cfg.Transcode.KeyframeInterval = cfg.HLS.SegmentTarget
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{cfg: cfg, sfu: s, log: cfg.Logger, ctx: ctx, cancel: cancel, bridges: map[string]*bridge{}}
	if cfg.Mode != ModeOff {
		m.wg.Add(1)
		go m.run()
	}
	return m
}

// transcoder probes ffmpeg once and returns the result.
func (m *Manager) transcoder() (*transcode.Transcoder, error) {
	m.tcOnce.Do(func() {
		m.tc, m.tcErr = transcode.New(m.ctx, m.cfg.Transcode)
		switch {
		case errors.Is(m.tcErr, transcode.ErrNoFFmpeg):
			m.log.Warn("ffmpeg not found: WebRTC only, HLS requests are answered 503", "ffmpeg", m.cfg.Transcode.FFmpeg)
		case m.tcErr != nil:
			m.log.Error("no usable ffmpeg backend: HLS requests are answered 503", "err", m.tcErr)
		}
		m.probeDone.Store(true)
	})
	return m.tc, m.tcErr
}

// Backend is the transcoding backend in use ("" before the probe or when
// none works).
func (m *Manager) Backend() string {
	if m.probeDone.Load() && m.tcErr == nil {
		return string(m.tc.Backend())
	}
	return ""
}

// run watches the SFU: in live mode it starts a ladder for every
// publisher; in every mode it ends ladders whose publisher has gone and
// on-demand ladders left idle.
func (m *Manager) run() {
	defer m.wg.Done()
	if m.cfg.Mode == ModeLive {
		if _, err := m.transcoder(); err != nil {
			return
		}
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-tick.C:
		}
		if m.cfg.Mode == ModeLive {
			for _, r := range m.sfu.Rooms() {
				for _, p := range r.Participants() {
					if len(p.Tracks()) > 0 {
						_, _ = m.bridge(r.Name(), p.Identity(), false)
					}
				}
			}
		}
		m.reap(time.Now())
	}
}

// reap removes ladders whose publisher left, after a grace period in which
// players still read the ended playlist, and on-demand ladders left idle.
func (m *Manager) reap(now time.Time) {
	m.mu.Lock()
	var done []*bridge
	for k, b := range m.bridges {
		if b.expired(now, m.cfg.IdleTimeout, m.cfg.Mode == ModeOnDemand) {
			delete(m.bridges, k)
			done = append(done, b)
		}
	}
	m.mu.Unlock()
	for _, b := range done {
		b.close()
	}
}

// bridge returns the ladder of room/participant, starting it when the
// participant publishes and no ladder runs yet.
func (m *Manager) bridge(room, identity string, requested bool) (*bridge, error) {
	key := room + "/" + identity
	m.mu.Lock()
	b, ok := m.bridges[key]
	m.mu.Unlock()
	if ok && !b.replaced(m.sfu) {
		if requested {
			b.touch()
		}
		return b, nil
	}
	r, ok := m.sfu.LookupRoom(room)
	if !ok {
		return nil, errNotLive
	}
	p, ok := r.Participant(identity)
	if !ok || len(p.Tracks()) == 0 {
		return nil, errNotLive
	}
	tc, err := m.transcoder()
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if b, ok := m.bridges[key]; ok {
		if !b.replaced(m.sfu) {
			return b, nil
		}
		// The publisher left and is back: its old, ended ladder gives way.
		delete(m.bridges, key)
		go b.close()
	}
	b, err = startBridge(key, p, tc, bridgeConfig{hls: m.cfg.HLS, passthrough: m.cfg.Passthrough}, m.log.With("hls", key))
	if err != nil {
		return nil, err
	}
	m.bridges[key] = b
	return b, nil
}

var errNotLive = errors.New("nobody publishes here")

// ServeHTTP serves GET /hls/{room}/{participant}/... and redirects
// /hls/{room}/index.m3u8 to the room's first publisher.
func (m *Manager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions {
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/hls/")
	parts := strings.SplitN(rest, "/", 3)
	if !ok || len(parts) < 2 || parts[0] == "" {
		writeError(w, http.StatusNotFound, "not found: HLS lives at /hls/{room}/{participant}/index.m3u8")
		return
	}
	room := parts[0]
	if r.Method == http.MethodOptions && len(parts) < 3 {
		// CORS preflight for the room's redirect; a stream answers its own.
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", "Range")
		w.Header().Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if len(parts) == 2 {
		if parts[1] != "index.m3u8" {
			writeError(w, http.StatusNotFound, "not found")
			return
		}
		m.redirectToPublisher(w, r, room)
		return
	}
	if m.cfg.Mode == ModeOff {
		writeError(w, http.StatusServiceUnavailable, "HLS is off on this server (hls.mode)")
		return
	}
	identity := parts[1]
	b, err := m.bridge(room, identity, true)
	switch {
	case errors.Is(err, errNotLive):
		writeError(w, http.StatusNotFound, fmt.Sprintf("%s is not live in room %s", identity, room))
		return
	case err != nil:
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusServiceUnavailable, "HLS is unavailable: "+err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), m.cfg.StartTimeout)
	defer cancel()
	prefix := "/hls/" + room + "/" + identity
	http.StripPrefix(prefix, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.lad.serve(w, r, ctx)
	})).ServeHTTP(w, r)
}

func (m *Manager) redirectToPublisher(w http.ResponseWriter, r *http.Request, room string) {
	rm, ok := m.sfu.LookupRoom(room)
	if ok {
		if p, ok := rm.Publisher(); ok {
			w.Header().Set("Cache-Control", "max-age=1")
			w.Header().Set("Access-Control-Allow-Origin", "*")
			http.Redirect(w, r, "/hls/"+room+"/"+p.Identity()+"/index.m3u8", http.StatusFound)
			return
		}
	}
	writeError(w, http.StatusNotFound, "nobody publishes in room "+room)
}

// Stats sums the counters of the running ladders.
type Stats struct {
	Backend string
	Ladders int
	// Passthrough counts the ladders made of a publisher's own layers
	// (their CPU figure is the audio transcoder's alone).
	Passthrough int
	CPU         time.Duration
	Restarts    uint64
	Dropped     uint64 // input frames that never reached ffmpeg
	Segments    uint64
	Parts       uint64
	Requests    uint64
	Blocked     int64
	Status      [3]uint64 // answered 400, 404, 503 by the streams
}

// Stats returns a snapshot across ladders.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	bs := make([]*bridge, 0, len(m.bridges))
	for _, b := range m.bridges {
		bs = append(bs, b)
	}
	m.mu.Unlock()
	st := Stats{Backend: m.Backend(), Ladders: len(bs)}
	for _, b := range bs {
		if _, ok := b.lad.(*passthrough); ok {
			st.Passthrough++
		}
		t, l, ok := b.lad.stats()
		if !ok {
			continue
		}
		st.CPU += t.CPU
		st.Restarts += t.Restarts
		st.Dropped += t.VideoFramesDropped + t.AudioFramesDropped
		st.Segments += l.Segments
		st.Parts += l.Parts
		st.Requests += l.Requests
		st.Blocked += l.Blocked
		st.Status[0] += l.BadRequests
		st.Status[1] += l.NotFound
		st.Status[2] += l.Unavailable
	}
	return st
}

// Close stops every ladder.
func (m *Manager) Close() {
	m.cancel()
	m.wg.Wait()
	m.mu.Lock()
	bs := m.bridges
	m.bridges = map[string]*bridge{}
	m.mu.Unlock()
	for _, b := range bs {
		b.close()
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	// Errors are not stored anywhere: a stream that starts a moment later
	// must not stay hidden behind a cached 404 or 503.
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// ParseLadder reads renditions written WIDTHxHEIGHT:KBITS (config's
// hls.ladder), named by their height ("720p").
func ParseLadder(rungs []string) ([]transcode.Rendition, error) {
	out := make([]transcode.Rendition, 0, len(rungs))
	for _, r := range rungs {
		var w, h, kbps int
		if _, err := fmt.Sscanf(r, "%dx%d:%d", &w, &h, &kbps); err != nil || w <= 0 || h <= 0 || kbps <= 0 {
			return nil, fmt.Errorf("hls ladder rung %q is not WIDTHxHEIGHT:KBITS", r)
		}
		out = append(out, transcode.Rendition{Name: fmt.Sprintf("%dp", h), Width: w &^ 1, Height: h &^ 1, Bitrate: kbps * 1000})
	}
	return out, nil
}
