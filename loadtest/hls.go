package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// HLSConfig describes an LL-HLS viewer load test: Viewers simulated
// players, started at Ramp per second, each following one rendition of the
// stream at URL as hls.js does in low-latency mode, for Duration after the
// last one started. They read playlists and count the bytes of parts
// without decoding them, so any LL-HLS server can be the target.
type HLSConfig struct {
	// URL is the multivariant playlist; a media playlist works too (one
	// rendition, its audio muxed in).
	URL     string
	Viewers int
	Ramp    float64 // viewers started per second; default 20
	// Duration is the measurement window after the last viewer started;
	// default 10 s.
	Duration time.Duration
	// Rendition picks each viewer's variant: "" or "all-round-robin"
	// spreads the viewers over all of them (viewer i gets variant i mod n),
	// "lowest" and "highest" go by BANDWIDTH, anything else names a variant
	// (the directory of its URI, e.g. "720p", or the URI itself).
	Rendition string
	// NoAudio ignores a separate audio rendition; by default a viewer
	// follows it as well, as hls.js does.
	NoAudio bool
	// PreloadHint also requests the part an EXT-X-PRELOAD-HINT names,
	// before it exists, as Safari does (hls.js 1.7 parses the tag but does
	// not request it).
	PreloadHint bool
	// StartTimeout bounds each viewer's start: playlists that answer 503
	// (or 404 with Retry-After) while the stream starts are asked again
	// until then; default 20 s.
	StartTimeout time.Duration
	// ServerPID, when set, is sampled for CPU and memory.
	ServerPID int
	// MaxStalls: more stalls than this in total and RunHLS returns
	// ErrStallsExceeded with the report; negative for never.
	MaxStalls int
	Progress  io.Writer // a progress line a second; nil for none
	// HTTP is the client every viewer shares; default NewHLSClient.
	HTTP *http.Client
}

// ErrStallsExceeded is returned, with the report, when the viewers stalled
// more often than MaxStalls.
var ErrStallsExceeded = errors.New("loadtest: stalls above --max-stalls")

// NewHLSClient returns an HTTP client for viewers players: keep-alive,
// HTTP/2 when the server offers it over TLS, and enough connections per
// host for each viewer's requests in flight (a blocking reload and a part,
// for video and for audio) so that no viewer queues behind another.
func NewHLSClient(viewers int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	conns := 4*max(viewers, 1) + 16
	t.MaxConnsPerHost, t.MaxIdleConnsPerHost, t.MaxIdleConns = conns, conns, conns
	t.ForceAttemptHTTP2 = true
	return &http.Client{Transport: t}
}

func (c *HLSConfig) check() error {
	if c.URL == "" {
		return errors.New("loadtest: hls needs a playlist URL")
	}
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("loadtest: playlist URL %q is not an http(s) URL", c.URL)
	}
	if c.Viewers <= 0 {
		return errors.New("loadtest: hls needs at least one viewer")
	}
	switch c.Rendition {
	case "", "all-round-robin", "lowest", "highest":
	default:
		if strings.ContainsAny(c.Rendition, " \t") {
			return fmt.Errorf("loadtest: rendition %q", c.Rendition)
		}
	}
	if c.Ramp <= 0 {
		c.Ramp = 20
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 20 * time.Second
	}
	if c.HTTP == nil {
		c.HTTP = NewHLSClient(c.Viewers)
	}
	return nil
}

// hlsRun is one run: its viewers and what they measured together.
type hlsRun struct {
	cfg     HLSConfig
	timeout atomic.Int64 // per request, nanoseconds

	reload      histogram // blocking reload, request to last byte
	partFetch   histogram // listed part, request to last byte
	hintFetch   histogram // hinted part, request (before it existed) to last byte
	partLatency histogram // see follower.arrive
	playLatency histogram // wall clock minus the date of the media playing
	firstPart   histogram // viewer start to its first video part

	parts, reloads, deltas    atomic.Int64
	mediaBytes, playlistBytes atomic.Int64
	startRetries, windowBase  atomic.Int64

	mu      sync.Mutex // guards the fields below
	viewers []*hlsViewer
	errs    map[string]int64
	stream  streamInfo
	wg      sync.WaitGroup
}

// streamInfo is what the first viewer learnt of the stream.
type streamInfo struct {
	known                              bool
	partTarget, targetDuration, holdBk time.Duration
}

// RunHLS runs the viewers and returns the report. The first viewer starts
// alone: when it cannot play (connection refused, an error status, a body
// that is no playlist, no part within the start timeout) RunHLS returns
// that error and no report.
func RunHLS(ctx context.Context, cfg HLSConfig) (*HLSReport, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	r := &hlsRun{cfg: cfg, errs: map[string]int64{}}
	r.timeout.Store(int64(15 * time.Second))
	start, self0 := time.Now(), sampleSelf()
	var srv0 cpuSample
	if cfg.ServerPID > 0 {
		s, err := sampleProcess(cfg.ServerPID)
		if err != nil {
			return nil, err
		}
		srv0 = s
	}
	vctx, stopViewers := context.WithCancel(ctx)
	defer func() { stopViewers(); r.wg.Wait() }()

	first := r.startViewer(vctx, 0)
	if err := r.waitFirst(ctx, first); err != nil {
		return nil, err
	}
	prog := r.startProgress(start, self0, srv0)
	r.ramp(ctx, vctx)

	// The window: after the last viewer started.
	w0, self1 := time.Now(), sampleSelf()
	srv1 := srv0
	if cfg.ServerPID > 0 {
		srv1, _ = sampleProcess(cfg.ServerPID)
	}
	r.windowBase.Store(r.parts.Load())
	for _, v := range r.snapshot() {
		v.windowBytes.Store(0)
	}
	_ = sleepCtx(ctx, cfg.Duration)
	w1, self2 := time.Now(), sampleSelf()
	prog.stop()
	rep := r.report(w1, w1.Sub(w0))
	stopViewers()
	r.wg.Wait()
	rep.Elapsed = time.Since(start).Seconds()
	rep.TesterCores, rep.TesterCoresSetup = cores(self1, self2), cores(self0, self1)
	if cfg.ServerPID > 0 {
		if srv2, err := sampleProcess(cfg.ServerPID); err == nil {
			rep.Server = &HLSServerUsage{PID: cfg.ServerPID, Cores: cores(srv1, srv2), RSSBytes: srv2.rss}
			if n := rep.WindowParts; n > 0 {
				rep.Server.MicrosPerPart = float64((srv2.cpu - srv1.cpu).Microseconds()) / float64(n)
			}
			if n := rep.Started; n > 0 {
				rep.Server.RSSPerViewer = (srv2.rss - srv0.rss) / int64(n)
			}
		}
	}
	if cfg.MaxStalls >= 0 && rep.Stalls > cfg.MaxStalls {
		return rep, fmt.Errorf("%w: %d > %d", ErrStallsExceeded, rep.Stalls, cfg.MaxStalls)
	}
	return rep, nil
}

func (r *hlsRun) startViewer(ctx context.Context, i int) *hlsViewer {
	v := &hlsViewer{id: i, run: r, start: time.Now(), ready: make(chan error, 1)}
	r.mu.Lock()
	r.viewers = append(r.viewers, v)
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		v.watch(ctx)
	}()
	return v
}

// waitFirst waits for the first viewer's first part.
func (r *hlsRun) waitFirst(ctx context.Context, v *hlsViewer) error {
	// The viewer's own start is bounded by StartTimeout; a part that
	// already existed then should not take longer than a request timeout.
	timer := time.NewTimer(r.cfg.StartTimeout + time.Duration(r.timeout.Load()))
	defer timer.Stop()
	select {
	case err := <-v.ready:
		return err
	case <-timer.C:
		return fmt.Errorf("hls: no part arrived within the start timeout (%v) from %s", r.cfg.StartTimeout, r.cfg.URL)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ramp starts the other viewers at the ramp rate; a viewer that fails to
// start is counted, and the others go on.
func (r *hlsRun) ramp(ctx, vctx context.Context) {
	tick := time.NewTicker(time.Duration(float64(time.Second) / r.cfg.Ramp))
	defer tick.Stop()
	for i := 1; i < r.cfg.Viewers; i++ {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		r.startViewer(vctx, i)
	}
}

func (r *hlsRun) snapshot() []*hlsViewer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*hlsViewer(nil), r.viewers...)
}

// pick returns viewer i's variant.
func (r *hlsRun) pick(i int, m *multivariant) (variant, error) {
	vs := m.variants
	best := func(better func(a, b int64) bool) variant {
		b := vs[0]
		for _, v := range vs[1:] {
			if better(v.bandwidth, b.bandwidth) {
				b = v
			}
		}
		return b
	}
	switch r.cfg.Rendition {
	case "", "all-round-robin":
		return vs[i%len(vs)], nil
	case "lowest":
		return best(func(a, b int64) bool { return a < b }), nil
	case "highest":
		return best(func(a, b int64) bool { return a > b }), nil
	}
	names := make([]string, len(vs))
	for j, v := range vs {
		if v.name == r.cfg.Rendition || v.uri == r.cfg.Rendition {
			return v, nil
		}
		names[j] = v.name
	}
	return variant{}, fmt.Errorf("hls: no rendition %q in the multivariant playlist (it has %s)", r.cfg.Rendition, strings.Join(names, ", "))
}

// noteStream keeps what the first video playlist says of the stream, and
// lets requests wait as long as the spec lets a blocking reload be held
// (three target durations) and then some.
func (r *hlsRun) noteStream(pl *mediaPlaylist, holdBack time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stream.known {
		return
	}
	r.stream = streamInfo{known: true, partTarget: pl.partTarget, targetDuration: pl.targetDuration, holdBk: holdBack}
	r.timeout.Store(int64(max(15*time.Second, 3*pl.targetDuration+5*time.Second)))
}

func (r *hlsRun) countError(key string) {
	r.mu.Lock()
	r.errs[key]++
	r.mu.Unlock()
}

// failed counts a failed request: by status, or as a timeout or a network
// error.
func (v *hlsViewer) failed(res *fetched, err error) {
	v.errors.Add(1)
	var ne net.Error
	switch {
	case res != nil:
		v.run.countError(strconv.Itoa(res.status))
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		v.run.countError("timeout")
	default:
		v.run.countError("network")
	}
}

func (v *hlsViewer) addBytes(n int) {
	v.bytes.Add(int64(n))
	v.windowBytes.Add(int64(n))
	v.run.mediaBytes.Add(int64(n))
}

// fetched is an HTTP answer read to its end.
type fetched struct {
	status int
	header http.Header
	body   []byte
	url    *url.URL  // after redirects
	done   time.Time // when the last byte arrived
}

func (f *fetched) ok() bool { return f != nil && f.status >= 200 && f.status < 300 }

// maxBody bounds what a viewer reads of one answer.
const maxBody = 64 << 20

// get sends a GET, with a Range header when byteRange is set, and reads
// the answer whatever its status.
func (r *hlsRun) get(ctx context.Context, u *url.URL, byteRange string) (*fetched, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(r.timeout.Load()))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if byteRange != "" {
		req.Header.Set("Range", "bytes="+byteRange)
	}
	resp, err := r.cfg.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, err
	}
	return &fetched{status: resp.StatusCode, header: resp.Header, body: body, url: resp.Request.URL, done: time.Now()}, nil
}

// statusErr describes an error answer with the server's {"error": …} text
// or the start of its body.
func statusErr(res *fetched) error {
	var e struct {
		Error string `json:"error"`
	}
	msg := bodyStart(res.body)
	if json.Unmarshal(res.body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	return &StatusError{Code: res.status, Message: msg}
}

func bodyStart(b []byte) string {
	s := strings.TrimSpace(string(b[:min(len(b), 120)]))
	return strings.Join(strings.Fields(s), " ")
}

// progress prints a line a second until stopped.
type progress struct {
	done chan struct{}
	wg   sync.WaitGroup
}

func (p *progress) stop() {
	if p.done != nil {
		close(p.done)
		p.wg.Wait()
	}
}

func (r *hlsRun) startProgress(start time.Time, self, srv cpuSample) *progress {
	p := &progress{}
	if r.cfg.Progress == nil {
		return p
	}
	p.done = make(chan struct{})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		lastParts, lastBytes, last := r.parts.Load(), r.mediaBytes.Load(), time.Now()
		for {
			select {
			case <-p.done:
				return
			case <-tick.C:
			}
			now := time.Now()
			parts, bytes := r.parts.Load(), r.mediaBytes.Load()
			secs := now.Sub(last).Seconds()
			rep := r.report(now, 0)
			line := fmt.Sprintf("t=%3.0fs viewers %d/%d (%d failed) playing %d  %.0f parts/s %.1f Mbit/s  stalls %d  errors %d  reload p50 %.0f ms  part latency p50 %.0f p99 %.0f ms  playback latency p50 %.2f s  tester %.2f cores",
				now.Sub(start).Seconds(), rep.Started, r.cfg.Viewers, rep.Failed, rep.Playing,
				float64(parts-lastParts)/secs, float64(bytes-lastBytes)*8/1e6/secs, rep.Stalls, rep.HTTPErrorCount(),
				rep.Reload.P50, rep.PartLatency.P50, rep.PartLatency.P99, rep.PlaybackLatency.P50/1000, cores(self, sampleSelf()))
			if r.cfg.ServerPID > 0 {
				if s, err := sampleProcess(r.cfg.ServerPID); err == nil {
					line += fmt.Sprintf("  server %.2f cores %d MiB", cores(srv, s), s.rss>>20)
				}
			}
			fmt.Fprintln(r.cfg.Progress, line)
			lastParts, lastBytes, last = parts, bytes, now
		}
	}()
	return p
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
