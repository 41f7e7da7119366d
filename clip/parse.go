package clip

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// parseIVF splits an IVF file into VP8 frames.
func parseIVF(data []byte) ([]Frame, error) {
	r, header, err := ivfreader.NewWith(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("ivf header: %w", err)
	}
	if header.FourCC != "VP80" {
		return nil, fmt.Errorf("ivf holds %q, want VP80", header.FourCC)
	}
	var frames []Frame
	for {
		payload, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			return frames, nil
		}
		if err != nil {
			return nil, fmt.Errorf("ivf frame %d: %w", len(frames), err)
		}
		keyframe, err := vp8Keyframe(payload)
		if err != nil {
			return nil, fmt.Errorf("ivf frame %d: %w", len(frames), err)
		}
		frames = append(frames, Frame{Data: payload, Keyframe: keyframe})
	}
}

// vp8Keyframe reads the frame type from a VP8 frame tag (RFC 6386 §9.1): bit
// 0 clear means a keyframe, which must then carry the start code 9d 01 2a.
func vp8Keyframe(frame []byte) (bool, error) {
	if len(frame) < 3 {
		return false, fmt.Errorf("vp8 frame of %d bytes", len(frame))
	}
	if frame[0]&0x01 != 0 {
		return false, nil
	}
	if len(frame) < 10 || !bytes.Equal(frame[3:6], []byte{0x9d, 0x01, 0x2a}) {
		return false, errors.New("vp8 keyframe without start code")
	}
	return true, nil
}

// H.264 NAL unit types (ITU-T H.264 table 7-1) that delimit access units.
const (
	nalSlice    = 1
	nalIDR      = 5
	nalSEI      = 6
	nalSPS      = 7
	nalPPS      = 8
	nalAUD      = 9
	nalPrefix14 = 14 // first of the types 14..18 that start an access unit
	nalRsvd18   = 18
)

// parseAnnexB splits an H.264 Annex-B byte stream into access units (H.264
// §7.4.1.2.3): a new one starts at an AUD, SPS, PPS, SEI or type 14..18 NAL
// after a slice, or at a slice whose first_mb_in_slice is 0. Each Frame keeps
// its start codes, so it is itself a valid Annex-B stream.
func parseAnnexB(data []byte) ([]Frame, error) {
	var (
		frames  []Frame
		auStart = -1 // offset of the current access unit's first start code
		hasVCL  bool // the current access unit has a slice
		hasIDR  bool
	)
	finish := func(end int) {
		if auStart >= 0 && hasVCL {
			frames = append(frames, Frame{Data: data[auStart:end:end], Keyframe: hasIDR})
		}
	}
	for off := 0; off < len(data); {
		codeStart, nalStart, next := nextNAL(data, off)
		if nalStart < 0 {
			break
		}
		if auStart < 0 && codeStart != 0 {
			return nil, errors.New("annex-b stream does not begin with a start code")
		}
		nal := data[nalStart:next]
		if len(nal) < 2 {
			return nil, fmt.Errorf("short nal unit at offset %d", nalStart)
		}
		typ := nal[0] & 0x1f
		firstSlice := (typ == nalSlice || typ == nalIDR) && nal[1]&0x80 != 0 // ue(v) 0 is the single bit 1
		startsAU := firstSlice || typ == nalAUD || typ == nalSPS || typ == nalPPS || typ == nalSEI ||
			(typ >= nalPrefix14 && typ <= nalRsvd18)
		if auStart < 0 || (hasVCL && startsAU) {
			finish(codeStart)
			auStart, hasVCL, hasIDR = codeStart, false, false
		}
		if typ == nalSlice || typ == nalIDR {
			hasVCL = true
			hasIDR = hasIDR || typ == nalIDR
		}
		off = next
	}
	finish(len(data))
	if len(frames) == 0 {
		return nil, errors.New("no access units")
	}
	return frames, nil
}

// nextNAL finds the first NAL unit at or after off: codeStart is where its
// start code (3 or 4 bytes) begins, nalStart where the NAL header byte is, and
// next where the following start code begins or len(data). nalStart is -1
// when no start code is left.
func nextNAL(data []byte, off int) (codeStart, nalStart, next int) {
	i := bytes.Index(data[off:], []byte{0, 0, 1})
	if i < 0 {
		return -1, -1, len(data)
	}
	codeStart, nalStart = off+i, off+i+3
	if codeStart > off && data[codeStart-1] == 0 {
		codeStart--
	}
	j := bytes.Index(data[nalStart:], []byte{0, 0, 1})
	if j < 0 {
		return codeStart, nalStart, len(data)
	}
	next = nalStart + j
	if data[next-1] == 0 {
		next--
	}
	return codeStart, nalStart, next
}

// opusFrameSamples is the number of 48 kHz samples in one 20 ms Opus frame.
const opusFrameSamples = 960

// parseOgg returns the Opus packets of an Ogg Opus file written with one
// packet per page (ffmpeg -page_duration 20000), which is what pion's
// oggreader can split. The granule positions must advance by at most one
// 20 ms frame per page; the last page may advance by less (end trimming).
func parseOgg(data []byte) ([]Frame, error) {
	r, head, err := oggreader.NewWith(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("ogg opus header: %w", err)
	}
	if head.Channels != 2 {
		return nil, fmt.Errorf("ogg opus has %d channels, want 2", head.Channels)
	}
	var (
		frames  []Frame
		granule uint64
	)
	for {
		payload, page, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			return frames, nil
		}
		if err != nil {
			return nil, fmt.Errorf("ogg page %d: %w", len(frames), err)
		}
		if typ, ok := page.HeaderType(payload); ok {
			if typ == oggreader.HeaderOpusTags {
				continue
			}
			return nil, fmt.Errorf("unexpected %s page", typ)
		}
		if len(payload) == 0 {
			continue
		}
		if page.GranulePosition-granule > opusFrameSamples {
			return nil, fmt.Errorf("ogg page %d spans %d samples: more than one 20 ms packet per page",
				len(frames), page.GranulePosition-granule)
		}
		granule = page.GranulePosition
		frames = append(frames, Frame{Data: payload, Keyframe: true})
	}
}

// payloadFrames packetizes every frame once with pion's payloader for codec,
// so that playing a clip only copies bytes. VP8 descriptors carry a 15-bit
// PictureID, which a Stream rewrites per frame.
func payloadFrames(codec Codec, frames []Frame) ([][][]byte, error) {
	var payloader interface {
		Payload(mtu uint16, payload []byte) [][]byte
	}
	switch codec {
	case VP8:
		payloader = &codecs.VP8Payloader{EnablePictureID: true}
	case H264:
		payloader = &codecs.H264Payloader{}
	default:
		payloader = &codecs.OpusPayloader{}
	}
	out := make([][][]byte, len(frames))
	for i, f := range frames {
		out[i] = payloader.Payload(maxPayload, f.Data)
		if len(out[i]) == 0 {
			return nil, fmt.Errorf("frame %d yields no rtp payload", i)
		}
	}
	return out, nil
}
