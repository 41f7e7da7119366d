package netpath

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/starling-sfu/starling/bwe"
)

// With STARLING_RECORD_TWCC=file, the capped-viewer test records the capped
// connection's transport-wide feedback, with GCC's estimate after each
// packet, the layers' measured bitrates and the test's events, as the JSON
// lines the SFU's allocator replay test reads (sfu/testdata).
const recordEnv = "STARLING_RECORD_TWCC"

// fixtureLine is one line of a recording, at ms since the recording began:
// a feedback packet with the estimate after it; an estimate the allocator
// was given (tick), with the loss and queueing delay of its interval; the
// tracks' bitrates; or an event of the test.
type fixtureLine struct {
	Ms        int64    `json:"ms"`
	TWCC      string   `json:"twcc,omitempty"` // the RTCP packet, base64
	Tick      bool     `json:"tick,omitempty"`
	Estimate  int      `json:"estimate,omitempty"`
	Congested bool     `json:"congested,omitempty"`
	QueueUs   int64    `json:"queueUs,omitempty"`  // queueing delay, µs
	Received  int      `json:"received,omitempty"` // arrival rate, bit/s
	Loss      *float64 `json:"loss,omitempty"`     // ticks: fraction lost in the interval, absent when unknown
	Sent      uint64   `json:"sent,omitempty"`     // ticks: bytes sent on the connection so far
	Rates     []int    `json:"rates,omitempty"`    // audio, then video layers q, h, f, bit/s
	Event     string   `json:"event,omitempty"`
}

var rec struct {
	mu     sync.Mutex
	on     bool
	start  time.Time
	conns  map[string][]fixtureLine
	common []fixtureLine
	rates  func() []int
}

// recorder returns the trace to give the server's estimators, nil unless
// recording; the file is written when the test ends.
func recorder(t *testing.T) func(string, bwe.Record) {
	file := os.Getenv(recordEnv)
	if file == "" {
		return nil
	}
	rec.mu.Lock()
	rec.on, rec.start, rec.conns = true, time.Now(), map[string][]fixtureLine{}
	rec.mu.Unlock()
	stop := make(chan struct{})
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			rec.mu.Lock()
			if rec.rates != nil {
				rec.common = append(rec.common, fixtureLine{Ms: time.Since(rec.start).Milliseconds(), Rates: rec.rates()})
			}
			rec.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		close(stop)
		writeRecording(t, file)
	})
	return func(conn string, r bwe.Record) {
		l := fixtureLine{
			Ms: r.At.Sub(rec.start).Milliseconds(), Estimate: r.Estimate.Bitrate, Congested: r.Estimate.Congested,
			QueueUs: r.Estimate.QueueDelay.Microseconds(), Received: r.Estimate.Received,
		}
		if r.Feedback == nil {
			l.Tick, l.Sent = true, r.Estimate.Sent
			if loss := r.Estimate.Loss; loss >= 0 {
				l.Loss = &loss
			}
		} else {
			raw, err := r.Feedback.Marshal()
			if err != nil {
				return
			}
			l.TWCC = base64.StdEncoding.EncodeToString(raw)
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.conns[conn] = append(rec.conns[conn], l)
	}
}

// recordRates sets where the recording reads bitrates from.
func recordRates(f func() []int) {
	rec.mu.Lock()
	rec.rates = f
	rec.mu.Unlock()
}

// markRecord notes an event in the recording.
func markRecord(event string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.on {
		rec.common = append(rec.common, fixtureLine{Ms: time.Since(rec.start).Milliseconds(), Event: event})
	}
}

// writeRecording writes the connection whose estimate fell lowest (the
// capped one) with the common lines, in time order.
func writeRecording(t *testing.T, file string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var pick []fixtureLine
	low := 0
	for _, lines := range rec.conns {
		if len(lines) == 0 {
			continue
		}
		m := lines[0].Estimate
		for _, l := range lines {
			m = min(m, l.Estimate)
		}
		if pick == nil || m < low {
			pick, low = lines, m
		}
	}
	all := append(append([]fixtureLine(nil), rec.common...), pick...)
	sortLines(all) // stable: a connection's lines keep their order
	f, err := os.Create(file)
	if err != nil {
		t.Errorf("record: %v", err)
		return
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	for _, l := range all {
		_ = enc.Encode(l)
	}
	t.Logf("recorded %d feedback packets (lowest estimate %d bit/s) to %s", len(pick), low, file)
	rec.on = false
}

func sortLines(ls []fixtureLine) {
	for i := 1; i < len(ls); i++ {
		for j := i; j > 0 && ls[j].Ms < ls[j-1].Ms; j-- {
			ls[j], ls[j-1] = ls[j-1], ls[j]
		}
	}
}
