package rtpsrc_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/starling-sfu/starling/config"
	"github.com/starling-sfu/starling/hls-bridge/rtpsrc"
	"github.com/starling-sfu/starling/node"
	"github.com/starling-sfu/starling/transcode"
)

// The end-to-end tests are an external package: node imports the HLS
// bridge, which imports rtpsrc.

var httpClient = &http.Client{Timeout: 10 * time.Second}

// testLog discards logs unless STARLING_TEST_LOG is set.
func testLog() *slog.Logger {
	if os.Getenv("STARLING_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// recorder is an rtpsrc.Handler that keeps everything it is given.
type recorder struct {
	mu      sync.Mutex
	formats []string // "vp8 320x240 @N": format announced before video frame N
	video   []transcode.Frame
	audio   []transcode.Frame
}

func (r *recorder) OnFormat(codec string, w, h int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.formats = append(r.formats, fmt.Sprintf("%s %dx%d @%d", codec, w, h, len(r.video)))
}

func (r *recorder) OnVideo(f transcode.Frame) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.video = append(r.video, f)
}

func (r *recorder) OnAudio(f transcode.Frame) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.audio = append(r.audio, f)
}

func (r *recorder) snapshot() (formats []string, video, audio []transcode.Frame) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.formats), slices.Clone(r.video), slices.Clone(r.audio)
}

const (
	testKey    = "testkey"
	testSecret = "test-secret-that-is-long-enough-0123456789"
)

// testServer is an in-process Starling node on loopback, set up as the node
// package's tests do, that remembers the WHEP requests it answered.
type testServer struct {
	*node.Node
	url  string
	mu   sync.Mutex
	reqs []string // "DELETE /whep/room/sessions/id 200"
}

func startServer(t *testing.T) *testServer {
	t.Helper()
	cfg := config.Default()
	cfg.RTC.UDPPort, cfg.RTC.TCPPort, cfg.RTC.IncludeLoopback = 0, 0, true
	cfg.RTC.Interfaces = []string{"lo"}
	cfg.Keys = map[string]string{testKey: testSecret}
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.TURN.Enabled = false
	cfg.DataDir = t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := node.New(cfg, testLog())
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{Node: n}
	h := n.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		if strings.HasPrefix(r.URL.Path, "/whep/") {
			s.mu.Lock()
			s.reqs = append(s.reqs, fmt.Sprintf("%s %s %d", r.Method, r.URL.Path, sw.status))
			s.mu.Unlock()
		}
	}))
	s.url = srv.URL
	t.Cleanup(func() {
		srv.Close()
		_ = n.Close()
	})
	return s
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (s *testServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

func (s *testServer) whepSessions() int {
	_, whep := s.Signaling.SessionCounts()
	return whep
}

func mintToken(t *testing.T, room, identity string, publish bool) string {
	t.Helper()
	g := &auth.VideoGrant{RoomJoin: true, Room: room}
	g.SetCanPublish(publish)
	g.SetCanSubscribe(true)
	tok, err := auth.NewAccessToken(testKey, testSecret).SetIdentity(identity).SetValidFor(time.Hour).SetVideoGrant(g).ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dial(t *testing.T, url, token string, rec rtpsrc.Handler, o rtpsrc.Options) *rtpsrc.WHEPSource {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := rtpsrc.DialWHEP(ctx, url, token, rtpsrc.WHEPOptions{Handler: rec, Source: o, IncludeLoopback: true, HTTPClient: httpClient, Logger: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func TestWHEPSourcePlaysAStarlingStream(t *testing.T) {
	m := makeMedia(t)
	s := startServer(t)
	const room = "bridge"
	pub := publish(t, s.url+"/whip/"+room, mintToken(t, room, "camera", true), m)
	// Let the stream run a while, so the bridge joins mid-stream.
	eventually(t, 10*time.Second, "a second of media sent", func() bool {
		pub.mu.Lock()
		defer pub.mu.Unlock()
		return len(pub.videoSent) >= mediaFPS
	})

	url, token := s.url+"/whep/"+room, mintToken(t, room, "bridge", false)
	recA, recB := &recorder{}, &recorder{}
	a := dial(t, url, token, recA, rtpsrc.Options{})
	b := dial(t, url, token, recB, rtpsrc.Options{IgnoreSenderReports: true})
	eventually(t, 15*time.Second, "3.5 s of video at both", func() bool {
		return videoSpan(recA) >= 3500*time.Millisecond && videoSpan(recB) >= 3500*time.Millisecond
	})

	checkStream(t, "A", recA, a.Source(), pub)
	checkStream(t, "B", recB, b.Source(), pub)
	if st := b.Source().Stats(); st.Sync != rtpsrc.SyncArrival {
		t.Errorf("B ignores sender reports but syncs by %v", st.Sync)
	}

	t.Run("forced PLI yields a keyframe", func(t *testing.T) {
		// The stream's own keyframes are 40 s apart: one that comes now was
		// asked for.
		_, before, _ := recA.snapshot()
		plis := pub.plis.Load()
		a.RequestKeyframe()
		eventually(t, 2*time.Second, "a keyframe after the PLI", func() bool {
			_, v, _ := recA.snapshot()
			return slices.ContainsFunc(v[len(before):], func(f transcode.Frame) bool { return f.Key })
		})
		if pub.plis.Load() == plis {
			t.Fatal("keyframe came, but the publisher saw no PLI")
		}
	})

	t.Run("Close deletes the session", func(t *testing.T) {
		sessions := s.whepSessions()
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		want := "DELETE " + strings.TrimPrefix(a.Location(), s.url) + " 200"
		if !slices.Contains(s.requests(), want) {
			t.Fatalf("requests %q lack %q", s.requests(), want)
		}
		if got := s.whepSessions(); got != sessions-1 {
			t.Fatalf("%d WHEP sessions after Close, want %d", got, sessions-1)
		}
		select {
		case <-a.Done():
		default:
			t.Fatal("Done still open after Close")
		}
		if a.Err() != nil {
			t.Fatalf("Err after Close: %v", a.Err())
		}
	})

	t.Run("publisher leaving ends the session", func(t *testing.T) {
		pub.leave(t)
		select {
		case <-b.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("WHEP source still running 10 s after the publisher left")
		}
		if !errors.Is(b.Err(), rtpsrc.ErrSessionEnded) {
			t.Fatalf("Err %v, want ErrSessionEnded", b.Err())
		}
	})
}

func videoSpan(r *recorder) time.Duration {
	_, v, _ := r.snapshot()
	if len(v) < 2 {
		return 0
	}
	return v[len(v)-1].PTS - v[0].PTS
}

// checkStream checks what a WHEP source delivered against what the
// publisher sent.
func checkStream(t *testing.T, name string, rec *recorder, src *rtpsrc.Source, pub *publisher) {
	t.Helper()
	formats, video, audio := rec.snapshot()
	st := src.Stats()
	t.Logf("%s: sync %v, %d sender reports, video %+v, audio %+v", name, st.Sync, st.SenderReports, st.Video, st.Audio)
	if want := fmt.Sprintf("vp8 %dx%d @0", mediaW, mediaH); len(formats) == 0 || formats[0] != want {
		t.Fatalf("%s: formats %q, want %q first", name, formats, want)
	}
	if !video[0].Key {
		t.Fatalf("%s: first video frame is not a keyframe", name)
	}
	if _, ok := src.Origin(); !ok {
		t.Fatalf("%s: no origin", name)
	}
	vi := indexes(t, name+" video", video, pub, pub.videoSent)
	ai := indexes(t, name+" audio", audio, pub, pub.audioSent)

	// Frames received of those sent between the first and the last.
	for _, c := range []struct {
		kind string
		idx  []int
	}{{"video", vi}, {"audio", ai}} {
		sent := c.idx[len(c.idx)-1] - c.idx[0] + 1
		if got := len(c.idx); got > sent || float64(got) < 0.97*float64(sent) {
			t.Errorf("%s: %d %s frames of the %d sent meanwhile", name, got, c.kind, sent)
		}
	}

	// A joining viewer starts on the cached keyframe: the SFU packs the
	// frames from it to the live edge 1/90000 s apart. After those, PTS steps
	// follow the source.
	live := 1
	for live < len(video) && video[live].PTS-video[live-1].PTS < time.Millisecond {
		live++
	}
	vStep := spacing(t, name+" video", video[live-1:], vi[live-1:], time.Second/mediaFPS, 4*time.Millisecond)
	aStep := spacing(t, name+" audio", audio, ai, 20*time.Millisecond, 2*time.Millisecond)
	skew := median(video[live:], vi[live:], time.Second/mediaFPS) - median(audio, ai, 20*time.Millisecond)
	t.Logf("%s: %d packed start frames; steps: video %v, audio %v; A/V skew %v", name, live, vStep, aStep, skew)
	if skew < -15*time.Millisecond || skew > 15*time.Millisecond {
		t.Errorf("%s: video and audio sent together are %v apart", name, skew)
	}
}

// indexes maps received frames to their send index; each must be one sent.
func indexes(t *testing.T, name string, frames []transcode.Frame, pub *publisher, sent map[uint64]int) []int {
	t.Helper()
	if len(frames) < 10 {
		t.Fatalf("%s: only %d frames", name, len(frames))
	}
	out := make([]int, len(frames))
	for k, f := range frames {
		if out[k] = pub.index(sent, f.Data); out[k] < 0 {
			t.Fatalf("%s: frame %d (%d bytes) is none of those sent", name, k, len(f.Data))
		}
		if k > 0 && out[k] <= out[k-1] {
			t.Fatalf("%s: frame %d is sent frame %d, after %d", name, k, out[k], out[k-1])
		}
		if k > 0 && f.PTS <= frames[k-1].PTS {
			t.Fatalf("%s: PTS went from %v to %v", name, frames[k-1].PTS, f.PTS)
		}
	}
	return out
}

// spacing checks the PTS steps between consecutively sent frames: 95%
// within tol of step, all within half a step. It returns the median step.
func spacing(t *testing.T, name string, frames []transcode.Frame, idx []int, step, tol time.Duration) time.Duration {
	t.Helper()
	var steps []time.Duration
	bad := 0
	for k := 1; k < len(frames); k++ {
		if idx[k] != idx[k-1]+1 {
			continue
		}
		d := frames[k].PTS - frames[k-1].PTS
		steps = append(steps, d)
		if d < step-tol || d > step+tol {
			bad++
		}
		if d < step/2 || d > step*3/2 {
			t.Errorf("%s: PTS step %v between frames %d and %d, want %v", name, d, idx[k-1], idx[k], step)
		}
	}
	if len(steps) == 0 || bad*20 > len(steps) {
		t.Errorf("%s: %d of %d PTS steps off %v by more than %v", name, bad, len(steps), step, tol)
		return 0
	}
	slices.Sort(steps)
	return steps[len(steps)/2]
}

// median is the median of PTS − index×step: where the stream's start lies
// on the timeline.
func median(frames []transcode.Frame, idx []int, step time.Duration) time.Duration {
	d := make([]time.Duration, len(frames))
	for k, f := range frames {
		d[k] = f.PTS - time.Duration(idx[k])*step
	}
	slices.Sort(d)
	return d[len(d)/2]
}

func TestDialWHEPRefusals(t *testing.T) {
	s := startServer(t)
	cases := []struct {
		name, room, token string
		is                error
		msg               string
	}{
		{"unknown room", "nowhere", mintToken(t, "nowhere", "v", false), rtpsrc.ErrNotFound, "room nowhere is not live"},
		{"bad token", "nowhere", "not-a-token", rtpsrc.ErrUnauthorized, "401 Unauthorized"},
		{"token for another room", "nowhere", mintToken(t, "elsewhere", "v", false), rtpsrc.ErrForbidden, "token is not valid for room nowhere"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := rtpsrc.DialWHEP(ctx, s.url+"/whep/"+c.room, c.token, rtpsrc.WHEPOptions{Handler: &recorder{}, IncludeLoopback: true, Logger: testLog()})
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %v, want %v saying %q", err, c.is, c.msg)
			}
		})
	}
}

func TestDialWHEPReportsOtherStatuses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/sdp" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error": "too many viewers for this stream"}`))
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := rtpsrc.DialWHEP(ctx, srv.URL+"/whep/x", "tok", rtpsrc.WHEPOptions{Handler: &recorder{}, IncludeLoopback: true, Logger: testLog()})
	var se *rtpsrc.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusServiceUnavailable || se.Message != "too many viewers for this stream" {
		t.Fatalf("error %v, want a 503 StatusError with the server's message", err)
	}
	if errors.Is(err, rtpsrc.ErrNotFound) || errors.Is(err, rtpsrc.ErrUnauthorized) {
		t.Fatalf("503 matches a 4xx sentinel: %v", err)
	}
}
