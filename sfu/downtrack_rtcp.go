package sfu

import (
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// sentRingSize is how many sent packets a DownTrack remembers for NACKs.
const sentRingSize = 1024

// resendInterval stops answering the same NACKed packet more than once per
// round of requests.
const resendInterval = int64(100 * time.Millisecond)

type sentPacket struct {
	seq        uint16
	srcSeq     uint16
	layer      int8
	valid      bool
	tsOffset   uint32
	lastResend int64
}

// sentRing maps outgoing sequence numbers back to the source packet, so a
// NACK can be answered from the layer's packet cache.
type sentRing [sentRingSize]sentPacket

func (r *sentRing) record(seq uint16, layer int8, srcSeq uint16, tsOffset uint32) {
	e := &r[seq%sentRingSize]
	*e = sentPacket{seq: seq, srcSeq: srcSeq, layer: layer, valid: true, tsOffset: tsOffset}
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
// receiver reports drive the layer selector.
func (d *DownTrack) readRTCP(r interceptor.RTCPReader) {
	buf := make([]byte, maxPacketSize)
	for {
		n, _, err := r.Read(buf, nil)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
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
	if e == nil || now-e.lastResend < resendInterval {
		return false
	}
	l := d.track.layers[e.layer].Load()
	if l == nil {
		return false
	}
	n := l.cache.get(e.srcSeq, d.scratch[:])
	if n == 0 {
		return false
	}
	var src rtp.Header
	hl, err := src.Unmarshal(d.scratch[:n])
	if err != nil {
		return false
	}
	end := n
	if src.Padding && n > hl {
		end -= int(d.scratch[n-1])
	}
	if end < hl {
		return false
	}
	e.lastResend = now
	payload := d.scratch[hl:end]
	ts := src.Timestamp + e.tsOffset
	if d.rtxSSRC == 0 {
		d.send(&src, payload, seq, ts)
		return true
	}
	// RFC 4588: the RTX payload is the original sequence number, then the
	// original payload.
	d.rtxBuf[0], d.rtxBuf[1] = byte(seq>>8), byte(seq)
	m := copy(d.rtxBuf[2:], payload)
	h := &d.hdr
	h.Version, h.Padding, h.Extension, h.Extensions = 2, false, false, nil
	h.Marker = src.Marker
	h.PayloadType = d.rtxPT
	h.SequenceNumber = d.rtxSeq
	h.Timestamp = ts
	h.SSRC = d.rtxSSRC
	h.CSRC = nil
	d.rtxSeq++
	if _, err := d.writer.WriteRTP(h, d.rtxBuf[:2+m]); err != nil {
		d.log.Debug("rtx write failed", "err", err)
	}
	return true
}
