package transcode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// Helpers shared by the tests that run the real ffmpeg: test media, a
// Transcoder without probing, a paced feeder and a sample collector.

func ffmpegPath(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg not installed")
	}
	return p
}

func runFFmpeg(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.Command(ffmpegPath(t), append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
	}
}

// testLogger logs to the test's output, warnings and up.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testTranscoder skips the probe: libx264 works wherever ffmpeg does.
func testTranscoder(t testing.TB, cfg Config) *Transcoder {
	t.Helper()
	if cfg.FFmpeg == "" {
		cfg.FFmpeg = ffmpegPath(t)
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	cfg.setDefaults()
	return &Transcoder{cfg: cfg, path: cfg.FFmpeg, backend: BackendX264, log: cfg.Logger}
}

// makeVP8 encodes seconds of testsrc2 at fps to VP8 with a keyframe every
// gop frames and returns the frames, PTS from zero.
func makeVP8(t testing.TB, w, h, fps int, seconds float64, gop int) []Frame {
	t.Helper()
	path := filepath.Join(t.TempDir(), "video.ivf")
	// STARLING_BENCH_VF adds a filter, e.g. noise=alls=12:allf=t for
	// content that costs an encoder what a camera does.
	vf := "null"
	if f := os.Getenv("STARLING_BENCH_VF"); f != "" {
		vf = f
	}
	runFFmpeg(t, "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", w, h, fps), "-vf", vf,
		"-t", fmt.Sprint(seconds), "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "16", "-threads", "2",
		"-b:v", "1500k", "-g", fmt.Sprint(gop), "-keyint_min", fmt.Sprint(gop), "-f", "ivf", path)
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	r, _, err := ivfreader.NewWith(file)
	if err != nil {
		t.Fatal(err)
	}
	var frames []Frame
	for {
		data, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pts := time.Duration(len(frames)) * time.Second / time.Duration(fps)
		frames = append(frames, Frame{PTS: pts, Key: data[0]&1 == 0, Data: data})
	}
	return frames
}

// makeH264 encodes seconds of testsrc2 with libx264 (baseline, as WebRTC
// sends it) and returns Annex-B access units, PTS from zero.
func makeH264(t testing.TB, w, h, fps int, seconds float64, gop int) []Frame {
	t.Helper()
	path := filepath.Join(t.TempDir(), "video.ts")
	runFFmpeg(t, "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", w, h, fps),
		"-t", fmt.Sprint(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "baseline",
		"-pix_fmt", "yuv420p", "-g", fmt.Sprint(gop), "-bf", "0", "-f", "mpegts", path)
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	frames, err := readClip(file)
	if err != nil {
		t.Fatal(err)
	}
	return frames
}

// makeOpus encodes seconds of a 440 Hz sine to 20 ms Opus packets, one per
// Ogg page, and returns them, PTS from zero.
func makeOpus(t testing.TB, seconds float64) []Frame {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audio.ogg")
	runFFmpeg(t, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", fmt.Sprint(seconds),
		"-c:a", "libopus", "-b:a", "64k", "-frame_duration", "20", "-page_duration", "20000", path)
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	r, _, err := oggreader.NewWith(file)
	if err != nil {
		t.Fatal(err)
	}
	var frames []Frame
	for {
		payload, _, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(payload) >= 8 && string(payload[:8]) == "OpusTags" {
			continue
		}
		pts := time.Duration(len(frames)) * 20 * time.Millisecond
		frames = append(frames, Frame{PTS: pts, Key: true, Data: payload})
	}
	return frames
}

// shift returns frames with offset added to every PTS, dropping those that
// start at or after end (when end > 0).
func shift(frames []Frame, offset, end time.Duration) []Frame {
	var out []Frame
	for _, f := range frames {
		if end > 0 && f.PTS >= end {
			break
		}
		f.PTS += offset
		out = append(out, f)
	}
	return out
}

// pacedFeed records when each video frame went into a Session (by PTS
// rounded to the millisecond, as it comes out), and how many writes failed.
type pacedFeed struct {
	mu     sync.Mutex
	fedAt  map[time.Duration]time.Time
	errors int
}

// feedPaced writes video and audio frames in PTS order into s at real
// time (times speed), as a live source would, from the first video frame's
// PTS, or the first audio frame's when there is no video.
func feedPaced(ctx context.Context, s *Session, video, audio []Frame, speed float64) *pacedFeed {
	p := &pacedFeed{fedAt: map[time.Duration]time.Time{}}
	start := time.Now()
	var t0 time.Duration
	if len(video) > 0 {
		t0 = video[0].PTS
	} else if len(audio) > 0 {
		t0 = audio[0].PTS
	}
	vi, ai := 0, 0
	for vi < len(video) || ai < len(audio) {
		isAudio := vi == len(video) || (ai < len(audio) && audio[ai].PTS < video[vi].PTS)
		f := Frame{}
		if isAudio {
			f = audio[ai]
		} else {
			f = video[vi]
		}
		due := start.Add(time.Duration(float64(f.PTS-t0) / speed))
		if d := time.Until(due); d > 0 {
			select {
			case <-time.After(d): // pacing a live source, not synchronisation
			case <-ctx.Done():
				return p
			}
		}
		var err error
		if isAudio {
			err = s.WriteAudio(f)
			ai++
		} else {
			p.mu.Lock()
			p.fedAt[f.PTS.Round(time.Millisecond)] = time.Now()
			p.mu.Unlock()
			err = s.WriteVideo(f)
			vi++
		}
		if err != nil {
			p.errors++
		}
	}
	return p
}

// collector keeps every emitted sample and when it arrived.
type collector struct {
	mu       sync.Mutex
	samples  []Sample
	arrivals []time.Time
}

func (c *collector) emit(s Sample) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.samples = append(c.samples, s)
	c.arrivals = append(c.arrivals, time.Now())
}

// of returns the samples of one rendition (or AudioRendition), in order.
func (c *collector) of(rendition int) []Sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Sample
	for _, s := range c.samples {
		if s.Rendition == rendition {
			out = append(out, s)
		}
	}
	return out
}

func (c *collector) count(rendition int) int { return len(c.of(rendition)) }

// lags is the write→emit time of each video sample of a rendition.
func lags(got *collector, feed *pacedFeed, rendition int) []time.Duration {
	got.mu.Lock()
	defer got.mu.Unlock()
	feed.mu.Lock()
	defer feed.mu.Unlock()
	var out []time.Duration
	for i, s := range got.samples {
		if s.Rendition != rendition {
			continue
		}
		if in, ok := feed.fedAt[s.PTS.Round(time.Millisecond)]; ok {
			out = append(out, got.arrivals[i].Sub(in))
		}
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

func keyPTS(samples []Sample) []time.Duration {
	var out []time.Duration
	for _, s := range samples {
		if s.Key {
			out = append(out, s.PTS)
		}
	}
	return out
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1))]
}
