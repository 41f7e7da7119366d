package sfu

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starling-sfu/starling/bwe"
)

// bandwidthEstimator is what a Subscriber needs of its connection's
// estimate (a *bwe.Estimator).
type bandwidthEstimator interface {
	Estimate(now time.Time) bwe.Estimate
}

// Subscriber is one subscriber connection: the DownTracks it receives share
// the connection's bandwidth estimate, which its allocator divides among
// them a few times a second; it also sends the probe padding the allocator
// asks for. Until the connection has an estimate (a peer that sends neither
// transport-wide feedback nor REMB), each DownTrack follows its loss
// selector instead.
type Subscriber struct {
	id  string
	sfu *SFU
	log *slog.Logger

	hasEstimator atomic.Bool
	mu           sync.Mutex // guards est, downs, nextKey, closed, last
	est          bandwidthEstimator
	downs        []*DownTrack
	nextKey      uint64
	closed       bool
	last         subscriberState
	done         chan struct{}

	alloc        *allocator // owned by run
	probe        int        // padding bit/s being sent; owned by run
	sent         sendMeter  // owned by run
	probes       atomic.Uint64
	probesFailed atomic.Uint64
	queue        atomic.Int64 // nanoseconds of queueing delay on the path, from the newest estimate
}

// subscriberState is the newest allocation, for stats.
type subscriberState struct {
	estimate int
	source   bwe.Source
	budget   int
	probing  bool
	target   int // while probing: what the probe aims at, bit/s
}

// NewSubscriber starts a subscriber connection's allocation. Close it when
// the connection ends.
func (s *SFU) NewSubscriber(id string) *Subscriber {
	sub := &Subscriber{id: id, sfu: s, log: s.log.With("subscriber", id), alloc: newAllocator(), done: make(chan struct{})}
	s.mu.Lock()
	s.subscribers[sub] = struct{}{}
	s.mu.Unlock()
	go sub.run()
	return sub
}

// Subscribers lists the live subscriber connections.
func (s *SFU) Subscribers() []*Subscriber {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Subscriber, 0, len(s.subscribers))
	for sub := range s.subscribers {
		out = append(out, sub)
	}
	return out
}

// PausedSeconds is the total time subscribers' video was paused for lack of
// bandwidth, the pauses still going on included.
func (s *SFU) PausedSeconds() float64 {
	// Ended pauses first: one that ends meanwhile is then counted late,
	// never twice, so the total never goes back.
	ns := int64(s.stats.PausedNanos.Load())
	now := time.Now().UnixNano()
	for _, sub := range s.Subscribers() {
		sub.mu.Lock()
		downs := append([]*DownTrack(nil), sub.downs...)
		sub.mu.Unlock()
		for _, d := range downs {
			d.mu.Lock()
			if d.paused {
				ns += now - d.pausedAt
			}
			d.mu.Unlock()
		}
	}
	return float64(ns) / 1e9
}

// ID names the subscriber.
func (sub *Subscriber) ID() string { return sub.id }

// Subscribe attaches a DownTrack of t to this subscriber, as Track.Subscribe.
func (sub *Subscriber) Subscribe(t *Track, opts DownTrackOptions) (*DownTrack, error) {
	d, err := t.Subscribe(opts)
	if err != nil {
		return nil, err
	}
	sub.mu.Lock()
	if sub.closed {
		sub.mu.Unlock()
		d.Close()
		return nil, ErrTrackClosed
	}
	sub.nextKey++
	d.sub, d.key = sub, sub.nextKey
	sub.downs = append(sub.downs, d)
	sub.mu.Unlock()
	d.OnClose(func() { sub.remove(d) })
	return d, nil
}

func (sub *Subscriber) remove(d *DownTrack) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	for i, x := range sub.downs {
		if x == d {
			sub.downs = append(sub.downs[:i:i], sub.downs[i+1:]...)
			return
		}
	}
}

func (sub *Subscriber) setEstimator(e bandwidthEstimator) {
	sub.mu.Lock()
	if sub.est == nil {
		sub.est = e
		sub.hasEstimator.Store(true)
	}
	sub.mu.Unlock()
}

// Close stops the allocation; the DownTracks are closed by their owner.
func (sub *Subscriber) Close() {
	sub.mu.Lock()
	if sub.closed {
		sub.mu.Unlock()
		return
	}
	sub.closed = true
	close(sub.done)
	sub.mu.Unlock()
	sub.sfu.mu.Lock()
	delete(sub.sfu.subscribers, sub)
	sub.sfu.mu.Unlock()
}

// sendMeter turns the bytes sent on a connection so far, sampled every
// allocation, into the rate over the last few samples.
type sendMeter struct {
	bytes [sendSamples]uint64
	at    [sendSamples]int64
	n     int
}

const sendSamples = 4 // about the span of the receive rate's feedback

// rate records total at now and returns bit/s over the samples kept, 0
// until there are two.
func (m *sendMeter) rate(total uint64, now int64) int {
	i := m.n % sendSamples
	m.bytes[i], m.at[i] = total, now
	m.n++
	if m.n < 2 {
		return 0
	}
	oldest := m.n % sendSamples
	if m.n < sendSamples {
		oldest = 0
	}
	span := now - m.at[oldest]
	if span <= 0 {
		return 0
	}
	return int(int64(total-m.bytes[oldest]) * 8 * int64(time.Second) / span)
}

// probeTick is how often probe padding is sent while a probe runs.
const probeTick = 5 * time.Millisecond

// run allocates every allocTick, and sends probe padding in between while
// the allocator asks for it.
func (sub *Subscriber) run() {
	tick := time.NewTicker(allocTick)
	defer tick.Stop()
	pace := time.NewTicker(probeTick)
	pace.Stop()
	var credit float64 // bytes of padding due
	last := time.Now()
	for {
		select {
		case <-sub.done:
			return
		case now := <-tick.C:
			was := sub.probe
			sub.allocate(now)
			if sub.probe > 0 && was == 0 {
				credit, last = 0, now
				pace.Reset(probeTick)
			} else if sub.probe == 0 && was > 0 {
				pace.Stop()
			}
		case now := <-pace.C:
			if sub.holdProbe(now) {
				// Stop at once rather than at the next allocation, which
				// will call the probe failed.
				sub.probe = 0
				pace.Stop()
				continue
			}
			credit += float64(sub.probe) / 8 * now.Sub(last).Seconds()
			credit = min(credit, 4*1200) // no burst after a stall
			last = now
			credit -= float64(sub.sendProbe(int(credit)))
		}
	}
}

// probeBlind is how old the newest feedback may be while probe padding is
// sent: a probe that cannot see the path's queue grow must not go on.
const probeBlind = 250 * time.Millisecond

// holdProbe reports whether probe padding must stop: the newest feedback
// shows a queue, or is too old to show one.
func (sub *Subscriber) holdProbe(now time.Time) bool {
	sub.mu.Lock()
	q, ok := sub.est.(interface {
		QueueDelay() (time.Duration, time.Time)
	})
	sub.mu.Unlock()
	if !ok {
		return false
	}
	queue, at := q.QueueDelay()
	return queue > probeQueue || now.Sub(at) > probeBlind
}

// sendProbe sends up to budget bytes of padding on one of the video tracks
// and returns what it sent.
func (sub *Subscriber) sendProbe(budget int) int {
	d := sub.carrier()
	if d == nil {
		return 0
	}
	sent := 0
	for sent < budget {
		n := d.sendProbe()
		if n == 0 {
			break
		}
		sent += n
	}
	return sent
}

// carrier is the video DownTrack that carries probes: the one forwarding
// the highest layer.
func (sub *Subscriber) carrier() *DownTrack {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	var best *DownTrack
	for _, d := range sub.downs {
		if d.track.codec.IsVideo() && d.probeCapable() && (best == nil || d.Layer() > best.Layer()) {
			best = d
		}
	}
	return best
}

// allocate runs the allocator once and applies its decision.
func (sub *Subscriber) allocate(at time.Time) {
	sub.mu.Lock()
	est := sub.est
	downs := append([]*DownTrack(nil), sub.downs...)
	sub.mu.Unlock()
	now := at.UnixNano()

	var e bwe.Estimate
	if est != nil {
		e = est.Estimate(at)
	}
	sub.queue.Store(int64(e.QueueDelay))
	if e.Source == bwe.SourceNone {
		for _, d := range downs {
			_, active := d.track.Layers()
			d.rtxRate.Store(0)
			d.allocate(allocAuto, active, now)
		}
		sub.setState(subscriberState{estimate: e.Bitrate, source: e.Source})
		sub.probe = 0
		return
	}
	ds := make([]trackDemand, 0, len(downs))
	live := make([]*DownTrack, 0, len(downs))
	canProbe := false
	for _, d := range downs {
		dm, ok := d.demand()
		if !ok {
			continue
		}
		ds = append(ds, dm)
		live = append(live, d)
		canProbe = canProbe || (!dm.audio && d.probeCapable())
	}
	if sub.log.Enabled(context.Background(), slog.LevelDebug-4) {
		sub.log.Log(context.Background(), slog.LevelDebug-4, "tick", "estimate", e.Bitrate, "loss", e.Loss, "queue", e.QueueDelay,
			"received", e.Received, "congested", e.Congested)
	}
	probes, failed := sub.alloc.probes, sub.alloc.probesFailed
	res := sub.alloc.update(allocSample{
		now: now, estimate: e.Bitrate, congested: e.Congested, loss: e.Loss, queue: e.QueueDelay,
		received: e.Received, sent: sub.sent.rate(e.Sent, now), canProbe: canProbe, padHeld: canProbe && sub.padHeld(),
	}, ds)
	sub.sfu.stats.Probes.Add(sub.alloc.probes - probes)
	sub.sfu.stats.ProbesFailed.Add(sub.alloc.probesFailed - failed)
	sub.probes.Store(sub.alloc.probes)
	sub.probesFailed.Store(sub.alloc.probesFailed)
	// Retransmissions may use what the layers leave of the budget, and at
	// least a fifth of it.
	rtx := max(res.budget-totalNeed(ds, res.layers), res.budget/5)
	for i, d := range live {
		d.rtxRate.Store(int64(rtx))
		if !ds[i].audio {
			_, active := d.track.Layers()
			if int(d.alloc.Load()) != res.layers[i] {
				sub.log.Debug("allocation", "track", d.track.info.ID, "layer", res.layers[i], "estimate", e.Bitrate,
					"budget", res.budget, "need", totalNeed(ds, res.layers), "loss", e.Loss, "congested", e.Congested, "queue", e.QueueDelay, "received", e.Received)
			}
			d.allocate(res.layers[i], active, now)
		}
	}
	if res.probing != sub.last.probing {
		why := ""
		if !res.probing && sub.alloc.probesFailed > failed {
			why = sub.alloc.failReason
		}
		sub.log.Debug("probe", "on", res.probing, "failed", why, "estimate", e.Bitrate, "budget", res.budget, "target", max(res.target, sub.last.target), "peak", sub.alloc.probePeak,
			"need", totalNeed(ds, res.layers), "loss", e.Loss, "congested", e.Congested, "queue", e.QueueDelay, "received", e.Received, "failures", sub.alloc.probesFailed)
	}
	sub.probe = res.probe
	sub.setState(subscriberState{estimate: e.Bitrate, source: e.Source, budget: res.budget, probing: res.probing, target: res.target})
}

func (sub *Subscriber) setState(st subscriberState) {
	sub.mu.Lock()
	sub.last = st
	sub.mu.Unlock()
}

// demand describes the DownTrack to the allocator; ok is false until it runs.
func (d *DownTrack) demand() (trackDemand, bool) {
	d.mu.Lock()
	running, current := d.running && !d.closed && !d.disabled, int(d.current)
	d.mu.Unlock()
	if !running {
		return trackDemand{}, false
	}
	dm := trackDemand{key: d.key, audio: !d.track.codec.IsVideo(), rates: d.track.Bitrates(), max: d.maxLayer(), current: current}
	if d.track.info.ScreenShare {
		dm.priority = 1
	}
	return dm, true
}

// probeCapable reports whether the DownTrack can carry probes: it has sent
// on its media stream.
func (d *DownTrack) probeCapable() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.running && d.rw.started
}

// padHeld reports whether the probe carrier's padding must wait.
func (sub *Subscriber) padHeld() bool {
	c := sub.carrier()
	return c == nil || !c.padReady()
}

// padReady reports whether probe padding can go out now: not while a
// cached run is replayed, which it would have to wait behind.
func (d *DownTrack) padReady() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.running && d.rw.started && !d.replaying
}

// SubscriberStats is a snapshot of one subscriber connection.
type SubscriberStats struct {
	ID string `json:"id"`
	// Estimate is the connection's bandwidth estimate, bit/s, from Source
	// ("twcc", "remb", or "none" before any feedback); Budget is what the
	// allocator used, the estimate or what a probe showed, if more.
	Estimate int    `json:"estimate"`
	Source   string `json:"source"`
	Budget   int    `json:"budget"`
	Probing  bool   `json:"probing"`
	Probes   uint64 `json:"probes"`
	// ProbesFailed counts probes that met congestion.
	ProbesFailed uint64                 `json:"probesFailed"`
	Tracks       []SubscriberTrackStats `json:"tracks"`
}

// SubscriberTrackStats describes one of a subscriber's tracks.
type SubscriberTrackStats struct {
	Track string `json:"track"`
	DownTrackStats
}

// Stats returns the subscriber's estimate and per-track state.
func (sub *Subscriber) Stats() SubscriberStats {
	sub.mu.Lock()
	st := sub.last
	downs := append([]*DownTrack(nil), sub.downs...)
	sub.mu.Unlock()
	out := SubscriberStats{
		ID: sub.id, Estimate: st.estimate, Source: st.source.String(), Budget: st.budget, Probing: st.probing,
		Probes: sub.probes.Load(), ProbesFailed: sub.probesFailed.Load(),
	}
	for _, d := range downs {
		out.Tracks = append(out.Tracks, SubscriberTrackStats{Track: d.track.info.ID, DownTrackStats: d.Stats()})
	}
	return out
}
