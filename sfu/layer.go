package sfu

import (
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// MaxLayers is the number of simulcast layers a track may have.
const MaxLayers = 3

// Layer names used in URLs, metrics and logs, lowest first.
var layerNames = [MaxLayers]string{"q", "h", "f"}

// LayerName returns the canonical name of layer index i ("q", "h" or "f").
func LayerName(i int) string {
	if i < 0 || i >= MaxLayers {
		return "none"
	}
	return layerNames[i]
}

// ParseLayer accepts a layer by canonical name, common synonyms, or index.
func ParseLayer(s string) (int, bool) {
	switch strings.ToLower(s) {
	case "q", "l", "low", "quarter", "0":
		return 0, true
	case "h", "m", "mid", "medium", "half", "1":
		return 1, true
	case "f", "high", "full", "2":
		return 2, true
	}
	return 0, false
}

// layerIndexForRID picks the layer a simulcast rid maps to. Known names map
// to their quality; unknown rids take the next free index in arrival order,
// which follows the a=simulcast order of the offer.
func layerIndexForRID(rid string, taken [MaxLayers]bool) int {
	if rid == "" {
		return 0
	}
	if i, ok := ParseLayer(rid); ok && !taken[i] {
		return i
	}
	if n, err := strconv.Atoi(rid); err == nil && n >= 0 && n < MaxLayers && !taken[n] {
		return n
	}
	for i := range taken {
		if !taken[i] {
			return i
		}
	}
	return -1
}

// layerActiveWindow is how long a layer may go without packets before it is
// considered paused (browsers drop top layers when their bandwidth falls).
const layerActiveWindow = 1500 * time.Millisecond

// layer is one simulcast encoding (or the only encoding) of a published track.
type layer struct {
	index int
	rid   string
	ssrc  atomic.Uint32
	cache *packetCache

	lastPacket atomic.Int64 // unix nanoseconds of the newest packet
	lastPLI    atomic.Int64 // unix nanoseconds of the newest keyframe request
	packets    atomic.Uint64
	bytes      atomic.Uint64
	rate       atomic.Int64 // bit/s over the last rateWindow; 0 until measured
	// frame size from the newest keyframe, when the codec tells (VP8)
	width, height atomic.Int32
}

// Nominal bitrates of layers, bit/s, used until a layer's own is measured.
var nominalRates = [MaxLayers]int{150_000, 500_000, 1_500_000}

// nominalAudioRate is the same for an audio track.
const nominalAudioRate = 64_000

// rateWindow is the span a layer's bitrate is measured over: long enough to
// smooth out keyframes at the usual one or two second keyframe interval.
const rateWindow = 2 * time.Second

// rateMeter turns a layer's growing byte count, sampled on the track's
// maintenance tick, into a bitrate over about rateWindow.
type rateMeter struct {
	bytes [rateSlots]uint64
	at    [rateSlots]int64
	n, i  int
}

const rateSlots = 11 // rateWindow at the 200 ms maintenance tick, plus one

// sample records the count at now and returns the bitrate, or 0 while less
// than a fifth of the window has been seen.
func (m *rateMeter) sample(bytes uint64, now int64) int64 {
	m.bytes[m.i], m.at[m.i] = bytes, now
	m.i = (m.i + 1) % rateSlots
	m.n = min(m.n+1, rateSlots)
	oldest := (m.i - m.n + rateSlots) % rateSlots
	newest := (m.i - 1 + rateSlots) % rateSlots
	span := m.at[newest] - m.at[oldest]
	if span < int64(rateWindow)/5 {
		return 0
	}
	return int64(m.bytes[newest]-m.bytes[oldest]) * 8 * int64(time.Second) / span
}

func (l *layer) active(now int64) bool {
	last := l.lastPacket.Load()
	return last != 0 && now-last < int64(layerActiveWindow)
}

// pickLayer returns the highest active layer not above desired, else the
// lowest active layer, else -1 when none is active.
func pickLayer(desired int, active [MaxLayers]bool) int {
	for i := min(desired, MaxLayers-1); i >= 0; i-- {
		if active[i] {
			return i
		}
	}
	for i := range active {
		if active[i] {
			return i
		}
	}
	return -1
}
