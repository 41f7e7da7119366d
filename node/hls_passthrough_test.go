package node

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/starling-sfu/starling/clip"
	"github.com/starling-sfu/starling/hls-bridge/llhls/llhlstest"
	"github.com/starling-sfu/starling/loadtest"
)

// An H.264 simulcast publisher's own layers are its ladder: one rendition
// per layer at the layer's size, whose frames are the publisher's, byte for
// byte, with segments that start at the IDRs the bridge asks for; only the
// audio is transcoded. The stream passes the conformance suite and ffprobe
// decodes every rendition.
func TestH264SimulcastLayersAreTheLadder(t *testing.T) {
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (CI installs it)", tool)
		}
	}
	n := startNode(t, nil) // hls.passthrough defaults to simulcast
	pub, err := loadtest.Publish(ctxTimeout(t, 10*time.Second), loadtest.PublisherOptions{
		URL: n.url("/whip/pass"), Token: mintToken(t, "pass", "cam", true),
		Codec: clip.H264, Simulcast: true, Audio: true, KeyframeOnRequest: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(context.Background())
	if err := pub.WaitConnected(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	n.videoTrack(t, "pass", 3)

	base := n.url("/hls/pass/cam/")
	mv, err := llhlstest.ParseMultivariant([]byte(get(t, base+"index.m3u8")))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"720p": "1280x720", "360p": "640x360", "180p": "320x180"}
	// BANDWIDTH: libwebrtc's top bitrate for the layer's size, plus the
	// AAC, plus a quarter for the peaks.
	bandwidth := map[string]string{"720p": "3285000", "360p": "1035000", "180p": "410000"}
	if len(mv.Variants) != 3 {
		t.Fatalf("%d variants, want one per layer: %+v", len(mv.Variants), mv.Variants)
	}
	for _, v := range mv.Variants {
		name := strings.TrimSuffix(v.URI, "/index.m3u8")
		if v.Attrs["RESOLUTION"] != want[name] || v.Attrs["BANDWIDTH"] != bandwidth[name] {
			t.Errorf("variant %s: RESOLUTION %s BANDWIDTH %s, want %s and %s", name,
				v.Attrs["RESOLUTION"], v.Attrs["BANDWIDTH"], want[name], bandwidth[name])
		}
	}
	for _, r := range []string{"720p", "360p", "180p", "audio"} {
		eventually(t, 15*time.Second, r+" has two segments", func() bool {
			return strings.Count(get(t, base+r+"/index.m3u8"), "#EXTINF") >= 2
		})
	}
	llhlstest.Check(t, http.DefaultClient, base, llhlstest.Options{})

	if st := n.HLS.Stats(); st.Passthrough != 1 || st.Ladders != 1 {
		t.Errorf("stats: %d ladders, %d passed through; want 1 and 1", st.Ladders, st.Passthrough)
	}
	if m := get(t, n.url("/metrics")); !strings.Contains(m, "starling_hls_passthrough_ladders 1") {
		t.Error("/metrics does not count the passthrough ladder")
	}

	dir := t.TempDir()
	for _, r := range []string{"720p", "360p", "180p"} {
		p, err := llhlstest.ParseMedia([]byte(get(t, base+r+"/index.m3u8")))
		if err != nil {
			t.Fatal(err)
		}
		seg := p.Segments[len(p.Segments)-1] // the newest complete one
		data := []byte(get(t, base+r+"/"+seg.URI))
		checkPassedThrough(t, r, data)
		file := filepath.Join(dir, r+".mp4")
		if err := os.WriteFile(file, append([]byte(get(t, base+r+"/"+seg.Map)), data...), 0o644); err != nil {
			t.Fatal(err)
		}
		w, h, frames := probeVideo(t, file)
		if want[r] != w+"x"+h || frames < 30 {
			t.Errorf("ffprobe reads %s as %sx%s with %d frames, want %s and a segment's worth", r, w, h, frames, want[r])
		}
	}
}

// checkPassedThrough checks that the segment of rendition r starts with an
// IDR that is one of the publisher's, unchanged.
func checkPassedThrough(t *testing.T, r string, seg []byte) {
	t.Helper()
	var parts fmp4.Parts
	if err := parts.Unmarshal(seg); err != nil || len(parts) == 0 || len(parts[0].Tracks) == 0 ||
		len(parts[0].Tracks[0].Samples) == 0 {
		t.Fatalf("%s: segment does not parse: %v", r, err)
	}
	var au h264.AVCC
	if err := au.Unmarshal(parts[0].Tracks[0].Samples[0].Payload); err != nil {
		t.Fatalf("%s: first sample: %v", r, err)
	}
	rid := map[string]string{"720p": "f", "360p": "h", "180p": "q"}[r]
	c, err := clip.Video(clip.H264, rid)
	if err != nil {
		t.Fatal(err)
	}
	for _, nalu := range au {
		if h264.NALUType(nalu[0]&0x1f) != h264.NALUTypeIDR {
			continue
		}
		for _, f := range c.Frames {
			if f.Keyframe && bytes.Contains(f.Data, nalu) {
				return
			}
		}
		t.Fatalf("%s: the segment's IDR (%d bytes) is none of the publisher's %s keyframes", r, len(nalu), rid)
	}
	t.Fatalf("%s: the segment does not start with an IDR", r)
}

// probeVideo decodes file's video with ffprobe and returns its size and
// how many frames it decoded; any decoding error fails the test.
func probeVideo(t *testing.T, file string) (w, h string, frames int) {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=width,height,nb_read_frames", "-of", "json", file).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", file, err, out)
	}
	var res struct {
		Streams []struct {
			Width, Height int
			Frames        string `json:"nb_read_frames"`
		}
	}
	if i := bytes.IndexByte(out, '{'); i > 0 {
		t.Errorf("ffprobe %s reported errors:\n%s", file, out[:i])
		out = out[i:]
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Streams) != 1 {
		t.Fatalf("ffprobe %s: %v\n%s", file, err, out)
	}
	s := res.Streams[0]
	nf, _ := strconv.Atoi(s.Frames)
	return strconv.Itoa(s.Width), strconv.Itoa(s.Height), nf
}
