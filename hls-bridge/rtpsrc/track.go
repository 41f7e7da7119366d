package rtpsrc

import (
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/starling-sfu/starling/transcode"
)

// Track is one track of a Source: its packets go in through WriteRTP and its
// Sender Reports through WriteRTCP, from any goroutine.
type Track struct {
	src      *Source
	codec    string
	video    bool
	rate     int64
	counters *trackCounters

	// Everything below is guarded by src.mu.
	ssrc    uint32
	clock   trackClock
	order   reorder
	depack  depacketizer // video only
	frame   frameState
	lastAt  int64 // arrival of the last packet of the track's SSRC
	needKey bool  // video: frames are dropped until a keyframe
	dropped bool  // video: since the last keyframe, something was dropped
	lastReq int64
	width   int
	height  int
	shown   bool // OnFormat was called
	held    []heldFrame
	lastPTS time.Duration
	sent    bool // a frame was delivered
}

// ssrcSilence is how long a track's SSRC must have been silent before
// packets of another one start a new stream rather than being discarded.
const ssrcSilence = int64(500 * time.Millisecond)

// frameState is the video frame being assembled.
type frameState struct {
	building bool
	ts       uint32
	broken   bool
}

// heldFrame is a completed frame waiting for its PTS.
type heldFrame struct {
	ext    int64 // unwrapped RTP timestamp
	key    bool
	data   []byte
	format bool // announce the track's format before it
	width  int
	height int
}

type trackCounters struct {
	packets, lost, discarded, frames, keyframes, dropped, requests, clamped atomic.Uint64
}

func (c *trackCounters) snapshot() TrackStats {
	return TrackStats{
		Packets: c.packets.Load(), Lost: c.lost.Load(), Discarded: c.discarded.Load(),
		Frames: c.frames.Load(), Keyframes: c.keyframes.Load(), Dropped: c.dropped.Load(),
		KeyframeRequests: c.requests.Load(), Clamped: c.clamped.Load(),
	}
}

func newTrack(s *Source, codec string, video bool, rate, ssrc uint32) *Track {
	t := &Track{src: s, codec: codec, video: video, rate: int64(rate), ssrc: ssrc, needKey: video, counters: &s.counters[1]}
	if video {
		t.counters = &s.counters[0]
	}
	t.clock.rate = int64(rate)
	t.order.maxDelay = int64(s.opts.ReorderDelay)
	switch codec {
	case CodecVP8:
		t.depack = &vp8Depacketizer{}
	case CodecVP9:
		t.depack = &vp9Depacketizer{}
	case CodecH264:
		t.depack = &h264Depacketizer{log: s.log}
	}
	return t
}

// WriteRTP takes one RTP packet of the track and when it arrived. The packet
// is copied: the caller may reuse it.
func (t *Track) WriteRTP(p *rtp.Packet, at time.Time) {
	now := at.UnixNano()
	s := t.src
	s.mu.Lock()
	t.counters.packets.Add(1)
	if t.ssrc == 0 || p.SSRC != t.ssrc {
		if t.ssrc != 0 && now-t.lastAt < ssrcSilence {
			t.counters.discarded.Add(1) // a stray packet, while the stream goes on
			s.mu.Unlock()
			return
		}
		t.newStream(p.SSRC)
	}
	t.lastAt = now
	t.clock.observe(p.Timestamp, now)
	s.updateMode()
	switch t.order.push(p, now) {
	case pushDiscarded:
		t.counters.discarded.Add(1)
	case pushReset:
		s.log.Info("sequence discontinuity: stream restarted", "codec", t.codec, "ssrc", p.SSRC)
	}
	t.drain(now)
	s.maybeStart(now)
	ssrc, ask := t.keyframeDue(now)
	s.mu.Unlock()
	if ask {
		s.askKeyframe(ssrc)
	}
}

// newStream starts over on a new SSRC: a sender that restarted. Caller
// holds src.mu.
func (t *Track) newStream(ssrc uint32) {
	if t.ssrc != 0 {
		t.src.log.Info("new SSRC: stream restarted", "codec", t.codec, "old", t.ssrc, "ssrc", ssrc)
	}
	t.ssrc = ssrc
	t.order.reset()
	t.clock.restart()
	t.frame = frameState{}
	t.needKey, t.dropped = t.video, false
	if t.video {
		t.src.videoSSRC.Store(ssrc)
	}
	t.src.updateMode()
}

// WriteRTCP takes RTCP packets received for the track; it uses the Sender
// Reports of the track's SSRC and ignores everything else.
func (t *Track) WriteRTCP(pkts []rtcp.Packet, at time.Time) {
	s := t.src
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range pkts {
		sr, ok := p.(*rtcp.SenderReport)
		if !ok || t.ssrc == 0 || sr.SSRC != t.ssrc || s.opts.IgnoreSenderReports {
			continue
		}
		if t.clock.senderReport(sr.RTPTime, ntpToUnixNano(sr.NTPTime)) {
			s.log.Debug("sender report re-bases the track", "codec", t.codec)
		}
		s.srs.Add(1)
		s.updateMode()
	}
	s.maybeStart(at.UnixNano())
}

// drain takes every packet the reorder buffer releases. Caller holds src.mu.
func (t *Track) drain(now int64) {
	for {
		p, lost, ok := t.order.pop(now)
		if !ok {
			return
		}
		if lost > 0 {
			t.counters.lost.Add(uint64(lost))
		}
		if t.video {
			t.videoPacket(p, lost > 0, now)
		} else {
			t.audioPacket(p, now)
		}
	}
}

func (t *Track) audioPacket(p *heldPacket, now int64) {
	if len(p.payload) == 0 {
		return
	}
	data := append([]byte(nil), p.payload...)
	t.complete(heldFrame{ext: t.clock.ts.value(p.ts), key: true, data: data}, now)
}

// videoPacket adds an in-order packet to the frame being assembled. lost
// says packets right before it were given up on.
func (t *Track) videoPacket(p *heldPacket, lost bool, now int64) {
	if lost {
		if t.frame.building {
			t.frame.building = false
			t.counters.dropped.Add(1)
		}
		t.needKey, t.dropped = true, true
	}
	if t.frame.building && p.ts != t.frame.ts {
		t.finishFrame(now) // the previous frame ended without a marker
	}
	if len(p.payload) == 0 {
		return // padding
	}
	if !t.frame.building {
		t.frame = frameState{building: true, ts: p.ts}
		t.depack.reset()
	}
	if !t.frame.broken {
		if err := t.depack.push(p.payload); err != nil {
			t.frame.broken = true
		}
	}
	if p.marker {
		t.finishFrame(now)
	}
}

func (t *Track) finishFrame(now int64) {
	f := t.frame
	t.frame.building = false
	var data []byte
	key := false
	if !f.broken {
		var err error
		data, key, err = t.depack.frame()
		f.broken = err != nil
	}
	if f.broken || (t.needKey && !key) {
		t.counters.dropped.Add(1)
		t.needKey, t.dropped = true, true
		return
	}
	t.needKey, t.dropped = false, false
	hf := heldFrame{ext: t.clock.ts.value(f.ts), key: key, data: append([]byte(nil), data...)}
	if key {
		w, h := t.depack.size()
		if !t.shown || w != t.width || h != t.height {
			hf.format, hf.width, hf.height = true, w, h
			t.width, t.height, t.shown = w, h, true
			t.src.log.Info("video format", "codec", t.codec, "width", w, "height", h)
		}
	}
	t.complete(hf, now)
}

// complete holds a finished frame for the start, or delivers it.
func (t *Track) complete(f heldFrame, now int64) {
	t.counters.frames.Add(1)
	if f.key && t.video {
		t.counters.keyframes.Add(1)
	}
	if !t.src.started {
		t.src.hold(t, f, now)
		return
	}
	t.deliver(f)
}

// keyframeDue reports whether to ask for a keyframe now, and on which SSRC:
// when video had to be dropped for want of one. (A stream that starts on a
// keyframe, as an SFU's does, needs no request.) Caller holds src.mu.
func (t *Track) keyframeDue(now int64) (uint32, bool) {
	if !t.video || !t.needKey || !t.dropped || t.ssrc == 0 || now-t.lastReq < int64(t.src.opts.KeyframeInterval) {
		return 0, false
	}
	t.lastReq = now
	t.counters.requests.Add(1)
	return t.ssrc, true
}

// local maps an unwrapped RTP timestamp to local unix ns. Caller holds src.mu.
func (t *Track) local(ext int64) int64 {
	return rtpNanos(ext, t.rate) + t.src.offset(t)
}

// deliver stamps a frame with its PTS and hands it to the handler. Caller
// holds src.mu.
func (t *Track) deliver(f heldFrame) {
	s := t.src
	l := t.local(f.ext)
	if s.origin == 0 {
		s.origin = l
		s.originNs.Store(l)
	}
	pts := max(time.Duration(l-s.origin), 0)
	if t.sent {
		if next := t.lastPTS + time.Duration(1e9/t.rate); pts < next {
			pts = next
			t.counters.clamped.Add(1)
		}
	}
	t.lastPTS, t.sent = pts, true
	if f.format {
		s.h.OnFormat(t.codec, f.width, f.height)
	}
	fr := transcode.Frame{PTS: pts, Key: f.key, Data: f.data}
	if t.video {
		s.h.OnVideo(fr)
	} else {
		s.h.OnAudio(fr)
	}
}
