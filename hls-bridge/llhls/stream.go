package llhls

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starling-sfu/starling/transcode"
)

// audioName is the audio track's directory.
const audioName = "audio"

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// Stream packages one live ladder and serves it. Push feeds it from one
// goroutine or several; ServeHTTP serves any number of requests; neither
// waits on the other beyond a short critical section.
type Stream struct {
	cfg    Config
	log    *slog.Logger
	tracks []*track // video renditions in ladder order, then audio
	byName map[string]*track
	audio  *track // nil without audio
	format *transcode.AudioFormat
	first  uint64 // msn of the first segment

	mu     sync.Mutex // guards packaging: grid, segmenters, tracks' state
	grid   *grid
	closed bool

	multivariant atomic.Pointer[rendering]
	ready        chan struct{} // closed once multivariant is set, or at Close
	stats        counters
}

// NewStream returns a stream for the given ladder. audio is nil for a
// stream without audio. start is the wall clock of PTS 0, from which
// PROGRAM-DATE-TIME and the media sequence numbers follow.
func NewStream(cfg Config, renditions []transcode.Rendition, audio *transcode.AudioFormat, start time.Time, log *slog.Logger) (*Stream, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("llhls: config: %w", err)
	}
	if len(renditions) == 0 {
		return nil, errors.New("llhls: no video renditions")
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Stream{
		cfg:    cfg,
		log:    log,
		byName: make(map[string]*track),
		format: audio,
		ready:  make(chan struct{}),
		grid:   newGrid(cfg.SegmentTarget, start, true),
	}
	s.first = s.grid.cur.firstMSN
	audioCfg := cfg
	for _, r := range renditions {
		if err := s.checkName(r.Name); err != nil {
			return nil, err
		}
		if r.FPS <= 0 || r.Width <= 0 || r.Height <= 0 {
			return nil, fmt.Errorf("llhls: rendition %q: size and frame rate must be positive", r.Name)
		}
		frame := int64(float64(videoTimescale)/r.FPS + 0.5)
		t := newTrack(r.Name, true, videoTimescale, frame, cfg, s.grid, &s.stats, log.With("track", r.Name))
		t.rendition = r
		s.addTrack(t)
		if cfg.Passthrough {
			// Passthrough parts take frames while they fit in their
			// PART-TARGET, half a frame short of it on average: the audio's
			// parts are that long, so that part n starts together in every
			// rendition.
			part := keyedPartTarget(durTicks(cfg.PartTarget, videoTimescale), frame) - frame/2
			audioCfg.PartTarget = max(audioCfg.PartTarget, time.Duration(part)*time.Second/videoTimescale)
		}
	}
	if audio != nil {
		if audio.SampleRate <= 0 || audio.Channels < 1 || audio.Channels > 6 {
			return nil, fmt.Errorf("llhls: audio format %+v not supported", *audio)
		}
		if _, dup := s.byName[audioName]; dup {
			return nil, fmt.Errorf("llhls: rendition name %q is taken by the audio", audioName)
		}
		t := newTrack(audioName, false, int64(audio.SampleRate), aacFrameLen, audioCfg, s.grid, &s.stats, log.With("track", audioName))
		data, err := audioInit(*audio)
		if err != nil {
			return nil, fmt.Errorf("llhls: %w", err)
		}
		t.addInit(&initSection{name: fmt.Sprintf("init-%d.mp4", s.first), data: data})
		s.audio = t
		s.addTrack(t)
	}
	for _, t := range s.tracks {
		t.publish(nil, false)
	}
	return s, nil
}

func (s *Stream) checkName(name string) error {
	if !validName.MatchString(name) || name == "index.m3u8" {
		return fmt.Errorf("llhls: rendition name %q is not a path segment", name)
	}
	if _, dup := s.byName[name]; dup {
		return fmt.Errorf("llhls: rendition name %q used twice", name)
	}
	return nil
}

func (s *Stream) addTrack(t *track) {
	s.tracks = append(s.tracks, t)
	s.byName[t.name] = t
}

// Push packages one sample. Samples of one rendition come in DTS order;
// renditions may interleave in any way, and Push may be called from
// several goroutines (calls are serialised). A video IDR must carry its SPS
// and PPS. A DTS that goes back, or jumps ahead more than 3 s, starts a new
// timeline (EXT-X-DISCONTINUITY). A sample that cannot be placed (video
// before its first IDR, an unknown rendition) is dropped and counted. Push
// does not retain smp's buffers and never waits for HTTP clients.
func (s *Stream) Push(smp transcode.Sample) {
	t := s.trackOf(smp.Rendition)
	if t == nil {
		s.stats.dropped.Add(1)
		return
	}
	var x accessUnit
	var err error
	if t.video {
		x, err = videoAccessUnit(smp)
	} else {
		x, err = audioAccessUnit(smp)
	}
	if err != nil {
		if s.stats.dropped.Add(1) == 1 {
			s.log.Warn("llhls: sample dropped", "track", t.name, "error", err)
		}
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	t.cut.push(x)
	if t.dirty {
		s.publish(t)
	}
}

func (s *Stream) trackOf(rendition int) *track {
	if rendition == transcode.AudioRendition {
		return s.audio
	}
	if rendition < 0 || rendition >= len(s.tracks) || !s.tracks[rendition].video {
		return nil
	}
	return s.tracks[rendition]
}

// Close ends the stream: open parts and segments are completed, playlists
// get EXT-X-ENDLIST, and blocked requests are answered. Push after Close is
// ignored.
func (s *Stream) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	for _, t := range s.tracks {
		t.cut.finish()
	}
	for _, t := range s.tracks {
		s.publish(t)
	}
	if s.multivariant.Load() == nil {
		close(s.ready)
	}
}

// publish publishes t's view with rendition reports of the other tracks.
// Called with s.mu held.
func (s *Stream) publish(t *track) {
	reports := make([]report, 0, len(s.tracks)-1)
	for _, o := range s.tracks {
		if o == t {
			continue
		}
		if msn, part, ok := o.head(); ok {
			reports = append(reports, report{name: o.name, lastMSN: msn, lastPart: part})
		}
	}
	t.publish(reports, s.closed)
	if t.newInit && !s.closed {
		t.newInit = false
		s.updateMultivariant()
	}
}

// updateMultivariant renders the multivariant playlist once every
// rendition has the SPS its CODECS and RESOLUTION come from, and again
// when an SPS changes. Called with s.mu held.
func (s *Stream) updateMultivariant() {
	variants := make([]variant, 0, len(s.tracks))
	for _, t := range s.tracks {
		if !t.video {
			continue
		}
		in := t.currentInit()
		if in == nil {
			return
		}
		w, h, err := spsSize(in.sps)
		if err != nil {
			w, h = t.rendition.Width, t.rendition.Height
		}
		variants = append(variants, variant{
			name: t.name, codec: avcCodec(in.sps), width: w, height: h,
			bitrate: t.rendition.Bitrate, fps: t.rendition.FPS,
		})
	}
	var audio *audioInfo
	if s.format != nil {
		audio = &audioInfo{channels: s.format.Channels, bitrate: s.format.Bitrate}
	}
	r := &rendering{}
	body := renderMultivariant(variants, audio)
	r.body(false, func() []byte { return body })
	if s.multivariant.Swap(r) == nil {
		close(s.ready)
	}
}

// NextSegment returns the wall clock of the first segment boundary of the
// current grid after t: where a passthrough ladder wants its publisher's
// IDRs.
func (s *Stream) NextSegment(t time.Time) time.Time {
	s.mu.Lock()
	tl := s.grid.cur
	s.mu.Unlock()
	seg := s.cfg.SegmentTarget
	n := floorDiv(int64(t.Sub(tl.wall)), int64(seg)) + 1
	return tl.wall.Add(time.Duration(n) * seg)
}
