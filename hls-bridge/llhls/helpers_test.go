package llhls

import (
	"io"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/starling-sfu/starling/transcode"
)

// A 1280x720 High profile SPS and a PPS: enough for init sections; the
// synthetic slices after them are never decoded.
var (
	testSPS  = []byte{0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x6c, 0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x1e, 0x07, 0x8c, 0x18, 0xcb}
	testPPS  = []byte{0x68, 0xee, 0x3c, 0x80}
	testLog  = slog.New(slog.NewTextHandler(io.Discard, nil))
	testWall = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

// synthVideo is a rendition of n frames at fps with an IDR on the first
// frame at or after every multiple of gop, as ffmpeg's force_key_frames
// expr:gte(t,n_forced*2) places them; offset shifts its timeline.
func synthVideo(rendition int, fps float64, n int, gop, offset time.Duration) []transcode.Sample {
	out := make([]transcode.Sample, n)
	for i := range out {
		t := time.Duration(math.Round(float64(i) * 1e9 / fps))
		key := i == 0 || math.Floor(float64(i)/fps/gop.Seconds()+1e-9) != math.Floor(float64(i-1)/fps/gop.Seconds()+1e-9)
		out[i] = videoSample(rendition, offset+t, key, i)
	}
	return out
}

func videoSample(rendition int, at time.Duration, key bool, i int) transcode.Sample {
	au := [][]byte{{0x41, 0x9a, byte(i), byte(i >> 8)}}
	if key {
		au = [][]byte{testSPS, testPPS, {0x65, 0x88, byte(i), byte(i >> 8)}}
	}
	return transcode.Sample{Rendition: rendition, PTS: at, DTS: at, Key: key, AU: au}
}

// synthAudio is n AAC frames at rate Hz from offset.
func synthAudio(rate, n int, offset time.Duration) []transcode.Sample {
	out := make([]transcode.Sample, n)
	for i := range out {
		t := offset + time.Duration(math.Round(float64(i)*aacFrameLen*1e9/float64(rate)))
		out[i] = transcode.Sample{Rendition: transcode.AudioRendition, PTS: t, DTS: t, AU: [][]byte{{0x21, byte(i)}}}
	}
	return out
}

// interleave merges tracks in DTS order, as a transcoder's outputs arrive.
func interleave(tracks ...[]transcode.Sample) []transcode.Sample {
	var all []transcode.Sample
	for _, t := range tracks {
		all = append(all, t...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].DTS < all[j].DTS })
	return all
}

var testLadder = []transcode.Rendition{
	{Name: "720p", Width: 1280, Height: 720, Bitrate: 2_500_000, FPS: 30},
	{Name: "360p", Width: 640, Height: 360, Bitrate: 800_000, FPS: 20},
}

var testAudio = &transcode.AudioFormat{SampleRate: 48000, Channels: 2, Bitrate: 96_000}

// ladderSamples is d of the test ladder with audio.
func ladderSamples(d time.Duration) []transcode.Sample {
	return interleave(
		synthVideo(0, 30, int(d.Seconds()*30), 2*time.Second, 0),
		synthVideo(1, 20, int(d.Seconds()*20), 2*time.Second, 0),
		synthAudio(48000, int(d.Seconds()*48000/aacFrameLen), 0),
	)
}

// pushUntil pushes the samples before at and returns the rest.
func pushUntil(s *Stream, samples []transcode.Sample, at time.Duration) []transcode.Sample {
	for len(samples) > 0 && samples[0].DTS < at {
		s.Push(samples[0])
		samples = samples[1:]
	}
	return samples
}

func itoa(n int) string { return strconv.Itoa(n) }
