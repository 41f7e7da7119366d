// Package hlsbridge turns a published stream into an LL-HLS ladder: it
// attaches to an sfu.Track in-process (or to a remote WHEP URL), depacketizes
// with rtpsrc, transcodes with transcode, packages and serves with llhls.
package hlsbridge

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/starling-sfu/starling/hls-bridge/llhls"
	"github.com/starling-sfu/starling/hls-bridge/rtpsrc"
	"github.com/starling-sfu/starling/transcode"
)

// pipeline is one live ladder: an rtpsrc.Handler whose frames go to a
// transcode.Session, whose samples go to an llhls.Stream. The session and
// stream start at the first video format, when the source size is known.
type pipeline struct {
	name     string
	tc       *transcode.Transcoder
	hls      llhls.Config
	hasAudio bool
	log      *slog.Logger
	// origin returns the wall-clock time of PTS 0 and keyframe asks the
	// source for a keyframe; both are set before frames flow.
	origin   func() (time.Time, bool)
	keyframe func()
	// fullSize, when set, turns the size of the layer arriving into the
	// size of the publisher's top layer, which the ladder is fitted to.
	fullSize func(w, h int) (int, int)

	launch               // mu guards the fields below too
	codec         string // from OnFormat; "" until then
	width, height int
	pending       []heldFrame   // frames before the transcoder starts
	lastPTS       time.Duration // of the newest pending video frame
	seenVideo     bool
	deltas        []time.Duration // intervals between pending video frames
	session       *transcode.Session
}

func newPipeline(name string, tc *transcode.Transcoder, hls llhls.Config, hasAudio bool, log *slog.Logger) *pipeline {
	return &pipeline{name: name, tc: tc, hls: hls, hasAudio: hasAudio, log: log, launch: newLaunch()}
}

// OnFormat notes the source's codec and size; the transcoder starts once
// the first frames tell the frame rate. Later changes of size keep the
// ladder (ffmpeg scales whatever comes).
func (p *pipeline) OnFormat(codec string, width, height int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.codec != "" {
		return
	}
	if width == 0 || height == 0 {
		// The codec does not tell the size in its keyframes: fit the
		// ladder to the largest rung.
		width, height = 1920, 1080
	}
	if p.fullSize != nil {
		width, height = p.fullSize(width, height)
	}
	p.codec, p.width, p.height = codec, width, height
}

// fpsFrames is how many frame intervals the pipeline measures the source's
// frame rate over (their median) before it starts the transcoder: half a
// second at 20 fps.
const fpsFrames = 10

// maxPending bounds the frames held before the transcoder starts.
const maxPending = 500

// start starts the transcoder and the stream. Caller holds mu.
func (p *pipeline) start(fps float64) {
	s, err := p.tc.Start(context.Background(), transcode.Input{
		Name:            p.name,
		VideoCodec:      strings.ToUpper(p.codec),
		Width:           p.width,
		Height:          p.height,
		FPS:             fps,
		HasAudio:        p.hasAudio,
		RequestKeyframe: p.keyframe,
	}, p.emit)
	if err != nil {
		p.fail(fmt.Errorf("hls %s: start transcoder: %w", p.name, err), p.log)
		return
	}
	start, ok := p.origin()
	if !ok {
		start = time.Now()
	}
	var audio *transcode.AudioFormat
	if p.hasAudio {
		a := s.Audio()
		audio = &a
	}
	st, err := llhls.NewStream(p.hls, s.Renditions(), audio, start, p.log)
	if err != nil {
		_ = s.Close()
		p.fail(fmt.Errorf("hls %s: stream: %w", p.name, err), p.log)
		return
	}
	p.session = s
	p.serving(st)
	p.log.Info("hls ladder started", "renditions", renditionNames(s.Renditions()),
		"source", fmt.Sprintf("%s %dx%d %.0ffps", p.codec, p.width, p.height, fps), "backend", p.tc.Backend())
	for _, f := range p.pending {
		if f.video {
			_ = s.WriteVideo(f.Frame)
		} else {
			_ = s.WriteAudio(f.Frame)
		}
	}
	p.pending = nil
}

// frameRate rounds a measured rate to the nearest common one.
func frameRate(measured float64) float64 {
	best := 30.0
	for _, r := range []float64{10, 12, 15, 20, 24, 25, 30, 48, 50, 60} {
		if math.Abs(r-measured) < math.Abs(best-measured) {
			best = r
		}
	}
	return best
}

func (p *pipeline) OnVideo(f transcode.Frame) {
	p.mu.Lock()
	s := p.session
	if s == nil {
		p.hold(f, true)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	_ = s.WriteVideo(f)
}

func (p *pipeline) OnAudio(f transcode.Frame) {
	if !p.hasAudio {
		return
	}
	p.mu.Lock()
	s := p.session
	if s == nil {
		p.hold(f, false)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	_ = s.WriteAudio(f)
}

// hold keeps the first frames while the frame rate is measured, and starts
// the transcoder once it is. Caller holds mu.
func (p *pipeline) hold(f transcode.Frame, video bool) {
	if p.closed || p.err != nil || p.codec == "" {
		return
	}
	if !video && len(p.pending) >= maxPending {
		return // video is late to come: keep memory bounded
	}
	p.pending = append(p.pending, heldFrame{Frame: f, video: video})
	if !video {
		return
	}
	// A new subscriber starts on the SFU's cached keyframe run, replayed
	// with its frames packed together: only gaps of a few ms and more are
	// frame intervals.
	if p.seenVideo {
		if d := f.PTS - p.lastPTS; d >= 2*time.Millisecond && d < time.Second {
			p.deltas = append(p.deltas, d)
		}
	}
	p.lastPTS, p.seenVideo = f.PTS, true
	switch {
	case len(p.deltas) >= fpsFrames:
		slices.Sort(p.deltas)
		p.start(frameRate(1 / p.deltas[len(p.deltas)/2].Seconds()))
	case len(p.pending) >= 2*maxPending:
		// Timestamps that never tell a rate: start at the usual one.
		p.start(30)
	}
}

// heldFrame is a frame that came before the transcoder started.
type heldFrame struct {
	transcode.Frame
	video bool
}

// emit runs on the session's goroutine.
func (p *pipeline) emit(s transcode.Sample) {
	p.mu.Lock()
	st := p.stream
	p.mu.Unlock()
	if st != nil {
		st.Push(s)
	}
}

// close ends the stream (players see EXT-X-ENDLIST) and stops ffmpeg.
func (p *pipeline) close() {
	p.mu.Lock()
	st, first := p.end()
	s := p.session
	p.mu.Unlock()
	if !first {
		return
	}
	if s != nil {
		if err := s.Close(); err != nil {
			p.log.Debug("transcoder close", "err", err)
		}
	}
	if st != nil {
		st.Close()
	}
}

// stats returns the transcoder's and the stream's counters, when started.
func (p *pipeline) stats() (transcode.Stats, llhls.Stats, bool) {
	p.mu.Lock()
	s, st := p.session, p.stream
	p.mu.Unlock()
	if s == nil || st == nil {
		return transcode.Stats{}, llhls.Stats{}, false
	}
	return s.Stats(), st.Stats(), true
}

func renditionNames(rs []transcode.Rendition) string {
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = r.Name
	}
	return strings.Join(names, ",")
}

var _ rtpsrc.Handler = (*pipeline)(nil)
