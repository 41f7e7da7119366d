package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/starling-sfu/starling/turn"
)

var (
	turnAllocationsDesc = desc("turn_allocations", "Live allocations on the embedded TURN server.")
	turnBytesDesc       = desc("turn_relayed_bytes_total", "Payload bytes relayed by the embedded TURN server.", "direction")
	turnAuthDesc        = desc("turn_auth_failures_total", "TURN requests refused for expired, malformed or forged credentials.")
	turnQuotaDesc       = desc("turn_quota_refusals_total", "TURN allocations refused by the per-identity quota.")
	turnPermissionDesc  = desc("turn_permission_refusals_total", "TURN permissions refused for peers the relay may not reach.")
)

// TURN reads the embedded TURN server's counters on each scrape.
type TURN struct {
	Server *turn.Server
}

// Describe implements prometheus.Collector.
func (c *TURN) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{turnAllocationsDesc, turnBytesDesc, turnAuthDesc, turnQuotaDesc, turnPermissionDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *TURN) Collect(ch chan<- prometheus.Metric) {
	st := c.Server.Stats()
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	ch <- prometheus.MustNewConstMetric(turnAllocationsDesc, prometheus.GaugeValue, float64(st.Allocations))
	counter(turnBytesDesc, st.BytesToPeers, "to_peer")
	counter(turnBytesDesc, st.BytesFromPeers, "from_peer")
	counter(turnAuthDesc, st.AuthFailures)
	counter(turnQuotaDesc, st.QuotaRefusals)
	counter(turnPermissionDesc, st.PermissionRefusals)
}
