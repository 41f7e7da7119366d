package sfu

import (
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// sentPkt is what a fake transport saw written.
type sentPkt struct {
	seq     uint16
	ts      uint32
	ssrc    uint32
	pt      uint8
	marker  bool
	payload []byte
}

type fakeWriter struct {
	mu   sync.Mutex
	pkts []sentPkt
	keep bool // record packets (tests) or just count (benchmarks)
	n    int
}

func (w *fakeWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.mu.Lock()
	w.n++
	if w.keep {
		w.pkts = append(w.pkts, sentPkt{h.SequenceNumber, h.Timestamp, h.SSRC, h.PayloadType, h.Marker, append([]byte(nil), payload...)})
	}
	w.mu.Unlock()
	return len(payload) + 12, nil
}

func (w *fakeWriter) Write(b []byte) (int, error) { return len(b), nil }

func (w *fakeWriter) sent() []sentPkt {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]sentPkt(nil), w.pkts...)
}

// fakeRTCP feeds RTCP to a DownTrack; closing it ends the DownTrack's reader.
type fakeRTCP struct{ ch chan []byte }

func (f *fakeRTCP) Read(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
	p, ok := <-f.ch
	if !ok {
		return 0, nil, io.EOF
	}
	return copy(b, p), a, nil
}

type fakeContext struct {
	codecs []webrtc.RTPCodecParameters
	w      *fakeWriter
	rtcp   *fakeRTCP
}

func (c *fakeContext) CodecParameters() []webrtc.RTPCodecParameters { return c.codecs }
func (c *fakeContext) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter {
	return nil
}
func (c *fakeContext) SSRC() webrtc.SSRC                       { return 1111 }
func (c *fakeContext) SSRCRetransmission() webrtc.SSRC         { return 2222 }
func (c *fakeContext) SSRCForwardErrorCorrection() webrtc.SSRC { return 0 }
func (c *fakeContext) WriteStream() webrtc.TrackLocalWriter    { return c.w }
func (c *fakeContext) ID() string                              { return "ctx" }
func (c *fakeContext) RTCPReader() interceptor.RTCPReader      { return c.rtcp }

var vp8Codec = webrtc.RTPCodecParameters{
	RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
	PayloadType:        96,
}

var subscriberCodecs = []webrtc.RTPCodecParameters{
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 100},
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=100"}, PayloadType: 101},
}

// testTrack is a VP8 track with three layers fed directly by the test.
type testTrack struct {
	*Track
	plis chan uint32
	seq  [MaxLayers]uint16
	ts   [MaxLayers]uint32
	hdr  rtp.Header
	wg   sync.WaitGroup
}

func newTestTrack(t testing.TB, workers int) *testTrack {
	tt := &testTrack{plis: make(chan uint32, 1000)}
	s := &Settings{PLIInterval: time.Nanosecond, FanoutWorkers: workers}
	tt.Track = newTrack(TrackInfo{ID: "video", StreamID: "pub", Kind: webrtc.RTPCodecTypeVideo, Codec: vp8Codec},
		s, &Stats{}, func(ssrc uint32) error { tt.plis <- ssrc; return nil }, slog.New(slog.DiscardHandler))
	for i := range MaxLayers {
		l := &layer{index: i, rid: LayerName(i), cache: newPacketCache()}
		l.ssrc.Store(uint32(10 + i))
		tt.layers[i].Store(l)
		tt.seq[i] = uint16(1000*i + 65000) // wraps during tests
		tt.ts[i] = uint32(i) * 1_000_000
	}
	t.Cleanup(tt.close)
	return tt
}

// frame sends one 3-packet VP8 frame on layer l; payload byte 2 names the
// layer and byte 3 the frame number, so tests can trace what was forwarded.
func (tt *testTrack) frame(l int, k int, key bool) {
	ly := tt.layers[l].Load()
	for i := range 3 {
		var p []byte
		switch {
		case i == 0 && key:
			p = []byte{0x10, 0x00, byte(l), byte(k)}
		case i == 0:
			p = []byte{0x10, 0x01, byte(l), byte(k)}
		default:
			p = []byte{0x00, 0x01, byte(l), byte(k)}
		}
		tt.hdr = rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: tt.seq[l], Timestamp: tt.ts[l], SSRC: uint32(10 + l), Marker: i == 2}
		raw, _ := (&rtp.Packet{Header: tt.hdr, Payload: p}).Marshal()
		tt.ingest(ly, &tt.hdr, raw, p, &tt.wg)
		tt.seq[l]++
	}
	tt.ts[l] += 4500
}

// subscribe attaches a bound, started DownTrack writing to a fake transport.
func (tt *testTrack) subscribe(t testing.TB, opts DownTrackOptions, keep bool) (*DownTrack, *fakeWriter, *fakeRTCP) {
	d, err := tt.Subscribe(opts)
	if err != nil {
		t.Fatal(err)
	}
	w := &fakeWriter{keep: keep}
	rc := &fakeRTCP{ch: make(chan []byte, 16)}
	if _, err := d.Bind(&fakeContext{codecs: subscriberCodecs, w: w, rtcp: rc}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(rc.ch) })
	d.Start()
	return d, w, rc
}
