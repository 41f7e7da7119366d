package llhls

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/starling-sfu/starling/transcode"
)

// clipLength is how long the ffmpeg clip runs; a whole number of GOPs, so
// that looping it keeps the IDR cadence.
const clipLength = 6 * time.Second

// ffmpegLadder is the test ladder ffmpeg encodes: testsrc2 at 30 and 20
// fps, H.264 without B-frames, an IDR every 2 s, and AAC.
var ffmpegLadder = []transcode.Rendition{
	{Name: "180p", Width: 320, Height: 180, Bitrate: 400_000, FPS: 30},
	{Name: "144p", Width: 256, Height: 144, Bitrate: 200_000, FPS: 20},
	{Name: "90p", Width: 160, Height: 90, Bitrate: 100_000, FPS: 30},
}

var ffmpegAudio = &transcode.AudioFormat{SampleRate: 48000, Channels: 2, Bitrate: 64_000}

// clip is the encoded ladder: samples per track in DTS order, video
// renditions first, audio last.
type clip [][]transcode.Sample

var (
	clipOnce sync.Once
	theClip  clip
	clipErr  error
)

// encodedClip runs ffmpeg once per test binary; it skips the test when
// ffmpeg is not installed.
func encodedClip(t *testing.T) clip {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	clipOnce.Do(func() { theClip, clipErr = encodeClip() })
	if clipErr != nil {
		t.Fatal(clipErr)
	}
	return theClip
}

func encodeClip() (clip, error) {
	dir, err := os.MkdirTemp("", "llhls-clip")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "ladder.ts")
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-filter_complex", "[0:v]split=3[a][b][c];[b]fps=20,scale=256:144[b2];[c]scale=160:90[c2]",
		"-map", "[a]", "-map", "[b2]", "-map", "[c2]", "-map", "1:a",
		"-t", fmt.Sprint(clipLength.Seconds()),
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-bf", "0", "-pix_fmt", "yuv420p",
		"-g", "600", "-sc_threshold", "0", "-force_key_frames", "expr:gte(t,n_forced*2)",
		"-b:v:0", "400k", "-b:v:1", "200k", "-b:v:2", "100k",
		"-c:a", "aac", "-b:a", "64k", "-ac", "2",
		"-f", "mpegts", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ffmpeg: %v: %s", err, msg)
	}
	f, err := os.Open(out)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readClip(f)
}

// readClip demuxes the MPEG-TS into samples with PTS 0 at the first video
// frame.
func readClip(f *os.File) (clip, error) {
	r := &mpegts.Reader{R: f}
	if err := r.Initialize(); err != nil {
		return nil, fmt.Errorf("mpegts: %w", err)
	}
	c := make(clip, len(ffmpegLadder)+1)
	type raw struct {
		track    int
		pts, dts int64
		au       [][]byte
	}
	var raws []raw
	video := 0
	for _, tr := range r.Tracks() {
		switch tr.Codec.(type) {
		case *tscodecs.H264:
			i := video
			video++
			r.OnDataH264(tr, func(pts, dts int64, au [][]byte) error {
				raws = append(raws, raw{i, pts, dts, au})
				return nil
			})
		case *tscodecs.MPEG4Audio:
			r.OnDataMPEG4Audio(tr, func(pts int64, aus [][]byte) error {
				for k, au := range aus {
					at := pts + int64(k)*aacFrameLen*90000/int64(ffmpegAudio.SampleRate)
					raws = append(raws, raw{len(ffmpegLadder), at, at, [][]byte{au}})
				}
				return nil
			})
		}
	}
	if video != len(ffmpegLadder) {
		return nil, fmt.Errorf("%d video tracks, want %d", video, len(ffmpegLadder))
	}
	for {
		if err := r.Read(); err != nil {
			break
		}
	}
	zero := int64(-1)
	for _, x := range raws {
		if x.track < len(ffmpegLadder) && (zero < 0 || x.pts < zero) {
			zero = x.pts
		}
	}
	ts := func(v int64) time.Duration { return time.Duration(v-zero) * time.Second / 90000 }
	for _, x := range raws {
		s := transcode.Sample{Rendition: x.track, PTS: ts(x.pts), DTS: ts(x.dts), AU: x.au}
		if x.track == len(ffmpegLadder) {
			s.Rendition = transcode.AudioRendition
		} else {
			s.Key = h264.IsRandomAccess(x.au)
		}
		c[x.track] = append(c[x.track], s)
	}
	for i, tr := range c {
		sort.SliceStable(tr, func(a, b int) bool { return tr[a].DTS < tr[b].DTS })
		if len(tr) == 0 {
			return nil, fmt.Errorf("track %d is empty", i)
		}
	}
	return c, nil
}

// looped returns the clip played over and over from loop 0, in DTS order
// across tracks, for the samples with DTS in [from, to). Video repeats
// whole; audio keeps its own frame clock, since the clip is not a whole
// number of AAC frames.
func (c clip) looped(from, to time.Duration) []transcode.Sample {
	var tracks [][]transcode.Sample
	for _, tr := range c[:len(c)-1] {
		var out []transcode.Sample
		for loop := from / clipLength; time.Duration(loop)*clipLength < to; loop++ {
			for _, s := range tr {
				s.PTS += time.Duration(loop) * clipLength
				s.DTS += time.Duration(loop) * clipLength
				if s.DTS >= from && s.DTS < to {
					out = append(out, s)
				}
			}
		}
		tracks = append(tracks, out)
	}
	audio := c[len(c)-1]
	frame := time.Second * aacFrameLen / time.Duration(ffmpegAudio.SampleRate)
	var out []transcode.Sample
	for i := int64(from / frame); time.Duration(i)*frame < to; i++ {
		s := audio[int(i)%len(audio)]
		s.PTS = time.Duration(i) * time.Second * aacFrameLen / time.Duration(ffmpegAudio.SampleRate)
		s.DTS = s.PTS
		if s.DTS >= from {
			out = append(out, s)
		}
	}
	return interleave(append(tracks, out)...)
}

// ffprobe reads a file with ffprobe and returns its report; stderr must
// stay empty at -v error.
func ffprobe(t *testing.T, path string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("ffprobe not installed")
	}
	cmd := exec.Command("ffprobe", append(append([]string{"-v", "error"}, args...), path)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, stderr.String())
	}
	return stdout.String()
}
