package sfu

import "strings"

// Codec identifies how to find keyframes in a track's RTP payloads.
type Codec uint8

// Codecs the SFU knows how to switch on. Audio codecs have no keyframes: every
// packet is a valid switch point.
const (
	CodecUnknown Codec = iota
	CodecOpus
	CodecVP8
	CodecVP9
	CodecH264
	CodecAV1
)

// CodecFromMime maps an RTP mime type ("video/VP8") to a Codec.
func CodecFromMime(mime string) Codec {
	switch strings.ToLower(mime) {
	case "audio/opus":
		return CodecOpus
	case "video/vp8":
		return CodecVP8
	case "video/vp9":
		return CodecVP9
	case "video/h264":
		return CodecH264
	case "video/av1":
		return CodecAV1
	}
	return CodecUnknown
}

// String returns the codec's name.
func (c Codec) String() string {
	return [...]string{"unknown", "opus", "vp8", "vp9", "h264", "av1"}[c]
}

// IsVideo reports whether the codec carries video.
func (c Codec) IsVideo() bool { return c >= CodecVP8 }

// KeyframeStart reports whether payload is the first packet of a keyframe, the
// only place a subscriber may start or switch layers. Audio packets always are.
func (c Codec) KeyframeStart(payload []byte) bool {
	switch c {
	case CodecVP8:
		return vp8KeyframeStart(payload)
	case CodecVP9:
		return vp9KeyframeStart(payload)
	case CodecH264:
		return h264KeyframeStart(payload)
	case CodecAV1:
		return av1KeyframeStart(payload)
	case CodecOpus, CodecUnknown:
		return true
	}
	return false
}

// vp8KeyframeStart parses the VP8 payload descriptor (RFC 7741 §4.2) and the
// first byte of the VP8 frame header (RFC 6386 §9.1, P bit clear on keyframes).
func vp8KeyframeStart(p []byte) bool {
	i, ok := vp8FrameStart(p)
	return ok && len(p) > i && p[i]&0x01 == 0
}

// vp8FrameStart returns where the VP8 frame begins in a payload that starts
// a frame's first partition.
func vp8FrameStart(p []byte) (int, bool) {
	if len(p) < 1 {
		return 0, false
	}
	x, s, pid := p[0]&0x80 != 0, p[0]&0x10 != 0, p[0]&0x07
	if !s || pid != 0 {
		return 0, false
	}
	i := 1
	if x {
		if len(p) < 2 {
			return 0, false
		}
		ext := p[1]
		i = 2
		if ext&0x80 != 0 { // I: picture ID, 7 or 15 bits
			if len(p) <= i {
				return 0, false
			}
			if p[i]&0x80 != 0 {
				i++
			}
			i++
		}
		if ext&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if ext&0x30 != 0 { // T or K: TID/Y/KEYIDX byte
			i++
		}
	}
	return i, true
}

// FrameSize returns the picture size a keyframe's first packet declares,
// where the codec puts it in a fixed place (VP8's keyframe header, RFC 6386
// §9.1); ok is false otherwise.
func (c Codec) FrameSize(payload []byte) (width, height int, ok bool) {
	if c != CodecVP8 {
		return 0, 0, false
	}
	i, ok := vp8FrameStart(payload)
	if !ok || len(payload) < i+10 || payload[i]&0x01 != 0 {
		return 0, 0, false
	}
	h := payload[i+3:]
	if h[0] != 0x9d || h[1] != 0x01 || h[2] != 0x2a {
		return 0, 0, false
	}
	width = int(h[3]) | int(h[4]&0x3f)<<8
	height = int(h[5]) | int(h[6]&0x3f)<<8
	return width, height, true
}

// vp9KeyframeStart parses the VP9 payload descriptor (RFC 9628 §4.2): the
// start of a frame (B) that is not inter-predicted (P clear), at spatial layer 0.
func vp9KeyframeStart(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	b0 := p[0]
	interPicture, layerIdx, begin := b0&0x40 != 0, b0&0x20 != 0, b0&0x08 != 0
	if interPicture || !begin {
		return false
	}
	i := 1
	if b0&0x80 != 0 { // I: picture ID
		if len(p) <= i {
			return false
		}
		if p[i]&0x80 != 0 {
			i++
		}
		i++
	}
	if layerIdx {
		if len(p) <= i {
			return false
		}
		if sid := (p[i] >> 1) & 0x07; sid != 0 {
			return false
		}
	}
	return true
}

// H.264 NAL unit types (RFC 6184 §5.2).
const (
	naluIDR   = 5
	naluSPS   = 7
	naluSTAPA = 24
	naluFUA   = 28
)

// h264KeyframeStart reports a packet that begins an IDR access unit: an SPS or
// IDR single NAL, a STAP-A holding either, or the first FU-A fragment of an IDR.
func h264KeyframeStart(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	switch t := p[0] & 0x1f; t {
	case naluIDR, naluSPS:
		return true
	case naluSTAPA:
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			i += 2
			if i >= len(p) {
				return false
			}
			if nt := p[i] & 0x1f; nt == naluSPS || nt == naluIDR {
				return true
			}
			i += size
		}
	case naluFUA:
		return len(p) >= 2 && p[1]&0x80 != 0 && p[1]&0x1f == naluIDR
	}
	return false
}

// av1KeyframeStart reads the AV1 aggregation header (AV1 RTP spec §4.4): N set
// marks the first packet of a new coded video sequence, which starts with a
// keyframe; Z set means the packet continues an earlier OBU.
func av1KeyframeStart(p []byte) bool {
	return len(p) >= 1 && p[0]&0x80 == 0 && p[0]&0x08 != 0
}
