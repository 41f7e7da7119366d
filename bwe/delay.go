package bwe

import (
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
)

// delayMeter measures, from transport-wide feedback, the queueing delay on
// the path — how much later than the least recently seen packets take from
// being sent to arriving; the send and arrival clocks differ, but by a
// constant (drift is slow next to the window), so the difference over the
// window's least is the queue — and the rate packets arrive at, which is
// what the path carries when it is the bottleneck.
type delayMeter struct {
	start time.Time
	// sends maps a transport-wide sequence number, modulo its size, to the
	// send time: sequence number in the top 16 bits, microseconds since
	// start below; sizes to the size in bytes, below the sequence number.
	// Written on the packet path, read on feedback.
	sends [sendSlots]atomic.Uint64
	sizes [sendSlots]atomic.Uint32
	// Below, guarded by the Estimator's mu.
	mins     [minSlots]int64 // least delay of each of the latest feedback packets, µs
	times    [minSlots]time.Time
	next     int
	queue    time.Duration // of the newest feedback
	maxQueue time.Duration // the most since the last Estimate
	// arrival spans and bytes of the latest feedback packets
	spans    [rateSlots]int64 // µs
	bytes    [rateSlots]int
	rateNext int
	received int // bit/s
}

const (
	sendSlots = 1024
	minSlots  = 64
	// rateSlots is how many feedback packets the receive rate is measured
	// over: few, so that it follows a path that just became the bottleneck.
	rateSlots = 3
	// delayWindow is how far back the least delay is looked for.
	delayWindow = 5 * time.Second
)

func (m *delayMeter) sent(seq uint16, size int, now time.Time) {
	if m.start.IsZero() {
		return
	}
	us := uint64(now.Sub(m.start).Microseconds()) & (1<<48 - 1)
	m.sends[seq%sendSlots].Store(uint64(seq)<<48 | us)
	m.sizes[seq%sendSlots].Store(uint32(seq)<<16 | uint32(min(size, 0xffff)))
}

// init is called before the first packet is sent.
func (m *delayMeter) init(now time.Time) { m.start = now }

// feedback takes one feedback packet: the delay of the newest packet it
// reports received, over the least of the window, and the rate they arrived at.
func (m *delayMeter) feedback(fb *rtcp.TransportLayerCC, now time.Time) {
	arrival := int64(fb.ReferenceTime) * 64000 // µs
	seq := fb.BaseSequenceNumber
	deltas := fb.RecvDeltas
	left := int(fb.PacketStatusCount)
	var newest, n, least, first, last int64
	least = 1 << 62
	bytes := 0
	status := func(symbol uint16) {
		if left <= 0 {
			return
		}
		left--
		s := seq
		seq++
		if symbol == rtcp.TypeTCCPacketNotReceived || len(deltas) == 0 {
			return
		}
		arrival += deltas[0].Delta
		deltas = deltas[1:]
		v := m.sends[s%sendSlots].Load()
		if uint16(v>>48) != s {
			return
		}
		d := arrival - int64(v&(1<<48-1))
		newest = d
		if n == 0 {
			first = arrival
		}
		last = arrival
		n++
		least = min(least, d)
		if z := m.sizes[s%sendSlots].Load(); uint16(z>>16) == s {
			bytes += int(z & 0xffff)
		}
	}
	for _, c := range fb.PacketChunks {
		switch c := c.(type) {
		case *rtcp.RunLengthChunk:
			for range min(int(c.RunLength), left) {
				status(c.PacketStatusSymbol)
			}
		case *rtcp.StatusVectorChunk:
			for _, sym := range c.SymbolList {
				status(sym)
			}
		}
	}
	if n == 0 {
		return
	}
	m.mins[m.next], m.times[m.next] = least, now
	m.next = (m.next + 1) % minSlots
	base := least
	for i := range m.mins {
		if !m.times[i].IsZero() && now.Sub(m.times[i]) < delayWindow {
			base = min(base, m.mins[i])
		}
	}
	// The newest arrival tells the queue as it is now; the mean would lag.
	m.queue = time.Duration(newest-base) * time.Microsecond
	m.maxQueue = max(m.maxQueue, m.queue)

	m.spans[m.rateNext], m.bytes[m.rateNext] = last-first, bytes
	m.rateNext = (m.rateNext + 1) % rateSlots
	// The least of the latest packets' rates: a path that just became
	// the bottleneck shows in the newest one, while the others still count
	// what arrived before.
	m.received = 0
	for i := range m.spans {
		if m.spans[i] <= 0 {
			continue
		}
		r := int(int64(m.bytes[i]) * 8 * 1e6 / m.spans[i])
		if m.received == 0 || r < m.received {
			m.received = r
		}
	}
}
