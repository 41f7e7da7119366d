package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/starling-sfu/starling/chat"
)

var (
	chatClientsDesc  = desc("chat_clients", "Chat websocket clients connected to this node.")
	chatInDesc       = desc("chat_messages_in_total", "Chat requests accepted from clients (messages, reactions, votes, moderation).")
	chatOutDesc      = desc("chat_messages_out_total", "Chat frames written to clients.")
	chatSlowDesc     = desc("chat_slow_clients_dropped_total", "Chat clients disconnected because their send queue filled.")
	chatVotesDesc    = desc("chat_votes_total", "Poll votes accepted.")
	chatRejectedDesc = desc("chat_rejected_total", "Well-formed chat requests refused (rate limits, permissions, closed polls…).")
	chatBadDesc      = desc("chat_bad_frames_total", "Chat frames that were not a valid request.")
)

// Chat reads the chat server's counters on each scrape.
type Chat struct {
	Stats *chat.Stats
}

// Describe implements prometheus.Collector.
func (c *Chat) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{chatClientsDesc, chatInDesc, chatOutDesc, chatSlowDesc, chatVotesDesc, chatRejectedDesc, chatBadDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Chat) Collect(ch chan<- prometheus.Metric) {
	st := c.Stats
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	ch <- prometheus.MustNewConstMetric(chatClientsDesc, prometheus.GaugeValue, float64(st.Clients.Load()))
	counter(chatInDesc, st.MessagesIn.Load())
	counter(chatOutDesc, st.MessagesOut.Load())
	counter(chatSlowDesc, st.SlowClientsDropped.Load())
	counter(chatVotesDesc, st.Votes.Load())
	counter(chatRejectedDesc, st.Rejected.Load())
	counter(chatBadDesc, st.BadFrames.Load())
}
