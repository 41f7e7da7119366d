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
