package rtpsrc_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/starling-sfu/starling/clip"
	"github.com/starling-sfu/starling/hls-bridge/rtpsrc"
	"github.com/starling-sfu/starling/loadtest"
)

// nalFingerprint identifies an Annex-B access unit by its NAL units, whatever
// its start codes.
func nalFingerprint(au []byte) uint64 {
	var norm []byte
	for _, n := range bytes.Split(au, []byte{0, 0, 1}) {
		n = bytes.TrimRight(n, "\x00")
		if len(n) > 0 {
			norm = append(append(norm, 0, 0, 1), n...)
		}
	}
	return fingerprint(norm)
}

// The loadtest publisher plays the embedded 1280×720 H.264 clip (20 fps, a
// keyframe a second, pion's STAP-A and FU-A packetization) with Opus.
func TestWHEPSourcePlaysH264(t *testing.T) {
	s := startServer(t)
	const room = "h264"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pub, err := loadtest.Publish(ctx, loadtest.PublisherOptions{
		URL: s.url + "/whip/" + room, Token: mintToken(t, room, "camera", true), Codec: clip.H264, Audio: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(context.Background())
	if err := pub.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := clip.Video(clip.H264, "f")
	if err != nil {
		t.Fatal(err)
	}
	index := map[uint64]int{}
	for i, f := range c.Frames {
		index[nalFingerprint(f.Data)] = i
	}

	rec := &recorder{}
	w := dial(t, s.url+"/whep/"+room, "", rec, rtpsrc.Options{})
	eventually(t, 15*time.Second, "2 s of H.264", func() bool { return videoSpan(rec) >= 2*time.Second })
	formats, video, audio := rec.snapshot()
	t.Logf("stats %+v", w.Source().Stats())
	if len(formats) == 0 || formats[0] != "h264 1280x720 @0" {
		t.Fatalf("formats %q, want h264 1280x720 first", formats)
	}
	if !video[0].Key || len(audio) == 0 {
		t.Fatalf("first video frame key=%v, %d audio frames", video[0].Key, len(audio))
	}
	prev, steps := -1, 0
	for k, f := range video {
		i, ok := index[nalFingerprint(f.Data)]
		if !ok {
			t.Fatalf("access unit %d (%d bytes, key=%v) is none of the clip's", k, len(f.Data), f.Key)
		}
		if f.Key != c.Frames[i].Keyframe {
			t.Fatalf("access unit %d is clip frame %d: key=%v, want %v", k, i, f.Key, c.Frames[i].Keyframe)
		}
		if prev >= 0 && (i-prev+len(c.Frames))%len(c.Frames) == 1 {
			if d := f.PTS - video[k-1].PTS; d > time.Millisecond { // not the SFU's packed start
				if d < 45*time.Millisecond || d > 55*time.Millisecond {
					t.Fatalf("PTS step %v between clip frames %d and %d, want 50 ms", d, prev, i)
				}
				steps++
			}
		}
		prev = i
	}
	if steps < 30 {
		t.Fatalf("only %d consecutive frames among %d", steps, len(video))
	}
}
