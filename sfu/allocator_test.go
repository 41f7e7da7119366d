package sfu

import (
	"slices"
	"testing"
	"time"
)

const ms = int64(time.Millisecond)

// camera, screen and audio demands with the clip publisher's bitrates.
func camera(key uint64, current int) trackDemand {
	return trackDemand{key: key, rates: [MaxLayers]int{150_000, 500_000, 1_500_000}, max: 2, current: current}
}

func screen(key uint64, current int) trackDemand {
	d := camera(key, current)
	d.priority = 1
	return d
}

func audio(key uint64) trackDemand {
	return trackDemand{key: key, audio: true, rates: [MaxLayers]int{64_000}}
}

func TestFillServesAudioThenScreenShareThenCamerasLayerByLayer(t *testing.T) {
	ds := []trackDemand{camera(1, -1), audio(2), screen(3, -1), camera(4, -1)}
	for _, tc := range []struct {
		budget int
		want   []int
	}{
		{50_000, []int{-1, 0, -1, -1}}, // audio even when it does not fit
		{250_000, []int{-1, 0, 0, -1}}, // then the screen's lowest layer
		{520_000, []int{0, 0, 0, 0}},   // then every camera's lowest
		{1_000_000, []int{0, 0, 1, 0}}, // the screen goes up first
		{2_000_000, []int{0, 0, 2, 0}}, // to its top before cameras move
		{2_300_000, []int{1, 0, 2, 0}}, // then cameras, in turn
		{2_800_000, []int{1, 0, 2, 1}},
		{10_000_000, []int{2, 0, 2, 2}}, // everything at the top
	} {
		if got := fill(ds, tc.budget, nil); !slices.Equal(got, tc.want) {
			t.Errorf("budget %d: layers %v, want %v", tc.budget, got, tc.want)
		}
	}
}

func TestFillHonoursTheRequestedMaximumAndSkipsPausedLayers(t *testing.T) {
	capped := camera(1, -1)
	capped.max = 1
	gap := camera(2, -1)
	gap.rates[1] = 0 // the publisher paused its middle layer
	got := fill([]trackDemand{capped, gap}, 10_000_000, nil)
	if !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("layers %v, want [1 2]: the maximum kept, the paused layer skipped", got)
	}
}

// sampleAt is a clean sample with the given estimate.
func sampleAt(now int64, estimate int) allocSample {
	return allocSample{now: now, estimate: estimate, loss: 0, canProbe: true}
}

func TestAllocatorStepsDownAtOnceWhenFarOverAndAfterAHoldWhenSlightlyOver(t *testing.T) {
	a := newAllocator()
	ds := []trackDemand{audio(1), camera(2, 2)}
	if got := a.update(sampleAt(0, 3_000_000), ds).layers[1]; got != 2 {
		t.Fatalf("starts on layer %d, want the top", got)
	}
	// 1.5 Mbit/s needs 1.56: slightly over 1.25× the estimate only after
	// the hold.
	now := 100 * ms
	for ; now < 100*ms+int64(downHold); now += 100 * ms {
		if got := a.update(sampleAt(now, 1_200_000), ds).layers[1]; got != 2 {
			t.Fatalf("stepped down at %d ms, before the %v hold", now/ms, downHold)
		}
	}
	if got := a.update(sampleAt(now, 1_200_000), ds).layers[1]; got != 1 {
		t.Fatalf("after the hold: layer %d, want 1", got)
	}
	// Far over (more than twice the estimate): at once, as low as needed.
	b := newAllocator()
	b.update(sampleAt(0, 3_000_000), ds)
	if got := b.update(sampleAt(100*ms, 300_000), ds).layers[1]; got != 0 {
		t.Fatalf("estimate a fifth of the need: layer %d, want 0 at once", got)
	}
}

func TestAllocatorTakesTheArrivalRateOfAQueueingPath(t *testing.T) {
	a := newAllocator()
	ds := []trackDemand{audio(1), camera(2, 2)}
	a.update(sampleAt(0, 3_000_000), ds)
	// GCC still says 3 Mbit/s, but the path queues and delivers 450
	// kbit/s: once loss shows, the lowest layer, at once.
	q := allocSample{now: 100 * ms, estimate: 3_000_000, queue: 80 * time.Millisecond, received: 450_000, loss: 0}
	for ; q.now < 300*ms; q.now += 100 * ms {
		if got := a.update(q, ds).layers[1]; got != 2 {
			t.Fatalf("a queue without loss moved the layer to %d at once: it may be a hiccup of a busy host", got)
		}
	}
	q.loss = 0.3
	if got := a.update(q, ds).layers[1]; got != 0 {
		t.Fatalf("a queue with loss: layer %d, want 0", got)
	}
	// A queue that lasts is a bottleneck too, loss or not.
	b := newAllocator()
	b.update(sampleAt(0, 3_000_000), ds)
	q = allocSample{estimate: 3_000_000, queue: 80 * time.Millisecond, received: 450_000, loss: 0}
	layer := 2
	for q.now = 100 * ms; q.now <= int64(queuedTicks)*100*ms; q.now += 100 * ms {
		layer = b.update(q, ds).layers[1]
	}
	if layer != 0 {
		t.Fatalf("after %d samples of a queue: layer %d, want 0", queuedTicks, layer)
	}
}

func TestAllocatorStepsUpOnlyAfterAProbeShowsTheRoom(t *testing.T) {
	a := newAllocator()
	ds := []trackDemand{audio(1), camera(2, 0)}
	now := int64(0)
	res := a.update(sampleAt(now, 400_000), ds)
	if res.layers[1] != 0 {
		t.Fatalf("400 kbit/s: layer %d, want 0", res.layers[1])
	}
	// GCC's estimate grows while the sender is limited by its own rate;
	// that alone moves nothing: a probe starts once settled.
	var probeAt int64 = -1
	for now = 100 * ms; now < 5*int64(time.Second); now += 100 * ms {
		res = a.update(sampleAt(now, 2_000_000), ds)
		if res.layers[1] != 0 {
			t.Fatalf("stepped up at %d ms without a probe", now/ms)
		}
		if res.probing {
			probeAt = now
			break
		}
	}
	if probeAt < 0 {
		t.Fatal("never probed")
	}
	if want := int(probeMargin * float64(64_000+500_000)); res.target != want {
		t.Fatalf("probe aims at %d bit/s, want %d: the next step times the margin", res.target, want)
	}
	// Padding ramps up, then the layer changes when the probe ends clean,
	// having sent what it aimed at.
	var pads []int
	for now += 100 * ms; now <= probeAt+int64(probeTime); now += 100 * ms {
		s := sampleAt(now, 2_000_000)
		s.sent = 64_000 + 150_000 + res.probe
		res = a.update(s, ds)
		pads = append(pads, res.probe)
	}
	if res.layers[1] != 1 || res.probing {
		t.Fatalf("after a clean probe: layer %d probing %v, want layer 1 and the probe over", res.layers[1], res.probing)
	}
	if !slices.IsSorted(pads[:len(pads)-1]) || pads[0] >= pads[len(pads)-2] {
		t.Fatalf("padding did not ramp up: %v", pads)
	}
}

func TestAProbeThatCouldNotSendItsPaddingShowsNothing(t *testing.T) {
	a := newAllocator()
	ds := []trackDemand{audio(1), camera(2, 0)}
	a.update(sampleAt(0, 400_000), ds)
	for now := 100 * ms; now < 10*int64(time.Second); now += 100 * ms {
		s := sampleAt(now, 2_000_000)
		s.sent = 214_000 // media only: the padding was held back
		if res := a.update(s, ds); res.layers[1] != 0 {
			t.Fatalf("stepped up at %d ms on a probe that sent no padding", now/ms)
		}
	}
	if a.probes == 0 || a.probesFailed != a.probes && a.probesFailed != a.probes-1 {
		t.Fatalf("%d probes, %d failed", a.probes, a.probesFailed)
	}
}

// While the carrier replays a cached run its padding would wait behind the
// run, so no probe starts (one would fail for padding not sent and double
// the wait); the probe starts once the replay is over.
func TestNoProbeStartsWhileThePaddingIsHeld(t *testing.T) {
	a := newAllocator()
	ds := []trackDemand{audio(1), camera(2, 0)}
	a.update(sampleAt(0, 400_000), ds)
	now := 100 * ms
	for ; now < 5*int64(time.Second); now += 100 * ms {
		s := sampleAt(now, 2_000_000)
		s.padHeld = true
		if res := a.update(s, ds); res.probing || res.layers[1] != 0 {
			t.Fatalf("at %d ms with the padding held: probing %v, layer %d", now/ms, res.probing, res.layers[1])
		}
	}
	if res := a.update(sampleAt(now, 2_000_000), ds); !res.probing {
		t.Fatal("no probe once the padding could go out")
	}
	if a.probesFailed != 0 {
		t.Fatalf("%d probes failed", a.probesFailed)
	}
}

func TestAFailedProbeKeepsTheLayerAndDoublesTheWait(t *testing.T) {
	a := newAllocator()
	ds := []trackDemand{audio(1), camera(2, 0)}
	a.update(sampleAt(0, 400_000), ds)
	probeStarts := func(from, to int64, fail bool) []int64 {
		var starts []int64
		for now := from; now < to; now += 100 * ms {
			s := sampleAt(now, 800_000)
			if fail && a.probeTarget > 0 {
				s.queue = 40 * time.Millisecond // the path queues under the probe
			}
			was := a.probeTarget > 0
			res := a.update(s, ds)
			if res.layers[1] != 0 {
				t.Fatalf("moved to layer %d at %d ms though every probe failed", res.layers[1], now/ms)
			}
			if res.probing && !was {
				starts = append(starts, now)
			}
		}
		return starts
	}
	starts := probeStarts(100*ms, 20*int64(time.Second), true)
	if len(starts) < 3 {
		t.Fatalf("probes at %v ms, want several", starts)
	}
	var gaps []int64
	for i := 1; i < len(starts); i++ {
		gaps = append(gaps, (starts[i]-starts[i-1])/ms)
	}
	if gaps[1] <= gaps[0] || gaps[len(gaps)-1] > int64(upWaitMax/time.Millisecond)+300 {
		t.Fatalf("gaps between failed probes %v ms: want them growing, up to about %v", gaps, upWaitMax)
	}
	if a.probesFailed != uint64(len(starts)) && a.probesFailed != uint64(len(starts)-1) {
		t.Fatalf("%d probes, %d counted failed", len(starts), a.probesFailed)
	}
}

func TestAllocatorPausesVideoOnlyWhenItsLowestLayerStarvesForAWhile(t *testing.T) {
	a := newAllocator()
	ds := []trackDemand{audio(1), camera(2, 0)}
	a.update(sampleAt(0, 400_000), ds)
	now := 100 * ms
	for ; now < 100*ms+int64(pauseHold); now += 100 * ms {
		res := a.update(sampleAt(now, 100_000), ds)
		if res.layers[0] != 0 || res.layers[1] != 0 {
			t.Fatalf("at %d ms: layers %v, want audio and the lowest layer kept for %v", now/ms, res.layers, pauseHold)
		}
	}
	res := a.update(sampleAt(now+100*ms, 100_000), ds)
	if res.layers[0] != 0 || res.layers[1] != -1 {
		t.Fatalf("after %v starved: layers %v, want audio on and video paused", pauseHold, res.layers)
	}
	// A brief dip does not pause.
	b := newAllocator()
	b.update(sampleAt(0, 400_000), ds)
	b.update(sampleAt(100*ms, 100_000), ds)
	b.update(sampleAt(200*ms, 400_000), ds)
	for now := 300 * ms; now < 300*ms+int64(pauseHold); now += 100 * ms {
		if res := b.update(sampleAt(now, 100_000), ds); res.layers[1] != 0 {
			t.Fatalf("paused at %d ms: the starving restarted at 300 ms", now/ms)
		}
	}
}

func TestAllocatorNeverExceedsTheRequestedMaximum(t *testing.T) {
	a := newAllocator()
	d := camera(2, 1)
	d.max = 1
	ds := []trackDemand{audio(1), d}
	for now := int64(0); now < 10*int64(time.Second); now += 100 * ms {
		res := a.update(sampleAt(now, 10_000_000), ds)
		if res.layers[1] > 1 {
			t.Fatalf("layer %d above the requested maximum 1", res.layers[1])
		}
		if res.probing {
			t.Fatal("probing though nothing can go up")
		}
	}
}
