package sfu

import (
	"sort"
	"time"
)

// The allocator turns one subscriber's bandwidth estimate into a layer for
// each of its video tracks. It is the policy; DownTrack is the mechanism
// that switches at keyframes, and the prober sends the probe padding the
// allocator asks for. It is a pure function of its inputs and its own state,
// so recorded inputs replay to the same decisions (see the replay test).
//
// Audio is always sent and comes out of the budget first; video tracks are
// served in priority order (screen share before cameras), each first at its
// lowest layer, then upgraded a layer at a time. Moving down is fast: as
// soon as the current layers need clearly more than the estimate (at once
// when far more). Moving up is slow and verified: only when everything
// sends the layers it was given, after a settle time, and after a probe —
// padding up to what the next step needs plus a margin — ran its course
// without the path showing congestion. A failed probe doubles the wait
// before the next. When the budget cannot carry even a track's lowest layer
// for a while, the track is paused instead of starving the audio.

// Allocator tuning.
const (
	allocTick = 100 * time.Millisecond
	// The current layers stay while they need at most downRatio times the
	// estimate; beyond it for downHold (or beyond severeRatio at once),
	// the allocation is redone within fillRatio of the estimate.
	downRatio   = 1.25
	severeRatio = 2.0
	downHold    = 300 * time.Millisecond
	fillRatio   = 0.9
	// limitedFill replaces fillRatio when the path is the bottleneck: the
	// arrival rate then still counts what was queued before.
	limitedFill = 0.75
	// pauseHold is how long a track's lowest layer must not fit before the
	// track is paused.
	pauseHold = 2 * time.Second
	// A probe aims at what the next step needs times probeMargin, ramping
	// up to it over probeRamp so that a path without the room shows
	// congestion before it drops much; it lasts probeTime, and fails on
	// congestion or on more than probeLoss lost.
	probeMargin = 1.2
	probeRamp   = time.Second
	probeTime   = 1400 * time.Millisecond
	probeLoss   = 0.05
	probeQueue  = 25 * time.Millisecond
	// probeBlindTicks samples in a row without feedback fail a probe, and
	// so does never sending as much as probeSent of its aim once ramped up.
	probeBlindTicks = 3
	probeSent       = 0.85
	// A probe starts only while the estimate exceeds what the current
	// layers need by probeRoom; a step up needs what a probe showed to
	// exceed its need by confirmedRoom (less than probeMargin, as the
	// layers' rates move between the probe's start and end).
	probeRoom     = 1.1
	confirmedRoom = 1.1
	// upSettle is the least time after any change before probing up;
	// upWaitFirst doubles with each failed probe, up to upWaitMax.
	upSettle    = 500 * time.Millisecond
	upWaitFirst = 2 * time.Second
	upWaitMax   = 5 * time.Second
	// Without a way to probe, a step up needs the estimate above
	// unprobedRatio times its need for unprobedHold.
	unprobedRatio = 1.3
	unprobedHold  = 3 * time.Second
	// congestionLoss is the smoothed loss taken as congestion, and
	// congestionQueue the queueing delay; either means the path is the
	// bottleneck, so that the rate packets arrive at is all it carries.
	congestionLoss  = 0.1
	cleanLoss       = 0.02
	congestionQueue = 50 * time.Millisecond
	queuedTicks     = 5 // samples in a row with a queue that make a bottleneck without loss
	laggingRatio    = 0.75
	lossSmoothing   = 0.3
)

// trackDemand is what the allocator knows of one of the subscriber's tracks.
type trackDemand struct {
	key      uint64 // stable identity of the track within the subscriber
	audio    bool
	priority int            // higher is served first (screen share 1, camera 0)
	rates    [MaxLayers]int // bit/s per layer; 0 when the layer is not active
	max      int            // the highest layer allowed (requested maximum)
	current  int            // the layer being forwarded, -1 for none
}

// lowest returns the lowest active layer, or -1.
func (d *trackDemand) lowest() int {
	for i := range MaxLayers {
		if d.rates[i] > 0 {
			return i
		}
	}
	return -1
}

// above returns the next active layer above l within the maximum, or -1.
func (d *trackDemand) above(l int) int {
	for i := l + 1; i <= min(d.max, MaxLayers-1); i++ {
		if d.rates[i] > 0 {
			return i
		}
	}
	return -1
}

func (d *trackDemand) rate(l int) int {
	if d.audio {
		return d.rates[0]
	}
	if l < 0 {
		return 0
	}
	return d.rates[l]
}

// allocSample is one tick's input.
type allocSample struct {
	now       int64
	estimate  int           // bit/s; 0 when there is none
	congested bool          // the delay-based detector sees a growing queue
	loss      float64       // fraction lost since the last sample, -1 unknown
	queue     time.Duration // queueing delay on the path
	received  int           // bit/s arriving at the subscriber; 0 unknown
	sent      int           // bit/s sent to it lately, probes included; 0 unknown
	canProbe  bool          // a video track can carry probe padding
	padHeld   bool          // its padding must wait (a cached run is being replayed)
}

// allocResult is one tick's decision. layers[i] is the layer for
// demands[i]: -1 pauses a video track; audio tracks get 0.
type allocResult struct {
	layers  []int
	probe   int // padding to send now, bit/s; 0 for none
	budget  int // the estimate the decision used, bit/s
	probing bool
	target  int // while probing: the total rate the probe aims at, bit/s
}

// allocator is one subscriber's allocation state.
type allocator struct {
	layers       map[uint64]int // last decision per track
	starved      map[uint64]int64
	lossAvg      float64
	confirmed    int // bit/s a probe showed the path carries; 0 when none
	overSince    int64
	lastChange   int64
	nextProbe    int64
	upWait       time.Duration
	probeTarget  int
	probePeak    int // the most sent since the probe ramped up, bit/s
	probeStart   int64
	aboveSince   int64 // unprobed step up: since when the estimate allowed it
	queueTicks   int   // consecutive samples with a queue
	blindTicks   int   // consecutive samples without feedback
	probes       uint64
	probesFailed uint64
	failReason   string // why the last probe failed, for the logs
}

func newAllocator() *allocator {
	return &allocator{layers: map[uint64]int{}, starved: map[uint64]int64{}, upWait: upWaitFirst}
}

// update takes one tick's sample and the subscriber's tracks and returns
// the layers to send.
func (a *allocator) update(s allocSample, ds []trackDemand) allocResult {
	a.observe(s)
	congested := s.congested || a.lossAvg > congestionLoss
	if congested {
		a.confirmed = 0
	}
	budget := max(s.estimate, a.confirmed)
	// A queue may be a hiccup of a busy host (the receiver's, or this
	// one's); with loss, or lasting, the path is the bottleneck.
	if s.queue > congestionQueue {
		a.queueTicks++
	} else {
		a.queueTicks = 0
	}
	// What arrives falling well behind what is sent shows the bottleneck
	// before the loss does; a host that stalls delivers in a burst after.
	lagging := s.sent > 0 && s.received > 0 && float64(s.received) < laggingRatio*float64(s.sent)
	lossy := max(s.loss, a.lossAvg) > cleanLoss
	limited := a.lossAvg > congestionLoss || (a.queueTicks >= 2 && (lossy || lagging)) || a.queueTicks >= queuedTicks
	switch {
	case limited && s.received > 0:
		budget = min(budget, s.received)
	case s.queue < congestionQueue/2 && a.lossAvg < cleanLoss:
		// What just arrived without queueing or loss the path carries,
		// whatever a pessimistic estimate says.
		budget = max(budget, s.received)
	}
	cur := a.current(ds, budget)
	res := allocResult{layers: cur, budget: budget}

	need := totalNeed(ds, cur)
	switch {
	case float64(need) > downRatio*float64(budget):
		if a.overSince == 0 {
			a.overSince = s.now
		}
		// On a path that queues or loses, the arrival rate is what it
		// carries: no reason to wait.
		if limited || float64(need) > severeRatio*float64(budget) || s.now-a.overSince >= int64(downHold) {
			fillTo := fillRatio
			if limited {
				fillTo = limitedFill
			}
			a.stopProbe(s.now, "over budget")
			res.layers = a.fit(s.now, ds, cur, int(fillTo*float64(budget)))
			a.overSince = 0
			a.lastChange = s.now
			// The path just showed its limit: wait before probing it.
			a.nextProbe = max(a.nextProbe, s.now+int64(a.upWait))
		}
	default:
		a.overSince = 0
		clear(a.starved)
		a.stepUp(s, ds, &res, congested)
	}
	a.remember(ds, res.layers)
	if a.probeTarget > 0 {
		res.probing, res.target = true, a.probeTarget
		ramp := min(1, float64(s.now-a.probeStart)/float64(probeRamp))
		res.probe = int(ramp * float64(max(a.probeTarget-totalNeed(ds, forwarded(ds)), 0)))
	}
	return res
}

// observe smooths the loss the feedback reports.
func (a *allocator) observe(s allocSample) {
	if s.loss >= 0 {
		a.lossAvg += lossSmoothing * (s.loss - a.lossAvg)
		a.blindTicks = 0
	} else {
		a.blindTicks++
	}
}

// current returns the last decision for each track; a new track gets the
// best layer that fits what the others leave.
func (a *allocator) current(ds []trackDemand, budget int) []int {
	out := make([]int, len(ds))
	fresh := false
	for i := range ds {
		l, ok := a.layers[ds[i].key]
		switch {
		case ds[i].audio:
			out[i] = 0
		case !ok:
			out[i] = -2 // placed below
			fresh = true
		default:
			out[i] = min(l, ds[i].max)
			if out[i] >= 0 && ds[i].rates[out[i]] == 0 {
				out[i] = max(ds[i].lowest(), -1) // its layer stopped: the lowest left
			}
		}
	}
	if !fresh {
		return out
	}
	left := int(fillRatio * float64(budget))
	for i := range ds {
		if out[i] >= 0 || ds[i].audio {
			left -= ds[i].rate(out[i])
		}
	}
	for _, i := range byPriority(ds) {
		if out[i] != -2 {
			continue
		}
		out[i] = ds[i].lowest()
		for next := ds[i].above(out[i]); next >= 0 && ds[i].rates[next] <= left; next = ds[i].above(next) {
			out[i] = next
		}
		left -= ds[i].rate(out[i])
	}
	return out
}

// fit redoes the allocation within budget, moving no track up; a track
// whose lowest layer does not fit is paused only after pauseHold.
func (a *allocator) fit(now int64, ds []trackDemand, cur []int, budget int) []int {
	out := fill(ds, budget, cur)
	for i := range ds {
		if ds[i].audio {
			continue
		}
		k := ds[i].key
		if out[i] >= 0 || ds[i].lowest() < 0 {
			delete(a.starved, k)
			continue
		}
		if cur[i] < 0 { // already paused
			continue
		}
		since, ok := a.starved[k]
		if !ok {
			a.starved[k], since = now, now
		}
		if now-since < int64(pauseHold) {
			out[i] = ds[i].lowest()
		}
	}
	return out
}

// fill allocates budget: audio first, then each video track's lowest layer
// in priority order, then upgrades a layer at a time, each priority group
// in turn, never above limit (nil for no limit) or a track's maximum.
func fill(ds []trackDemand, budget int, limit []int) []int {
	out := make([]int, len(ds))
	left := budget
	for i := range ds {
		out[i] = -1
		if ds[i].audio {
			out[i] = 0
			left -= ds[i].rates[0]
		}
	}
	order := byPriority(ds)
	for _, i := range order {
		if ds[i].audio || (limit != nil && limit[i] < 0) {
			continue
		}
		if l := ds[i].lowest(); l >= 0 && l <= ds[i].max && ds[i].rates[l] <= left {
			out[i] = l
			left -= ds[i].rates[l]
		}
	}
	for start := 0; start < len(order); {
		end := start
		for end < len(order) && ds[order[end]].priority == ds[order[start]].priority {
			end++
		}
		for changed := true; changed; {
			changed = false
			for _, i := range order[start:end] {
				if ds[i].audio || out[i] < 0 {
					continue
				}
				next := ds[i].above(out[i])
				if next < 0 || (limit != nil && next > limit[i]) {
					continue
				}
				if extra := ds[i].rates[next] - ds[i].rates[out[i]]; extra <= left {
					left -= extra
					out[i] = next
					changed = true
				}
			}
		}
		start = end
	}
	return out
}

// stepUp moves the allocation up one step when a probe has shown that the
// path carries it, and starts probes.
func (a *allocator) stepUp(s allocSample, ds []trackDemand, res *allocResult, congested bool) {
	cur := res.layers
	next, ok := nextStep(ds, cur)
	if a.probeTarget > 0 {
		if s.now-a.probeStart >= int64(probeRamp) {
			a.probePeak = max(a.probePeak, s.sent)
		}
		switch {
		case congested:
			a.stopProbe(s.now, "congested")
		case a.lossAvg > probeLoss:
			a.stopProbe(s.now, "loss")
		case s.queue > probeQueue:
			a.stopProbe(s.now, "queue")
		case a.blindTicks >= probeBlindTicks:
			// Feedback missing for long is as bad: the probe cannot see
			// what it does to the path.
			a.stopProbe(s.now, "no feedback")
		case s.now-a.probeStart >= int64(probeTime) && float64(a.probePeak) < probeSent*float64(a.probeTarget):
			// The padding did not go out (held for lack of feedback):
			// the path showed nothing.
			a.stopProbe(s.now, "padding not sent")
		case s.now-a.probeStart >= int64(probeTime):
			a.confirmed = max(a.confirmed, a.probeTarget)
			a.stopProbe(s.now, "")
			// The step the probe was for, though the layers' rates moved
			// meanwhile: the probe's margin covers that.
			if ok && a.confirmed >= totalNeed(ds, next) {
				res.layers = next
				a.lastChange = s.now
			}
		}
		return
	}
	if !ok {
		a.aboveSince = 0
		return
	}
	need := totalNeed(ds, next)
	if a.confirmed > 0 && float64(a.confirmed) >= confirmedRoom*float64(need) {
		res.layers = next
		a.lastChange = s.now
		a.nextProbe = max(a.nextProbe, s.now+int64(upSettle))
		return
	}
	settled := s.now-a.lastChange >= int64(upSettle) && s.now >= a.nextProbe && !congested && !s.padHeld && allForwarded(ds, cur) &&
		float64(res.budget) >= probeRoom*float64(totalNeed(ds, cur)) && s.queue <= probeQueue/2
	if !settled {
		a.aboveSince = 0
		return
	}
	if s.canProbe {
		a.probeTarget = int(probeMargin * float64(need))
		a.probeStart, a.probePeak = s.now, 0
		a.probes++
		return
	}
	if float64(s.estimate) < unprobedRatio*float64(need) {
		a.aboveSince = 0
		return
	}
	if a.aboveSince == 0 {
		a.aboveSince = s.now
	}
	if s.now-a.aboveSince >= int64(unprobedHold) {
		res.layers = next
		a.lastChange, a.aboveSince = s.now, 0
	}
}

// stopProbe ends a probe, failed for the reason given unless it is empty; a
// failure doubles the wait before the next.
func (a *allocator) stopProbe(now int64, failed string) {
	if a.probeTarget == 0 {
		return
	}
	a.probeTarget = 0
	if failed != "" {
		a.failReason = failed
		a.probesFailed++
		a.confirmed = 0
		a.nextProbe = now + int64(a.upWait)
		a.upWait = min(2*a.upWait, upWaitMax)
		return
	}
	a.upWait = upWaitFirst
}

func (a *allocator) remember(ds []trackDemand, layers []int) {
	seen := make(map[uint64]bool, len(ds))
	for i := range ds {
		a.layers[ds[i].key] = layers[i]
		seen[ds[i].key] = true
	}
	for k := range a.layers {
		if !seen[k] {
			delete(a.layers, k)
			delete(a.starved, k)
		}
	}
}

// nextStep returns the allocation one step above cur: the first track in
// priority order that is paused resumes at its lowest layer, else the first
// that can goes up a layer.
func nextStep(ds []trackDemand, cur []int) ([]int, bool) {
	order := byPriority(ds)
	for pass := range 2 {
		for _, i := range order {
			if ds[i].audio {
				continue
			}
			l := -1
			switch {
			case pass == 0 && cur[i] < 0:
				l = ds[i].lowest()
				if l > ds[i].max {
					l = -1
				}
			case pass == 1 && cur[i] >= 0:
				l = ds[i].above(cur[i])
			}
			if l >= 0 {
				next := append([]int(nil), cur...)
				next[i] = l
				return next, true
			}
		}
	}
	return nil, false
}

func totalNeed(ds []trackDemand, layers []int) int {
	n := 0
	for i := range ds {
		n += ds[i].rate(layers[i])
	}
	return n
}

func forwarded(ds []trackDemand) []int {
	out := make([]int, len(ds))
	for i := range ds {
		out[i] = ds[i].current
	}
	return out
}

// allForwarded reports whether every video track sends the layer it was given.
func allForwarded(ds []trackDemand, cur []int) bool {
	for i := range ds {
		if !ds[i].audio && cur[i] >= 0 && ds[i].current != cur[i] {
			return false
		}
	}
	return true
}

// byPriority returns the demand indexes, highest priority first, audio
// before video, in the given order otherwise.
func byPriority(ds []trackDemand) []int {
	order := make([]int, len(ds))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(x, y int) bool {
		a, b := &ds[order[x]], &ds[order[y]]
		if a.audio != b.audio {
			return a.audio
		}
		return a.priority > b.priority
	})
	return order
}
