package clip

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"
)

// The clips are 4 s at 20 fps with a keyframe every 20 frames.
const (
	wantVideoFrames = 80
	keyframeEvery   = 20
)

// videoClips loads every video clip, failing the test on error.
func videoClips(t testing.TB) []*Clip {
	t.Helper()
	var clips []*Clip
	for _, codec := range []Codec{VP8, H264} {
		for _, rid := range RIDs() {
			c, err := Video(codec, rid)
			if err != nil {
				t.Fatalf("Video(%s, %s): %v", codec, rid, err)
			}
			clips = append(clips, c)
		}
	}
	return clips
}

func TestEveryVideoClipHas80FramesOfItsRung(t *testing.T) {
	for _, c := range videoClips(t) {
		if len(c.Frames) != wantVideoFrames {
			t.Errorf("%s/%s: %d frames, want %d", c.Codec, c.RID, len(c.Frames), wantVideoFrames)
		}
		if c.FrameDuration != 50*time.Millisecond || c.TimestampStep() != 4500 {
			t.Errorf("%s/%s: frame duration %v, step %d; want 50ms, 4500",
				c.Codec, c.RID, c.FrameDuration, c.TimestampStep())
		}
		if c.Duration() != 4*time.Second {
			t.Errorf("%s/%s: duration %v, want 4s", c.Codec, c.RID, c.Duration())
		}
	}
}

func TestAudioClipHasTwoHundredOpusFrames(t *testing.T) {
	c, err := Audio()
	if err != nil {
		t.Fatal(err)
	}
	// 4 s is 200 frames of 20 ms; libopus adds 312 samples of pre-skip,
	// which spills into one more packet (the last is trimmed by its granule
	// position), so 201 is right and 200 would be too.
	if n := len(c.Frames); n < 200 || n > 201 {
		t.Errorf("%d opus frames, want 200 or 201", n)
	}
	if c.FrameDuration != 20*time.Millisecond || c.TimestampStep() != 960 {
		t.Errorf("frame duration %v, step %d; want 20ms, 960", c.FrameDuration, c.TimestampStep())
	}
	for i, f := range c.Frames {
		if !f.Keyframe || len(f.Data) == 0 {
			t.Fatalf("frame %d: keyframe %v, %d bytes; want a keyframe with data", i, f.Keyframe, len(f.Data))
		}
		// TOC byte (RFC 6716 §3.1): config 16..31 is CELT, and config%4 == 3
		// is 20 ms; code 0 is one frame per packet.
		if toc := f.Data[0]; toc>>3 < 16 || (toc>>3)%4 != 3 || toc&3 != 0 {
			t.Fatalf("frame %d: toc %#x is not a single 20 ms CELT frame", i, toc)
		}
	}
}

func TestVideoKeyframesAreExactlyEveryTwentiethFrame(t *testing.T) {
	for _, c := range videoClips(t) {
		for i, f := range c.Frames {
			want := i%keyframeEvery == 0
			if f.Keyframe != want {
				t.Errorf("%s/%s frame %d: Keyframe %v, want %v", c.Codec, c.RID, i, f.Keyframe, want)
			}
			var inStream bool
			switch c.Codec {
			case VP8:
				inStream = vp8TagIsKeyframe(t, c, f.Data)
			case H264:
				inStream = nalTypes(t, f.Data)[nalIDR]
			}
			if inStream != want {
				t.Errorf("%s/%s frame %d: bitstream keyframe %v, want %v", c.Codec, c.RID, i, inStream, want)
			}
		}
	}
}

// vp8TagIsKeyframe reads a VP8 frame header (RFC 6386 §9.1) and, for a
// keyframe, checks that its dimensions are the rung's.
func vp8TagIsKeyframe(t *testing.T, c *Clip, frame []byte) bool {
	t.Helper()
	if frame[0]&1 != 0 {
		return false
	}
	if !bytes.Equal(frame[3:6], []byte{0x9d, 0x01, 0x2a}) {
		t.Fatalf("%s: keyframe without start code", c.RID)
	}
	w := int(frame[6]) | int(frame[7]&0x3f)<<8
	h := int(frame[8]) | int(frame[9]&0x3f)<<8
	if w != c.Width || h != c.Height {
		t.Errorf("%s: keyframe is %dx%d, want %dx%d", c.RID, w, h, c.Width, c.Height)
	}
	return true
}

// nalTypes lists the NAL unit types in an Annex-B buffer, using pion's
// reader rather than the package's own splitter.
func nalTypes(t testing.TB, annexB []byte) map[uint8]bool {
	t.Helper()
	r, err := h264reader.NewReaderWithOptions(bytes.NewReader(annexB), h264reader.WithIncludeSEI(true))
	if err != nil {
		t.Fatal(err)
	}
	types := map[uint8]bool{}
	for {
		nal, err := r.NextNAL()
		if errors.Is(err, io.EOF) {
			return types
		}
		if err != nil {
			t.Fatal(err)
		}
		types[uint8(nal.UnitType)] = true
	}
}

func TestH264KeyframesCarrySPSAndPPSAndIDR(t *testing.T) {
	for _, rid := range RIDs() {
		c, err := Video(H264, rid)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range c.Frames {
			types := nalTypes(t, f.Data)
			if f.Keyframe && !(types[nalSPS] && types[nalPPS] && types[nalIDR]) {
				t.Errorf("%s keyframe %d has nal types %v, want SPS, PPS and IDR", rid, i, types)
			}
			if !f.Keyframe && (len(types) != 1 || !types[nalSlice]) {
				t.Errorf("%s frame %d has nal types %v, want one non-IDR slice", rid, i, types)
			}
		}
	}
}

func TestH264SPSIsConstrainedBaselineLevel31(t *testing.T) {
	c, err := Video(H264, "f")
	if err != nil {
		t.Fatal(err)
	}
	data := c.Frames[0].Data
	_, nal, _ := nextNAL(data, 0)
	sps := data[nal:]
	if sps[0]&0x1f != nalSPS {
		t.Fatalf("first nal is type %d, want SPS", sps[0]&0x1f)
	}
	// profile_idc 66 with constraint_set1 is constrained baseline; level 31.
	if sps[1] != 66 || sps[2]&0x40 == 0 || sps[3] != 31 {
		t.Errorf("sps profile %d, constraints %#x, level %d; want 66, set1, 31", sps[1], sps[2], sps[3])
	}
}

func TestLoadingAClipTwiceReturnsTheSameClip(t *testing.T) {
	a, err := Video(VP8, "h")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Video(VP8, "h")
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Error("second load parsed the clip again")
	}
}

func TestVideoRejectsUnknownCodecAndRID(t *testing.T) {
	if _, err := Video(Opus, "q"); err == nil {
		t.Error("Video(Opus) succeeded")
	}
	if _, err := Video(VP8, "x"); err == nil {
		t.Error("Video(VP8, x) succeeded")
	}
}

func TestLayersAndRIDsAreLowestFirstAndCopied(t *testing.T) {
	rids := RIDs()
	if len(rids) != 3 || rids[0] != "q" || rids[1] != "h" || rids[2] != "f" {
		t.Fatalf("RIDs() = %v", rids)
	}
	rids[0] = "changed"
	ls := Layers()
	ls[0].Width = 1
	if RIDs()[0] != "q" || Layers()[0].Width != 320 {
		t.Error("changing a returned slice changed the package's layers")
	}
	for _, l := range Layers() {
		c, err := Video(VP8, l.RID)
		if err != nil {
			t.Fatal(err)
		}
		if c.Width != l.Width || c.Height != l.Height {
			t.Errorf("%s clip is %dx%d, layer says %dx%d", l.RID, c.Width, c.Height, l.Width, l.Height)
		}
	}
}

func TestCodecCapabilitiesMatchPionDefaults(t *testing.T) {
	tests := []struct {
		codec Codec
		mime  string
		rate  uint32
	}{
		{VP8, webrtc.MimeTypeVP8, 90000},
		{H264, webrtc.MimeTypeH264, 90000},
		{Opus, webrtc.MimeTypeOpus, 48000},
	}
	for _, tt := range tests {
		c := tt.codec.Capability()
		if tt.codec.MimeType() != tt.mime || c.MimeType != tt.mime || c.ClockRate != tt.rate {
			t.Errorf("%s: capability %+v, want %s at %d Hz", tt.codec, c, tt.mime, tt.rate)
		}
	}
	if got := H264.Capability().SDPFmtpLine; got != "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f" {
		t.Errorf("h264 fmtp %q", got)
	}
	if Codec("av1").MimeType() != "" || Codec("av1").ClockRate() != 0 {
		t.Error("unknown codec has a MIME type or clock rate")
	}
}
