package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/starling-sfu/starling/clip"
)

// Config describes one load test run.
type Config struct {
	Mode string // "publish", "subscribe" or "fanout"
	// WHIP and WHEP are the endpoints, e.g. http://host:8080/whip/room.
	WHIP, WHEP string
	// PublishToken and ViewToken are Bearer tokens; empty sends none.
	PublishToken, ViewToken string
	Publishers              int
	Subscribers             int
	Codec                   clip.Codec
	Simulcast               bool
	Audio                   bool
	KeyframeOnRequest       bool          // publishers answer PLIs at once, as encoders do
	Layer                   string        // optional WHEP ?layer= pin
	Duration                time.Duration // measurement window once everyone joined
	Ramp                    float64       // joins per second
	ServerPID               int           // sample this process's CPU and memory
	MaxLoss                 float64       // percent; above it Run returns ErrLossExceeded
	Loopback                bool          // gather loopback candidates (server on this machine)
	Progress                io.Writer     // live progress lines; nil for none
	HTTP                    *http.Client
}

// ErrLossExceeded is returned, with the report, when loss went over MaxLoss.
var ErrLossExceeded = errors.New("loadtest: loss above --max-loss")

// viewer is one subscriber and what it measured.
type viewer struct {
	sub       *Subscriber
	joinStart time.Time
	connected atomic.Int64 // unix nanoseconds
	firstRTP  atomic.Int64
	firstDone atomic.Bool // the first-video sample was taken
	video     seqTracker  // owned by the video track's reader
	audio     seqTracker  // owned by the audio track's reader
	bytes     atomic.Int64
	mu        sync.Mutex // guards the snapshot fields read by the reporter
	vExp      int64
	vRecv     int64
	aExp      int64
	aRecv     int64
	jitter    float64 // audio interarrival jitter, RFC 3550, in seconds
	lastArr   int64
	lastTs    uint32
}

type runner struct {
	cfg     Config
	started time.Time
	clock   *sendClock
	latency histogram
	first   histogram
	joins   histogram
	failed  atomic.Int64
	viewers []*viewer
	vmu     sync.Mutex
	pubs    []*Publisher
}

// Run executes the test and returns its report. It fails fast, with a clear
// error, when the target refuses the publisher or the first viewer.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, clock: newSendClock(), started: time.Now()}
	defer r.close()
	start := time.Now()
	self0 := sampleSelf()

	if cfg.Mode != "subscribe" {
		if err := r.publish(ctx); err != nil {
			return nil, err
		}
	}
	var srv0 cpuSample
	if cfg.ServerPID > 0 {
		s, err := sampleProcess(cfg.ServerPID)
		if err != nil {
			return nil, err
		}
		srv0 = s
	}
	if cfg.Mode != "publish" {
		if err := r.subscribeAll(ctx); err != nil {
			return nil, err
		}
	}

	// Measurement window.
	r.resetWindow()
	r.latency.reset()
	w0 := time.Now()
	self1 := sampleSelf()
	srv1 := srv0
	if cfg.ServerPID > 0 {
		srv1, _ = sampleProcess(cfg.ServerPID)
	}
	r.progressUntil(ctx, w0.Add(cfg.Duration), self1, srv1)
	w1 := time.Now()
	self2 := sampleSelf()
	rep := r.report(w1.Sub(w0))
	rep.Elapsed = time.Since(start).Seconds()
	rep.TesterCores = cores(self1, self2)
	rep.TesterCoresSetup = cores(self0, self1)
	if cfg.ServerPID > 0 {
		srv2, err := sampleProcess(cfg.ServerPID)
		if err == nil {
			rep.Server = &ServerUsage{
				PID:      cfg.ServerPID,
				Cores:    cores(srv1, srv2),
				RSSBytes: srv2.rss,
			}
			if rep.DeliveredPackets > 0 {
				rep.Server.MicrosPerPacket = float64((srv2.cpu - srv1.cpu).Microseconds()) / float64(rep.DeliveredPackets)
			}
			if n := rep.Connected; n > 0 {
				rep.Server.RSSPerSubscriber = (srv2.rss - srv0.rss) / int64(n)
			}
		}
	}
	if cfg.MaxLoss >= 0 && rep.LossPercent > cfg.MaxLoss {
		return rep, fmt.Errorf("%w: %.3f%% > %.3f%%", ErrLossExceeded, rep.LossPercent, cfg.MaxLoss)
	}
	if rep.Failed > 0 && rep.Connected == 0 && cfg.Mode != "publish" {
		return rep, errors.New("loadtest: no subscriber connected")
	}
	return rep, nil
}

func (c *Config) check() error {
	switch c.Mode {
	case "publish", "subscribe", "fanout":
	default:
		return fmt.Errorf("loadtest: unknown mode %q (publish, subscribe, fanout)", c.Mode)
	}
	if c.Mode != "subscribe" && c.WHIP == "" {
		return errors.New("loadtest: a WHIP endpoint is needed")
	}
	if c.Mode != "publish" && c.WHEP == "" {
		return errors.New("loadtest: a WHEP endpoint is needed")
	}
	if c.Codec == "" {
		c.Codec = clip.VP8
	}
	if c.Publishers <= 0 {
		c.Publishers = 1
	}
	if c.Ramp <= 0 {
		c.Ramp = 20
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.HTTP == nil {
		c.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	return nil
}

func (r *runner) publish(ctx context.Context) error {
	api, err := NewAPI(r.cfg.Loopback)
	if err != nil {
		return err
	}
	for i := range r.cfg.Publishers {
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		p, err := Publish(pctx, PublisherOptions{
			URL: r.cfg.WHIP, Token: r.cfg.PublishToken, Codec: r.cfg.Codec,
			Simulcast: r.cfg.Simulcast, Audio: r.cfg.Audio, KeyframeOnRequest: r.cfg.KeyframeOnRequest,
			API: api, HTTP: r.cfg.HTTP,
			OnSend: func(layer string, p *rtp.Packet, _ bool, at time.Time) {
				c := r.cfg.Codec
				if layer == "audio" {
					c = clip.Opus
				}
				if k, ok := matchKey(c, p.Payload); ok {
					r.clock.record(k, at)
				}
			},
		})
		if err == nil {
			r.pubs = append(r.pubs, p)
			err = p.WaitConnected(pctx)
		}
		cancel()
		if err != nil {
			return fmt.Errorf("publisher %d: %w", i+1, err)
		}
	}
	return nil
}

// subscribeAll joins viewers at the ramp rate. The first failure before any
// viewer connected ends the run: the target is wrong, not overloaded.
func (r *runner) subscribeAll(ctx context.Context) error {
	api, err := NewViewerAPI(r.cfg.Loopback)
	if err != nil {
		return err
	}
	interval := time.Duration(float64(time.Second) / r.cfg.Ramp)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var wg sync.WaitGroup
	firstErr := make(chan error, 1)
	var connected atomic.Int64
	for i := range r.cfg.Subscribers {
		if i > 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				wg.Wait()
				return ctx.Err()
			case err := <-firstErr:
				wg.Wait()
				return err
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.join(ctx, api); err != nil {
				r.failed.Add(1)
				if connected.Load() == 0 {
					select {
					case firstErr <- fmt.Errorf("subscriber %d: %w", i+1, err):
					default:
					}
				}
				return
			}
			connected.Add(1)
		}()
		if r.cfg.Progress != nil && (i+1)%50 == 0 {
			fmt.Fprintf(r.cfg.Progress, "joining: %d/%d started, %d connected\n", i+1, r.cfg.Subscribers, connected.Load())
		}
	}
	wg.Wait()
	select {
	case err := <-firstErr:
		if connected.Load() == 0 {
			return err
		}
	default:
	}
	return nil
}

// streamStartGrace is how long a viewer retries a 404 after the run
// started: a server publishes a track once its first packets arrive, a
// moment after the publisher connected.
const streamStartGrace = 5 * time.Second

func (r *runner) join(ctx context.Context, api *webrtc.API) error {
	v := &viewer{joinStart: time.Now()}
	jctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var s *Subscriber
	for {
		var err error
		s, err = Subscribe(jctx, SubscriberOptions{
			URL: r.cfg.WHEP, Token: r.cfg.ViewToken, Layer: r.cfg.Layer, API: api, HTTP: r.cfg.HTTP,
			OnRTP: func(kind webrtc.RTPCodecType, p *rtp.Packet, at time.Time) { r.onRTP(v, kind, p, at) },
		})
		var se *StatusError
		if err == nil {
			break
		}
		if !errors.As(err, &se) || se.Code != http.StatusNotFound || time.Since(r.started) > streamStartGrace || r.cfg.Mode != "fanout" {
			return err
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-jctx.Done():
			return err
		}
		v.joinStart = time.Now()
	}
	v.sub = s
	r.vmu.Lock()
	r.viewers = append(r.viewers, v)
	r.vmu.Unlock()
	if err := s.WaitConnected(jctx); err != nil {
		return err
	}
	now := time.Now()
	v.connected.Store(now.UnixNano())
	r.joins.add(int64(now.Sub(v.joinStart)))
	if f := v.firstRTP.Load(); f != 0 && v.firstDone.CompareAndSwap(false, true) {
		r.first.add(max(0, f-now.UnixNano()))
	}
	return nil
}

func (r *runner) onRTP(v *viewer, kind webrtc.RTPCodecType, p *rtp.Packet, at time.Time) {
	v.bytes.Add(int64(len(p.Payload) + 12))
	if kind == webrtc.RTPCodecTypeAudio {
		v.mu.Lock()
		v.audio.add(p.SequenceNumber)
		arr := at.UnixNano()
		if v.lastArr != 0 {
			d := float64(arr-v.lastArr)/1e9 - float64(int32(p.Timestamp-v.lastTs))/48000
			if d < 0 {
				d = -d
			}
			v.jitter += (d - v.jitter) / 16
		}
		v.lastArr, v.lastTs = arr, p.Timestamp
		v.mu.Unlock()
	} else {
		v.mu.Lock()
		v.video.add(p.SequenceNumber)
		v.mu.Unlock()
		if v.firstRTP.CompareAndSwap(0, at.UnixNano()) {
			if c := v.connected.Load(); c != 0 && v.firstDone.CompareAndSwap(false, true) {
				r.first.add(at.UnixNano() - c)
			}
		}
	}
	// Packets sent before the viewer connected reach it from the server's
	// cache (its start on a cached keyframe): they say nothing of
	// forwarding latency.
	c := r.cfg.Codec
	if kind == webrtc.RTPCodecTypeAudio {
		c = clip.Opus
	}
	k, ok := matchKey(c, p.Payload)
	if !ok {
		return
	}
	if sent, ok := r.clock.lookup(k); ok && sent > v.connected.Load() && v.connected.Load() != 0 {
		r.latency.add(at.UnixNano() - sent)
	}
}

// resetWindow starts the measurement window: counts from here on.
func (r *runner) resetWindow() {
	for _, v := range r.snapshotViewers() {
		v.mu.Lock()
		v.vExp, v.vRecv = v.video.expected(), v.video.received
		v.aExp, v.aRecv = v.audio.expected(), v.audio.received
		v.bytes.Store(0)
		v.mu.Unlock()
	}
}

func (r *runner) snapshotViewers() []*viewer {
	r.vmu.Lock()
	defer r.vmu.Unlock()
	return append([]*viewer(nil), r.viewers...)
}

func (h *histogram) reset() {
	h.mu.Lock()
	h.samples, h.seen, h.max = h.samples[:0], 0, 0
	h.mu.Unlock()
}

// progressUntil prints a line a second until the window ends.
func (r *runner) progressUntil(ctx context.Context, end time.Time, self, srv cpuSample) {
	progressLines(ctx, r.cfg.Progress, end, r.cfg.ServerPID, self, srv, func(elapsed time.Duration) string {
		rep := r.report(elapsed)
		return fmt.Sprintf("t=%3.0fs subs %d/%d  rx %.0f pkt/s %.1f Mbit/s  loss %.3f%%  latency p50 %.2f p99 %.2f ms",
			elapsed.Seconds(), rep.Connected, r.cfg.Subscribers, rep.PacketsPerSecond, rep.MbitPerSecond,
			rep.LossPercent, rep.Latency.P50, rep.Latency.P99)
	})
}

// progressLines writes a progress line a second to w (when not nil) until
// end: what line says of the run so far, then the tester's CPU and, with a
// server pid, the server's CPU and memory.
func progressLines(ctx context.Context, w io.Writer, end time.Time, serverPID int, self, srv cpuSample, line func(elapsed time.Duration) string) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	t0 := time.Now()
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if w == nil {
			continue
		}
		l := line(time.Since(t0)) + fmt.Sprintf("  tester %.2f cores", cores(self, sampleSelf()))
		if serverPID > 0 {
			if s, err := sampleProcess(serverPID); err == nil {
				l += fmt.Sprintf("  server %.2f cores %d MiB", cores(srv, s), s.rss>>20)
			}
		}
		fmt.Fprintln(w, l)
	}
}

func (r *runner) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, v := range r.snapshotViewers() {
		wg.Add(1)
		go func() { defer wg.Done(); _ = v.sub.Close(ctx) }()
	}
	wg.Wait()
	for _, p := range r.pubs {
		_ = p.Close(ctx)
	}
}
