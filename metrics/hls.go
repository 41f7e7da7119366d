package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	hlsbridge "github.com/starling-sfu/starling/hls-bridge"
)

var (
	hlsBackendDesc  = desc("hls_backend_info", "The transcoding backend the ffmpeg probe chose (1), by name; absent before the probe or when none works.", "backend")
	hlsLaddersDesc  = desc("hls_ladders", "LL-HLS ladders running (one ffmpeg each).")
	hlsPassDesc     = desc("hls_passthrough_ladders", "LL-HLS ladders made of an H.264 simulcast publisher's own layers (ffmpeg transcodes only their audio).")
	hlsCPUDesc      = desc("hls_transcode_cpu_seconds_total", "CPU time of the running ladders' ffmpeg processes.")
	hlsRestartsDesc = desc("hls_transcode_restarts_total", "ffmpeg restarts of the running ladders.")
	hlsDroppedDesc  = desc("hls_transcode_dropped_frames_total", "Input frames of the running ladders that never reached ffmpeg (it fell behind).")
	hlsSegmentsDesc = desc("hls_segments_total", "Segments packaged by the running ladders, all renditions.")
	hlsPartsDesc    = desc("hls_parts_total", "Parts packaged by the running ladders, all renditions.")
	hlsRequestsDesc = desc("hls_requests_total", "HLS requests served by the running ladders.")
	hlsBlockedDesc  = desc("hls_blocked_requests", "Blocking playlist and preload-hint requests waiting now.")
	hlsErrorsDesc   = desc("hls_errors_total", "HLS requests answered with an error by the running ladders, by status.", "status")
)

// HLS exports the LL-HLS ladders' counters. The counters of a ladder leave
// the totals when it stops (rate() copes with that as with a restart).
type HLS struct {
	Stats func() hlsbridge.Stats
}

// Describe implements prometheus.Collector.
func (h *HLS) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{hlsBackendDesc, hlsLaddersDesc, hlsPassDesc, hlsCPUDesc, hlsRestartsDesc, hlsDroppedDesc,
		hlsSegmentsDesc, hlsPartsDesc, hlsRequestsDesc, hlsBlockedDesc, hlsErrorsDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (h *HLS) Collect(ch chan<- prometheus.Metric) {
	s := h.Stats()
	if s.Backend != "" {
		ch <- prometheus.MustNewConstMetric(hlsBackendDesc, prometheus.GaugeValue, 1, s.Backend)
	}
	ch <- prometheus.MustNewConstMetric(hlsLaddersDesc, prometheus.GaugeValue, float64(s.Ladders))
	ch <- prometheus.MustNewConstMetric(hlsPassDesc, prometheus.GaugeValue, float64(s.Passthrough))
	ch <- prometheus.MustNewConstMetric(hlsCPUDesc, prometheus.CounterValue, s.CPU.Seconds())
	ch <- prometheus.MustNewConstMetric(hlsRestartsDesc, prometheus.CounterValue, float64(s.Restarts))
	ch <- prometheus.MustNewConstMetric(hlsDroppedDesc, prometheus.CounterValue, float64(s.Dropped))
	ch <- prometheus.MustNewConstMetric(hlsSegmentsDesc, prometheus.CounterValue, float64(s.Segments))
	ch <- prometheus.MustNewConstMetric(hlsPartsDesc, prometheus.CounterValue, float64(s.Parts))
	ch <- prometheus.MustNewConstMetric(hlsRequestsDesc, prometheus.CounterValue, float64(s.Requests))
	ch <- prometheus.MustNewConstMetric(hlsBlockedDesc, prometheus.GaugeValue, float64(s.Blocked))
	for i, code := range []string{"400", "404", "503"} {
		ch <- prometheus.MustNewConstMetric(hlsErrorsDesc, prometheus.CounterValue, float64(s.Status[i]), code)
	}
}
