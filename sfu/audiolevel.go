package sfu

import (
	"math"
	"sync/atomic"
)

// Speech detection from the RFC 6464 levels publishers put on audio packets:
// a window of packets is speech when enough of them are louder than
// speechDBov.
const (
	speechDBov     = 50   // -dBov; quieter packets are silence
	speechFraction = 0.25 // of a window's packets, loud ones that make it speech
)

// audioLevel accumulates one window of packet levels. The ingest loop adds
// to it; one reader takes the window (Track.TakeAudioLevel).
type audioLevel struct {
	packets atomic.Uint32
	loud    atomic.Uint32
	sum     atomic.Uint64 // linear amplitude of loud packets, ×1e6
}

func (a *audioLevel) observe(dBov uint8) {
	a.packets.Add(1)
	if dBov <= speechDBov {
		a.loud.Add(1)
		a.sum.Add(uint64(1e6 * math.Pow(10, -float64(dBov)/20)))
	}
}

// TakeAudioLevel returns the audio track's loudness since the last call, as
// a linear amplitude 0..1 averaged over its loud packets, and whether that
// window was speech. Tracks without audio levels return 0, false. There
// must be one caller, which sets the window by how often it calls.
func (t *Track) TakeAudioLevel() (level float64, speaking bool) {
	a := &t.level
	n, loud, sum := a.packets.Swap(0), a.loud.Swap(0), a.sum.Swap(0)
	if n == 0 || loud == 0 {
		return 0, false
	}
	return float64(sum) / 1e6 / float64(loud), float64(loud) >= speechFraction*float64(n)
}
