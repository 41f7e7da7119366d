package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/logging"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/starling-sfu/starling/clip"
	"github.com/starling-sfu/starling/rtcclient"
)

// RoomConfig describes a room load test: Participants join one room over
// LiveKit's signal protocol (a server's /rtc), each publishes the embedded
// camera (simulcast) and microphone clips and is subscribed to everyone
// else's, so N participants make N×(N−1) subscriptions of each kind.
type RoomConfig struct {
	// URL is the server, e.g. http://host:8080; its /rtc is dialled.
	URL string
	// Token mints the token of a participant, with publish and subscribe
	// grants for the room, for an identity.
	Token        func(identity string) (string, error)
	Participants int
	Codec        clip.Codec // clip.VP8 (default) or clip.H264
	NoSimulcast  bool       // publish the top layer only
	NoVideo      bool
	NoAudio      bool
	// AdaptiveWidth and AdaptiveHeight, when set, go in an
	// UpdateTrackSettings for every subscribed video, as a grid of tiles
	// that size would send: the SFU then forwards the smallest layer that
	// covers them.
	AdaptiveWidth, AdaptiveHeight uint32
	Duration                      time.Duration // measurement window once the room settled
	Ramp                          float64       // joins per second
	// Settle bounds the wait, before the window starts, for every
	// subscription's first packet and for the layers forwarded to stop
	// changing; default 15 s.
	Settle    time.Duration
	ServerPID int     // sample this process's CPU and memory
	MaxLoss   float64 // percent; above it RunRoom returns ErrLossExceeded
	Loopback  bool    // gather loopback candidates (server on this machine)
	Progress  io.Writer
}

// ErrSubscriptionsMissing is returned, with the report, when some
// participant never received some other participant's track.
var ErrSubscriptionsMissing = errors.New("loadtest: not every subscription was established")

// participant is one simulated room member: what it sent and what it
// received.
type participant struct {
	identity  string
	joinStart time.Time
	c         *rtcclient.Client
	clip      atomic.Pointer[rtcclient.ClipPublication]
	sent      *sentLog
	published atomic.Bool
	dropped   atomic.Bool      // the server ended its session
	subs      sync.Map         // *rtcclient.RemoteTrack → *subscription
	w0Sent    [numLayers]int64 // packets sent per layer when the window started
}

type roomRun struct {
	cfg   RoomConfig
	api   *webrtc.API
	runID string

	mu     sync.Mutex
	parts  []*participant // every one that joined
	errs   []string       // the first join failures
	bySID  sync.Map       // participant SID → *participant
	failed atomic.Int64

	joins       histogram
	first       [numKinds]histogram
	latency     histogram
	kindLatency [numKinds]histogram
}

// maxErrors is how many join failures a report quotes.
const maxErrors = 5

// RunRoom executes a room load test and returns its report. A target that
// refuses the first participant (refused connection, 401, wrong path) ends
// it at once with that error and no report.
func RunRoom(ctx context.Context, cfg RoomConfig) (*RoomReport, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	api, err := newRoomAPI(cfg.Loopback)
	if err != nil {
		return nil, err
	}
	r := &roomRun{cfg: cfg, api: api, runID: shortID()}
	defer r.close()
	start := time.Now()
	self0 := sampleSelf()
	var srv0 cpuSample
	if cfg.ServerPID > 0 {
		if srv0, err = sampleProcess(cfg.ServerPID); err != nil {
			return nil, err
		}
	}
	if err := r.joinAll(ctx); err != nil {
		return nil, err
	}
	settleStart := time.Now()
	settled := r.settle(ctx)
	settleTime := time.Since(settleStart)

	r.startWindow()
	w0 := time.Now()
	self1 := sampleSelf()
	srv1 := srv0
	if cfg.ServerPID > 0 {
		srv1, _ = sampleProcess(cfg.ServerPID)
	}
	r.progressUntil(ctx, w0.Add(cfg.Duration), self1, srv1)
	rep := r.report(time.Since(w0), true)
	rep.Elapsed = time.Since(start).Seconds()
	rep.Settle, rep.Settled = settleTime.Seconds(), settled
	rep.TesterCores = cores(self1, sampleSelf())
	rep.TesterCoresSetup = cores(self0, self1)
	if cfg.ServerPID > 0 {
		if srv2, err := sampleProcess(cfg.ServerPID); err == nil {
			rep.Server = &ServerUsage{PID: cfg.ServerPID, Cores: cores(srv1, srv2), RSSBytes: srv2.rss}
			if rep.DeliveredPackets > 0 {
				rep.Server.MicrosPerPacket = float64((srv2.cpu - srv1.cpu).Microseconds()) / float64(rep.DeliveredPackets)
			}
			if n := rep.Established; n > 0 {
				rep.Server.RSSPerSubscriber = (srv2.rss - srv0.rss) / int64(n)
			}
		}
	}
	var errs []error
	if rep.Established < rep.Expected {
		errs = append(errs, fmt.Errorf("%w: %s", ErrSubscriptionsMissing, rep.establishedSummary()))
	}
	if cfg.MaxLoss >= 0 && rep.LossPercent > cfg.MaxLoss {
		errs = append(errs, fmt.Errorf("%w: %.3f%% > %.3f%%", ErrLossExceeded, rep.LossPercent, cfg.MaxLoss))
	}
	return rep, errors.Join(errs...)
}

func (c *RoomConfig) check() error {
	switch {
	case c.URL == "":
		return errors.New("loadtest: room needs the server's URL")
	case c.Token == nil:
		return errors.New("loadtest: room needs tokens (API key and secret)")
	case c.Participants < 2:
		return errors.New("loadtest: room needs at least two participants")
	case c.NoVideo && c.NoAudio:
		return errors.New("loadtest: room participants must publish audio, video or both")
	}
	switch c.Codec {
	case "":
		c.Codec = clip.VP8
	case clip.VP8, clip.H264:
	default:
		return fmt.Errorf("loadtest: codec %q is not vp8 or h264", c.Codec)
	}
	if c.Ramp <= 0 {
		c.Ramp = 5
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Settle <= 0 {
		c.Settle = 15 * time.Second
	}
	return nil
}

// newRoomAPI builds the one pion API every participant's two peer
// connections share: pion's default codecs, the audio-level extension a
// browser's microphone sends, NACK, RTCP reports, simulcast header
// extensions and TWCC feedback, as rtcclient.NewAPI, but not the stats
// interceptor nobody reads here, and UDP only.
func newRoomAPI(loopback bool) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("loadtest: codecs: %w", err)
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("loadtest: audio level extension: %w", err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureNack(m, ir); err != nil {
		return nil, fmt.Errorf("loadtest: nack: %w", err)
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, fmt.Errorf("loadtest: reports: %w", err)
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		return nil, fmt.Errorf("loadtest: simulcast extensions: %w", err)
	}
	// The TWCC sender logs, as an error, every feedback it cannot write
	// once its connection is closing: noise among the progress lines.
	quiet := &logging.DefaultLoggerFactory{Writer: io.Discard, DefaultLogLevel: logging.LogLevelDisabled}
	if err := webrtc.ConfigureTWCCSenderWithOptions(m, ir, twcc.WithLoggerFactory(quiet)); err != nil {
		return nil, fmt.Errorf("loadtest: twcc: %w", err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(loopback)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// shortID tells this run's identities from another run's in the same room.
func shortID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// joinAll joins the participants at the ramp rate, the first one alone: a
// bad target ends the run at once. Later failures are counted.
func (r *roomRun) joinAll(ctx context.Context) error {
	tick := time.NewTicker(time.Duration(float64(time.Second) / r.cfg.Ramp))
	defer tick.Stop()
	if err := r.join(ctx, 0); err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := 1; i < r.cfg.Participants; i++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.join(ctx, i); err != nil {
				r.failed.Add(1)
				r.mu.Lock()
				if len(r.errs) < maxErrors {
					r.errs = append(r.errs, err.Error())
				}
				r.mu.Unlock()
				if r.cfg.Progress != nil {
					fmt.Fprintln(r.cfg.Progress, err)
				}
			}
		}()
		if r.cfg.Progress != nil && (i+1)%10 == 0 {
			fmt.Fprintf(r.cfg.Progress, "joining: %d/%d started\n", i+1, r.cfg.Participants)
		}
	}
	return nil
}

// join connects participant i and publishes its camera and microphone.
func (r *roomRun) join(ctx context.Context, i int) error {
	p := &participant{identity: fmt.Sprintf("lt-%s-%d", r.runID, i+1), sent: newSentLog(r.cfg.Codec)}
	token, err := r.cfg.Token(p.identity)
	if err != nil {
		return fmt.Errorf("loadtest: participant %s: token: %w", p.identity, err)
	}
	jctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	p.joinStart = time.Now()
	c, err := rtcclient.Join(jctx, rtcclient.Options{
		URL: r.cfg.URL, Token: token, API: r.api,
		Handlers: rtcclient.Handlers{
			OnRTP:          func(rt *rtcclient.RemoteTrack, pkt *rtp.Packet, at time.Time) { r.onRTP(p, rt, pkt, at) },
			OnDisconnected: func(error) { p.dropped.Store(true) },
		},
	})
	if err != nil {
		return fmt.Errorf("loadtest: participant %s joins %s: %w", p.identity, r.cfg.URL, err)
	}
	r.joins.add(int64(time.Since(p.joinStart)))
	p.c = c
	// Known before it publishes, so that every packet of its tracks finds
	// its sent log.
	r.bySID.Store(c.SID(), p)
	r.mu.Lock()
	r.parts = append(r.parts, p)
	r.mu.Unlock()
	if w, h := r.cfg.AdaptiveWidth, r.cfg.AdaptiveHeight; w > 0 && h > 0 {
		c.OnTrack(func(rt *rtcclient.RemoteTrack) {
			if rt.Kind() == webrtc.RTPCodecTypeVideo {
				_ = c.UpdateTrackSettings(rt.TrackSID, false, w, h, livekit.VideoQuality_HIGH)
			}
		})
	}
	pub, err := c.PublishClip(jctx, rtcclient.ClipOptions{
		Codec: r.cfg.Codec, NoSimulcast: r.cfg.NoSimulcast, NoVideo: r.cfg.NoVideo, NoAudio: r.cfg.NoAudio,
		OnSend: p.sent.onSend,
	})
	if err != nil {
		return fmt.Errorf("loadtest: participant %s publishes: %w", p.identity, err)
	}
	p.clip.Store(pub)
	p.published.Store(true)
	return nil
}

// onRTP sees every packet a participant receives, on the track's read
// goroutine.
func (r *roomRun) onRTP(p *participant, rt *rtcclient.RemoteTrack, pkt *rtp.Packet, at time.Time) {
	var s *subscription
	if v, ok := p.subs.Load(rt); ok {
		s = v.(*subscription)
	} else {
		// The first packet: only this goroutine reads rt.
		var from *participant
		if v, ok := r.bySID.Load(rt.ParticipantSID); ok {
			from = v.(*participant)
		}
		s = newSubscription(rt, from)
		p.subs.Store(rt, s)
	}
	now := at.UnixNano()
	if s.first.CompareAndSwap(0, now) && s.from != nil {
		// From when the subscription could start: the later of this
		// participant's join and the publisher's first packet.
		d := max(0, now-max(p.joinStart.UnixNano(), s.from.sent.start.Load()))
		s.firstDelay.Store(d)
		r.first[s.kind].add(d)
	}
	if f, live := s.add(pkt, now); live {
		r.latency.add(now - f.at)
		r.kindLatency[s.kind].add(now - f.at)
		s.latency.add(now - f.at)
	}
}

func (r *roomRun) participants() []*participant {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*participant(nil), r.parts...)
}

// subKey names a subscription independently of its RemoteTrack, which a
// resubscription replaces.
type subKey struct {
	to, from *participant
	kind     int
}

// expected is how many subscriptions of each kind the room should have.
func (r *roomRun) expected() [numKinds]int {
	n := r.cfg.Participants * (r.cfg.Participants - 1)
	var e [numKinds]int
	if !r.cfg.NoVideo {
		e[kindVideo] = n
	}
	if !r.cfg.NoAudio {
		e[kindAudio] = n
	}
	return e
}

// established counts the subscriptions of each kind that received a packet.
func (r *roomRun) established() [numKinds]int {
	var n [numKinds]int
	seen := map[subKey]bool{}
	for _, p := range r.participants() {
		p.subs.Range(func(_, v any) bool {
			s := v.(*subscription)
			k := subKey{p, s.from, s.kind}
			if s.from != nil && s.first.Load() != 0 && !seen[k] {
				seen[k] = true
				n[s.kind]++
			}
			return true
		})
	}
	return n
}

// layersSettled is how long no video subscription may have changed layer
// before the window starts. An SFU may start a subscriber on a low layer
// and move it up a step at a time after probing the path (Starling probes
// for 2.4 s, and waits up to 5 s after a failed probe); the window measures
// the room once that is done, not the ramp.
const layersSettled = 8 * time.Second

// settle waits until every subscription delivered a packet and the layers
// forwarded stopped changing, or Settle, and says whether they did.
func (r *roomRun) settle(ctx context.Context) bool {
	want := r.expected()
	deadline := time.Now().Add(r.cfg.Settle)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	nextLine := time.Now().Add(time.Second)
	for {
		got := r.established()
		if got == want && time.Since(r.lastLayerChange()) >= layersSettled {
			return true
		}
		if time.Now().After(deadline) {
			if r.cfg.Progress != nil {
				fmt.Fprintf(r.cfg.Progress, "settling: gave up after %v\n", r.cfg.Settle)
			}
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
		if r.cfg.Progress != nil && time.Now().After(nextLine) {
			nextLine = nextLine.Add(time.Second)
			fmt.Fprintf(r.cfg.Progress, "settling: %d/%d participants, video %d/%d, audio %d/%d subscriptions, layers %s\n",
				len(r.participants()), r.cfg.Participants, got[kindVideo], want[kindVideo], got[kindAudio], want[kindAudio],
				layerSummary(r.layers()))
		}
	}
}

// layers counts the video subscriptions by the layer they are on.
func (r *roomRun) layers() map[string]int {
	m := map[string]int{}
	for _, p := range r.participants() {
		p.subs.Range(func(_, v any) bool {
			if s := v.(*subscription); s.kind == kindVideo && s.from != nil {
				if l := s.currentLayer(); l >= 0 {
					m[layerNames[l]]++
				} else {
					m[""]++
				}
			}
			return true
		})
	}
	return m
}

// lastLayerChange returns when a video subscription last changed layer.
func (r *roomRun) lastLayerChange() time.Time {
	var last int64
	for _, p := range r.participants() {
		p.subs.Range(func(_, v any) bool {
			if s := v.(*subscription); s.kind == kindVideo {
				last = max(last, s.lastChange())
			}
			return true
		})
	}
	return time.Unix(0, last)
}

// startWindow makes every count start from now.
func (r *roomRun) startWindow() {
	for _, p := range r.participants() {
		p.w0Sent = p.sent.sentPackets()
		p.subs.Range(func(_, v any) bool {
			v.(*subscription).startWindow()
			return true
		})
	}
	r.latency.reset()
	for k := range r.kindLatency {
		r.kindLatency[k].reset()
	}
}

// progressUntil prints a line a second until the window ends.
func (r *roomRun) progressUntil(ctx context.Context, end time.Time, self, srv cpuSample) {
	progressLines(ctx, r.cfg.Progress, end, r.cfg.ServerPID, self, srv, func(elapsed time.Duration) string {
		rep := r.report(elapsed, false)
		return fmt.Sprintf("t=%3.0fs participants %d/%d  subs %s  rx %.0f pkt/s %.1f Mbit/s  loss %.3f%%  latency p50 %.2f p99 %.2f ms",
			elapsed.Seconds(), rep.Connected-rep.Dropped, r.cfg.Participants, rep.establishedSummary(),
			rep.PacketsPerSecond, rep.MbitPerSecond, rep.LossPercent, rep.Latency.P50, rep.Latency.P99)
	})
}

// close stops every participant's media and leaves, all at once.
func (r *roomRun) close() {
	var wg sync.WaitGroup
	for _, p := range r.participants() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if pub := p.clip.Load(); pub != nil {
				_ = pub.Stop()
			}
			_ = p.c.Leave()
		}()
	}
	wg.Wait()
}
