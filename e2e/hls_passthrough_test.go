package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/starling-sfu/starling/hls-bridge/llhls/llhlstest"
)

// passWindow is how long the passthrough test watches the ladder.
const passWindow = 30 * time.Second

// Chromium publishes H.264 with simulcast: its three layers are the LL-HLS
// ladder as it sent them (no video transcoding), with segments starting at
// the IDRs the bridge asks it for; the stream passes the conformance suite
// and hls.js plays it without a stall.
func TestBrowserH264SimulcastIsTheLadderWithoutTranscoding(t *testing.T) {
	requireBrowser(t)
	requireFFmpeg(t)
	srv := startServer(t, "--hls-mode", "live", "--hls-segment-target", hlsSegmentTarget.String())

	startPublisherWith(t, srv, "pass", "codec=h264")
	awaitTopLayer(t, srv)
	eventually(t, 30*time.Second, "the ladder passes the layers through", func() (bool, string) {
		n := metric(t, srv, "starling_hls_passthrough_ladders")
		return n == 1, fmt.Sprintf("starling_hls_passthrough_ladders %.0f", n)
	})

	base := srv.URL + "/hls/pass/camera/"
	mv, err := llhlstest.ParseMultivariant(hlsGet(t, base+"index.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	var sizes []string
	for _, v := range mv.Variants {
		sizes = append(sizes, v.Attrs["RESOLUTION"])
		if !strings.HasPrefix(v.Attrs["CODECS"], `"avc1.42`) && !strings.HasPrefix(v.Attrs["CODECS"], "avc1.42") {
			t.Errorf("variant %s has CODECS %s, want the browser's constrained baseline H.264", v.URI, v.Attrs["CODECS"])
		}
	}
	// Chromium's three layers of its 1280x720 fake camera.
	if strings.Join(sizes, " ") != "1280x720 640x360 320x180" {
		t.Errorf("renditions %v, want the publisher's layers 1280x720 640x360 320x180", sizes)
	}
	for _, r := range []string{"720p", "180p", "audio"} {
		eventually(t, 20*time.Second, r+" has two segments", func() (bool, string) {
			body := string(hlsGet(t, base+r+"/index.m3u8"))
			return strings.Count(body, "#EXTINF") >= 2, body
		})
	}
	llhlstest.Check(t, http.DefaultClient, base, llhlstest.Options{})
	cpu := metric(t, srv, "starling_hls_transcode_cpu_seconds_total")

	viewer := newPage(t, "hls-viewer")
	viewer.open(t, srv.URL+"/watch-hls?room=pass", "starlingHLS")
	eventually(t, 30*time.Second, "hls.js plays the passed-through ladder", func() (bool, string) {
		s := hlsViewerState(t, viewer)
		if s.State == "failed" {
			t.Fatalf("HLS viewer failed: %s", s)
		}
		return s.State == "playing" && s.FramesDecoded > 0, s.String()
	})
	first := hlsViewerState(t, viewer)
	start := time.Now()
	last := first
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for time.Since(start) < passWindow {
		<-tick.C
		if last = hlsViewerState(t, viewer); last.State != "playing" {
			t.Fatalf("HLS viewer stopped playing: %s", last)
		}
	}
	n := last.LatencySampleCount - first.LatencySampleCount
	if n <= 0 || n > len(last.LatencySamples) {
		t.Fatalf("%d latency samples in the window: %s", n, last)
	}
	lat := sortedCopy(last.LatencySamples[len(last.LatencySamples)-n:])
	used := metric(t, srv, "starling_hls_transcode_cpu_seconds_total") - cpu
	t.Logf("hls-passthrough: p50_s=%.3f p95_s=%.3f stalls=%d frames=%d level=%dp ffmpeg_cores=%.3f loadavg=%q",
		hlsPercentile(lat, 50), hlsPercentile(lat, 95), last.Stalls-first.Stalls,
		last.FramesDecoded-first.FramesDecoded, last.Level, used/time.Since(start).Seconds(), loadAverage())
	if s := last.Stalls - first.Stalls; s != 0 {
		t.Errorf("%d stalls in %v of playing: %s", s, passWindow, last)
	}
	if minFrames := int(passWindow.Seconds() * 10); last.FramesDecoded-first.FramesDecoded < minFrames {
		t.Errorf("decoded %d frames in %v, want at least %d", last.FramesDecoded-first.FramesDecoded, passWindow, minFrames)
	}
	if strings.Contains(srv.log.String(), "sent no IDR") {
		t.Error("a segment started without an IDR: the browser did not answer the bridge's keyframe requests in time")
	}
}
