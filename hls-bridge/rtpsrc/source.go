package rtpsrc

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starling-sfu/starling/transcode"
)

// Codec names, as OnFormat reports them (and as ffmpeg calls the decoders).
const (
	CodecVP8  = "vp8"
	CodecVP9  = "vp9"
	CodecH264 = "h264"
	CodecOpus = "opus"
)

// Handler receives a Source's frames. The Source calls it from one goroutine
// at a time, with its lock held: a method must return quickly (queue the
// frame if the consumer can block) and must not call AddTrack, Tick or a
// Track's Write methods. Origin, Stats and RequestKeyframe are safe to call
// from it. Frames of one track come in PTS order; audio and video frames
// interleave in the order they complete, not strictly by PTS.
type Handler interface {
	// OnFormat reports the video codec (CodecVP8, CodecVP9 or CodecH264) and
	// the picture size read from keyframes: before the first video frame, and
	// again before a keyframe that changes either. The size is 0×0 when the
	// keyframe did not tell.
	OnFormat(codec string, width, height int)
	// OnVideo receives one whole video frame. The first one, and the first
	// after a loss, is a keyframe. The handler owns f.Data.
	OnVideo(f transcode.Frame)
	// OnAudio receives one Opus packet; Key is always true, since every
	// packet decodes on its own. The handler owns f.Data.
	OnAudio(f transcode.Frame)
}

// Defaults for Options.
const (
	DefaultReorderDelay     = 120 * time.Millisecond
	DefaultSyncWait         = 1500 * time.Millisecond
	DefaultKeyframeInterval = 500 * time.Millisecond
)

// Options tune a Source. The zero value is usable.
type Options struct {
	// ReorderDelay is how long a packet that follows a gap is held for the
	// missing ones before they count as lost. Default DefaultReorderDelay.
	ReorderDelay time.Duration
	// SyncWait is how long, at the start, frames are held for both tracks'
	// Sender Reports to be trusted (two that agree, each). 0 means
	// DefaultSyncWait; negative starts at once.
	SyncWait time.Duration
	// IgnoreSenderReports maps timestamps by arrival only.
	IgnoreSenderReports bool
	// KeyframeInterval is the least time between keyframe requests while
	// video waits for one. Default DefaultKeyframeInterval.
	KeyframeInterval time.Duration
	// RequestKeyframe asks the sender for a keyframe on the video stream with
	// the given SSRC (an RTCP PLI, or sfu.Track.RequestKeyframe). It is called
	// without the Source's lock held. Nil: no requests.
	RequestKeyframe func(ssrc uint32)
	Logger          *slog.Logger
}

// SyncMode tells how a Source's tracks are aligned.
type SyncMode int32

// The ways a Source aligns its tracks; see the package documentation.
const (
	SyncArrival SyncMode = iota
	SyncSenderReports
)

func (m SyncMode) String() string {
	if m == SyncSenderReports {
		return "sender-reports"
	}
	return "arrival"
}

// Stats counts what a Source did.
type Stats struct {
	Sync          SyncMode
	SenderReports uint64 // Sender Reports used
	Video, Audio  TrackStats
}

// TrackStats counts what one track did.
type TrackStats struct {
	Packets          uint64 // RTP packets received
	Lost             uint64 // packets given up on after ReorderDelay
	Discarded        uint64 // duplicates, and packets after their place was given up
	Frames           uint64 // frames delivered, or held for the start
	Keyframes        uint64 // keyframes among Frames
	Dropped          uint64 // video frames dropped: broken, or not a keyframe when one is needed
	KeyframeRequests uint64
	Clamped          uint64 // frames whose PTS was moved forward to keep it increasing
}

// maxHeld bounds the frames a track holds before the start; reaching it
// starts the timeline.
const maxHeld = 512

// Source turns one sender's tracks into frames on one timeline. Its methods
// are safe for concurrent use.
type Source struct {
	h    Handler
	opts Options
	log  *slog.Logger

	mu        sync.Mutex // guards the fields below and the tracks' state; held while calling h
	video     *Track
	audio     *Track
	started   bool
	holdSince int64 // arrival of the first held frame, unix ns; 0 while none
	origin    int64 // local unix ns of PTS 0, once started

	originNs  atomic.Int64
	videoSSRC atomic.Uint32
	mode      atomic.Int32
	srs       atomic.Uint64
	counters  [2]trackCounters // video, audio
}

// NewSource returns a Source that delivers to h.
func NewSource(h Handler, o Options) *Source {
	if o.ReorderDelay <= 0 {
		o.ReorderDelay = DefaultReorderDelay
	}
	if o.SyncWait == 0 {
		o.SyncWait = DefaultSyncWait
	}
	if o.KeyframeInterval <= 0 {
		o.KeyframeInterval = DefaultKeyframeInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Source{h: h, opts: o, log: o.Logger}
}

// TrackParams describe a track added to a Source.
type TrackParams struct {
	MimeType  string // "video/VP8", "video/VP9", "video/H264" or "audio/opus"
	ClockRate uint32 // RTP clock rate in Hz; 0 takes the codec's usual one
	SSRC      uint32 // 0: taken from the first packet
}

// ErrUnsupportedCodec is returned by AddTrack for a codec it cannot depacketize.
var ErrUnsupportedCodec = errors.New("rtpsrc: unsupported codec")

// AddTrack adds the video or the audio track. A Source has at most one of each.
func (s *Source) AddTrack(p TrackParams) (*Track, error) {
	codec, video, rate := "", true, uint32(90000)
	switch strings.ToLower(p.MimeType) {
	case "video/vp8":
		codec = CodecVP8
	case "video/vp9":
		codec = CodecVP9
	case "video/h264":
		codec = CodecH264
	case "audio/opus":
		codec, video, rate = CodecOpus, false, 48000
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedCodec, p.MimeType)
	}
	if p.ClockRate != 0 {
		rate = p.ClockRate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	slot := &s.audio
	if video {
		slot = &s.video
	}
	if *slot != nil {
		return nil, fmt.Errorf("rtpsrc: the source already has a %s track", map[bool]string{true: "video", false: "audio"}[video])
	}
	t := newTrack(s, codec, video, rate, p.SSRC)
	*slot = t
	if video && p.SSRC != 0 {
		s.videoSSRC.Store(p.SSRC)
	}
	s.log.Info("track added", "codec", codec, "clock_rate", rate, "ssrc", p.SSRC)
	return t, nil
}

// Tick releases frames held behind a loss once ReorderDelay has passed,
// starts the timeline once SyncWait has, and repeats keyframe requests. Call
// it every 10–50 ms: without it, held packets leave only when more arrive.
func (s *Source) Tick(now time.Time) {
	at := now.UnixNano()
	s.mu.Lock()
	var want uint32
	for _, t := range []*Track{s.video, s.audio} {
		if t == nil {
			continue
		}
		t.drain(at)
		if ssrc, ok := t.keyframeDue(at); ok {
			want = ssrc
		}
	}
	s.maybeStart(at)
	s.mu.Unlock()
	if want != 0 {
		s.askKeyframe(want)
	}
}

// RequestKeyframe asks the sender for a video keyframe now, whatever the
// throttling of automatic requests.
func (s *Source) RequestKeyframe() {
	if ssrc := s.videoSSRC.Load(); ssrc != 0 {
		s.askKeyframe(ssrc)
	}
}

func (s *Source) askKeyframe(ssrc uint32) {
	if s.opts.RequestKeyframe != nil {
		s.opts.RequestKeyframe(ssrc)
	}
}

// Origin returns the local wall-clock time of PTS 0, for PROGRAM-DATE-TIME;
// ok is false until the first frame is delivered.
func (s *Source) Origin() (t time.Time, ok bool) {
	ns := s.originNs.Load()
	if ns == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// Stats returns the counters so far.
func (s *Source) Stats() Stats {
	return Stats{
		Sync: SyncMode(s.mode.Load()), SenderReports: s.srs.Load(),
		Video: s.counters[0].snapshot(), Audio: s.counters[1].snapshot(),
	}
}

// bySenderReports reports whether the tracks are aligned by their Sender
// Reports: both exist and have a trusted SR mapping. Caller holds mu.
func (s *Source) bySenderReports() bool {
	if s.opts.IgnoreSenderReports || s.video == nil || s.audio == nil {
		return false
	}
	return s.video.clock.synced() && s.audio.clock.synced()
}

// offset is what turns track t's RTP time (ns) into local time. Caller holds mu.
func (s *Source) offset(t *Track) int64 {
	if !s.bySenderReports() {
		return t.clock.arrOff
	}
	level := min(s.video.clock.arrOff-s.video.clock.srOff, s.audio.clock.arrOff-s.audio.clock.srOff)
	return t.clock.srOff + level
}

// updateMode publishes the sync mode for Stats. Caller holds mu.
func (s *Source) updateMode() {
	m := SyncArrival
	if s.bySenderReports() {
		m = SyncSenderReports
	}
	if SyncMode(s.mode.Swap(int32(m))) != m && s.started {
		s.log.Info("timeline alignment changed", "sync", m.String())
	}
}

// hold keeps a frame completed before the start. Caller holds mu.
func (s *Source) hold(t *Track, f heldFrame, at int64) {
	if s.holdSince == 0 {
		s.holdSince = at
	}
	t.held = append(t.held, f)
	if len(t.held) >= maxHeld {
		s.start()
	}
}

// maybeStart starts the timeline once both tracks are aligned by Sender
// Reports or SyncWait has passed since the first frame. Caller holds mu.
func (s *Source) maybeStart(now int64) {
	if s.started || s.holdSince == 0 {
		return
	}
	if s.opts.SyncWait < 0 || now-s.holdSince >= int64(s.opts.SyncWait) || s.bySenderReports() {
		s.start()
	}
}

// start fixes PTS 0 at the earliest held frame and delivers the held frames
// of both tracks in PTS order. Caller holds mu.
func (s *Source) start() {
	s.started = true
	s.updateMode()
	v, a := s.video, s.audio
	first := int64(0)
	for _, t := range []*Track{v, a} {
		if t != nil && len(t.held) > 0 {
			if l := t.local(t.held[0].ext); first == 0 || l < first {
				first = l
			}
		}
	}
	s.origin = first
	s.originNs.Store(first)
	var vh, ah []heldFrame
	if v != nil {
		vh, v.held = v.held, nil
	}
	if a != nil {
		ah, a.held = a.held, nil
	}
	s.log.Info("timeline started", "sync", SyncMode(s.mode.Load()).String(), "origin", time.Unix(0, first).UTC().Format(time.RFC3339Nano),
		"held_video", len(vh), "held_audio", len(ah))
	for len(vh) > 0 || len(ah) > 0 {
		if len(ah) == 0 || (len(vh) > 0 && v.local(vh[0].ext) <= a.local(ah[0].ext)) {
			v.deliver(vh[0])
			vh = vh[1:]
		} else {
			a.deliver(ah[0])
			ah = ah[1:]
		}
	}
}
