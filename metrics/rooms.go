package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/starling-sfu/starling/signaling/rtc"
	"github.com/starling-sfu/starling/webhooks"
)

var (
	rtcParticipantsDesc = desc("rtc_participants", "Participants connected through the LiveKit room protocol (/rtc).")
	rtcJoinsDesc        = desc("rtc_joins_total", "Participants that joined through /rtc.")
	rtcResumesDesc      = desc("rtc_resumes_total", "Participants that resumed after their signal connection dropped.")
	rtcRefusedDesc      = desc("rtc_refused_total", "Joins refused (token, permissions, capacity).")
	rtcBadDesc          = desc("rtc_bad_messages_total", "Signal messages or data packets refused as malformed, oversized, over the rate or not allowed.")
	rtcUnknownDesc      = desc("rtc_unknown_messages_total", "Signal messages of a type the server does not handle (ignored).")
	rtcDataDesc         = desc("rtc_data_packets_total", "Data packets forwarded to participants.")
	webhookSentDesc     = desc("webhooks_sent_total", "Webhook events delivered.")
	webhookFailedDesc   = desc("webhook_attempts_failed_total", "Webhook delivery attempts that failed.")
	webhookDroppedDesc  = desc("webhooks_dropped_total", "Webhook events given up on (queue full, retries exhausted, shutdown).")
)

// Rooms reads the room server's and the webhook notifier's counters on each
// scrape; Webhooks may be nil.
type Rooms struct {
	Server   *rtc.Server
	Webhooks *webhooks.Notifier
}

// Describe implements prometheus.Collector.
func (c *Rooms) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{rtcParticipantsDesc, rtcJoinsDesc, rtcResumesDesc, rtcRefusedDesc, rtcBadDesc,
		rtcUnknownDesc, rtcDataDesc, webhookSentDesc, webhookFailedDesc, webhookDroppedDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Rooms) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	m := c.Server.Metrics()
	ch <- prometheus.MustNewConstMetric(rtcParticipantsDesc, prometheus.GaugeValue, float64(c.Server.Participants()))
	counter(rtcJoinsDesc, m.Joins.Load())
	counter(rtcResumesDesc, m.Resumes.Load())
	counter(rtcRefusedDesc, m.Refused.Load())
	counter(rtcBadDesc, m.BadMessages.Load())
	counter(rtcUnknownDesc, m.UnknownMessages.Load())
	counter(rtcDataDesc, m.DataPackets.Load())
	st := c.Webhooks.Stats()
	counter(webhookSentDesc, st.Sent)
	counter(webhookFailedDesc, st.Failed)
	counter(webhookDroppedDesc, st.Dropped)
}
