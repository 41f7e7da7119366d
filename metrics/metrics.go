// Package metrics exposes Starling's counters to Prometheus. It reads the
// SFU's and the signaling server's own counters at scrape time, so the packet
// path only ever does atomic adds.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/starling-sfu/starling/sfu"
	"github.com/starling-sfu/starling/signaling"
)

const ns = "starling"

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(ns+"_"+name, help, labels, nil)
}

var (
	roomsDesc        = desc("rooms", "Rooms with at least one participant.")
	participantsDesc = desc("participants", "Participants in rooms (publishers).")
	tracksDesc       = desc("tracks", "Published tracks.", "kind")
	subsDesc         = desc("subscriptions", "Subscriber DownTracks attached to published tracks.")
	sessionsDesc     = desc("sessions", "Live WHIP and WHEP sessions.", "kind")
	packetsInDesc    = desc("packets_in_total", "RTP packets received from publishers.", "kind", "layer")
	bytesInDesc      = desc("bytes_in_total", "RTP bytes received from publishers.", "kind", "layer")
	packetsOutDesc   = desc("packets_out_total", "RTP packets forwarded to subscribers.", "kind", "layer")
	bytesOutDesc     = desc("bytes_out_total", "RTP bytes forwarded to subscribers.", "kind", "layer")
	nacksDesc        = desc("nacks_total", "Packets NACKed by subscribers.")
	rtxDesc          = desc("retransmits_total", "Packets retransmitted from the cache.")
	plisDesc         = desc("plis_total", "Keyframe requests sent to publishers (after throttling).")
	kfWaitsDesc      = desc("keyframe_waits_total", "Times a subscriber waited for a keyframe to start or switch layers.")
	cachedDesc       = desc("cached_keyframe_starts_total", "Subscribers started on a cached keyframe.")
	subConnsDesc     = desc("subscriber_connections", "Subscriber connections, by where their bandwidth estimate comes from.", "source")
	estimateDesc     = desc("subscriber_estimate_bits", "Bandwidth estimates of subscriber connections that have one, bit/s.")
	videoLayerDesc   = desc("subscriber_video_tracks", "Subscribers' video tracks by the layer forwarded (paused: for lack of bandwidth).", "layer")
	switchesDesc     = desc("layer_switches_total", "Simulcast layer switches of subscribers, by direction.", "direction")
	pausesDesc       = desc("video_pauses_total", "Times a subscriber's video was paused for lack of bandwidth.")
	pausedDesc       = desc("video_paused_seconds_total", "Time subscribers' video spent paused for lack of bandwidth.")
	probesDesc       = desc("bandwidth_probes_total", "Bandwidth probes sent before stepping a subscriber up, by result (failed: the path showed congestion).", "result")
	postsDesc        = desc("signaling_requests_total", "WHIP/WHEP POSTs answered, by outcome.", "kind", "outcome")
	postSecondsDesc  = desc("signaling_created_seconds_total", "Time spent answering successful WHIP/WHEP POSTs.", "kind")
)

// Collector reads the node's counters on each scrape.
type Collector struct {
	SFU       *sfu.SFU
	Signaling *signaling.Server
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{roomsDesc, participantsDesc, tracksDesc, subsDesc, sessionsDesc,
		packetsInDesc, bytesInDesc, packetsOutDesc, bytesOutDesc, nacksDesc, rtxDesc, plisDesc, kfWaitsDesc,
		cachedDesc, subConnsDesc, estimateDesc, videoLayerDesc, switchesDesc, pausesDesc, pausedDesc, probesDesc,
		postsDesc, postSecondsDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	rooms := c.SFU.Rooms()
	participants, audio, video := 0, 0, 0
	for _, r := range rooms {
		for _, p := range r.Participants() {
			participants++
			for _, t := range p.Tracks() {
				if t.Codec().IsVideo() {
					video++
				} else {
					audio++
				}
			}
		}
	}
	gauge(roomsDesc, float64(len(rooms)))
	gauge(participantsDesc, float64(participants))
	gauge(tracksDesc, float64(audio), "audio")
	gauge(tracksDesc, float64(video), "video")
	st := c.SFU.Stats()
	gauge(subsDesc, float64(st.Subscriptions.Load()))
	for k, kind := range []string{"audio", "video"} {
		for l := range sfu.MaxLayers {
			if kind == "audio" && l > 0 {
				continue
			}
			name := sfu.LayerName(l)
			counter(packetsInDesc, st.PacketsIn[k][l].Load(), kind, name)
			counter(bytesInDesc, st.BytesIn[k][l].Load(), kind, name)
			counter(packetsOutDesc, st.PacketsOut[k][l].Load(), kind, name)
			counter(bytesOutDesc, st.BytesOut[k][l].Load(), kind, name)
		}
	}
	counter(nacksDesc, st.NACKs.Load())
	counter(rtxDesc, st.Retransmits.Load())
	counter(plisDesc, st.PLIs.Load())
	counter(kfWaitsDesc, st.KeyframeWaits.Load())
	counter(cachedDesc, st.CachedStarts.Load())
	c.collectSubscribers(ch, st)
	if c.Signaling != nil {
		whip, whep := c.Signaling.SessionCounts()
		gauge(sessionsDesc, float64(whip), "whip")
		gauge(sessionsDesc, float64(whep), "whep")
		m := c.Signaling.Metrics()
		for i, kind := range []string{"whip", "whep"} {
			counter(postsDesc, m.Requests[i].Load(), kind, "created")
			counter(postsDesc, m.Failures[i].Load(), kind, "error")
			ch <- prometheus.MustNewConstMetric(postSecondsDesc, prometheus.CounterValue, float64(m.PostDuration[i].Load())/1e9, kind)
		}
	}
}

// estimateBuckets are the upper bounds of the estimate histogram, bit/s.
var estimateBuckets = []float64{100e3, 250e3, 500e3, 1e6, 2e6, 5e6, 10e6}

// collectSubscribers aggregates the subscribers' bandwidth state: counts by
// estimate source and by layer, a histogram of estimates, and the switch,
// pause and probe counters. Nothing is labelled by subscriber, so the series
// stay few however many there are.
func (c *Collector) collectSubscribers(ch chan<- prometheus.Metric, st *sfu.Stats) {
	// Sources and layers are listed in full, so that a series at 0 exists.
	sources := map[string]float64{"twcc": 0, "remb": 0, "none": 0}
	layers := map[string]float64{"q": 0, "h": 0, "f": 0, "paused": 0, "none": 0}
	buckets := make(map[float64]uint64, len(estimateBuckets))
	var n uint64
	var sum float64
	for _, sub := range c.SFU.Subscribers() {
		s := sub.Stats()
		sources[s.Source]++
		if s.Source != "none" {
			n++
			sum += float64(s.Estimate)
			for _, b := range estimateBuckets {
				if float64(s.Estimate) <= b {
					buckets[b]++
				}
			}
		}
		for _, tr := range s.Tracks {
			if tr.Kind != "video" {
				continue
			}
			switch {
			case tr.Paused:
				layers["paused"]++
			default:
				layers[sfu.LayerName(tr.Layer)]++
			}
		}
	}
	for src, v := range sources {
		ch <- prometheus.MustNewConstMetric(subConnsDesc, prometheus.GaugeValue, v, src)
	}
	ch <- prometheus.MustNewConstHistogram(estimateDesc, n, sum, buckets)
	for l, v := range layers {
		ch <- prometheus.MustNewConstMetric(videoLayerDesc, prometheus.GaugeValue, v, l)
	}
	ch <- prometheus.MustNewConstMetric(switchesDesc, prometheus.CounterValue, float64(st.LayerUps.Load()), "up")
	ch <- prometheus.MustNewConstMetric(switchesDesc, prometheus.CounterValue, float64(st.LayerDowns.Load()), "down")
	ch <- prometheus.MustNewConstMetric(pausesDesc, prometheus.CounterValue, float64(st.Pauses.Load()))
	ch <- prometheus.MustNewConstMetric(pausedDesc, prometheus.CounterValue, c.SFU.PausedSeconds())
	probes, failed := st.Probes.Load(), st.ProbesFailed.Load()
	ch <- prometheus.MustNewConstMetric(probesDesc, prometheus.CounterValue, float64(probes-min(failed, probes)), "ok")
	ch <- prometheus.MustNewConstMetric(probesDesc, prometheus.CounterValue, float64(failed), "failed")
}

// Handler serves /metrics for c and more (e.g. TURN) plus Go runtime and
// process metrics.
func Handler(c *Collector, more ...prometheus.Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(more...)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
