package loadtest

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/starling-sfu/starling/clip"
	"github.com/starling-sfu/starling/rtcclient"
)

// The layers a room participant sends on: the simulcast rungs, lowest first,
// then the microphone.
const (
	layerQ = iota
	layerH
	layerF
	layerAudio
	numLayers
)

var layerNames = [numLayers]string{"q", "h", "f", "audio"}

func layerIndex(name string) int {
	switch name {
	case "q":
		return layerQ
	case "h":
		return layerH
	case "audio":
		return layerAudio
	}
	return layerF
}

// sentFrame is one frame a participant sent: when, on which layer, and how
// many packets that layer had carried before it.
type sentFrame struct {
	at    int64 // unix nanoseconds
	index int64
	layer int8
}

// sentLog is what one participant sent: packets per layer, and the recent
// frames by fingerprint (matchKey), in two generations as sendClock keeps
// them. Every participant sends the same clips, so each keeps its own log;
// a subscription knows its publisher and looks up only that one's.
type sentLog struct {
	codec   clip.Codec
	packets [numLayers]atomic.Int64
	start   atomic.Int64 // unix nanoseconds of the first packet

	mu       sync.RWMutex
	cur, old map[uint64]sentFrame
	genStart int64
}

func newSentLog(c clip.Codec) *sentLog {
	return &sentLog{codec: c, cur: map[uint64]sentFrame{}, old: map[uint64]sentFrame{}}
}

// onSend is the publisher's clip.Player hook; it runs on the player's
// goroutine, once per packet.
func (s *sentLog) onSend(layer string, p *rtp.Packet, _ bool, at time.Time) {
	l := layerIndex(layer)
	n := s.packets[l].Add(1) - 1
	now := at.UnixNano()
	s.start.CompareAndSwap(0, now)
	c := s.codec
	if l == layerAudio {
		c = clip.Opus
	}
	k, ok := matchKey(c, p.Payload)
	if !ok {
		return
	}
	s.mu.Lock()
	if now-s.genStart > sendClockGeneration {
		s.old, s.cur, s.genStart = s.cur, make(map[uint64]sentFrame, len(s.cur)), now
	}
	// A payload sent twice in a generation (silence) cannot tell which
	// copy arrived.
	if _, dup := s.cur[k]; dup {
		s.cur[k] = sentFrame{layer: -1}
	} else {
		s.cur[k] = sentFrame{at: now, index: n, layer: int8(l)}
	}
	s.mu.Unlock()
}

func (s *sentLog) lookup(k uint64) (sentFrame, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	f, ok := s.cur[k]
	if !ok {
		f, ok = s.old[k]
	}
	return f, ok && f.layer >= 0
}

// sentPackets returns the packets sent so far on every layer.
func (s *sentLog) sentPackets() [numLayers]int64 {
	var out [numLayers]int64
	for i := range out {
		out[i] = s.packets[i].Load()
	}
	return out
}

// subscription is one participant receiving one remote track, and what it
// measured. The SFU forwards one simulcast layer to a subscriber and
// rewrites sequence numbers, so loss is counted between matched frames: from
// one received frame start to a later one on the same layer, the publisher
// sent index₂−index₁ packets on that layer, and the subscriber should have
// received as many distinct packets between them.
type subscription struct {
	rt   *rtcclient.RemoteTrack
	from *participant // the publisher; nil for a participant not of this run
	kind int          // kindVideo or kindAudio

	first      atomic.Int64 // unix nanoseconds of the first packet
	firstDelay atomic.Int64 // nanoseconds from when it could start to the first packet

	mu       sync.Mutex
	seq      seqTracker
	padding  int64 // padding-only packets, not the publisher's
	layer    int8  // of the newest matched frame; -1 before the first
	switches int   // layer changes in the window
	changed  int64 // unix nanoseconds of the newest layer change (or first match)
	span     matchedSpan
	expected int64 // closed spans in the window
	got      int64
	// Window start.
	w0Received int64
	w0Bytes    uint64

	latency histogram // this subscription's forwarding latency in the window
}

const (
	kindVideo = iota
	kindAudio
	numKinds
)

var kindNames = [numKinds]string{"video", "audio"}

// matchedSpan is a run of matched frames on one layer: the publisher's packet
// index and the subscriber's distinct-packet count at its first and newest
// frame.
type matchedSpan struct {
	open                  bool
	firstIndex, lastIndex int64
	firstCount, lastCount int64
}

func newSubscription(rt *rtcclient.RemoteTrack, from *participant) *subscription {
	s := &subscription{rt: rt, from: from, layer: -1, kind: kindVideo, latency: histogram{limit: 2048}}
	if rt.Track.Kind() == webrtc.RTPCodecTypeAudio {
		s.kind = kindAudio
	}
	return s
}

// add counts a packet received at now and, when it starts a frame the
// publisher's log knows, returns that frame and whether it came through the
// live forwarding path. The frames the SFU sends from its cache, when a
// subscription starts or moves to another layer, were sent before the move
// was seen: their delay is the cache's age, not forwarding latency.
func (s *subscription) add(p *rtp.Packet, now int64) (f sentFrame, live bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(p.Payload) == 0 {
		s.padding++
		return sentFrame{}, false
	}
	before := s.seq.received
	s.seq.add(p.SequenceNumber)
	if s.seq.received == before || s.from == nil {
		return sentFrame{}, false // a duplicate, or nothing to match against
	}
	c := s.from.sent.codec
	if s.kind == kindAudio {
		c = clip.Opus
	}
	k, ok := matchKey(c, p.Payload)
	if !ok {
		return sentFrame{}, false
	}
	f, ok = s.from.sent.lookup(k)
	if !ok {
		return sentFrame{}, false
	}
	s.matched(f, before, now)
	return f, f.at >= s.changed
}

// matched extends the current span with frame f, received at now after
// count distinct packets, or closes it and opens another on a new layer.
func (s *subscription) matched(f sentFrame, count, now int64) {
	if s.span.open && f.layer == s.layer {
		if f.index > s.span.lastIndex { // not a late frame
			s.span.lastIndex, s.span.lastCount = f.index, count
		}
		return
	}
	if f.layer != s.layer {
		if s.layer >= 0 {
			s.switches++
		}
		s.changed = now
	}
	s.closeSpan()
	s.layer = f.layer
	s.span = matchedSpan{open: true, firstIndex: f.index, lastIndex: f.index, firstCount: count, lastCount: count}
}

func (s *subscription) closeSpan() {
	if s.span.open {
		s.expected += s.span.lastIndex - s.span.firstIndex
		s.got += s.span.lastCount - s.span.firstCount
	}
	s.span = matchedSpan{}
}

// startWindow makes the counts start from now.
func (s *subscription) startWindow() {
	bytes := s.rt.Stats().Bytes
	s.mu.Lock()
	defer s.mu.Unlock()
	s.w0Received, s.w0Bytes = s.seq.received, bytes
	s.expected, s.got, s.switches = 0, 0, 0
	s.span = matchedSpan{}
	s.latency.reset()
}

// subWindow is a subscription's counts over the window.
type subWindow struct {
	received      int64 // distinct packets
	bytes         uint64
	expected, got int64 // over matched spans
	layer         int8
	switches      int
	firstDelay    int64
}

func (s *subscription) window() subWindow {
	bytes := s.rt.Stats().Bytes
	s.mu.Lock()
	defer s.mu.Unlock()
	w := subWindow{
		received: s.seq.received - s.w0Received, bytes: bytes - s.w0Bytes,
		expected: s.expected, got: s.got, layer: s.layer, switches: s.switches,
		firstDelay: s.firstDelay.Load(),
	}
	if s.span.open {
		w.expected += s.span.lastIndex - s.span.firstIndex
		w.got += s.span.lastCount - s.span.firstCount
	}
	return w
}

// lastChange returns when the layer forwarded last changed, 0 before the
// first matched frame.
func (s *subscription) lastChange() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *subscription) currentLayer() int8 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.layer
}
