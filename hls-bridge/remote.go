package hlsbridge

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starling-sfu/starling/hls-bridge/llhls"
	"github.com/starling-sfu/starling/hls-bridge/rtpsrc"
	"github.com/starling-sfu/starling/transcode"
)

// RemoteConfig configures a bridge fed by a remote WHEP server, as on a GPU
// node: `starling hls-bridge --whep URL`.
type RemoteConfig struct {
	URL, Token      string
	IncludeLoopback bool
	Transcode       transcode.Config
	HLS             llhls.Config
	Logger          *slog.Logger
}

// Remote plays a WHEP URL into one ladder and serves it (ServeHTTP, paths
// relative to the stream root). When the session ends (the publisher left,
// the network failed) the stream ends with ENDLIST and the bridge dials
// again with backoff; the next ladder replaces it.
type Remote struct {
	cfg  RemoteConfig
	tc   *transcode.Transcoder
	log  *slog.Logger
	pipe atomic.Pointer[pipeline]
	// Connected is closed the first time media flows.
	connected chan struct{}
	connOnce  sync.Once
}

// NewRemote probes ffmpeg; it fails when no backend works.
func NewRemote(ctx context.Context, cfg RemoteConfig) (*Remote, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Transcode.Logger == nil {
		cfg.Transcode.Logger = cfg.Logger
	}
	if cfg.Transcode.KeyframeInterval == 0 {
		cfg.Transcode.KeyframeInterval = cfg.HLS.SegmentTarget
	}
	tc, err := transcode.New(ctx, cfg.Transcode)
	if err != nil {
		return nil, err
	}
	return &Remote{cfg: cfg, tc: tc, log: cfg.Logger, connected: make(chan struct{})}, nil
}

// Backend is the transcoding backend the probe chose.
func (r *Remote) Backend() transcode.Backend { return r.tc.Backend() }

// Run dials and re-dials the WHEP URL until ctx ends.
func (r *Remote) Run(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		started := time.Now()
		err := r.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > 30*time.Second {
			backoff = time.Second
		}
		r.log.Warn("whep session ended; dialling again", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// session plays one WHEP session into a new ladder until it ends.
func (r *Remote) session(ctx context.Context) error {
	var ws atomic.Pointer[rtpsrc.WHEPSource]
	pipe := newPipeline("whep", r.tc, r.cfg.HLS, true, r.log)
	pipe.origin = func() (time.Time, bool) {
		if w := ws.Load(); w != nil {
			return w.Source().Origin()
		}
		return time.Time{}, false
	}
	pipe.keyframe = func() {
		if w := ws.Load(); w != nil {
			w.RequestKeyframe()
		}
	}
	dialCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	w, err := rtpsrc.DialWHEP(dialCtx, r.cfg.URL, r.cfg.Token, rtpsrc.WHEPOptions{
		Handler:         pipe,
		IncludeLoopback: r.cfg.IncludeLoopback,
		Logger:          r.log,
	})
	cancel()
	if err != nil {
		pipe.close()
		return err
	}
	ws.Store(w)
	if old := r.pipe.Swap(pipe); old != nil {
		old.close()
	}
	r.connOnce.Do(func() { close(r.connected) })
	r.log.Info("whep session playing", "url", r.cfg.URL, "session", w.Location())
	select {
	case <-ctx.Done():
	case <-w.Done():
	}
	_ = w.Close()
	pipe.close() // ENDLIST; it keeps serving until the next session replaces it
	if err := w.Err(); err != nil {
		return err
	}
	return errors.New("session closed")
}

// ServeHTTP serves the current ladder.
func (r *Remote) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	p := r.pipe.Load()
	if p == nil {
		w.Header().Set("Retry-After", "2")
		writeError(w, http.StatusServiceUnavailable, "the bridge is not playing "+r.cfg.URL+" yet")
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
	defer cancel()
	p.serve(w, req, ctx)
}

// Close ends the current ladder.
func (r *Remote) Close() {
	if p := r.pipe.Load(); p != nil {
		p.close()
	}
}

// Stats reports the current ladder's counters.
func (r *Remote) Stats() Stats {
	st := Stats{Backend: string(r.tc.Backend())}
	if p := r.pipe.Load(); p != nil {
		if t, l, ok := p.stats(); ok {
			st.Ladders = 1
			st.CPU, st.Restarts = t.CPU, t.Restarts
			st.Dropped = t.VideoFramesDropped + t.AudioFramesDropped
			st.Segments, st.Parts, st.Requests, st.Blocked = l.Segments, l.Parts, l.Requests, l.Blocked
			st.Status = [3]uint64{l.BadRequests, l.NotFound, l.Unavailable}
		}
	}
	return st
}
