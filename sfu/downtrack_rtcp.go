package sfu

import (
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/starling-sfu/starling/bwe"
)

// sentRingSize is how many sent packets a DownTrack remembers for NACKs.
const sentRingSize = 1024

// resendInterval stops answering the same NACKed packet more than once per
// round of requests.
const resendInterval = int64(100 * time.Millisecond)

// resendGap is the least time between two retransmissions of a packet: a
// round of requests, or, on a path with a queue, long enough for the first
// to have crossed it; a receiver asks again every round meanwhile, and
// answering each would fill the queue it waits behind. Caller holds mu.
func (d *DownTrack) resendGap() int64 {
	if d.sub == nil {
		return resendInterval
	}
	return max(resendInterval, 2*d.sub.queue.Load()+int64(20*time.Millisecond))
}

type sentPacket struct {
	seq        uint16
	srcSeq     uint16
	layer      int8
	valid      bool
	resends    uint8
	tsOffset   uint32
	sentAt     int64
	lastResend int64
}

// Retransmission limits: a packet is resent at most maxResends times and
// not once it is older than maxResendAge, when a decoder has given up on it;
// only packets of the layer being forwarded are resent, since a switch
// starts at a keyframe that needs nothing before it. Without these, a
// receiver that keeps asking for what a congested path lost would keep that
// path congested with retransmissions. Ten tries is what libwebrtc's
// receiver asks for before it gives up; fewer lost packets for good on a
// busy receiver whose socket overflows now and then (retransmissions
// included), while the rate limit below is what protects a narrow path.
const (
	maxResends   = 10
	maxResendAge = int64(time.Second)
)

// sentRing maps outgoing sequence numbers back to the source packet, so a
// NACK can be answered from the layer's packet cache.
type sentRing [sentRingSize]sentPacket

func (r *sentRing) record(seq uint16, layer int8, srcSeq uint16, tsOffset uint32, at int64) {
	e := &r[seq%sentRingSize]
	*e = sentPacket{seq: seq, srcSeq: srcSeq, layer: layer, valid: true, tsOffset: tsOffset, sentAt: at}
}

func (r *sentRing) lookup(seq uint16) *sentPacket {
	e := &r[seq%sentRingSize]
	if !e.valid || e.seq != seq {
		return nil
	}
	return e
}

// readRTCP handles the subscriber's feedback until its sender stops: keyframe
// requests go upstream (throttled), NACKs are answered from the cache, and
// receiver reports drive the loss selector. The first read that carries the
// connection's bandwidth estimator hands it to the subscriber.
func (d *DownTrack) readRTCP(r interceptor.RTCPReader) {
	buf := make([]byte, maxPacketSize)
	for {
		n, attr, err := r.Read(buf, nil)
		if err != nil {
			return
		}
		if d.sub != nil && !d.sub.hasEstimator.Load() {
			if e := bwe.FromAttributes(attr); e != nil {
				d.sub.setEstimator(e)
			}
		}
		pkts, err := attr.GetRTCPPackets(buf[:n])
		if err != nil {
			continue
		}
		for _, p := range pkts {
			d.handleRTCP(p)
		}
	}
}

func (d *DownTrack) handleRTCP(p rtcp.Packet) {
	switch p := p.(type) {
	case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
		d.track.RequestKeyframe(d.Layer())
	case *rtcp.TransportLayerNack:
		d.handleNACK(p)
	case *rtcp.ReceiverReport:
		d.mu.Lock()
		for _, rr := range p.Reports {
			if rr.SSRC == d.ssrc {
				d.selector.onReport(rr.FractionLost, time.Now().UnixNano())
			}
		}
		d.mu.Unlock()
	}
}

func (d *DownTrack) handleNACK(n *rtcp.TransportLayerNack) {
	now := time.Now().UnixNano()
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.running {
		return
	}
	for _, pair := range n.Nacks {
		pair.Range(func(seq uint16) bool {
			d.nacks.Add(1)
			d.track.stats.NACKs.Add(1)
			if d.resend(seq, now) {
				d.resent.Add(1)
				d.track.stats.Retransmits.Add(1)
			}
			return true
		})
	}
}

// resend retransmits one sent packet from the cache, on the RTX stream when
// one was negotiated. Caller holds mu.
func (d *DownTrack) resend(seq uint16, now int64) bool {
	e := d.sent.lookup(seq)
	if e == nil || now-e.lastResend < d.resendGap() || e.resends >= maxResends ||
		now-e.sentAt > maxResendAge || e.layer != d.current {
		return false
	}
	if !d.rtxAllowance(now, e) {
		return false
	}
	n := d.sendAgain(e, seq)
	if n == 0 {
		return false
	}
	d.rtxTokens -= float64(n)
	e.lastResend = now
	e.resends++
	return true
}

// rtxAllowance refills the retransmission budget, a token bucket at the rate
// the subscriber's allocation leaves for it (unlimited without an
// estimate), and reports whether the packet e may be resent. Caller holds mu.
func (d *DownTrack) rtxAllowance(now int64, e *sentPacket) bool {
	rate := d.rtxRate.Load()
	if rate <= 0 {
		return true
	}
	d.rtxTokens += float64(rate) / 8 * float64(now-d.rtxLast) / 1e9
	d.rtxTokens = min(d.rtxTokens, float64(rate)/8*rtxBurst.Seconds()+maxPacketSize)
	d.rtxLast = now
	l := d.track.layers[e.layer].Load()
	if l == nil {
		return false
	}
	return d.rtxTokens >= float64(l.cache.size(e.srcSeq))
}

// rtxBurst is how much unused retransmission budget may be saved up.
const rtxBurst = 200 * time.Millisecond

// sendAgain sends the sent packet e (outgoing sequence number seq) again
// from the cache and returns the bytes written, 0 when it is no longer
// cached. Caller holds mu.
func (d *DownTrack) sendAgain(e *sentPacket, seq uint16) int {
	l := d.track.layers[e.layer].Load()
	if l == nil {
		return 0
	}
	n := l.cache.get(e.srcSeq, d.scratch[:])
	if n == 0 {
		return 0
	}
	var src rtp.Header
	hl, err := src.Unmarshal(d.scratch[:n])
	if err != nil {
		return 0
	}
	end := n
	if src.Padding && n > hl {
		end -= int(d.scratch[n-1])
	}
	if end < hl {
		return 0
	}
	payload := d.scratch[hl:end]
	ts := src.Timestamp + e.tsOffset
	if d.rtxSSRC == 0 {
		d.send(&src, payload, seq, ts)
		return 12 + len(payload)
	}
	// RFC 4588: the RTX payload is the original sequence number, then the
	// original payload.
	d.rtxBuf[0], d.rtxBuf[1] = byte(seq>>8), byte(seq)
	m := copy(d.rtxBuf[2:], payload)
	h := d.rtxHeader(ts)
	h.Marker = src.Marker
	if _, err := d.writer.WriteRTP(h, d.rtxBuf[:2+m]); err != nil {
		d.log.Debug("rtx write failed", "err", err)
	}
	return 14 + m
}

// rtxHeader returns the header of the next packet on the RTX stream.
// Caller holds mu.
func (d *DownTrack) rtxHeader(ts uint32) *rtp.Header {
	h := d.header()
	h.Marker = false
	h.PayloadType = d.rtxPT
	h.SequenceNumber = d.rtxSeq
	h.Timestamp = ts
	h.SSRC = d.rtxSSRC
	h.CSRC = nil
	d.rtxSeq++
	return h
}

// maxPadding is the most padding one RTP packet carries (its count is a byte).
const maxPadding = 255

// sendProbe sends one padding-only packet of probe padding on the media
// stream, between two frames, numbered in line with the media (which the
// rewriter then follows), as libwebrtc pads when it probes. It returns the
// bytes sent, 0 when the track cannot carry probes now: before its first
// packet, or in the middle of a frame.
//
// Not on the RTX stream, though receivers would discard it as readily:
// transport-wide feedback names the stream of the newest packet it covers,
// and pion delivers RTCP only for the streams it sends, not their RTX
// streams, so feedback written after a probe packet would be lost.
func (d *DownTrack) sendProbe() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.running || !d.rw.started || d.replaying || (!d.lastMarker && !d.paused) {
		return 0
	}
	h := d.header()
	h.Marker = false
	h.PayloadType = d.pt
	h.SequenceNumber = d.rw.pad()
	h.Timestamp = d.rw.lastTs
	h.SSRC = d.ssrc
	h.CSRC = nil
	h.Padding, h.PaddingSize = true, maxPadding
	if _, err := d.writer.WriteRTP(h, nil); err != nil {
		d.log.Debug("probe write failed", "err", err)
	}
	return 12 + maxPadding
}
