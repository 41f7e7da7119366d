package rtpsrc

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// H.264 NAL unit types (ITU-T H.264 table 7-1) and RTP packet types (RFC 6184 §5.2).
const (
	nalSlice  = 1
	nalIDR    = 5
	nalSEI    = 6
	nalSPS    = 7
	nalPPS    = 8
	nalAUD    = 9
	nalPrefix = 14 // 14..18 may begin an access unit too
	nalRsvd18 = 18
	nalSTAPA  = 24
	nalFUA    = 28
)

var startCode = []byte{0, 0, 0, 1}

var errH264Mode = errors.New("rtpsrc: h264 interleaved packetization (mode 2) is not supported")

// h264Depacketizer rebuilds H.264 access units in Annex-B form from single
// NAL unit, STAP-A and FU-A packets (RFC 6184 packetization modes 0 and 1).
// It keeps the last parameter sets (SPS and PPS) it saw and puts them before
// an IDR that arrives without them, so every keyframe decodes on its own.
type h264Depacketizer struct {
	log      *slog.Logger
	au       []byte // Annex-B access unit being built
	pushed   bool
	inFU     bool // inside a fragmented NAL unit
	fuStart  int  // offset in au of that NAL unit's header
	idr      bool
	hasSPS   bool
	hasPPS   bool
	params   []byte // the last SPS and PPS seen together, Annex-B
	paramsAU []byte // parameter sets of the current AU, Annex-B
	out      []byte
	spsSeen  []byte // the SPS whose size w, h holds
	w, h     int
	warned   bool
}

func (d *h264Depacketizer) reset() {
	d.au, d.paramsAU = d.au[:0], d.paramsAU[:0]
	d.pushed, d.inFU, d.idr, d.hasSPS, d.hasPPS = false, false, false, false, false
}

func (d *h264Depacketizer) push(p []byte) error {
	if len(p) < 1 {
		return errShortPayload
	}
	first := !d.pushed
	d.pushed = true
	switch typ := p[0] & 0x1f; {
	case typ >= 1 && typ <= 23:
		if d.inFU {
			return errors.New("rtpsrc: h264 fragmented NAL unit cut short")
		}
		if first && !startsAU(p) {
			return errNotFrameHead
		}
		d.nal(p)
	case typ == nalSTAPA:
		return d.stapA(p[1:], first)
	case typ == nalFUA:
		return d.fuA(p, first)
	case typ >= 25 && typ <= 27 || typ == 29:
		return errH264Mode
	default:
		return fmt.Errorf("rtpsrc: h264 packet of reserved type %d", typ)
	}
	return nil
}

// stapA adds the NAL units of a single-time aggregation packet (RFC 6184
// §5.7.1): each is preceded by its 16-bit size.
func (d *h264Depacketizer) stapA(p []byte, first bool) error {
	if d.inFU {
		return errors.New("rtpsrc: h264 fragmented NAL unit cut short")
	}
	if len(p) == 0 {
		return errShortPayload
	}
	for len(p) > 0 {
		if len(p) < 2 {
			return errShortPayload
		}
		n := int(p[0])<<8 | int(p[1])
		p = p[2:]
		if n == 0 || n > len(p) {
			return fmt.Errorf("rtpsrc: h264 STAP-A unit of %d bytes in %d", n, len(p))
		}
		if first && !startsAU(p[:n]) {
			return errNotFrameHead
		}
		first = false
		d.nal(p[:n])
		p = p[n:]
	}
	return nil
}

// fuA adds a fragment of a NAL unit (RFC 6184 §5.8): the FU indicator holds
// the NAL unit's F and NRI bits, the FU header its type and start/end bits.
func (d *h264Depacketizer) fuA(p []byte, first bool) error {
	if len(p) < 3 {
		return errShortPayload
	}
	start, end := p[1]&0x80 != 0, p[1]&0x40 != 0
	header := p[0]&0xe0 | p[1]&0x1f
	switch {
	case start && d.inFU:
		return errors.New("rtpsrc: h264 fragmented NAL unit cut short")
	case !start && !d.inFU:
		return errors.New("rtpsrc: h264 fragment without its start")
	case start:
		if first && !startsAU([]byte{header, p[2]}) {
			return errNotFrameHead
		}
		d.au = append(d.au, startCode...)
		d.fuStart = len(d.au)
		d.au = append(d.au, header)
		d.inFU = true
	}
	d.au = append(d.au, p[2:]...)
	if end {
		d.inFU = false
		d.note(d.au[d.fuStart:])
	}
	return nil
}

// nal adds one whole NAL unit.
func (d *h264Depacketizer) nal(n []byte) {
	d.au = append(d.au, startCode...)
	d.au = append(d.au, n...)
	d.note(n)
}

// note records what a complete NAL unit of the AU is.
func (d *h264Depacketizer) note(n []byte) {
	switch n[0] & 0x1f {
	case nalIDR:
		d.idr = true
	case nalSPS:
		d.hasSPS = true
		d.paramsAU = append(append(d.paramsAU, startCode...), n...)
	case nalPPS:
		d.hasPPS = true
		d.paramsAU = append(append(d.paramsAU, startCode...), n...)
	}
}

// startsAU reports whether NAL unit n can begin an access unit (H.264
// §7.4.1.2.3): an AUD, SEI, SPS, PPS or type 14–18 unit, or a slice with
// first_mb_in_slice 0, whose ue(v) coding is a single 1 bit.
func startsAU(n []byte) bool {
	switch typ := n[0] & 0x1f; {
	case typ == nalSlice || typ == nalIDR:
		return len(n) > 1 && n[1]&0x80 != 0
	case typ == nalSEI || typ == nalSPS || typ == nalPPS || typ == nalAUD:
		return true
	default:
		return typ >= nalPrefix && typ <= nalRsvd18
	}
}

func (d *h264Depacketizer) frame() ([]byte, bool, error) {
	if d.inFU {
		return nil, false, errors.New("rtpsrc: h264 fragmented NAL unit cut short")
	}
	if len(d.au) == 0 {
		return nil, false, errEmptyFrame
	}
	if d.hasSPS && d.hasPPS {
		d.params = append(d.params[:0], d.paramsAU...)
		d.readSize()
	}
	if !d.idr {
		return d.au, false, nil
	}
	if d.hasSPS && d.hasPPS {
		return d.au, true, nil
	}
	if len(d.params) == 0 {
		if !d.warned {
			d.warned = true
			d.log.Warn("h264 IDR without SPS/PPS, and none seen yet: waiting for a keyframe that has them")
		}
		return d.au, false, nil
	}
	d.out = append(append(d.out[:0], d.params...), d.au...)
	return d.out, true, nil
}

// readSize takes the picture size from the SPS in params when it changed.
func (d *h264Depacketizer) readSize() {
	for rest := d.params; len(rest) > 4; {
		rest = rest[4:]
		n := rest
		if i := bytes.Index(rest, startCode); i >= 0 {
			n, rest = rest[:i], rest[i:]
		} else {
			rest = nil
		}
		if len(n) == 0 || n[0]&0x1f != nalSPS || bytes.Equal(n, d.spsSeen) {
			continue
		}
		d.spsSeen = append(d.spsSeen[:0], n...)
		var sps h264.SPS
		if err := sps.Unmarshal(n); err != nil {
			d.w, d.h = 0, 0
			continue
		}
		d.w, d.h = sps.Width(), sps.Height()
	}
}

func (d *h264Depacketizer) size() (int, int) { return d.w, d.h }
