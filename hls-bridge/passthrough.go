package hlsbridge

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/starling-sfu/starling/hls-bridge/llhls"
	"github.com/starling-sfu/starling/hls-bridge/rtpsrc"
	"github.com/starling-sfu/starling/sfu"
	"github.com/starling-sfu/starling/transcode"
)

// Passthrough timing.
const (
	// layerWait is how long a passthrough ladder waits, after its first
	// layer is measured, for the other declared layers before it starts
	// with those it has (a browser starts its top layer seconds late).
	layerWait = 8 * time.Second
	// keyframeLead is how long before a segment boundary the publisher is
	// asked for IDRs: the request's trip and the wait for the next captured
	// frame put the IDR near the boundary.
	keyframeLead = 100 * time.Millisecond
)

// passable says whether a track's own layers can be the ladder: H.264
// sent as simulcast.
func passable(video *sfu.Track) bool {
	return video.Codec() == sfu.CodecH264 && video.Info().Layers >= 2
}

// passthrough is a ladder made of an H.264 simulcast publisher's own
// layers: each is one rendition, packaged as it was sent, and only the Opus
// audio goes through ffmpeg (to AAC). It measures every declared layer's
// size and frame rate, starts the stream with the layers it has (waiting up
// to layerWait for late ones), and from then on asks the publisher for an
// IDR on every layer just before each segment boundary.
type passthrough struct {
	name  string
	hls   llhls.Config
	log   *slog.Logger
	video *sfu.Track
	downs []*sfu.DownTrack

	audioSrc *rtpsrc.Source
	audio    *transcode.Session // nil without audio

	launch                  // mu guards the fields below too
	layers     []*passLayer // by SFU layer index
	firstReady time.Time    // when the first layer was measured
	start      time.Time    // wall clock of the stream's PTS 0
	ladder     []int        // SFU layer index of each rendition
	nextKey    time.Time    // when to ask for the next IDRs
	heldAudio  []transcode.Sample
}

// passLayer is one simulcast layer on its way to being a rendition.
type passLayer struct {
	idx       int
	src       *rtpsrc.Source
	width     int
	height    int
	lastPTS   time.Duration
	seen      bool
	deltas    []time.Duration
	fps       float64 // once measured
	rendition int     // index in the ladder; -1 when not in it
}

func startPassthrough(name string, video, audio *sfu.Track, tc *transcode.Transcoder, cfg llhls.Config, log *slog.Logger) (*passthrough, error) {
	cfg.Passthrough = true
	p := &passthrough{name: name, hls: cfg, log: log, video: video, launch: newLaunch()}
	n := min(video.Info().Layers, sfu.MaxLayers)
	for i := range n {
		l := &passLayer{idx: i, rendition: -1}
		l.src = rtpsrc.NewSource(layerHandler{p: p, l: l}, rtpsrc.Options{
			IgnoreSenderReports: true,
			SyncWait:            -1,
			RequestKeyframe:     func(uint32) { video.RequestKeyframe(i) },
			Logger:              log.With("layer", sfu.LayerName(i)),
		})
		d, err := attachLocal(l.src, video, i)
		if err != nil {
			p.closeDowns()
			return nil, err
		}
		p.layers = append(p.layers, l)
		p.downs = append(p.downs, d)
	}
	if audio != nil {
		s, err := tc.Start(context.Background(), transcode.Input{Name: name, HasAudio: true}, p.emitAudio)
		if err != nil {
			p.closeDowns()
			return nil, fmt.Errorf("start the audio transcoder: %w", err)
		}
		p.audio = s
		p.audioSrc = rtpsrc.NewSource(audioHandler{s: s}, rtpsrc.Options{
			IgnoreSenderReports: true, SyncWait: -1, Logger: log.With("track", "audio"),
		})
		d, err := attachLocal(p.audioSrc, audio, -1)
		if err != nil {
			_ = s.Close()
			p.closeDowns()
			return nil, err
		}
		p.downs = append(p.downs, d)
	}
	log.Info("hls passthrough: waiting for the publisher's layers", "layers", n)
	return p, nil
}

func (p *passthrough) closeDowns() {
	for _, d := range p.downs {
		d.Close()
	}
}

// layerHandler takes one layer's frames.
type layerHandler struct {
	p *passthrough
	l *passLayer
}

func (h layerHandler) OnFormat(_ string, width, height int) {
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	if width > 0 && height > 0 {
		h.l.width, h.l.height = width, height
	}
}

func (h layerHandler) OnVideo(f transcode.Frame) { h.p.onVideo(h.l, f) }
func (h layerHandler) OnAudio(transcode.Frame)   {}

// audioHandler hands the publisher's Opus to the audio transcoder.
type audioHandler struct{ s *transcode.Session }

func (audioHandler) OnFormat(string, int, int)   {}
func (audioHandler) OnVideo(transcode.Frame)     {}
func (h audioHandler) OnAudio(f transcode.Frame) { _ = h.s.WriteAudio(f) }

func (p *passthrough) onVideo(l *passLayer, f transcode.Frame) {
	p.mu.Lock()
	if p.closed || p.err != nil {
		p.mu.Unlock()
		return
	}
	st := p.stream
	if st == nil {
		p.measure(l, f)
		p.mu.Unlock()
		return
	}
	origin, ok := l.src.Origin()
	p.mu.Unlock()
	if !ok || l.rendition < 0 {
		return
	}
	var nalus h264.AnnexB
	if err := nalus.Unmarshal(f.Data); err != nil {
		return
	}
	pts := origin.Add(f.PTS).Sub(p.start)
	st.Push(transcode.Sample{Rendition: l.rendition, PTS: pts, DTS: pts, Key: f.Key, AU: [][]byte(nalus)})
}

// measure learns a layer's frame rate before the stream starts, as the
// transcoded pipeline does (median interval, rounded to a common rate).
// Caller holds mu.
func (p *passthrough) measure(l *passLayer, f transcode.Frame) {
	if l.fps > 0 {
		return
	}
	if l.seen {
		if d := f.PTS - l.lastPTS; d >= 2*time.Millisecond && d < time.Second {
			l.deltas = append(l.deltas, d)
		}
	}
	l.lastPTS, l.seen = f.PTS, true
	if len(l.deltas) < fpsFrames || l.width == 0 {
		return
	}
	slices.Sort(l.deltas)
	l.fps = frameRate(1 / l.deltas[len(l.deltas)/2].Seconds())
	if p.firstReady.IsZero() {
		p.firstReady = time.Now()
	}
	p.log.Info("hls passthrough: layer measured", "layer", sfu.LayerName(l.idx),
		"size", fmt.Sprintf("%dx%d", l.width, l.height), "fps", l.fps)
}

// tick services the sources, starts the stream once the layers are
// measured, and asks for IDRs ahead of each segment boundary.
func (p *passthrough) tick(now time.Time) {
	for _, l := range p.layers {
		l.src.Tick(now)
	}
	if p.audioSrc != nil {
		p.audioSrc.Tick(now)
	}
	p.mu.Lock()
	if p.closed || p.err != nil {
		p.mu.Unlock()
		return
	}
	if p.stream == nil {
		p.maybeStart(now)
		if p.stream == nil {
			p.mu.Unlock()
			return
		}
	}
	due := !now.Before(p.nextKey)
	if due {
		p.nextKey = p.stream.NextSegment(now.Add(keyframeLead)).Add(-keyframeLead)
	}
	ladder := p.ladder
	p.mu.Unlock()
	if due {
		for _, i := range ladder {
			p.video.RequestKeyframeNow(i)
		}
	}
}

// maybeStart starts the stream when every declared layer is measured, or
// layerWait after the first was with those that are. Caller holds mu.
func (p *passthrough) maybeStart(now time.Time) {
	var ready []*passLayer
	for _, l := range p.layers {
		if l.fps > 0 {
			ready = append(ready, l)
		}
	}
	if len(ready) == 0 || (len(ready) < len(p.layers) && now.Sub(p.firstReady) < layerWait) {
		return
	}
	// Renditions largest first, one per size.
	slices.SortFunc(ready, func(a, b *passLayer) int { return b.width*b.height - a.width*a.height })
	var rends []transcode.Rendition
	names := map[string]bool{}
	for _, l := range ready {
		name := fmt.Sprintf("%dp", min(l.width, l.height))
		if names[name] {
			continue
		}
		names[name] = true
		l.rendition = len(rends)
		p.ladder = append(p.ladder, l.idx)
		rends = append(rends, transcode.Rendition{Name: name, Width: l.width, Height: l.height,
			Bitrate: layerBitrate(l.width, l.height), FPS: l.fps})
	}
	var audio *transcode.AudioFormat
	if p.audio != nil {
		a := p.audio.Audio()
		audio = &a
	}
	st, err := llhls.NewStream(p.hls, rends, audio, now, p.log)
	if err != nil {
		p.fail(fmt.Errorf("hls %s: stream: %w", p.name, err), p.log)
		return
	}
	p.start, p.nextKey = now, now
	p.serving(st)
	p.log.Info("hls ladder started", "renditions", renditionNames(rends), "source", "H.264 simulcast, passed through",
		"layers", fmt.Sprintf("%d of %d", len(ready), len(p.layers)))
	for _, s := range p.heldAudio {
		p.pushAudio(st, s)
	}
	p.heldAudio = nil
}

// layerBitrate is the BANDWIDTH of a layer of w×h: libwebrtc's highest
// simulcast bitrate for that size, which its bandwidth estimate may reach.
func layerBitrate(w, h int) int {
	px := w * h
	for _, f := range []struct{ px, bps int }{
		{1920 * 1080, 5_000_000}, {1280 * 720, 2_500_000}, {960 * 540, 1_200_000},
		{640 * 360, 700_000}, {480 * 270, 450_000}, {320 * 180, 200_000},
	} {
		if px >= f.px*9/10 {
			return f.bps
		}
	}
	return 150_000
}

// emitAudio takes AAC from the audio transcoder, whose timestamps are on
// the audio source's timeline.
func (p *passthrough) emitAudio(s transcode.Sample) {
	p.mu.Lock()
	st := p.stream
	if st == nil {
		if len(p.heldAudio) < maxPending {
			p.heldAudio = append(p.heldAudio, s)
		}
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.pushAudio(st, s)
}

// pushAudio moves an AAC sample onto the stream's timeline.
func (p *passthrough) pushAudio(st *llhls.Stream, s transcode.Sample) {
	origin, ok := p.audioSrc.Origin()
	if !ok {
		return
	}
	s.PTS = origin.Add(s.PTS).Sub(p.start)
	s.DTS = s.PTS
	st.Push(s)
}

func (p *passthrough) stats() (transcode.Stats, llhls.Stats, bool) {
	p.mu.Lock()
	st := p.stream
	p.mu.Unlock()
	if st == nil {
		return transcode.Stats{}, llhls.Stats{}, false
	}
	var ts transcode.Stats
	if p.audio != nil {
		ts = p.audio.Stats()
	}
	return ts, st.Stats(), true
}

// close ends the stream (players see EXT-X-ENDLIST) and stops ffmpeg.
func (p *passthrough) close() {
	p.mu.Lock()
	st, first := p.end()
	p.mu.Unlock()
	if !first {
		return
	}
	if p.audio != nil {
		_ = p.audio.Close()
	}
	if st != nil {
		st.Close()
	}
}

var _ ladder = (*passthrough)(nil)
