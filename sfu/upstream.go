package sfu

import (
	"time"

	"github.com/pion/rtcp"
)

// A publisher is told, with REMB, the bitrate the SFU wants from it: every
// layer of a track up to the highest any subscriber asks for (by the size it
// shows the video at, or a pinned layer; all of them before anyone
// subscribes, so that a new viewer finds them), with headroom. A browser's
// encoder then stops the layers nobody wants and does not spend its uplink
// on them; when a subscriber wants them again the next report asks for
// them. What a subscriber's bandwidth carries now does not lower it: a
// layer the publisher stopped could not be allocated again.

// upstreamEvery is how often the publisher is told.
const upstreamEvery = time.Second

// upstreamHeadroom multiplies what the wanted layers send now, so that they
// are never held to their current rate.
const upstreamHeadroom = 1.5

// RTCPWriter sends RTCP to a publisher over its peer connection.
type RTCPWriter func([]rtcp.Packet) error

// SetRTCPWriter sets how the participant's publisher connection is sent
// RTCP, and from then on tells it the bitrate the SFU wants, until the
// participant leaves.
func (p *Participant) SetRTCPWriter(w RTCPWriter) {
	go p.tellPublisher(w)
}

func (p *Participant) tellPublisher(w RTCPWriter) {
	tick := time.NewTicker(upstreamEvery)
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-tick.C:
		}
		bps, ssrcs := 0, []uint32(nil)
		for _, t := range p.Tracks() {
			bps += t.wantedBitrate()
			ssrcs = append(ssrcs, t.ssrcs()...)
		}
		if bps == 0 || len(ssrcs) == 0 {
			continue
		}
		if err := w([]rtcp.Packet{&rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: float32(bps), SSRCs: ssrcs}}); err != nil {
			p.room.sfu.log.Debug("remb to publisher failed", "participant", p.identity, "err", err)
		}
	}
}

// wantedBitrate is what the SFU wants the publisher to send on t, bit/s.
func (t *Track) wantedBitrate() int {
	rates := t.Bitrates()
	if !t.codec.IsVideo() {
		return max(rates[0], nominalAudioRate)
	}
	// Up to the highest layer a subscriber asks for (its size or pin), not
	// the one its bandwidth carries now: a layer the publisher stopped
	// could never be allocated again, so the publisher would stay capped.
	top := MaxLayers - 1
	if subs := t.subscribers(); len(subs) > 0 {
		top = max(t.WantedLayer(), 0)
	}
	bps := 0
	for i := 0; i <= top; i++ {
		bps += max(rates[i], nominalRates[i])
	}
	return int(upstreamHeadroom * float64(bps))
}

// ssrcs lists the SSRCs of the track's layers.
func (t *Track) ssrcs() []uint32 {
	var out []uint32
	for i := range t.layers {
		if l := t.layers[i].Load(); l != nil {
			out = append(out, l.ssrc.Load())
		}
	}
	return out
}

// WantedLayer is the highest layer any subscriber would take (the cap it
// asked for, not what its bandwidth allows now), or -1 when no subscriber
// wants the track's video. Signaling uses it to tell publishers which
// simulcast layers to stop encoding (LiveKit's dynacast).
func (t *Track) WantedLayer() int {
	top := -1
	for _, d := range t.subscribers() {
		top = max(top, d.wantedLayer())
	}
	return top
}
