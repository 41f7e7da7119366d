package rtpsrc

import (
	"bytes"
	"errors"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp9"
	"github.com/pion/rtp/codecs"
)

// depacketizer rebuilds one video codec's frames from the RTP payloads of
// one timestamp, given in sequence order.
type depacketizer interface {
	// reset starts a new frame.
	reset()
	// push adds the next payload. The first one after reset must start a
	// frame; an error means the frame cannot be rebuilt.
	push(payload []byte) error
	// frame returns the frame pushed so far, which stays valid until reset,
	// and whether it is a keyframe.
	frame() (data []byte, key bool, err error)
	// size is the picture size of the last keyframe returned by frame, or
	// 0×0 when it did not tell.
	size() (width, height int)
}

var (
	errShortPayload = errors.New("rtpsrc: payload too short")
	errNotFrameHead = errors.New("rtpsrc: frame does not start at its first packet")
	errEmptyFrame   = errors.New("rtpsrc: empty frame")
)

// vp8Depacketizer rebuilds VP8 frames (RFC 7741).
type vp8Depacketizer struct {
	buf    []byte
	pushed bool
	w, h   int
}

func (d *vp8Depacketizer) reset() { d.buf, d.pushed = d.buf[:0], false }

func (d *vp8Depacketizer) push(payload []byte) error {
	n, start, err := vp8Descriptor(payload)
	if err != nil {
		return err
	}
	if !d.pushed && !start {
		return errNotFrameHead
	}
	d.pushed = true
	d.buf = append(d.buf, payload[n:]...)
	return nil
}

// vp8Descriptor parses a VP8 payload descriptor (RFC 7741 §4.2): its length,
// and whether the packet starts a frame (S set, partition index 0).
func vp8Descriptor(p []byte) (n int, start bool, err error) {
	if len(p) < 1 {
		return 0, false, errShortPayload
	}
	start = p[0]&0x10 != 0 && p[0]&0x07 == 0
	n = 1
	if p[0]&0x80 != 0 { // X: extension byte
		if len(p) < 2 {
			return 0, false, errShortPayload
		}
		x := p[1]
		n = 2
		if x&0x80 != 0 { // I: PictureID, 7 or 15 bits
			if len(p) < n+1 {
				return 0, false, errShortPayload
			}
			if p[n]&0x80 != 0 {
				n++
			}
			n++
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			n++
		}
		if x&0x30 != 0 { // T or K: TID/Y/KEYIDX
			n++
		}
	}
	if n > len(p) {
		return 0, false, errShortPayload
	}
	return n, start, nil
}

func (d *vp8Depacketizer) frame() ([]byte, bool, error) {
	if len(d.buf) == 0 {
		return nil, false, errEmptyFrame
	}
	if d.buf[0]&0x01 != 0 {
		return d.buf, false, nil
	}
	w, h, ok := vp8KeyframeSize(d.buf)
	if !ok {
		return nil, false, errors.New("rtpsrc: vp8 keyframe without start code")
	}
	d.w, d.h = w, h
	return d.buf, true, nil
}

func (d *vp8Depacketizer) size() (int, int) { return d.w, d.h }

// vp8KeyframeSize reads a VP8 keyframe's picture size (RFC 6386 §9.1): a
// 3-byte frame tag, the start code 9d 01 2a, then 14-bit width and height.
func vp8KeyframeSize(f []byte) (w, h int, ok bool) {
	if len(f) < 10 || !bytes.Equal(f[3:6], []byte{0x9d, 0x01, 0x2a}) {
		return 0, 0, false
	}
	w = int(f[6]) | int(f[7])<<8&0x3f00
	h = int(f[8]) | int(f[9])<<8&0x3f00
	return w, h, true
}

// vp9Depacketizer rebuilds VP9 frames (RFC 9628). Of a spatially scalable
// stream it keeps the base layer, which decodes on its own.
type vp9Depacketizer struct {
	pkt    codecs.VP9Packet
	buf    []byte
	pushed bool
	w, h   int
}

func (d *vp9Depacketizer) reset() { d.buf, d.pushed = d.buf[:0], false }

func (d *vp9Depacketizer) push(payload []byte) error {
	if _, err := d.pkt.Unmarshal(payload); err != nil {
		return err
	}
	if d.pkt.L && d.pkt.SID > 0 {
		return nil
	}
	if !d.pushed && !d.pkt.B {
		return errNotFrameHead
	}
	d.pushed = true
	d.buf = append(d.buf, d.pkt.Payload...)
	return nil
}

func (d *vp9Depacketizer) frame() ([]byte, bool, error) {
	if len(d.buf) == 0 {
		return nil, false, errEmptyFrame
	}
	var h vp9.Header
	if err := h.Unmarshal(d.buf); err != nil || h.NonKeyFrame || h.ShowExistingFrame {
		return d.buf, false, nil
	}
	d.w, d.h = h.Width(), h.Height()
	return d.buf, true, nil
}

func (d *vp9Depacketizer) size() (int, int) { return d.w, d.h }
