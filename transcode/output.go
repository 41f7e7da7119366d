package transcode

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
)

// aacFrameSamples is the number of samples in one AAC-LC access unit.
const aacFrameSamples = 1024

// tsClock turns 33-bit 90 kHz MPEG-TS timestamps into durations that keep
// counting across wraps. The first timestamp is read as signed, so the
// slightly negative ones an AAC encoder's priming produces stay negative.
type tsClock struct {
	started bool
	prev    int64 // last raw timestamp
	ticks   int64 // unwrapped value of prev
}

const tsWrap = 1 << 33

func (c *tsClock) decode(ts int64) time.Duration {
	ts &= tsWrap - 1
	if !c.started {
		c.started, c.prev, c.ticks = true, ts, ts
		if ts >= tsWrap/2 {
			c.ticks = ts - tsWrap
		}
	} else {
		d := (ts - c.prev) & (tsWrap - 1)
		if d >= tsWrap/2 {
			d -= tsWrap
		}
		c.prev, c.ticks = ts, c.ticks+d
	}
	return ticksToDuration(c.ticks)
}

func ticksToDuration(ticks int64) time.Duration {
	return time.Duration(ticks) * time.Second / 90000
}

// outputReader turns one of ffmpeg's MPEG-TS outputs into Samples.
type outputReader struct {
	rendition int // AudioRendition for audio
	// origin is added to every timestamp: the input PTS that ffmpeg's
	// zero stands for.
	origin  time.Duration
	deliver func(Sample)
	onError func(error) // non-fatal decode errors

	clock, dtsClock tsClock
	sps, pps        []byte
}

// run reads r until it ends. A stream that ends before it has begun (ffmpeg
// died early) is not an error.
func (o *outputReader) run(r io.Reader) error {
	tr := &mpegts.Reader{R: r}
	if err := tr.Initialize(); err != nil {
		if isEOF(err) {
			return nil
		}
		return fmt.Errorf("read tables: %w", err)
	}
	tr.OnDecodeError(o.onError)
	if err := o.attach(tr); err != nil {
		return err
	}
	for {
		if err := tr.Read(); err != nil {
			if isEOF(err) {
				return nil
			}
			return err
		}
	}
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.ErrClosedPipe)
}

func (o *outputReader) attach(tr *mpegts.Reader) error {
	for _, t := range tr.Tracks() {
		switch c := t.Codec.(type) {
		case *tscodecs.H264:
			if o.rendition != AudioRendition {
				tr.OnDataH264(t, o.onH264)
				return nil
			}
		case *tscodecs.MPEG4Audio:
			if o.rendition == AudioRendition {
				rate := c.SampleRate
				tr.OnDataMPEG4Audio(t, func(pts int64, aus [][]byte) error {
					o.onAAC(pts, aus, rate)
					return nil
				})
				return nil
			}
		}
	}
	if o.rendition == AudioRendition {
		return errors.New("no AAC track in ffmpeg's output")
	}
	return errors.New("no H.264 track in ffmpeg's output")
}

// onH264 drops access unit delimiters, marks IDRs and makes sure each IDR
// carries SPS and PPS, repeating the last ones seen if the encoder did not.
func (o *outputReader) onH264(pts, dts int64, au [][]byte) error {
	s := Sample{Rendition: o.rendition}
	base := o.origin
	s.PTS = base + o.clock.decode(pts)
	s.DTS = base + o.dtsClock.decode(dts)
	nalus := au[:0]
	var hasSPS, hasPPS bool
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1F) {
		case h264.NALUTypeAccessUnitDelimiter:
			continue
		case h264.NALUTypeIDR:
			s.Key = true
		case h264.NALUTypeSPS:
			hasSPS, o.sps = true, n
		case h264.NALUTypePPS:
			hasPPS, o.pps = true, n
		}
		nalus = append(nalus, n)
	}
	if s.Key && (!hasSPS || !hasPPS) && o.sps != nil && o.pps != nil {
		nalus = append([][]byte{o.sps, o.pps}, nalus...)
	}
	if len(nalus) == 0 {
		return nil
	}
	s.AU = nalus
	o.deliver(s)
	return nil
}

// onAAC splits a PES into access units, each 1024 samples after the last.
func (o *outputReader) onAAC(pts int64, aus [][]byte, rate int) {
	t := o.origin + o.clock.decode(pts)
	for i, au := range aus {
		at := t + time.Duration(i)*aacFrameSamples*time.Second/time.Duration(rate)
		o.deliver(Sample{Rendition: AudioRendition, PTS: at, DTS: at, AU: [][]byte{au}})
	}
}
