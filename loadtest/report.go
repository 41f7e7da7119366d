package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"text/tabwriter"
	"time"
)

// Report is what a run measured. Rates and loss cover the measurement
// window, after every subscriber joined.
type Report struct {
	Mode        string  `json:"mode"`
	Codec       string  `json:"codec"`
	Simulcast   bool    `json:"simulcast"`
	Subscribers int     `json:"subscribers"`
	Connected   int     `json:"connected"`
	Failed      int     `json:"failed"`
	Window      float64 `json:"window_seconds"`
	Elapsed     float64 `json:"elapsed_seconds"`

	DeliveredPackets int64   `json:"delivered_packets"`
	PacketsPerSecond float64 `json:"packets_per_second"`
	MbitPerSecond    float64 `json:"mbit_per_second"`
	// Per subscriber: delivered packets/s and kbit/s (min, median).
	SubscriberPPSMin    float64 `json:"subscriber_pps_min"`
	SubscriberPPSMedian float64 `json:"subscriber_pps_median"`
	SubscriberKbpsMin   float64 `json:"subscriber_kbps_min"`
	LossPercent         float64 `json:"loss_percent"`
	WorstLossPercent    float64 `json:"worst_subscriber_loss_percent"`
	JitterMs            float64 `json:"audio_jitter_ms"`

	Join       Percentiles `json:"join_ms"`        // WHEP POST to connected
	FirstVideo Percentiles `json:"first_video_ms"` // connected to first video packet
	Latency    Percentiles `json:"latency_ms"`     // publisher send to subscriber receive

	TesterCores      float64      `json:"tester_cores"`
	TesterCoresSetup float64      `json:"tester_cores_during_setup"`
	Server           *ServerUsage `json:"server,omitempty"`
}

// ServerUsage is the server process's cost during the window.
type ServerUsage struct {
	PID              int     `json:"pid"`
	Cores            float64 `json:"cores"`
	MicrosPerPacket  float64 `json:"cpu_us_per_delivered_packet"`
	RSSBytes         int64   `json:"rss_bytes"`
	RSSPerSubscriber int64   `json:"rss_bytes_per_subscriber"`
}

func (r *runner) report(window time.Duration) *Report {
	rep := &Report{
		Mode: r.cfg.Mode, Codec: string(r.cfg.Codec), Simulcast: r.cfg.Simulcast,
		Subscribers: r.cfg.Subscribers, Failed: int(r.failed.Load()), Window: window.Seconds(),
		Join: r.joins.percentiles(), FirstVideo: r.first.percentiles(), Latency: r.latency.percentiles(),
	}
	var pps []float64
	var kbps []float64
	var exp, recv int64
	var jitter float64
	secs := window.Seconds()
	for _, v := range r.snapshotViewers() {
		if v.connected.Load() == 0 {
			continue
		}
		rep.Connected++
		v.mu.Lock()
		e := v.video.expected() - v.vExp + v.audio.expected() - v.aExp
		g := v.video.received - v.vRecv + v.audio.received - v.aRecv
		jitter += v.jitter
		v.mu.Unlock()
		exp += e
		recv += g
		if e > 0 {
			if l := 100 * float64(e-g) / float64(e); l > rep.WorstLossPercent {
				rep.WorstLossPercent = l
			}
		}
		rep.DeliveredPackets += g
		if secs > 0 {
			pps = append(pps, float64(g)/secs)
			kbps = append(kbps, float64(v.bytes.Load())*8/1000/secs)
			rep.MbitPerSecond += float64(v.bytes.Load()) * 8 / 1e6 / secs
		}
	}
	if secs > 0 {
		rep.PacketsPerSecond = float64(rep.DeliveredPackets) / secs
	}
	if exp > 0 {
		rep.LossPercent = 100 * float64(max(exp-recv, 0)) / float64(exp)
	}
	if rep.Connected > 0 {
		rep.JitterMs = 1000 * jitter / float64(rep.Connected)
	}
	if len(pps) > 0 {
		sort.Float64s(pps)
		sort.Float64s(kbps)
		rep.SubscriberPPSMin, rep.SubscriberPPSMedian, rep.SubscriberKbpsMin = pps[0], pps[len(pps)/2], kbps[0]
	}
	return rep
}

// String formats p for the report tables.
func (p Percentiles) String() string {
	if p.Count == 0 {
		return "-"
	}
	return fmt.Sprintf("p50 %.2f  p95 %.2f  p99 %.2f  max %.2f ms  (n=%d)", p.P50, p.P95, p.P99, p.Max, p.Count)
}

// newTable returns an aligned writer on w and a function that writes one
// "key  value" row to it; flush the writer when done.
func newTable(w io.Writer) (*tabwriter.Writer, func(k, f string, a ...any)) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	return tw, func(k, f string, a ...any) { fmt.Fprintf(tw, "%s\t"+f+"\n", append([]any{k}, a...)...) }
}

// WriteTable prints the report for a person.
func (rep *Report) WriteTable(w io.Writer) {
	tw, row := newTable(w)
	row("mode", "%s (%s, simulcast %v)", rep.Mode, rep.Codec, rep.Simulcast)
	row("subscribers", "%d connected, %d failed of %d", rep.Connected, rep.Failed, rep.Subscribers)
	row("window", "%.1f s (run %.1f s)", rep.Window, rep.Elapsed)
	row("delivered", "%.0f packets/s, %.1f Mbit/s", rep.PacketsPerSecond, rep.MbitPerSecond)
	row("per subscriber", "min %.0f / median %.0f packets/s, min %.0f kbit/s", rep.SubscriberPPSMin, rep.SubscriberPPSMedian, rep.SubscriberKbpsMin)
	row("loss", "%.3f%% (worst subscriber %.3f%%)", rep.LossPercent, rep.WorstLossPercent)
	row("audio jitter", "%.2f ms", rep.JitterMs)
	row("join (POST→connected)", "%s", rep.Join)
	row("first video packet", "%s", rep.FirstVideo)
	row("forwarding latency", "%s", rep.Latency)
	row("tester CPU", "%.2f cores (%.2f while joining)", rep.TesterCores, rep.TesterCoresSetup)
	if s := rep.Server; s != nil {
		row("server CPU", "%.2f cores, %.2f µs per delivered packet", s.Cores, s.MicrosPerPacket)
		row("server memory", "%.1f MiB RSS, %.1f KiB per subscriber", float64(s.RSSBytes)/(1<<20), float64(s.RSSPerSubscriber)/1024)
	}
	_ = tw.Flush()
}

// WriteJSON writes the report to path.
func (rep *Report) WriteJSON(path string) error { return writeJSON(path, rep) }

// WriteJSON writes the report to path.
func (rep *ChatReport) WriteJSON(path string) error { return writeJSON(path, rep) }

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
