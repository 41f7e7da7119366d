// Package bwe estimates how much each subscriber connection can carry: the
// send-side estimate of Google Congestion Control (pion's gcc) from the
// peer's transport-wide feedback (TWCC), or the peer's own REMB where it
// sends only that.
//
// It is an interceptor of the peer connections that send media. It stamps
// every outgoing packet with a transport-wide sequence number, feeds the
// feedback to the estimator, and hands the connection's Estimator to whoever
// reads a sender's RTCP, in the read's attributes (FromAttributes).
package bwe

import (
	"encoding/binary"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// Options tune the estimators a Factory makes.
type Options struct {
	// InitialBitrate is the estimate before any feedback, bit/s.
	InitialBitrate int
	// MinBitrate and MaxBitrate bound the estimate.
	MinBitrate, MaxBitrate int
	// Trace, when set, sees every transport-wide feedback packet of every
	// connection with the estimate after it, and every Estimate call's
	// result, in the order they happen (for recording fixtures). It runs
	// under the estimator's lock and must be quick.
	Trace  func(connection string, r Record)
	Logger *slog.Logger
}

// Record is what Trace sees: a feedback packet and the estimate after it,
// or (Feedback nil) the result of an Estimate call.
type Record struct {
	At       time.Time
	Feedback *rtcp.TransportLayerCC
	Estimate Estimate
}

// Defaults used when Options leave them zero.
const (
	DefaultInitialBitrate = 2_500_000
	DefaultMinBitrate     = 50_000
	DefaultMaxBitrate     = 20_000_000
)

// Source says where an estimate comes from.
type Source uint8

// Sources of an estimate, best first.
const (
	SourceNone Source = iota // no feedback yet: the estimate is a guess
	SourceTWCC               // send-side GCC from transport-wide feedback
	SourceREMB               // the receiver's REMB
)

func (s Source) String() string {
	return [...]string{"none", "twcc", "remb"}[s]
}

// feedbackFresh is how long feedback of a kind keeps its source current.
const (
	twccFresh = 2 * time.Second
	rembFresh = 5 * time.Second
)

// Estimate is a connection's available send bitrate at one moment.
type Estimate struct {
	Bitrate int    // bit/s
	Source  Source // where Bitrate comes from
	// Loss is the fraction of packets the feedback reported lost since the
	// previous Estimate call, -1 when no packet was reported on.
	Loss float64
	// Congested is true when the delay-based detector sees the queue grow
	// (GCC overuse, or its rate controller decreasing).
	Congested bool
	// QueueDelay is how much later than the least in the last seconds
	// feedback since the previous Estimate call saw packets arrive, relative
	// to when they were sent (the most of each feedback packet's newest): the
	// queue building on the path, a quick sign that a probe found no room.
	// 0 without transport-wide feedback.
	QueueDelay time.Duration
	// Received is the rate the latest feedback saw packets arrive at,
	// bit/s: what the path carries when it is the bottleneck (when there is
	// a queue or loss), what was sent otherwise.
	Received int
	// Sent is the total of bytes sent on the connection so far, RTP headers
	// included, probes and retransmissions too.
	Sent uint64
}

// Factory makes one Interceptor, with its Estimator, per peer connection.
type Factory struct{ opts Options }

// NewFactory returns a Factory; register it with the peer connections'
// interceptor.Registry after every interceptor that rewrites outgoing
// headers, so its sequence numbers are stamped last.
func NewFactory(o Options) *Factory {
	if o.InitialBitrate <= 0 {
		o.InitialBitrate = DefaultInitialBitrate
	}
	if o.MinBitrate <= 0 {
		o.MinBitrate = DefaultMinBitrate
	}
	if o.MaxBitrate <= 0 {
		o.MaxBitrate = DefaultMaxBitrate
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Factory{opts: o}
}

// NewInterceptor implements interceptor.Factory.
func (f *Factory) NewInterceptor(id string) (interceptor.Interceptor, error) {
	p := &pacer{writers: map[uint32]interceptor.RTPWriter{}}
	g, err := gcc.NewSendSideBWE(
		gcc.SendSideBWEInitialBitrate(f.opts.InitialBitrate),
		gcc.SendSideBWEMinBitrate(f.opts.MinBitrate),
		gcc.SendSideBWEMaxBitrate(f.opts.MaxBitrate),
		gcc.SendSideBWEPacer(p),
	)
	if err != nil {
		return nil, err
	}
	e := &Estimator{id: id, gcc: g, pacer: p, trace: f.opts.Trace, log: f.opts.Logger}
	e.delays.init(time.Now())
	return &Interceptor{est: e}, nil
}

// Interceptor is one connection's estimator in the interceptor chain.
type Interceptor struct {
	interceptor.NoOp
	est *Estimator
}

type estimatorKey struct{}

// FromAttributes returns the Estimator of the connection an RTCP read came
// from, or nil when the connection has none.
func FromAttributes(a interceptor.Attributes) *Estimator {
	e, _ := a.Get(estimatorKey{}).(*Estimator)
	return e
}

// BindRTCPReader feeds transport-wide feedback and REMB to the estimator,
// and tags every read with it.
func (i *Interceptor) BindRTCPReader(reader interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := reader.Read(b, a)
		if err != nil {
			return n, a, err
		}
		if a == nil {
			a = interceptor.Attributes{}
		}
		if pkts, err := a.GetRTCPPackets(b[:n]); err == nil {
			i.est.onRTCP(pkts, time.Now())
		}
		a.Set(estimatorKey{}, i.est)
		return n, a, nil
	})
}

// BindLocalStream stamps the stream's packets (the stream's retransmissions
// included) with transport-wide sequence numbers and records them for the
// estimator. A stream that did not negotiate the extension passes through.
func (i *Interceptor) BindLocalStream(info *interceptor.StreamInfo, writer interceptor.RTPWriter) interceptor.RTPWriter {
	var id uint8
	for _, e := range info.RTPHeaderExtensions {
		if e.URI == sdp.TransportCCURI {
			id = uint8(e.ID)
		}
	}
	if id == 0 {
		return writer
	}
	e := i.est
	e.gcc.AddStream(info, writer)
	s := &stream{est: e, id: id, next: e.pacer.take(info.SSRC), attrs: interceptor.Attributes{}}
	e.streams.Add(1)
	return s
}

// Close stops the estimator.
func (i *Interceptor) Close() error { return i.est.gcc.Close() }

// stream stamps one local stream's packets. Writes to one stream must not
// run concurrently (sfu.DownTrack serialises its own), since the extension
// payload and attributes are reused to keep the packet path allocation-free.
type stream struct {
	est   *Estimator
	id    uint8
	next  interceptor.RTPWriter
	ext   [2]byte
	attrs interceptor.Attributes
}

func (s *stream) Write(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
	seq := uint16(s.est.seq.Add(1) - 1)
	binary.BigEndian.PutUint16(s.ext[:], seq)
	if err := h.SetExtension(s.id, s.ext[:]); err != nil {
		return 0, err
	}
	if a == nil {
		a = s.attrs
	}
	size := h.MarshalSize() + len(payload) + int(h.PaddingSize)
	s.est.sent.Add(uint64(size))
	s.est.delays.sent(seq, size, time.Now())
	return s.next.Write(h, payload, a)
}

// Estimator is one connection's bandwidth estimate.
type Estimator struct {
	id      string
	gcc     *gcc.SendSideBWE
	pacer   *pacer
	trace   func(string, Record)
	log     *slog.Logger
	seq     atomic.Uint32
	sent    atomic.Uint64
	streams atomic.Int32

	mu       sync.Mutex // guards the fields below
	lastTWCC time.Time
	lastREMB time.Time
	remb     int
	received int // packets reported received since the last Estimate
	lost     int // packets reported lost since the last Estimate
	delays   delayMeter
}

func (e *Estimator) onRTCP(pkts []rtcp.Packet, now time.Time) {
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.TransportLayerCC:
			if err := e.gcc.WriteRTCP([]rtcp.Packet{p}, nil); err != nil {
				e.log.Debug("bwe: feedback refused", "err", err)
				continue
			}
			got, lost := FeedbackCounts(p)
			e.mu.Lock()
			e.lastTWCC = now
			e.received += got
			e.lost += lost
			e.delays.feedback(p, now)
			if e.trace != nil {
				e.trace(e.id, Record{At: now, Feedback: p, Estimate: e.peekLocked(now)})
			}
			e.mu.Unlock()
		case *rtcp.ReceiverEstimatedMaximumBitrate:
			e.mu.Lock()
			e.lastREMB, e.remb = now, int(p.Bitrate)
			e.mu.Unlock()
		}
	}
}

// FeedbackCounts returns how many packets a feedback packet reports
// received and how many not received.
func FeedbackCounts(fb *rtcp.TransportLayerCC) (received, lost int) {
	left := int(fb.PacketStatusCount)
	count := func(symbol uint16, n int) {
		n = min(n, left)
		left -= n
		if symbol == rtcp.TypeTCCPacketNotReceived {
			lost += n
		} else {
			received += n
		}
	}
	for _, c := range fb.PacketChunks {
		switch c := c.(type) {
		case *rtcp.RunLengthChunk:
			count(c.PacketStatusSymbol, int(c.RunLength))
		case *rtcp.StatusVectorChunk:
			for _, s := range c.SymbolList {
				count(s, 1)
			}
		}
		if left <= 0 {
			break
		}
	}
	return received, lost
}

// Estimate returns the current estimate and starts a new interval for loss
// and queueing delay.
func (e *Estimator) Estimate(now time.Time) Estimate {
	e.mu.Lock()
	defer e.mu.Unlock()
	est := e.peekLocked(now)
	e.received, e.lost = 0, 0
	e.delays.maxQueue = e.delays.queue
	if e.trace != nil {
		e.trace(e.id, Record{At: now, Estimate: est})
	}
	return est
}

// QueueDelay is the queueing delay the newest feedback saw, and when that
// feedback arrived.
func (e *Estimator) QueueDelay() (time.Duration, time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.delays.queue, e.lastTWCC
}

// peekLocked returns the estimate without ending the interval. Caller
// holds mu.
func (e *Estimator) peekLocked(now time.Time) Estimate {
	twcc, remb := now.Sub(e.lastTWCC) < twccFresh, now.Sub(e.lastREMB) < rembFresh
	rembRate := e.remb
	queue, received := e.delays.maxQueue, e.delays.received
	loss := -1.0
	if n := e.received + e.lost; n > 0 {
		loss = float64(e.lost) / float64(n)
	}
	est := Estimate{Bitrate: e.gcc.GetTargetBitrate(), Loss: loss, Sent: e.sent.Load()}
	switch {
	case twcc:
		est.Source, est.QueueDelay, est.Received = SourceTWCC, queue, received
		st := e.gcc.GetStats()
		est.Congested = st["usage"] == "overuse" || st["state"] == "decrease"
	case remb:
		est.Source, est.Bitrate = SourceREMB, rembRate
	}
	return est
}

// Negotiated reports whether any stream of the connection negotiated
// transport-wide sequence numbers, so that feedback can be expected.
func (e *Estimator) Negotiated() bool { return e.streams.Load() > 0 }

// pacer is the estimator's pacer: it sends at once (the SFU forwards at the
// publisher's pace, and a queue here would only add delay), and lets each
// stream's writer be taken out so that packets skip the lookup by SSRC,
// which would miss the stream's retransmission SSRC.
type pacer struct {
	mu      sync.Mutex
	writers map[uint32]interceptor.RTPWriter
}

func (p *pacer) AddStream(ssrc uint32, w interceptor.RTPWriter) {
	p.mu.Lock()
	p.writers[ssrc] = w
	p.mu.Unlock()
}

func (p *pacer) take(ssrc uint32) interceptor.RTPWriter {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.writers[ssrc]
	delete(p.writers, ssrc)
	return w
}

func (p *pacer) Write(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
	p.mu.Lock()
	w := p.writers[h.SSRC]
	p.mu.Unlock()
	if w == nil {
		return 0, gcc.ErrUnknownStream
	}
	return w.Write(h, payload, a)
}

func (p *pacer) SetTargetBitrate(int) {}

func (p *pacer) Close() error { return nil }
