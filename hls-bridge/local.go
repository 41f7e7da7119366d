package hlsbridge

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/starling-sfu/starling/hls-bridge/rtpsrc"
	"github.com/starling-sfu/starling/sfu"
)

// attachLocal subscribes the source to a published track in-process, as
// one more subscriber of the SFU: a DownTrack bound to a context of our own
// whose writer feeds the source. With layer -1, video takes the top layer
// present (it is pinned there, and the SFU steps down only when that layer
// stops); otherwise it takes that layer alone, and nothing while it is not
// sent. The DownTrack starts on a keyframe, so the source sees one first.
func attachLocal(src *rtpsrc.Source, t *sfu.Track, layer int) (*sfu.DownTrack, error) {
	info := t.Info()
	opts := sfu.DownTrackOptions{StreamID: "hls"}
	if t.Codec().IsVideo() {
		opts.Layer, opts.Pinned = sfu.MaxLayers-1, true
		if layer >= 0 {
			opts.Layer, opts.Exact = layer, true
		}
	}
	d, err := t.Subscribe(opts)
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", info.Codec.MimeType, err)
	}
	st, err := src.AddTrack(rtpsrc.TrackParams{MimeType: info.Codec.MimeType, ClockRate: info.Codec.ClockRate})
	if err != nil {
		d.Close()
		return nil, err
	}
	ctx := &localContext{codec: info.Codec, w: &localWriter{track: st}, rtcp: newLocalRTCP()}
	if _, err := d.Bind(ctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("bind %s: %w", info.Codec.MimeType, err)
	}
	d.OnClose(ctx.rtcp.close)
	d.Start()
	return d, nil
}

// localContext is the webrtc.TrackLocalContext of an in-process subscriber.
type localContext struct {
	codec webrtc.RTPCodecParameters
	w     *localWriter
	rtcp  *localRTCP
}

func (c *localContext) CodecParameters() []webrtc.RTPCodecParameters {
	return []webrtc.RTPCodecParameters{c.codec}
}
func (c *localContext) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter { return nil }
func (c *localContext) SSRC() webrtc.SSRC                                      { return 1 }
func (c *localContext) SSRCRetransmission() webrtc.SSRC                        { return 0 }
func (c *localContext) SSRCForwardErrorCorrection() webrtc.SSRC                { return 0 }
func (c *localContext) WriteStream() webrtc.TrackLocalWriter                   { return c.w }
func (c *localContext) ID() string                                             { return "hls" }
func (c *localContext) RTCPReader() interceptor.RTCPReader                     { return c.rtcp }

// localWriter hands the DownTrack's packets to the source, which copies
// them (the DownTrack reuses its buffers).
type localWriter struct {
	track *rtpsrc.Track
}

func (w *localWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.track.WriteRTP(&rtp.Packet{Header: *h, Payload: payload}, time.Now())
	return len(payload), nil
}

func (w *localWriter) Write(b []byte) (int, error) {
	var p rtp.Packet
	if err := p.Unmarshal(b); err != nil {
		return 0, err
	}
	w.track.WriteRTP(&p, time.Now())
	return len(b), nil
}

// localRTCP is the DownTrack's RTCP reader: nothing to read (the source asks
// for keyframes through sfu.Track.RequestKeyframe) until it is closed.
type localRTCP struct {
	once sync.Once
	done chan struct{}
}

func newLocalRTCP() *localRTCP { return &localRTCP{done: make(chan struct{})} }

func (r *localRTCP) Read([]byte, interceptor.Attributes) (int, interceptor.Attributes, error) {
	<-r.done
	return 0, nil, io.EOF
}

func (r *localRTCP) close() { r.once.Do(func() { close(r.done) }) }

var errNoVideo = errors.New("the publisher has no video track")
