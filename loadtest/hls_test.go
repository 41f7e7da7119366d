package loadtest_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starling-sfu/starling/hls-bridge/llhls"
	"github.com/starling-sfu/starling/loadtest"
	"github.com/starling-sfu/starling/transcode"
)

// A 1280x720 High profile SPS and a PPS: enough for init sections; the
// synthetic slices after them are never decoded.
var (
	testSPS = []byte{0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x6c, 0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x1e, 0x07, 0x8c, 0x18, 0xcb}
	testPPS = []byte{0x68, 0xee, 0x3c, 0x80}
)

var (
	originLadder = []transcode.Rendition{
		{Name: "720p", Width: 1280, Height: 720, Bitrate: 2_500_000, FPS: 30},
		{Name: "360p", Width: 640, Height: 360, Bitrate: 800_000, FPS: 20},
	}
	originAudio = &transcode.AudioFormat{SampleRate: 48000, Channels: 2, Bitrate: 96_000}
)

// synthTrack produces one track's samples in DTS order: video frames at
// fps with an IDR every 2 s (the segment target, as the transcoder forces
// them), or AAC frames.
type synthTrack struct {
	rendition int
	fps       float64 // frames (or AAC frames) per second
	n         int
}

func (s *synthTrack) at(i int) time.Duration {
	return time.Duration(math.Round(float64(i) * 1e9 / s.fps))
}

func (s *synthTrack) sample(i int) transcode.Sample {
	t := s.at(i)
	if s.rendition == transcode.AudioRendition {
		return transcode.Sample{Rendition: s.rendition, PTS: t, DTS: t, AU: [][]byte{{0x21, byte(i), byte(i >> 8)}}}
	}
	au := [][]byte{{0x41, 0x9a, byte(i), byte(i >> 8), 0x55, 0x55}}
	key := i%int(2*s.fps) == 0
	if key {
		au = [][]byte{testSPS, testPPS, {0x65, 0x88, byte(i), byte(i >> 8), 0x55, 0x55}}
	}
	return transcode.Sample{Rendition: s.rendition, PTS: t, DTS: t, Key: key, AU: au}
}

// liveOrigin serves a live LL-HLS stream from hls-bridge/llhls, fed with
// synthetic H.264 and AAC in real time as a transcoder would: preload of it
// at once, as if the stream had been running, then each sample when its
// time comes. It is mounted where Starling mounts a publisher's ladder;
// wrap, when set, wraps its handler.
func liveOrigin(t *testing.T, preload time.Duration, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(liveHandler(t, preload, wrap))
	t.Cleanup(srv.Close)
	return srv.URL + "/hls/room/alice/index.m3u8"
}

// liveHandler is liveOrigin's handler; the stream stops with the test.
func liveHandler(t *testing.T, preload time.Duration, wrap func(http.Handler) http.Handler) http.Handler {
	t.Helper()
	start := time.Now().Add(-preload)
	s, err := llhls.NewStream(llhls.Config{}, originLadder, originAudio, start, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	tracks := []*synthTrack{{rendition: 0, fps: 30}, {rendition: 1, fps: 20}, {rendition: transcode.AudioRendition, fps: 48000.0 / 1024}}
	feed := func(until time.Duration) {
		for _, tr := range tracks {
			for ; tr.at(tr.n) <= until; tr.n++ {
				s.Push(tr.sample(tr.n))
			}
		}
	}
	feed(preload)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				feed(time.Since(start))
			}
		}
	}()
	var h http.Handler = http.StripPrefix("/hls/room/alice", s)
	if wrap != nil {
		h = wrap(h)
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		s.Close()
	})
	return h
}

// unavailableAtFirst answers the first n multivariant requests 503 with
// Retry-After: 0, as an on-demand ladder that is still starting might.
func unavailableAtFirst(n int64) func(http.Handler) http.Handler {
	var count atomic.Int64
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/alice/index.m3u8") && count.Add(1) <= n {
				w.Header().Set("Retry-After", "0")
				http.Error(w, `{"error":"starting"}`, http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func TestHLSViewersFollowTheLiveEdgeWithoutStalls(t *testing.T) {
	// 20 s of stream, whole segments: the viewers tune in just after a
	// segment starts, so they join at the previous one with nearly a
	// segment of buffer, and a machine busy with other tests does not
	// make them stall. The origin's first two answers are 503s.
	u := liveOrigin(t, 20*time.Second, unavailableAtFirst(2))
	const viewers, window = 20, 6 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := loadtest.RunHLS(ctx, loadtest.HLSConfig{
		URL: u, Viewers: viewers, Ramp: 50, Duration: window, MaxStalls: 0,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, table(rep))
	}
	t.Logf("\n%s", table(rep))
	part := time.Duration(rep.PartTarget * float64(time.Second))
	segment := 2 * time.Second // llhls's default segment target
	if rep.Started != viewers || rep.Failed != 0 || rep.Playing != viewers {
		t.Errorf("%d started, %d failed, %d playing; want all %d playing", rep.Started, rep.Failed, rep.Playing, viewers)
	}
	if n := rep.HTTPErrorCount(); n != 0 || rep.MissedParts != 0 {
		t.Errorf("HTTP errors %v, missed parts %d; want none", rep.HTTPErrors, rep.MissedParts)
	}
	if rep.StartRetries != 2 {
		t.Errorf("%d start retries, want the 2 the origin asked for", rep.StartRetries)
	}
	if rep.Stalls != 0 || rep.StalledSeconds != 0 {
		t.Errorf("%d stalls (%.2f s); want none", rep.Stalls, rep.StalledSeconds)
	}
	if rep.Renditions["720p"] != viewers/2 || rep.Renditions["360p"] != viewers/2 {
		t.Errorf("renditions %v; want the viewers spread evenly", rep.Renditions)
	}
	// A part exists once its last frame does, and is delivered at once:
	// its latency stays well within a segment and two parts (p99: a
	// machine busy with other tests may hold up a rare one).
	if bound := segment + 2*part; rep.PartLatency.Count == 0 || rep.PartLatency.P99 > ms(bound) || rep.PartLatency.P50 < -1 {
		t.Errorf("part latency %v; want samples within [0, %v]", rep.PartLatency, bound)
	}
	// Playback starts at an independent part at least the hold back and
	// less than a segment plus the hold back behind the edge the viewer
	// saw (which is at most a part old), once that much has arrived; with
	// no stall the latency then stays put. Bounded by what the run
	// measured, not by the machine's speed.
	holdBack := time.Duration(rep.PartHoldBack * float64(time.Second))
	bound := ms(segment+holdBack+2*part) + rep.StartPlayback.Max
	if rep.PlaybackLatency.Count == 0 || rep.PlaybackLatency.Max > bound {
		t.Errorf("playback latency %v; want samples within [%v, %.0f ms]", rep.PlaybackLatency, holdBack, bound)
	}
	if rep.Reload.Count == 0 || rep.PartFetch.Count == 0 || rep.FirstPart.Count != viewers || rep.StartPlayback.Count != viewers {
		t.Errorf("reloads %v, part fetches %v, first parts %v, playback starts %v; want every one measured",
			rep.Reload, rep.PartFetch, rep.FirstPart, rep.StartPlayback)
	}
	if rep.DeltaUpdates == 0 || rep.PlaylistBytes == 0 || rep.MediaBytes == 0 || rep.MbitPerSecond <= 0 {
		t.Errorf("delta updates %d, playlist bytes %d, media bytes %d, %.2f Mbit/s; want all counted",
			rep.DeltaUpdates, rep.PlaylistBytes, rep.MediaBytes, rep.MbitPerSecond)
	}
	var parts, bytes int64
	for _, v := range rep.PerViewer {
		parts += v.Parts
		bytes += v.MediaBytes
		// Video and audio parts for the whole window at least.
		if want := int64(2 * window / part); v.Parts < want || v.MaxPartGapMs > ms(segment) || v.Kbps <= 0 {
			t.Errorf("viewer %d: %d parts (want ≥ %d), longest wait %.0f ms, %.0f kbit/s", v.Viewer, v.Parts, want, v.MaxPartGapMs, v.Kbps)
		}
		if !v.Playing || v.LatencyMs < ms(holdBack) || v.LatencyMs > bound {
			t.Errorf("viewer %d: playing %v at %.0f ms behind; want within [%v, %.0f ms]", v.Viewer, v.Playing, v.LatencyMs, holdBack, bound)
		}
	}
	if parts != rep.Parts || bytes != rep.MediaBytes {
		t.Errorf("viewers sum to %d parts and %d bytes, the report says %d and %d", parts, bytes, rep.Parts, rep.MediaBytes)
	}
	// Every live part needs the reload that announced it.
	if rep.Reloads < rep.WindowParts/2 {
		t.Errorf("%d reloads for %d parts in the window", rep.Reloads, rep.WindowParts)
	}
}

func TestHLSPreloadHintsGetTheNextPartAhead(t *testing.T) {
	u := liveOrigin(t, 10*time.Second, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := loadtest.RunHLS(ctx, loadtest.HLSConfig{
		URL: u, Viewers: 4, Ramp: 50, Duration: 3 * time.Second, PreloadHint: true, Rendition: "lowest", MaxStalls: 0,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, table(rep))
	}
	if rep.HintFetch.Count == 0 || rep.HTTPErrorCount() != 0 || rep.MissedParts != 0 || rep.Renditions["360p"] != 4 {
		t.Errorf("hinted parts %v, errors %v, missed %d, renditions %v; want hints used, no errors, all on 360p\n%s",
			rep.HintFetch, rep.HTTPErrors, rep.MissedParts, rep.Renditions, table(rep))
	}
}

func TestHLSClientSpeaksHTTP2OverTLS(t *testing.T) {
	var protos sync.Map
	srv := httptest.NewUnstartedServer(liveHandler(t, 6*time.Second, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			protos.Store(r.Proto, true)
			next.ServeHTTP(w, r)
		})
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	client := loadtest.NewHLSClient(3)
	client.Transport.(*http.Transport).TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := loadtest.RunHLS(ctx, loadtest.HLSConfig{
		URL: srv.URL + "/hls/room/alice/index.m3u8", Viewers: 3, Ramp: 50, Duration: time.Second, HTTP: client,
	})
	if err != nil || rep.Parts == 0 {
		t.Fatalf("%v\n%s", err, table(rep))
	}
	var seen []string
	protos.Range(func(k, _ any) bool { seen = append(seen, k.(string)); return true })
	if len(seen) != 1 || seen[0] != "HTTP/2.0" {
		t.Fatalf("requests came as %v, want HTTP/2.0 only", seen)
	}
}

func TestHLSBadTargetsEndQuicklyWithAClearError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/hls/room/index.m3u8"
	ln.Close()
	serve := func(h http.HandlerFunc) string {
		srv := httptest.NewServer(h)
		t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
		return srv.URL + "/hls/room/index.m3u8"
	}
	live := liveOrigin(t, 6*time.Second, nil)
	for _, c := range []struct {
		name, url string
		start     time.Duration
		rendition string
		want      []string
	}{
		{name: "refused", url: refused, want: []string{"connection refused"}},
		{name: "404", url: serve(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, `{"error":"nobody publishes in room room"}`, http.StatusNotFound)
		}), want: []string{"404", "nobody publishes in room room"}},
		{name: "html", url: serve(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<!doctype html><html><body>Welcome</body></html>")
		}), want: []string{"not an HLS playlist", "text/html", "<!doctype html>"}},
		{name: "503 until the start timeout", start: 1500 * time.Millisecond, url: serve(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":"the HLS stream is not available"}`, http.StatusServiceUnavailable)
		}), want: []string{"503", "start timeout"}},
		{name: "503 with a Retry-After past the start timeout", url: serve(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "30")
			http.Error(w, `{"error":"HLS is unavailable: transcode: ffmpeg not found"}`, http.StatusServiceUnavailable)
		}), want: []string{"ffmpeg not found"}},
		{name: "silent", start: time.Second, url: serve(func(_ http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}), want: []string{"no answer within the start timeout"}},
		{name: "no such rendition", url: live, rendition: "1080p", want: []string{`no rendition "1080p"`, "720p, 360p"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			t0 := time.Now()
			rep, err := loadtest.RunHLS(ctx, loadtest.HLSConfig{
				URL: c.url, Viewers: 5, Duration: time.Second, StartTimeout: c.start, Rendition: c.rendition,
			})
			took := time.Since(t0)
			if err == nil || rep != nil {
				t.Fatalf("no error (report %v)", rep != nil)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if limit := c.start + 3*time.Second; took > limit {
				t.Errorf("took %v, want under %v", took, limit)
			}
		})
	}
}

func TestHLSMaxStallsFailsTheRunWhenTheStreamStops(t *testing.T) {
	// An origin whose feed stops: viewers tune in, then run dry.
	start := time.Now().Add(-6 * time.Second)
	s, err := llhls.NewStream(llhls.Config{HoldLimit: 500 * time.Millisecond}, originLadder[:1], nil, start, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	video := &synthTrack{rendition: 0, fps: 30}
	for ; video.at(video.n) <= 6*time.Second; video.n++ {
		s.Push(video.sample(video.n))
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := loadtest.RunHLS(ctx, loadtest.HLSConfig{URL: srv.URL + "/index.m3u8", Viewers: 2, Duration: 4 * time.Second, MaxStalls: 0})
	if !errors.Is(err, loadtest.ErrStallsExceeded) || rep == nil {
		t.Fatalf("%v, want ErrStallsExceeded with a report", err)
	}
	if rep.Stalls != 2 || rep.ViewersStalled != 2 || rep.StalledSeconds <= 0 || rep.HTTPErrors["503"] == 0 {
		t.Errorf("stalls %d by %d viewers, %.2f s, errors %v; want each viewer stalled once, and 503s from the held reloads",
			rep.Stalls, rep.ViewersStalled, rep.StalledSeconds, rep.HTTPErrors)
	}
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func table(rep *loadtest.HLSReport) string {
	if rep == nil {
		return "(no report)"
	}
	var b strings.Builder
	rep.WriteTable(&b)
	return b.String()
}
