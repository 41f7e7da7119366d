package sfu

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/starling-sfu/starling/bwe"
)

var update = flag.Bool("update", false, "rewrite the allocator replay's golden decisions")

// fixtureLine is a line of a recording made by the network-path test
// (e2e/netpath, STARLING_RECORD_TWCC): see record_test.go there.
type fixtureLine struct {
	Ms        int64    `json:"ms"`
	TWCC      string   `json:"twcc"`
	Tick      bool     `json:"tick"`
	Estimate  int      `json:"estimate"`
	Congested bool     `json:"congested"`
	QueueUs   int64    `json:"queueUs"`
	Received  int      `json:"received"`
	Loss      *float64 `json:"loss"`
	Sent      uint64   `json:"sent"`
	Rates     []int    `json:"rates"`
	Event     string   `json:"event"`
}

func loadFixture(t *testing.T, name string) []fixtureLine {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []fixtureLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l fixtureLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, l)
	}
	return out
}

// replayStep is one decision of a replay.
type replayStep struct {
	ms    int64
	layer int // the video track's allocation
	probe int // while probing, the rate the probe aims at, bit/s
}

// replayAllocator runs the allocator over a recording of one viewer's
// connection: each tick gets the estimate recorded then, with the loss
// recounted from the transport-wide feedback packets that arrived since the
// previous tick, and the bitrates the tracks had. The DownTrack is modelled:
// a switch down happens at once (from the cached keyframe), a switch up at
// the publisher's next keyframe (every second). It returns the decisions
// and the times of the test's events.
func replayAllocator(t *testing.T, lines []fixtureLine) (steps []replayStep, events map[string]int64) {
	t.Helper()
	a := newAllocator()
	events = map[string]int64{}
	rates := []int{nominalAudioRate, nominalRates[0], nominalRates[1], nominalRates[2]}
	current, pendingUp := 2, -1 // the viewer starts on the top layer's cached keyframe
	var got, lost int
	var sent sendMeter
	last := replayStep{layer: 2}
	for _, l := range lines {
		switch {
		case l.Event != "":
			events[l.Event] = l.Ms
		case len(l.Rates) == 1+MaxLayers:
			rates = l.Rates
		case l.TWCC != "":
			raw, err := base64.StdEncoding.DecodeString(l.TWCC)
			if err != nil {
				t.Fatal(err)
			}
			var fb rtcp.TransportLayerCC
			if err := fb.Unmarshal(raw); err != nil {
				t.Fatalf("feedback at %d ms: %v", l.Ms, err)
			}
			r, x := bwe.FeedbackCounts(&fb)
			got, lost = got+r, lost+x
		case l.Tick:
			loss := -1.0
			if got+lost > 0 {
				loss = float64(lost) / float64(got+lost)
			}
			if (l.Loss == nil) != (loss < 0) || (l.Loss != nil && *l.Loss != loss) {
				t.Fatalf("tick at %d ms: the feedback since the last tick counts loss %v, the estimator said %v", l.Ms, loss, l.Loss)
			}
			got, lost = 0, 0
			if pendingUp >= 0 && l.Ms/1000 > (l.Ms-int64(allocTick/time.Millisecond))/1000 {
				current, pendingUp = pendingUp, -1 // a keyframe went by
			}
			ds := []trackDemand{
				{key: 1, audio: true, rates: [MaxLayers]int{rates[0]}, current: 0},
				{key: 2, rates: [MaxLayers]int{rates[1], rates[2], rates[3]}, max: MaxLayers - 1, current: current},
			}
			res := a.update(allocSample{
				now: l.Ms * int64(time.Millisecond), estimate: l.Estimate, congested: l.Congested, loss: loss,
				queue: time.Duration(l.QueueUs) * time.Microsecond, received: l.Received, canProbe: current >= 0,
				sent: sent.rate(l.Sent, l.Ms*int64(time.Millisecond)),
			}, ds)
			switch want := res.layers[1]; {
			case want < current:
				current, pendingUp = want, -1
			case want > current:
				pendingUp = want
			}
			if res.layers[1] != last.layer || res.target != last.probe {
				last = replayStep{ms: l.Ms, layer: res.layers[1], probe: res.target}
				steps = append(steps, last)
			}
		}
	}
	return steps, events
}

func (s replayStep) String() string {
	out := fmt.Sprintf("%6d ms  layer %s", s.ms, LayerName(s.layer))
	if s.layer < 0 {
		out = fmt.Sprintf("%6d ms  paused", s.ms)
	}
	if s.probe > 0 {
		out += fmt.Sprintf("  probing up to %d kbit/s", s.probe/1000)
	}
	return out
}

// TestAllocatorReplayOfACappedPathIsDeterministicAndTimely replays the
// transport-wide feedback recorded from a viewer whose path was capped to
// 400 kbit/s for 12 s and then uncapped (the network-path test, recorded
// with STARLING_RECORD_TWCC). The decisions are the same on every run and
// as in the golden file, and they have the right shape: the top layer until
// the cap, the lowest within a second of it and until it is lifted, never a
// pause, the top again within 15 s of the lift.
func TestAllocatorReplayOfACappedPathIsDeterministicAndTimely(t *testing.T) {
	const fixture = "testdata/twcc-capped-400kbit.jsonl"
	lines := loadFixture(t, fixture)
	steps, events := replayAllocator(t, lines)
	again, _ := replayAllocator(t, lines)
	if !slices.Equal(steps, again) {
		t.Fatalf("two replays of the same feedback decided differently:\n%v\n%v", steps, again)
	}

	var b strings.Builder
	for _, s := range steps {
		fmt.Fprintln(&b, s)
	}
	golden := strings.TrimSuffix(fixture, ".jsonl") + ".golden"
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if b.String() != string(want) {
		t.Errorf("decisions differ from %s (run with -update if the change is meant):\ngot:\n%swant:\n%s", golden, b.String(), want)
	}

	capAt, ok1 := events["cap 400kbit"]
	uncapAt, ok2 := events["uncap"]
	if !ok1 || !ok2 {
		t.Fatalf("fixture lacks the cap and uncap events: %v", events)
	}
	layerAt := func(ms int64) int {
		l := 2
		for _, s := range steps {
			if s.ms > ms {
				break
			}
			l = s.layer
		}
		return l
	}
	var dropped, recovered int64 = -1, -1
	for _, s := range steps {
		switch {
		case s.layer < 0:
			t.Errorf("paused at %d ms", s.ms)
		case s.ms < capAt && s.layer != 2:
			t.Errorf("left the top layer at %d ms, before the cap at %d ms", s.ms, capAt)
		case s.ms >= capAt && s.ms < uncapAt && dropped >= 0 && s.layer != 0:
			t.Errorf("moved to layer %d at %d ms while capped", s.layer, s.ms)
		}
		if s.ms >= capAt && s.layer == 0 && dropped < 0 {
			dropped = s.ms - capAt
		}
		if s.ms >= uncapAt && s.layer == 2 && recovered < 0 {
			recovered = s.ms - uncapAt
		}
	}
	t.Logf("%d decisions; dropped to the lowest layer %d ms after the cap, back on top %d ms after the lift", len(steps), dropped, recovered)
	if dropped < 0 || dropped > 1000 {
		t.Errorf("dropped to the lowest layer %d ms after the cap, want within 1000", dropped)
	}
	if layerAt(uncapAt) != 0 {
		t.Errorf("at the lift the layer was %d, want 0", layerAt(uncapAt))
	}
	if recovered < 0 || recovered > 15000 {
		t.Errorf("back on the top layer %d ms after the lift, want within 15000", recovered)
	}
}
