package node

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/starling-sfu/starling/config"
	hlsbridge "github.com/starling-sfu/starling/hls-bridge"
	"github.com/starling-sfu/starling/hls-bridge/llhls"
	"github.com/starling-sfu/starling/hls-bridge/llhls/llhlstest"
	"github.com/starling-sfu/starling/loadtest"
	"github.com/starling-sfu/starling/transcode"
)

// A WHIP publisher's stream is served as LL-HLS: the first request starts
// the ladder (on-demand), which then passes the LL-HLS conformance suite
// (playlists, parts, blocking reload, delta updates, errors) and is ended
// with EXT-X-ENDLIST when the publisher leaves.
func TestPublisherIsServedAsLLHLS(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg is not installed (CI installs it)")
	}
	n := startNode(t, func(c *config.Config) {
		c.HLS.Ladder = []string{"640x360:700", "320x180:300"}
	})
	pub, err := loadtest.Publish(ctxTimeout(t, 10*time.Second), loadtest.PublisherOptions{
		URL: n.url("/whip/hls"), Token: mintToken(t, "hls", "cam", true), Simulcast: true, Audio: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(context.Background())
	if err := pub.WaitConnected(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if tr := n.videoTrack(t, "hls", 3); tr.Info().Layers != 3 {
		t.Errorf("the track says the publisher declared %d simulcast layers, want 3", tr.Info().Layers)
	}

	// The room's playlist redirects to its publisher's.
	resp, err := http.Get(n.url("/hls/hls/index.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/hls/hls/cam/index.m3u8" {
		t.Fatalf("GET /hls/hls/index.m3u8: %d at %s, want 200 from /hls/hls/cam/index.m3u8: %s", resp.StatusCode, resp.Request.URL.Path, body)
	}
	if !strings.Contains(string(body), "#EXT-X-STREAM-INF") {
		t.Fatalf("multivariant playlist has no variant:\n%s", body)
	}
	// Two whole segments in every rendition, then the suite.
	for _, r := range []string{"360p", "180p", "audio"} {
		eventually(t, 15*time.Second, r+" has two segments", func() bool {
			return strings.Count(get(t, n.url("/hls/hls/cam/"+r+"/index.m3u8")), "#EXTINF") >= 2
		})
	}
	llhlstest.Check(t, http.DefaultClient, n.url("/hls/hls/cam/"), llhlstest.Options{})

	pub.Close(context.Background())
	eventually(t, 10*time.Second, "the ended stream's playlist has EXT-X-ENDLIST", func() bool {
		return strings.Contains(get(t, n.url("/hls/hls/cam/360p/index.m3u8")), "#EXT-X-ENDLIST")
	})

	// The publisher comes back under the same name: a new ladder serves,
	// not the ended one.
	again, err := loadtest.Publish(ctxTimeout(t, 10*time.Second), loadtest.PublisherOptions{
		URL: n.url("/whip/hls"), Token: mintToken(t, "hls", "cam", true), Simulcast: true, Audio: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close(context.Background())
	eventually(t, 20*time.Second, "the returning publisher's stream is live again", func() bool {
		body := get(t, n.url("/hls/hls/cam/360p/index.m3u8"))
		return strings.Contains(body, "#EXT-X-PART:") && !strings.Contains(body, "#EXT-X-ENDLIST")
	})
}

// Without ffmpeg the server still serves WebRTC, and HLS requests get a 503
// with a JSON error that says why.
func TestWithoutFFmpegHLSIs503AndWebRTCWorks(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.HLS.FFmpeg = "/nonexistent/ffmpeg" })
	pub, err := loadtest.Publish(ctxTimeout(t, 10*time.Second), loadtest.PublisherOptions{
		URL: n.url("/whip/nohls"), Token: mintToken(t, "nohls", "cam", true), Audio: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(context.Background())
	if err := pub.WaitConnected(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	n.videoTrack(t, "nohls", 1)

	resp, err := http.Get(n.url("/hls/nohls/cam/index.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct{ Error string }
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != http.StatusServiceUnavailable ||
		!strings.Contains(e.Error, "ffmpeg") || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("HLS without ffmpeg: %d %q (%v), want 503 with a JSON error naming ffmpeg", resp.StatusCode, e.Error, err)
	}
	// WebRTC playback is untouched.
	sub, err := loadtest.Subscribe(ctxTimeout(t, 10*time.Second), loadtest.SubscriberOptions{URL: n.url("/whep/nohls")})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(context.Background())
	eventually(t, 10*time.Second, "the WHEP viewer receives video", func() bool { return sub.Packets[1].Load() > 20 })

	// Unknown publishers are a 404, not a 503.
	resp, err = http.Get(n.url("/hls/nohls/nobody/index.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("HLS for a participant who does not publish: %d, want 404", resp.StatusCode)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// A bridge on another node plays the publisher over WHEP and serves the
// same ladder (starling hls-bridge --whep URL); when the publisher leaves,
// its stream ends.
func TestRemoteBridgeServesAWHEPStreamAsLLHLS(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg is not installed (CI installs it)")
	}
	n := startNode(t, nil)
	pub, err := loadtest.Publish(ctxTimeout(t, 10*time.Second), loadtest.PublisherOptions{
		URL: n.url("/whip/remote"), Token: mintToken(t, "remote", "cam", true), Simulcast: true, Audio: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(context.Background())
	if err := pub.WaitConnected(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	n.videoTrack(t, "remote", 3)

	ladder, _ := hlsbridge.ParseLadder([]string{"640x360:700", "320x180:300"})
	ctx, cancel := context.WithCancel(context.Background())
	r, err := hlsbridge.NewRemote(ctx, hlsbridge.RemoteConfig{
		URL: n.url("/whep/remote"), IncludeLoopback: true,
		Transcode: transcode.Config{Ladder: ladder},
		HLS:       llhls.Config{SegmentTarget: 2 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan struct{})
	go func() { defer close(ran); r.Run(ctx) }()
	defer func() { cancel(); <-ran; r.Close() }()
	srv := httptest.NewServer(http.StripPrefix("/hls/live", r))
	defer srv.Close()

	for _, p := range []string{"360p", "180p", "audio"} {
		eventually(t, 20*time.Second, p+" has two segments", func() bool {
			return strings.Count(get(t, srv.URL+"/hls/live/"+p+"/index.m3u8"), "#EXTINF") >= 2
		})
	}
	llhlstest.Check(t, srv.Client(), srv.URL+"/hls/live/", llhlstest.Options{})

	pub.Close(context.Background())
	eventually(t, 15*time.Second, "the bridge's stream ends when the publisher leaves", func() bool {
		return strings.Contains(get(t, srv.URL+"/hls/live/360p/index.m3u8"), "#EXT-X-ENDLIST")
	})
}
