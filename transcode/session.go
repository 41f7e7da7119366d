package transcode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Input describes one live source.
type Input struct {
	// Name labels the session in logs, e.g. "room/participant".
	Name string
	// VideoCodec is "VP8", "VP9" or "H264" (Annex-B access units), or
	// empty for an audio-only session: no renditions, only AAC, for a
	// source whose video reaches the viewers another way.
	VideoCodec string
	// Width and Height are the source size; the ladder is fitted to them.
	// Audio-only sessions ignore them, and FPS.
	Width, Height int
	// FPS is the nominal frame rate if known. It is copied into
	// Renditions and given to ffmpeg as a hint for rate control (30 when
	// unknown); timestamps are kept as they are either way.
	FPS float64
	// HasAudio says Opus frames (48 kHz) will come through WriteAudio.
	// An audio-only session must have it.
	HasAudio bool
	// RequestKeyframe asks the source for a keyframe (a PLI). It is
	// called at most every keyframeRequestGap, from whichever goroutine
	// noticed the need, and must not block. It may be nil.
	RequestKeyframe func()
}

// keyframeRequestGap spaces calls to Input.RequestKeyframe.
const keyframeRequestGap = 500 * time.Millisecond

var codecIDs = map[string]string{"VP8": "V_VP8", "VP9": "V_VP9", "H264": "V_MPEG4/ISO/AVC"}

// ErrNoVideo is returned by WriteVideo on an audio-only Session.
var ErrNoVideo = errors.New("transcode: session has no video")

// Session transcodes one source with one supervised ffmpeg process: video
// to the fitted ladder and Opus to AAC, or, for an audio-only source
// (Input.VideoCodec empty), Opus to AAC alone.
//
// WriteVideo and WriteAudio never block: frames wait in a bounded queue,
// and when ffmpeg falls behind, video is dropped up to the next keyframe
// (which is requested). WriteVideo must not be called concurrently with
// itself, nor WriteAudio with itself; the two may run concurrently, and
// their Data must not be modified after the call.
//
// emit is called from one goroutine owned by the Session, never
// concurrently and never after Close returns; each rendition's samples
// come in decode order, renditions and audio interleaved as ffmpeg produces
// them. A Sample's AU is the receiver's to keep. A slow emit holds up
// ffmpeg and so leads to dropped input; emit must not call Close.
type Session struct {
	t     *Transcoder
	in    Input
	cmd   command
	emit  func(Sample)
	log   *slog.Logger
	stats counters

	queue   chan queued
	samples chan Sample

	stopOnce sync.Once
	stop     chan struct{} // closed by Close or when Start's ctx ends
	stopping atomic.Bool
	done     chan struct{} // closed when every goroutine has returned

	needKey        atomic.Bool  // video is dropped until a keyframe
	lastKeyRequest atomic.Int64 // unix ns
	pid            atomic.Int64
}

// queued is a frame waiting for ffmpeg.
type queued struct {
	Frame
	audio bool
}

// Start fits the ladder to in and returns the Session. ffmpeg starts at
// the first video keyframe (for H.264, the first with SPS and PPS); what
// comes before is dropped. An audio-only session (in.VideoCodec empty,
// in.HasAudio set) has no renditions and starts at the first audio frame.
// The Session stops when ctx ends or Close is called; call Close in either
// case to wait for it.
func (t *Transcoder) Start(ctx context.Context, in Input, emit func(Sample)) (*Session, error) {
	in.VideoCodec = strings.ToUpper(in.VideoCodec)
	rends, err := fitInput(t.cfg.Ladder, in)
	if err != nil {
		return nil, err
	}
	s := &Session{
		t:  t,
		in: in,
		cmd: command{
			backend:          t.backend,
			codec:            in.VideoCodec,
			renditions:       rends,
			audio:            in.HasAudio,
			audioOnly:        in.VideoCodec == "",
			audioBitrate:     t.cfg.AudioBitrate,
			keyframeInterval: t.cfg.KeyframeInterval,
			vaapiDevice:      t.cfg.VAAPIDevice,
			fps:              in.FPS,
		},
		emit:    emit,
		queue:   make(chan queued, t.cfg.QueueLength),
		samples: make(chan Sample, 64),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	s.stats.samplesOut = make([]atomic.Uint64, len(rends))
	s.log = t.log.With("session", in.Name, "backend", string(t.backend))
	if t.backend == BackendNVDEC && s.cmd.video() && !s.cmd.gpuDecode() {
		s.log.Info("transcode: NVDEC backend decodes this codec on the CPU", "codec", in.VideoCodec)
	}
	go s.supervise(ctx)
	go s.emitLoop()
	return s, nil
}

// fitInput checks in and returns its renditions: the ladder fitted to the
// source, with the source's frame rate where a rung has none, or none at
// all for an audio-only source.
func fitInput(ladder []Rendition, in Input) ([]Rendition, error) {
	if in.VideoCodec == "" {
		if !in.HasAudio {
			return nil, errors.New("transcode: input has neither video nor audio")
		}
		return nil, nil
	}
	if _, ok := codecIDs[in.VideoCodec]; !ok {
		return nil, fmt.Errorf("transcode: unsupported video codec %q", in.VideoCodec)
	}
	rends := Fit(ladder, in.Width, in.Height)
	if rends == nil {
		return nil, fmt.Errorf("transcode: bad source size %dx%d", in.Width, in.Height)
	}
	for i := range rends {
		if rends[i].FPS == 0 {
			rends[i].FPS = in.FPS
		}
	}
	return rends, nil
}

// WriteVideo queues one video frame. It returns ErrClosed after Close, and
// ErrNoVideo, doing nothing, on an audio-only session.
func (s *Session) WriteVideo(f Frame) error {
	if !s.cmd.video() {
		return ErrNoVideo
	}
	if s.stopping.Load() {
		return ErrClosed
	}
	s.stats.videoIn.Add(1)
	if s.needKey.Load() && !f.Key {
		s.stats.drop(false)
		s.requestKeyframe()
		return nil
	}
	select {
	case s.queue <- queued{Frame: f}:
		if f.Key {
			s.needKey.Store(false)
		}
	default:
		s.stats.drop(false)
		if !s.needKey.Swap(true) {
			s.log.Warn("transcode: ffmpeg is behind; dropping video until the next keyframe")
		}
		s.requestKeyframe()
	}
	return nil
}

// WriteAudio queues one Opus packet. It returns ErrClosed after Close.
func (s *Session) WriteAudio(f Frame) error {
	if s.stopping.Load() {
		return ErrClosed
	}
	s.stats.audioIn.Add(1)
	select {
	case s.queue <- queued{Frame: f, audio: true}:
	default:
		s.stats.drop(true)
	}
	return nil
}

// Renditions is the fitted ladder; Sample.Rendition indexes it. It is
// empty for an audio-only session.
func (s *Session) Renditions() []Rendition { return append([]Rendition(nil), s.cmd.renditions...) }

// Audio describes the AAC output; it is the zero value without audio.
func (s *Session) Audio() AudioFormat {
	if !s.in.HasAudio {
		return AudioFormat{}
	}
	return AudioFormat{SampleRate: 48000, Channels: 2, Bitrate: s.t.cfg.AudioBitrate}
}

// Stats returns a snapshot of the counters.
func (s *Session) Stats() Stats { return s.stats.snapshot(s.t.backend, s.PID()) }

// PID is the running ffmpeg's process id, 0 between processes.
func (s *Session) PID() int { return int(s.pid.Load()) }

// Close stops ffmpeg (its input is closed, so it flushes what it has; it
// is killed after Config.StopGrace), waits for every goroutine and for the
// last emit, and returns. It is safe to call more than once.
func (s *Session) Close() error {
	s.initiateStop()
	<-s.done
	return nil
}

func (s *Session) initiateStop() {
	s.stopOnce.Do(func() {
		s.stopping.Store(true)
		close(s.stop)
	})
}

// requestKeyframe calls Input.RequestKeyframe unless it was called within
// keyframeRequestGap.
func (s *Session) requestKeyframe() {
	if s.in.RequestKeyframe == nil {
		return
	}
	now := time.Now().UnixNano()
	last := s.lastKeyRequest.Load()
	if now-last < int64(keyframeRequestGap) || !s.lastKeyRequest.CompareAndSwap(last, now) {
		return
	}
	s.stats.keyRequests.Add(1)
	s.in.RequestKeyframe()
}

func (s *Session) emitLoop() {
	defer close(s.done)
	for smp := range s.samples {
		s.emit(smp)
	}
}
