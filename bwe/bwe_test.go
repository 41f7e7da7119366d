package bwe

import (
	"io"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// sink records what reaches the transport below the interceptor.
type sink struct {
	mu   sync.Mutex
	seqs map[uint32][]uint16 // SSRC → transport-wide sequence numbers seen
	n    int
}

func (s *sink) Write(h *rtp.Header, _ []byte, _ interceptor.Attributes) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	if s.seqs != nil {
		var ext rtp.TransportCCExtension
		if err := ext.Unmarshal(h.GetExtension(twccID)); err == nil {
			s.seqs[h.SSRC] = append(s.seqs[h.SSRC], ext.TransportSequence)
		}
	}
	return 0, nil
}

const twccID = 5

func newTestInterceptor(t testing.TB) *Interceptor {
	t.Helper()
	i, err := NewFactory(Options{}).NewInterceptor("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = i.Close() })
	return i.(*Interceptor)
}

func streamInfo() *interceptor.StreamInfo {
	return &interceptor.StreamInfo{
		SSRC: 1111, SSRCRetransmission: 2222,
		RTPHeaderExtensions: []interceptor.RTPHeaderExtension{{URI: sdp.TransportCCURI, ID: twccID}},
	}
}

func TestStampsOneTransportWideSequenceAcrossStreamsAndRetransmissions(t *testing.T) {
	i := newTestInterceptor(t)
	out := &sink{seqs: map[uint32][]uint16{}}
	video := i.BindLocalStream(streamInfo(), out)
	audioInfo := streamInfo()
	audioInfo.SSRC, audioInfo.SSRCRetransmission = 3333, 0
	audio := i.BindLocalStream(audioInfo, out)
	for n := range 6 {
		h := &rtp.Header{Version: 2, SSRC: []uint32{1111, 2222, 3333}[n%3]}
		w := video
		if h.SSRC == 3333 {
			w = audio
		}
		if _, err := w.Write(h, []byte{1, 2, 3}, nil); err != nil {
			t.Fatalf("write %d (ssrc %d): %v", n, h.SSRC, err)
		}
	}
	want := map[uint32][]uint16{1111: {0, 3}, 2222: {1, 4}, 3333: {2, 5}}
	for ssrc, seqs := range want {
		got := out.seqs[ssrc]
		if len(got) != len(seqs) || got[0] != seqs[0] || got[1] != seqs[1] {
			t.Errorf("ssrc %d carried transport sequence numbers %v, want %v", ssrc, got, seqs)
		}
	}
}

func TestStreamWithoutTheExtensionPassesThrough(t *testing.T) {
	i := newTestInterceptor(t)
	out := &sink{}
	info := streamInfo()
	info.RTPHeaderExtensions = nil
	if w := i.BindLocalStream(info, out); w != interceptor.RTPWriter(out) {
		t.Fatal("a stream without transport-wide sequence numbers was wrapped")
	}
	if i.est.Negotiated() {
		t.Fatal("estimator claims feedback is negotiated")
	}
}

// rtcpQueue is an RTCP reader fed by the test.
type rtcpQueue struct{ ch chan []byte }

func (q *rtcpQueue) Read(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
	p, ok := <-q.ch
	if !ok {
		return 0, nil, io.EOF
	}
	return copy(b, p), a, nil
}

func marshal(t testing.TB, p rtcp.Packet) []byte {
	t.Helper()
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRTCPReadsCarryTheEstimatorAndFeedbackMakesItCurrent(t *testing.T) {
	i := newTestInterceptor(t)
	out := &sink{}
	w := i.BindLocalStream(streamInfo(), out)
	for range 4 {
		if _, err := w.Write(&rtp.Header{Version: 2, SSRC: 1111}, make([]byte, 1000), nil); err != nil {
			t.Fatal(err)
		}
	}
	q := &rtcpQueue{ch: make(chan []byte, 4)}
	r := i.BindRTCPReader(q)
	// Packets 0 and 1 received 10 ms apart, 2 and 3 lost.
	fb := &rtcp.TransportLayerCC{
		MediaSSRC: 1111, BaseSequenceNumber: 0, PacketStatusCount: 4, ReferenceTime: 1,
		PacketChunks: []rtcp.PacketStatusChunk{
			&rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketReceivedSmallDelta, RunLength: 2},
			&rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketNotReceived, RunLength: 2},
		},
		RecvDeltas: []*rtcp.RecvDelta{
			{Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 0},
			{Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 10000},
		},
	}
	withHeader(fb)
	q.ch <- marshal(t, &rtcp.ReceiverReport{SSRC: 9})
	buf := make([]byte, 1500)
	_, attr, err := r.Read(buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := FromAttributes(attr)
	if e == nil {
		t.Fatal("RTCP read carries no estimator")
	}
	if got := e.Estimate(time.Now()); got.Source != SourceNone || got.Bitrate != DefaultInitialBitrate {
		t.Fatalf("before feedback: %+v, want no source and the initial bitrate", got)
	}
	q.ch <- marshal(t, fb)
	if _, _, err := r.Read(buf, nil); err != nil {
		t.Fatal(err)
	}
	got := e.Estimate(time.Now())
	if got.Source != SourceTWCC || got.Loss != 0.5 {
		t.Fatalf("after feedback: %+v, want source twcc and half the packets lost", got)
	}
	if got.Sent < 4*1000 {
		t.Fatalf("sent %d bytes, want at least the 4000 of payload", got.Sent)
	}
	if again := e.Estimate(time.Now()); again.Loss != -1 {
		t.Fatalf("loss %v with no feedback since the last estimate, want -1", again.Loss)
	}
}

func TestREMBIsTheEstimateForPeersWithoutTransportFeedback(t *testing.T) {
	i := newTestInterceptor(t)
	q := &rtcpQueue{ch: make(chan []byte, 1)}
	r := i.BindRTCPReader(q)
	q.ch <- marshal(t, &rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: 750_000, SSRCs: []uint32{1111}})
	_, attr, err := r.Read(make([]byte, 1500), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := FromAttributes(attr).Estimate(time.Now())
	if got.Source != SourceREMB || got.Bitrate != 750_000 {
		t.Fatalf("estimate %+v, want 750 kbit/s from REMB", got)
	}
	if stale := FromAttributes(attr).Estimate(time.Now().Add(rembFresh + time.Second)); stale.Source != SourceNone {
		t.Fatalf("a REMB older than %v still counts: %+v", rembFresh, stale)
	}
}

func TestFeedbackCountsReadBothChunkKindsUpToTheStatusCount(t *testing.T) {
	fb := &rtcp.TransportLayerCC{
		PacketStatusCount: 10,
		PacketChunks: []rtcp.PacketStatusChunk{
			&rtcp.StatusVectorChunk{SymbolSize: rtcp.TypeTCCSymbolSizeTwoBit, SymbolList: []uint16{
				rtcp.TypeTCCPacketReceivedSmallDelta, rtcp.TypeTCCPacketNotReceived, rtcp.TypeTCCPacketReceivedLargeDelta,
				rtcp.TypeTCCPacketNotReceived, rtcp.TypeTCCPacketReceivedSmallDelta, rtcp.TypeTCCPacketReceivedSmallDelta,
				rtcp.TypeTCCPacketReceivedSmallDelta,
			}},
			// Padding beyond the status count must not count.
			&rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketNotReceived, RunLength: 20},
		},
	}
	got, lost := FeedbackCounts(fb)
	if got != 5 || lost != 5 {
		t.Fatalf("received %d lost %d, want 5 and 5", got, lost)
	}
}

// withHeader fills in the RTCP header a feedback packet built by hand lacks.
func withHeader(fb *rtcp.TransportLayerCC) {
	n := fb.MarshalSize()
	fb.Header = rtcp.Header{Count: rtcp.FormatTCC, Type: rtcp.TypeTransportSpecificFeedback, Length: uint16(n/4 - 1)}
	raw, _ := fb.Marshal()
	var parsed rtcp.TransportLayerCC
	if parsed.Unmarshal(raw) == nil {
		fb.Header = parsed.Header
	}
}

// feedbackFor reports packets base.. received at the given arrival offsets
// (µs after reference time 0).
func feedbackFor(base uint16, arrivals []int64) *rtcp.TransportLayerCC {
	fb := &rtcp.TransportLayerCC{BaseSequenceNumber: base, PacketStatusCount: uint16(len(arrivals))}
	fb.PacketChunks = []rtcp.PacketStatusChunk{&rtcp.RunLengthChunk{
		PacketStatusSymbol: rtcp.TypeTCCPacketReceivedSmallDelta, RunLength: uint16(len(arrivals)),
	}}
	prev := int64(0)
	for _, a := range arrivals {
		fb.RecvDeltas = append(fb.RecvDeltas, &rtcp.RecvDelta{Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: a - prev})
		prev = a
	}
	return fb
}

func TestDelayMeterSeesTheQueueGrowAndTheRateThePathCarries(t *testing.T) {
	var m delayMeter
	start := time.Unix(1000, 0)
	m.init(start)
	// 10 packets of 1250 bytes every 10 ms (1 Mbit/s) that arrive 5 ms
	// after they were sent: no queue.
	var arrivals []int64
	for i := range 10 {
		m.sent(uint16(i), 1250, start.Add(time.Duration(i)*10*time.Millisecond))
		arrivals = append(arrivals, int64(i)*10000+5000)
	}
	m.feedback(feedbackFor(0, arrivals), start.Add(100*time.Millisecond))
	if m.queue != 0 {
		t.Fatalf("queue %v on a clear path, want 0", m.queue)
	}
	if m.received < 990_000 || m.received > 1_120_000 {
		t.Fatalf("receive rate %d bit/s, want about 1 Mbit/s", m.received)
	}
	// The next 10, sent just as fast, arrive at half the rate: each waits
	// 10 ms longer than the one before.
	arrivals = arrivals[:0]
	for i := range 10 {
		m.sent(uint16(10+i), 1250, start.Add(time.Duration(100+10*i)*time.Millisecond))
		arrivals = append(arrivals, int64(100+20*i)*1000+5000)
	}
	m.feedback(feedbackFor(10, arrivals), start.Add(300*time.Millisecond))
	if m.queue != 90*time.Millisecond {
		t.Fatalf("queue %v, want the newest packet's 90 ms", m.queue)
	}
	if m.received < 450_000 || m.received > 560_000 {
		t.Fatalf("receive rate %d bit/s, want about 500 kbit/s", m.received)
	}
}

// BenchmarkStampedWrite measures what the interceptor adds to every packet
// a subscriber is sent: the transport-wide sequence number and GCC's record
// of the send.
func BenchmarkStampedWrite(b *testing.B) {
	i := newTestInterceptor(b)
	w := i.BindLocalStream(streamInfo(), &sink{})
	var exts [2]rtp.Extension
	h := &rtp.Header{Version: 2, SSRC: 1111}
	payload := make([]byte, 1100)
	b.ReportAllocs()
	for range b.N {
		h.Extension, h.Extensions = false, exts[:0]
		h.SequenceNumber++
		if _, err := w.Write(h, payload, nil); err != nil {
			b.Fatal(err)
		}
	}
}
