package llhls

import (
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/starling-sfu/starling/transcode"
)

const (
	videoTimescale = 90000
	aacFrameLen    = 1024 // samples per AAC-LC access unit
	trackID        = 1    // every rendition is its own one-track file
)

// videoAccessUnit turns a transcoder sample into the segmenter's form: AVCC
// payload without access unit delimiters, and the parameter sets of an IDR.
// Key comes from the NAL units, so that INDEPENDENT=YES is never a guess.
func videoAccessUnit(s transcode.Sample) (accessUnit, error) {
	au := make([][]byte, 0, len(s.AU))
	x := accessUnit{dts: s.DTS, pts: s.PTS}
	for _, nalu := range s.AU {
		if len(nalu) == 0 {
			continue
		}
		switch h264.NALUType(nalu[0] & 0x1f) {
		case h264.NALUTypeAccessUnitDelimiter:
			continue
		case h264.NALUTypeIDR:
			x.key = true
		case h264.NALUTypeSPS:
			x.sps = nalu
		case h264.NALUTypePPS:
			x.pps = nalu
		}
		au = append(au, nalu)
	}
	if len(au) == 0 {
		return x, fmt.Errorf("empty access unit")
	}
	if x.key && (x.sps == nil || x.pps == nil) {
		return x, fmt.Errorf("IDR without SPS and PPS in band")
	}
	payload, err := h264.AVCC(au).Marshal()
	if err != nil {
		return x, fmt.Errorf("avcc: %w", err)
	}
	x.payload = payload
	if x.key {
		// Copies: the caller may reuse its buffers, and the init keeps them.
		x.sps, x.pps = append([]byte(nil), x.sps...), append([]byte(nil), x.pps...)
	} else {
		x.sps, x.pps = nil, nil
	}
	return x, nil
}

func audioAccessUnit(s transcode.Sample) (accessUnit, error) {
	if len(s.AU) != 1 || len(s.AU[0]) == 0 {
		return accessUnit{}, fmt.Errorf("audio sample with %d access units", len(s.AU))
	}
	return accessUnit{dts: s.DTS, pts: s.DTS, payload: append([]byte(nil), s.AU[0]...)}, nil
}

// videoInit is the init section for an H.264 track.
func videoInit(sps, pps []byte) ([]byte, error) {
	return marshalInit(&fmp4.InitTrack{
		ID:        trackID,
		TimeScale: videoTimescale,
		Codec:     &codecs.H264{SPS: sps, PPS: pps},
	})
}

// audioInit is the init section for an AAC-LC track.
func audioInit(f transcode.AudioFormat) ([]byte, error) {
	return marshalInit(&fmp4.InitTrack{
		ID:        trackID,
		TimeScale: uint32(f.SampleRate),
		Codec: &codecs.MPEG4Audio{Config: mpeg4audio.AudioSpecificConfig{
			Type:          mpeg4audio.ObjectTypeAACLC,
			SampleRate:    f.SampleRate,
			ChannelConfig: uint8(f.Channels),
		}},
	})
}

func marshalInit(t *fmp4.InitTrack) ([]byte, error) {
	var buf seekablebuffer.Buffer
	if err := (&fmp4.Init{Tracks: []*fmp4.InitTrack{t}}).Marshal(&buf); err != nil {
		return nil, fmt.Errorf("init section: %w", err)
	}
	return buf.Bytes(), nil
}

// marshalPart writes one moof+mdat.
func marshalPart(seq uint32, p cutPart) ([]byte, error) {
	var buf seekablebuffer.Buffer
	part := fmp4.Part{
		SequenceNumber: seq,
		Tracks:         []*fmp4.PartTrack{{ID: trackID, BaseTime: p.baseTime, Samples: p.samples}},
	}
	if err := part.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("part: %w", err)
	}
	return buf.Bytes(), nil
}

// avcCodec is the RFC 6381 codec string, avc1.PPCCLL, of an SPS.
func avcCodec(sps []byte) string {
	if len(sps) < 4 {
		return "avc1.42e01e"
	}
	return fmt.Sprintf("avc1.%02x%02x%02x", sps[1], sps[2], sps[3])
}

// spsSize is the coded picture size an SPS describes.
func spsSize(sps []byte) (width, height int, err error) {
	var s h264.SPS
	if err := s.Unmarshal(sps); err != nil {
		return 0, 0, fmt.Errorf("sps: %w", err)
	}
	return s.Width(), s.Height(), nil
}
