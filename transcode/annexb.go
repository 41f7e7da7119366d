package transcode

import (
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

var startCode = []byte{0, 0, 1}

// eachNALU calls fn for every NAL unit of an Annex-B access unit, without
// start codes or trailing zero bytes. Data without any start code is taken
// as one NAL unit.
func eachNALU(au []byte, fn func(nalu []byte)) {
	i := bytes.Index(au, startCode)
	if i < 0 {
		if len(au) > 0 {
			fn(au)
		}
		return
	}
	au = au[i+3:]
	for len(au) > 0 {
		end := bytes.Index(au, startCode)
		if end < 0 {
			end = len(au)
		}
		if n := bytes.TrimRight(au[:end], "\x00"); len(n) > 0 {
			fn(n)
		}
		if end == len(au) {
			return
		}
		au = au[end+3:]
	}
}

// appendAVCC appends an Annex-B access unit in the length-prefixed form
// that Matroska and MP4 carry (4-byte big-endian lengths).
func appendAVCC(dst, au []byte) []byte {
	eachNALU(au, func(n []byte) {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(n)))
		dst = append(dst, n...)
	})
	return dst
}

// hasParameterSets says whether an Annex-B access unit carries an SPS and
// a PPS, as the first keyframe of an H.264 stream must.
func hasParameterSets(au []byte) bool {
	_, err := avcDecoderConfig(au)
	return err == nil
}

var errNoParameterSets = errors.New("h264: keyframe without SPS and PPS")

// avcDecoderConfig builds an AVCDecoderConfigurationRecord (ISO/IEC 14496-15
// §5.3.3.1), the "avcC" CodecPrivate, from the SPS and PPS of an Annex-B
// keyframe. It returns errNoParameterSets when either is missing.
func avcDecoderConfig(au []byte) ([]byte, error) {
	var sps, pps [][]byte
	eachNALU(au, func(n []byte) {
		switch h264.NALUType(n[0] & 0x1F) {
		case h264.NALUTypeSPS:
			if len(n) >= 4 {
				sps = append(sps, n)
			}
		case h264.NALUTypePPS:
			pps = append(pps, n)
		}
	})
	if len(sps) == 0 || len(pps) == 0 {
		return nil, errNoParameterSets
	}
	b := []byte{1, sps[0][1], sps[0][2], sps[0][3], 0xFF, 0xE0 | byte(len(sps))}
	for _, s := range sps {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	b = append(b, byte(len(pps)))
	for _, p := range pps {
		b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
		b = append(b, p...)
	}
	return b, nil
}
