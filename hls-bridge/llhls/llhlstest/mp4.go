package llhlstest

import (
	"bytes"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
)

// initInfo is what the suite reads from an init section.
type initInfo struct {
	timescale     uint32
	video         bool
	codec         string // RFC 6381
	width, height int
}

func inspectInit(data []byte) (initInfo, error) {
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(data)); err != nil {
		return initInfo{}, fmt.Errorf("init section: %w", err)
	}
	if len(in.Tracks) != 1 {
		return initInfo{}, fmt.Errorf("init section has %d tracks, want 1", len(in.Tracks))
	}
	tr := in.Tracks[0]
	info := initInfo{timescale: tr.TimeScale}
	switch c := tr.Codec.(type) {
	case *codecs.H264:
		var sps h264.SPS
		if err := sps.Unmarshal(c.SPS); err != nil {
			return info, fmt.Errorf("init SPS: %w", err)
		}
		info.video = true
		info.codec = fmt.Sprintf("avc1.%02x%02x%02x", c.SPS[1], c.SPS[2], c.SPS[3])
		info.width, info.height = sps.Width(), sps.Height()
	case *codecs.MPEG4Audio:
		info.codec = fmt.Sprintf("mp4a.40.%d", c.Config.Type)
	default:
		return info, fmt.Errorf("init codec %T, want H.264 or AAC", c)
	}
	return info, nil
}

// fragments is what the suite reads from a part or a segment: one or more
// moof+mdat pairs.
type fragments struct {
	baseTime uint64 // tfdt of the first
	duration uint64 // of all samples, in the track's timescale
	samples  int
	// firstSync says the first sample is a sync sample; firstIDR that it
	// carries an IDR NAL unit (video only).
	firstSync, firstIDR bool
	// contiguous says each fragment starts where the previous one ended.
	contiguous bool
}

func (f fragments) end() uint64 { return f.baseTime + f.duration }

func inspectFragments(data []byte, video bool) (fragments, error) {
	var parts fmp4.Parts
	if err := parts.Unmarshal(data); err != nil {
		return fragments{}, fmt.Errorf("fragments: %w", err)
	}
	f := fragments{contiguous: true}
	for i, p := range parts {
		if len(p.Tracks) != 1 {
			return f, fmt.Errorf("fragment %d has %d tracks, want 1", i, len(p.Tracks))
		}
		tr := p.Tracks[0]
		if i == 0 {
			f.baseTime = tr.BaseTime
		} else if tr.BaseTime != f.end() {
			f.contiguous = false
		}
		for j, s := range tr.Samples {
			if i == 0 && j == 0 {
				f.firstSync = !s.IsNonSyncSample
				if video {
					var au h264.AVCC
					if err := au.Unmarshal(s.Payload); err != nil {
						return f, fmt.Errorf("first sample: %w", err)
					}
					f.firstIDR = h264.IsRandomAccess(au)
				}
			}
			f.duration += uint64(s.Duration)
			f.samples++
		}
	}
	if f.samples == 0 {
		return f, fmt.Errorf("no samples")
	}
	return f, nil
}
