// Package transcode supervises ffmpeg for the LL-HLS ladder: it probes which
// encoder backend works on this machine (NVENC, NVDEC with CUDA scaling,
// VAAPI, QSV, libx264), fits the rendition ladder to a source, and runs one
// ffmpeg process per live source that turns WebRTC frames (VP8, VP9, H.264,
// Opus) into H.264 renditions with aligned keyframes plus AAC audio, or,
// for a source whose video is not transcoded, Opus into AAC alone,
// restarting it when it dies.
//
// Frames go to ffmpeg as a Matroska stream on its stdin; each rendition and
// the audio come back as MPEG-TS on their own pipes and leave as Samples on
// the input's timeline.
package transcode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"slices"
	"time"
)

// Backend names an encoder pipeline.
type Backend string

// The backends, in the order "auto" tries them.
const (
	// BackendNVENC decodes with CUDA where it can, scales on the CPU and
	// encodes with h264_nvenc.
	BackendNVENC Backend = "nvenc"
	// BackendNVDEC decodes and scales on the GPU (NVDEC, scale_cuda) and
	// encodes with libx264: for GPUs without NVENC, such as the H100.
	BackendNVDEC Backend = "nvdec"
	// BackendVAAPI scales and encodes with VAAPI (h264_vaapi).
	BackendVAAPI Backend = "vaapi"
	// BackendQSV scales and encodes with Intel Quick Sync (h264_qsv).
	BackendQSV Backend = "qsv"
	// BackendX264 does everything on the CPU with libx264.
	BackendX264 Backend = "libx264"
	// BackendAuto picks the first backend whose probe succeeds.
	BackendAuto Backend = "auto"
)

// candidates is the order in which "auto" probes backends.
var candidates = []Backend{BackendNVENC, BackendNVDEC, BackendVAAPI, BackendQSV, BackendX264}

var (
	// ErrNoFFmpeg means the ffmpeg binary was not found: the server should
	// stay WebRTC-only and answer HLS requests with 503.
	ErrNoFFmpeg = errors.New("transcode: ffmpeg not found")
	// ErrNoBackend means no backend passed its probe.
	ErrNoBackend = errors.New("transcode: no working encoder backend")
	// ErrClosed is returned by writes to a closed Session.
	ErrClosed = errors.New("transcode: session closed")
)

// Config sets up a Transcoder. The zero value is usable.
type Config struct {
	// FFmpeg is the ffmpeg binary, a path or a name looked up in PATH
	// (default "ffmpeg").
	FFmpeg string
	// Backend is BackendAuto (default) or the one backend to use; a named
	// backend that fails its probe makes New fail.
	Backend Backend
	// Ladder is the full ladder, largest first (default DefaultLadder);
	// each session fits it to its source with Fit.
	Ladder []Rendition
	// KeyframeInterval is the distance between IDR frames in every
	// rendition (default 2 s). They fall at multiples of it on the input
	// timeline, so pick the LL-HLS segment duration as a multiple of it.
	KeyframeInterval time.Duration
	// AudioBitrate is the AAC-LC bitrate in bits per second (default 128,000).
	AudioBitrate int
	// VAAPIDevice is the DRM render node for BackendVAAPI
	// (default /dev/dri/renderD128).
	VAAPIDevice string
	// ProbeTimeout bounds each backend probe (default 20 s).
	ProbeTimeout time.Duration
	// QueueLength is how many frames (audio and video together) may wait
	// for ffmpeg before video is dropped up to the next keyframe
	// (default 64, about 0.8 s of 30 fps video with 20 ms Opus).
	QueueLength int
	// StopGrace is how long Close waits for ffmpeg to finish after closing
	// its input before killing it (default 2 s).
	StopGrace time.Duration
	// Logger receives probe results and ffmpeg's own log lines
	// (default slog.Default()).
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.FFmpeg == "" {
		c.FFmpeg = "ffmpeg"
	}
	if c.Backend == "" {
		c.Backend = BackendAuto
	}
	if len(c.Ladder) == 0 {
		c.Ladder = DefaultLadder
	}
	if c.KeyframeInterval <= 0 {
		c.KeyframeInterval = 2 * time.Second
	}
	if c.AudioBitrate <= 0 {
		c.AudioBitrate = 128_000
	}
	if c.VAAPIDevice == "" {
		c.VAAPIDevice = "/dev/dri/renderD128"
	}
	if c.ProbeTimeout <= 0 {
		c.ProbeTimeout = 20 * time.Second
	}
	if c.QueueLength <= 0 {
		c.QueueLength = 64
	}
	if c.StopGrace <= 0 {
		c.StopGrace = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Transcoder holds the probed backend; it starts one Session per source.
// It is safe for concurrent use.
type Transcoder struct {
	cfg     Config
	path    string // resolved ffmpeg binary
	backend Backend
	probes  []ProbeResult
	log     *slog.Logger
}

// New finds ffmpeg and probes the backends (see Probe), logging the outcome
// once. It returns an error wrapping ErrNoFFmpeg when ffmpeg is missing,
// and ErrNoBackend when nothing works or the configured backend fails.
func New(ctx context.Context, cfg Config) (*Transcoder, error) {
	cfg.setDefaults()
	if cfg.Backend != BackendAuto && !slices.Contains(candidates, cfg.Backend) {
		return nil, fmt.Errorf("transcode: unknown backend %q", cfg.Backend)
	}
	path, err := exec.LookPath(cfg.FFmpeg)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNoFFmpeg, cfg.FFmpeg, err)
	}
	t := &Transcoder{cfg: cfg, path: path, log: cfg.Logger.With("component", "transcode")}
	t.backend, t.probes, err = probe(ctx, t)
	t.logProbe()
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Backend is the backend every session uses.
func (t *Transcoder) Backend() Backend { return t.backend }

// Probes reports each candidate's probe outcome, in probe order.
func (t *Transcoder) Probes() []ProbeResult { return append([]ProbeResult(nil), t.probes...) }

func (t *Transcoder) logProbe() {
	attrs := []any{"ffmpeg", t.path, "requested", string(t.cfg.Backend), "backend", string(t.backend)}
	for _, p := range t.probes {
		attrs = append(attrs, string(p.Backend), p.Outcome())
	}
	level := slog.LevelInfo
	if t.backend == "" {
		level = slog.LevelError
	}
	t.log.Log(context.Background(), level, "transcode: backend probe", attrs...)
}
