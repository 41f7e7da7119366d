package rtpsrc

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/starling-sfu/starling/clip"
	"github.com/starling-sfu/starling/transcode"
)

// recorder is a Handler that keeps everything it is given.
type recorder struct {
	mu      sync.Mutex
	formats []string // "vp8 320x180 @N": format announced before video frame N
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
	return append([]string(nil), r.formats...), append([]transcode.Frame(nil), r.video...), append([]transcode.Frame(nil), r.audio...)
}

// rtpStream packetizes one codec's frames the way a sender does: pion's
// payloaders, the marker on a video frame's last packet, the timestamp
// advancing by step per frame.
type rtpStream struct {
	codec clip.Codec
	ssrc  uint32
	seq   uint16
	ts    uint32
	step  uint32
	mtu   uint16
	vp8   codecs.VP8Payloader
	h264  codecs.H264Payloader
}

func newStream(codec clip.Codec, ssrc uint32, seq uint16, ts, step uint32) *rtpStream {
	return &rtpStream{codec: codec, ssrc: ssrc, seq: seq, ts: ts, step: step, mtu: 1000, vp8: codecs.VP8Payloader{EnablePictureID: true}}
}

// next packetizes one frame and advances the timestamp.
func (s *rtpStream) next(frame []byte) []*rtp.Packet {
	var payloads [][]byte
	switch s.codec {
	case clip.VP8:
		payloads = s.vp8.Payload(s.mtu, frame)
	case clip.H264:
		payloads = s.h264.Payload(s.mtu, frame)
	default:
		payloads = [][]byte{frame}
	}
	pkts := make([]*rtp.Packet, len(payloads))
	for i, p := range payloads {
		pkts[i] = &rtp.Packet{
			Header: rtp.Header{
				Version: 2, SequenceNumber: s.seq, Timestamp: s.ts, SSRC: s.ssrc,
				Marker: s.codec != clip.Opus && i == len(payloads)-1, PayloadType: 96,
			},
			Payload: p,
		}
		s.seq++
	}
	s.ts += s.step
	return pkts
}

func mustClip(t testing.TB, codec clip.Codec, rid string) *clip.Clip {
	t.Helper()
	var (
		c   *clip.Clip
		err error
	)
	if codec == clip.Opus {
		c, err = clip.Audio()
	} else {
		c, err = clip.Video(codec, rid)
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mimeOf(c clip.Codec) string { return c.MimeType() }

// nalUnits splits an Annex-B stream into its NAL units, whatever the length
// of the start codes.
func nalUnits(b []byte) [][]byte {
	var out [][]byte
	for {
		i := bytes.Index(b, []byte{0, 0, 1})
		if i < 0 {
			return out
		}
		b = b[i+3:]
		j := bytes.Index(b, []byte{0, 0, 1})
		if j < 0 {
			return append(out, b)
		}
		n := b[:j]
		if len(n) > 0 && n[len(n)-1] == 0 {
			n = n[:len(n)-1]
		}
		out = append(out, n)
		b = b[j:]
	}
}

// sameFrame compares frames, H.264 by NAL units (start codes may differ).
func sameFrame(codec clip.Codec, got, want []byte) bool {
	if codec != clip.H264 {
		return bytes.Equal(got, want)
	}
	g, w := nalUnits(got), nalUnits(want)
	if len(g) != len(w) {
		return false
	}
	for i := range g {
		if !bytes.Equal(g[i], w[i]) {
			return false
		}
	}
	return true
}

// ms is a test time base: unix ns for a millisecond offset from a fixed start.
var epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func at(d time.Duration) time.Time { return epoch.Add(d) }

// testLog discards logs unless STARLING_TEST_LOG is set.
func testLog() *slog.Logger {
	if os.Getenv("STARLING_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
