package llhls

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starling-sfu/starling/hls-bridge/llhls/llhlstest"
)

// liveClip feeds a stream with the looped ffmpeg clip: the first preload
// at once, as if the stream had been running, then in real time until ctx
// ends.
func liveClip(ctx context.Context, s *Stream, c clip, preload time.Duration) {
	for _, smp := range c.looped(0, preload) {
		s.Push(smp)
	}
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for from := preload; ; from += clipLength {
		for _, smp := range c.looped(from, from+clipLength) {
			// Pace like a live encoder: a sample leaves when its time comes.
			if wait := time.Until(start.Add(smp.DTS - preload)); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
			s.Push(smp)
		}
	}
}

// liveStream serves a live stream of the ffmpeg clip with a short hold
// limit, its feeder stopped when the test ends.
func liveStream(t *testing.T, cfg Config, preload time.Duration) (*Stream, *httptest.Server) {
	c := encodedClip(t)
	s, err := NewStream(cfg, ffmpegLadder, ffmpegAudio, time.Now().Add(-preload), testLog)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		liveClip(ctx, s, c, preload)
	}()
	srv := httptest.NewServer(http.StripPrefix("/hls/room/alice", s))
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		s.Close()
		srv.Close()
	})
	return s, srv
}

// TestConformanceWithFFmpegLadder runs the conformance suite against a
// stream of real H.264 and AAC from ffmpeg, paced in real time, mounted
// under a prefix as the server mounts it.
func TestConformanceWithFFmpegLadder(t *testing.T) {
	hold := 800 * time.Millisecond
	s, srv := liveStream(t, Config{HoldLimit: hold}, 20*time.Second)
	llhlstest.Check(t, srv.Client(), srv.URL+"/hls/room/alice/", llhlstest.Options{HoldLimit: hold})

	st := s.Stats()
	if st.DroppedSamples != 0 || st.GapSegments != 0 || st.Discontinuities != 0 {
		t.Errorf("stats %+v: a clean ladder drops nothing and has no gaps or discontinuities", st)
	}
	if st.BadRequests == 0 || st.Unavailable == 0 || st.BytesServed == 0 || st.Segments == 0 || st.Parts == 0 {
		t.Errorf("stats %+v: the suite's 400s, 503s and media are not counted", st)
	}
}

// TestFFprobeReadsSegments checks with ffprobe that init section plus
// segments is a valid fMP4 file for every track, every frame decodable.
func TestFFprobeReadsSegments(t *testing.T) {
	c := encodedClip(t)
	s, err := NewStream(Config{}, ffmpegLadder, ffmpegAudio, testWall, testLog)
	if err != nil {
		t.Fatal(err)
	}
	for _, smp := range c.looped(0, 13*time.Second) {
		s.Push(smp)
	}
	s.Close()
	dir := t.TempDir()
	for _, tr := range s.tracks {
		v := tr.view.Load()
		data := append([]byte(nil), v.segs[0].init.data...)
		frames := 0
		for _, seg := range v.segs {
			for _, p := range seg.parts {
				data = append(data, p.data...)
			}
		}
		for _, seg := range v.segs {
			frames += int(seg.dur / tr.cut.nominal)
		}
		path := filepath.Join(dir, tr.name+".mp4")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		out := ffprobe(t, path, "-count_frames", "-show_entries",
			"stream=codec_name,width,height,sample_rate,channels,nb_read_frames", "-of", "json")
		var probe struct {
			Streams []struct {
				CodecName    string `json:"codec_name"`
				Width        int    `json:"width"`
				Height       int    `json:"height"`
				SampleRate   string `json:"sample_rate"`
				NbReadFrames string `json:"nb_read_frames"`
			} `json:"streams"`
		}
		if err := json.Unmarshal([]byte(out), &probe); err != nil || len(probe.Streams) != 1 {
			t.Fatalf("%s: ffprobe said %s (%v)", tr.name, out, err)
		}
		st := probe.Streams[0]
		want := "aac"
		if tr.video {
			want = "h264"
			if st.Width != tr.rendition.Width || st.Height != tr.rendition.Height {
				t.Errorf("%s: %dx%d, want %dx%d", tr.name, st.Width, st.Height, tr.rendition.Width, tr.rendition.Height)
			}
		}
		if st.CodecName != want {
			t.Errorf("%s: codec %s, want %s", tr.name, st.CodecName, want)
		}
		if got := strings.TrimSpace(st.NbReadFrames); got != itoa(frames) {
			t.Errorf("%s: ffprobe decoded %s frames, the segments hold %d", tr.name, got, frames)
		}
	}
}
