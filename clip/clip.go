// Package clip provides short, real encoded media clips embedded in the
// binary, and plays them as RTP in real time.
//
// The clips (see gen.sh) are 4 s of synthetic video at 20 fps with a keyframe
// every second, in VP8 and H.264 at three simulcast rungs, and 4 s of 48 kHz
// stereo Opus in 20 ms frames. A Clip is parsed once, packetized once, and
// shared read-only by everyone who loads it. A Stream turns a Clip into an
// endless RTP sequence (looping at a keyframe, timestamps and sequence numbers
// continuing), and a Player sends several Streams on one wall clock from one
// goroutine, without allocating per packet. Nothing is ever decoded.
package clip

import (
	"embed"
	"fmt"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// Codec names an encoding the embedded clips exist in.
type Codec string

// The codecs of the embedded clips.
const (
	VP8  Codec = "vp8"
	H264 Codec = "h264"
	Opus Codec = "opus"
)

// MimeType returns the codec's WebRTC MIME type, such as webrtc.MimeTypeVP8,
// or "" for an unknown codec.
func (c Codec) MimeType() string {
	switch c {
	case VP8:
		return webrtc.MimeTypeVP8
	case H264:
		return webrtc.MimeTypeH264
	case Opus:
		return webrtc.MimeTypeOpus
	}
	return ""
}

// ClockRate returns the codec's RTP clock rate in Hz: 90000 for video, 48000
// for Opus, 0 for an unknown codec.
func (c Codec) ClockRate() uint32 {
	switch c {
	case VP8, H264:
		return 90000
	case Opus:
		return 48000
	}
	return 0
}

// Capability returns a codec capability that matches the embedded clips and
// pion's default codec registrations, for creating local tracks. The H.264
// clips are constrained baseline level 3.1, hence profile-level-id=42e01f.
func (c Codec) Capability() webrtc.RTPCodecCapability {
	capability := webrtc.RTPCodecCapability{MimeType: c.MimeType(), ClockRate: c.ClockRate()}
	switch c {
	case H264:
		capability.SDPFmtpLine = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
	case Opus:
		capability.Channels = 2
		capability.SDPFmtpLine = "minptime=10;useinbandfec=1"
	}
	return capability
}

func (c Codec) isVideo() bool { return c == VP8 || c == H264 }

// Layer describes one simulcast rung of the video clips.
type Layer struct {
	RID           string
	Width, Height int
	Bitrate       int // encoder target, bit/s; the files are within ~5% of it
}

// layers are the simulcast rungs, lowest first.
var layers = []Layer{
	{RID: "q", Width: 320, Height: 180, Bitrate: 150_000},
	{RID: "h", Width: 640, Height: 360, Bitrate: 500_000},
	{RID: "f", Width: 1280, Height: 720, Bitrate: 1_500_000},
}

// Layers returns the simulcast rungs of the video clips, lowest first.
func Layers() []Layer {
	return append([]Layer(nil), layers...)
}

// RIDs returns the rids of the simulcast rungs, lowest first: "q", "h", "f".
func RIDs() []string {
	rids := make([]string, len(layers))
	for i, l := range layers {
		rids[i] = l.RID
	}
	return rids
}

// Frame is one encoded frame: a VP8 frame, an H.264 access unit in Annex-B
// form (start codes included; a keyframe carries SPS, PPS and IDR), or one
// Opus packet.
type Frame struct {
	Data []byte
	// Keyframe reports whether decoding can start at this frame. It is read
	// from the bitstream. Every Opus frame is a keyframe.
	Keyframe bool
}

// Clip is a parsed, packetized media clip. It is shared by every caller that
// loads it and must not be modified.
type Clip struct {
	Codec         Codec
	RID           string // the simulcast rung, or "" for audio
	Width, Height int    // 0 for audio
	FrameDuration time.Duration
	Frames        []Frame

	// payloads holds, for every frame, the RTP payloads of its packets,
	// produced once by pion's payloader for the codec.
	payloads [][][]byte
}

// Duration returns the playing time of one pass through the clip.
func (c *Clip) Duration() time.Duration {
	return time.Duration(len(c.Frames)) * c.FrameDuration
}

// TimestampStep returns the RTP timestamp increment from one frame to the
// next: 4500 for 20 fps video, 960 for 20 ms Opus.
func (c *Clip) TimestampStep() uint32 {
	return uint32(c.FrameDuration * time.Duration(c.Codec.ClockRate()) / time.Second)
}

//go:embed media
var media embed.FS

// frameRate is the frame rate of the video clips; audio frames are 20 ms.
const (
	frameRate     = 20
	audioDuration = 20 * time.Millisecond
)

type clipKey struct {
	codec Codec
	rid   string
}

// cached loads one clip on first use; the map of them is fixed at init and
// only read afterwards, so it needs no lock.
type cached struct {
	once sync.Once
	clip *Clip
	err  error
}

var clips = func() map[clipKey]*cached {
	m := map[clipKey]*cached{{Opus, ""}: {}}
	for _, l := range layers {
		m[clipKey{VP8, l.RID}] = &cached{}
		m[clipKey{H264, l.RID}] = &cached{}
	}
	return m
}()

// Video returns the video clip of codec (VP8 or H264) at the simulcast rung
// rid (see RIDs). The clip is parsed on first use and shared afterwards.
func Video(codec Codec, rid string) (*Clip, error) {
	if !codec.isVideo() {
		return nil, fmt.Errorf("clip: %q is not a video codec", codec)
	}
	return load(clipKey{codec, rid})
}

// Audio returns the Opus clip. It is parsed on first use and shared
// afterwards.
func Audio() (*Clip, error) {
	return load(clipKey{Opus, ""})
}

func load(key clipKey) (*Clip, error) {
	c, ok := clips[key]
	if !ok {
		return nil, fmt.Errorf("clip: no %s clip for rid %q", key.codec, key.rid)
	}
	c.once.Do(func() { c.clip, c.err = parse(key) })
	return c.clip, c.err
}

// parse reads the embedded file for key into a packetized Clip.
func parse(key clipKey) (*Clip, error) {
	c := &Clip{Codec: key.codec, RID: key.rid}
	var name string
	switch key.codec {
	case VP8:
		name = "media/vp8_" + key.rid + ".ivf"
	case H264:
		name = "media/h264_" + key.rid + ".h264"
	case Opus:
		name = "media/opus.ogg"
	}
	data, err := media.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("clip: read %s: %w", name, err)
	}
	switch key.codec {
	case VP8:
		c.Frames, err = parseIVF(data)
	case H264:
		c.Frames, err = parseAnnexB(data)
	case Opus:
		c.Frames, err = parseOgg(data)
	}
	if err != nil {
		return nil, fmt.Errorf("clip: parse %s: %w", name, err)
	}
	if len(c.Frames) == 0 || !c.Frames[0].Keyframe {
		return nil, fmt.Errorf("clip: %s does not start with a keyframe", name)
	}
	if key.codec.isVideo() {
		c.FrameDuration = time.Second / frameRate
		for _, l := range layers {
			if l.RID == key.rid {
				c.Width, c.Height = l.Width, l.Height
			}
		}
	} else {
		c.FrameDuration = audioDuration
	}
	if c.payloads, err = payloadFrames(key.codec, c.Frames); err != nil {
		return nil, fmt.Errorf("clip: packetize %s: %w", name, err)
	}
	return c, nil
}
