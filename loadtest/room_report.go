package loadtest

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// RoomReport is what a room run measured. Rates, loss and latency cover the
// measurement window, which starts once every subscription is established
// and the layers forwarded stopped changing (or the settle time ran out);
// join and first-packet times cover the whole run.
type RoomReport struct {
	Mode         string   `json:"mode"`
	Codec        string   `json:"codec"`
	Simulcast    bool     `json:"simulcast"`
	AdaptiveSize string   `json:"adaptive_size,omitempty"`
	Participants int      `json:"participants"`
	Connected    int      `json:"connected"` // joined and published
	Failed       int      `json:"failed"`
	Dropped      int      `json:"dropped"` // sessions the server ended during the run
	Errors       []string `json:"errors,omitempty"`
	// Settle is how long the run waited, after the joins, for every
	// subscription and for the layers to stop changing; Settled says
	// whether they did before RoomConfig.Settle.
	Settle  float64 `json:"settle_seconds"`
	Settled bool    `json:"settled"`
	Window  float64 `json:"window_seconds"`
	Elapsed float64 `json:"elapsed_seconds"`

	Expected    int `json:"subscriptions_expected"`
	Established int `json:"subscriptions_established"`
	Foreign     int `json:"foreign_tracks,omitempty"` // tracks of participants not of this run

	DeliveredPackets int64   `json:"delivered_packets"`
	PacketsPerSecond float64 `json:"packets_per_second"`
	MbitPerSecond    float64 `json:"mbit_per_second"`
	LossPercent      float64 `json:"loss_percent"`
	WorstLossPercent float64 `json:"worst_subscription_loss_percent"`
	// DeliveredOfSentMin is the lowest, over the subscriptions, of the
	// packets received in the window over those the publisher sent on the
	// layer forwarded; 0 when a subscription is missing.
	DeliveredOfSentMin float64 `json:"delivered_of_sent_min_percent"`

	Join    Percentiles     `json:"join_ms"`    // Join call to connected
	Latency Percentiles     `json:"latency_ms"` // publisher send to subscriber receive, both kinds
	Video   *RoomKindReport `json:"video,omitempty"`
	Audio   *RoomKindReport `json:"audio,omitempty"`

	PublisherStalls  uint64       `json:"publisher_stalls"` // times a clip player fell behind
	TesterCores      float64      `json:"tester_cores"`
	TesterCoresSetup float64      `json:"tester_cores_during_setup"`
	Server           *ServerUsage `json:"server,omitempty"`

	Subscriptions []RoomSubscription `json:"subscriptions"`
}

// RoomKindReport is the video or the audio half of a RoomReport.
type RoomKindReport struct {
	Expected    int `json:"subscriptions_expected"`
	Established int `json:"subscriptions_established"`
	// Layers counts the video subscriptions by the layer forwarded at the
	// end of the window.
	Layers        map[string]int `json:"layers,omitempty"`
	LayerSwitches int            `json:"layer_switches"`

	Packets          int64   `json:"delivered_packets"`
	Padding          int64   `json:"padding_packets,omitempty"`
	PacketsPerSecond float64 `json:"packets_per_second"`
	MbitPerSecond    float64 `json:"mbit_per_second"`
	SubscriptionPPS  Spread  `json:"subscription_packets_per_second"`
	SubscriptionKbps Spread  `json:"subscription_kbit_per_second"`

	// MatchedSent is what the publishers sent between the first and the
	// last frame each subscription matched; LostPackets is what of it did
	// not arrive.
	MatchedSent        int64   `json:"matched_sent_packets"`
	LostPackets        int64   `json:"lost_packets"`
	LossPercent        float64 `json:"loss_percent"`
	WorstLossPercent   float64 `json:"worst_subscription_loss_percent"`
	DeliveredOfSentMin float64 `json:"delivered_of_sent_min_percent"`
	// Short counts the subscriptions that received less than shortOfSent
	// of what their publisher sent on the layer forwarded: lost, or paused
	// or held back by the SFU, which is not loss.
	Short int `json:"short_subscriptions"`

	FirstPacket Percentiles `json:"first_packet_ms"` // from the later of join and the publisher's start
	Latency     Percentiles `json:"latency_ms"`
}

// shortOfSent is the share of what its publisher sent on the forwarded
// layer below which a subscription counts as short.
const shortOfSent = 90

// Spread is the minimum, median and maximum of a per-subscription figure.
type Spread struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

func spread(v []float64) Spread {
	if len(v) == 0 {
		return Spread{}
	}
	sort.Float64s(v)
	return Spread{Min: v[0], Median: v[len(v)/2], Max: v[len(v)-1]}
}

// RoomSubscription is one participant receiving one remote track.
type RoomSubscription struct {
	Subscriber    string `json:"subscriber"`
	Publisher     string `json:"publisher"`
	Kind          string `json:"kind"`
	Layer         string `json:"layer,omitempty"` // forwarded at the end of the window
	LayerSwitches int    `json:"layer_switches,omitempty"`
	Received      int64  `json:"received"` // distinct packets in the window
	// SentOnLayer is what the publisher sent in the window on the layer
	// forwarded; after a layer switch, what it sent between matched frames.
	SentOnLayer      int64       `json:"sent_on_layer"`
	MatchedSent      int64       `json:"matched_sent"`
	Lost             int64       `json:"lost"`
	LossPercent      float64     `json:"loss_percent"`
	DeliveredPercent float64     `json:"delivered_of_sent_percent"`
	PacketsPerSecond float64     `json:"packets_per_second"`
	Kbps             float64     `json:"kbit_per_second"`
	FirstPacketMs    float64     `json:"first_packet_ms"`
	Latency          Percentiles `json:"latency_ms"`
}

// report sums up the window so far; detail adds each subscription's
// latency percentiles, which the progress line does without.
func (r *roomRun) report(window time.Duration, detail bool) *RoomReport {
	rep := &RoomReport{
		Mode: "room", Codec: string(r.cfg.Codec), Simulcast: !r.cfg.NoSimulcast && !r.cfg.NoVideo,
		Participants: r.cfg.Participants, Failed: int(r.failed.Load()), Window: window.Seconds(),
		Join: r.joins.percentiles(), Latency: r.latency.percentiles(),
	}
	if r.cfg.AdaptiveWidth > 0 && r.cfg.AdaptiveHeight > 0 {
		rep.AdaptiveSize = fmt.Sprintf("%dx%d", r.cfg.AdaptiveWidth, r.cfg.AdaptiveHeight)
	}
	r.mu.Lock()
	rep.Errors = append([]string(nil), r.errs...)
	r.mu.Unlock()
	var kinds [numKinds]*RoomKindReport
	for k, n := range r.expected() {
		if n > 0 {
			kinds[k] = &RoomKindReport{Expected: n, DeliveredOfSentMin: 100,
				FirstPacket: r.first[k].percentiles(), Latency: r.kindLatency[k].percentiles()}
		}
	}
	rep.Video, rep.Audio = kinds[kindVideo], kinds[kindAudio]
	if rep.Video != nil {
		rep.Video.Layers = map[string]int{}
	}
	secs := window.Seconds()
	var pps, kbps [numKinds][]float64
	seen := map[subKey]bool{}
	for _, p := range r.participants() {
		if p.published.Load() {
			rep.Connected++
		}
		if p.dropped.Load() {
			rep.Dropped++
		}
		if pub := p.clip.Load(); pub != nil {
			rep.PublisherStalls += pub.Stalls()
		}
		p.subs.Range(func(_, v any) bool {
			s := v.(*subscription)
			kr := kinds[s.kind]
			if s.from == nil || kr == nil {
				rep.Foreign++
				return true
			}
			if k := (subKey{p, s.from, s.kind}); !seen[k] {
				seen[k] = true
				kr.Established++
			}
			sub := r.subscriptionReport(p, s, secs, detail)
			rep.Subscriptions = append(rep.Subscriptions, sub)
			kr.Packets += sub.Received
			kr.Padding += s.paddingCount()
			kr.MbitPerSecond += sub.Kbps / 1000
			kr.MatchedSent += sub.MatchedSent
			kr.LostPackets += sub.Lost
			kr.WorstLossPercent = max(kr.WorstLossPercent, sub.LossPercent)
			kr.DeliveredOfSentMin = min(kr.DeliveredOfSentMin, sub.DeliveredPercent)
			if sub.DeliveredPercent < shortOfSent {
				kr.Short++
			}
			kr.LayerSwitches += sub.LayerSwitches
			if s.kind == kindVideo {
				kr.Layers[sub.Layer]++
			}
			pps[s.kind] = append(pps[s.kind], sub.PacketsPerSecond)
			kbps[s.kind] = append(kbps[s.kind], sub.Kbps)
			return true
		})
	}
	rep.DeliveredOfSentMin = 100
	var matched, lost int64
	for k, kr := range kinds {
		if kr == nil {
			continue
		}
		if kr.Established < kr.Expected {
			kr.DeliveredOfSentMin = 0
			kr.Short += kr.Expected - kr.Established
		}
		if secs > 0 {
			kr.PacketsPerSecond = float64(kr.Packets) / secs
		}
		if kr.MatchedSent > 0 {
			kr.LossPercent = 100 * float64(kr.LostPackets) / float64(kr.MatchedSent)
		}
		kr.SubscriptionPPS, kr.SubscriptionKbps = spread(pps[k]), spread(kbps[k])
		rep.Expected += kr.Expected
		rep.Established += kr.Established
		rep.DeliveredPackets += kr.Packets
		rep.MbitPerSecond += kr.MbitPerSecond
		rep.WorstLossPercent = max(rep.WorstLossPercent, kr.WorstLossPercent)
		rep.DeliveredOfSentMin = min(rep.DeliveredOfSentMin, kr.DeliveredOfSentMin)
		matched += kr.MatchedSent
		lost += kr.LostPackets
	}
	if secs > 0 {
		rep.PacketsPerSecond = float64(rep.DeliveredPackets) / secs
	}
	if matched > 0 {
		rep.LossPercent = 100 * float64(lost) / float64(matched)
	}
	sort.Slice(rep.Subscriptions, func(i, j int) bool {
		a, b := rep.Subscriptions[i], rep.Subscriptions[j]
		if a.Subscriber != b.Subscriber {
			return a.Subscriber < b.Subscriber
		}
		if a.Publisher != b.Publisher {
			return a.Publisher < b.Publisher
		}
		return a.Kind > b.Kind // video first
	})
	return rep
}

func (s *subscription) paddingCount() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.padding
}

// subscriptionReport sums up subscription s of participant p.
func (r *roomRun) subscriptionReport(p *participant, s *subscription, secs float64, detail bool) RoomSubscription {
	w := s.window()
	sub := RoomSubscription{
		Subscriber: p.identity, Publisher: s.from.identity, Kind: kindNames[s.kind],
		LayerSwitches: w.switches, Received: w.received, MatchedSent: w.expected,
		Lost: max(0, w.expected-w.got), FirstPacketMs: float64(w.firstDelay) / 1e6,
	}
	if detail {
		sub.Latency = s.latency.percentiles()
	}
	if w.layer >= 0 {
		if s.kind == kindVideo {
			sub.Layer = layerNames[w.layer]
		}
		if w.switches == 0 {
			sub.SentOnLayer = s.from.sent.packets[w.layer].Load() - s.from.w0Sent[w.layer]
		} else {
			sub.SentOnLayer = w.expected
		}
	}
	if sub.MatchedSent > 0 {
		sub.LossPercent = 100 * float64(sub.Lost) / float64(sub.MatchedSent)
	}
	if sub.SentOnLayer > 0 {
		sub.DeliveredPercent = 100 * float64(sub.Received) / float64(sub.SentOnLayer)
	}
	if secs > 0 {
		sub.PacketsPerSecond = float64(w.received) / secs
		sub.Kbps = float64(w.bytes) * 8 / 1000 / secs
	}
	return sub
}

// establishedSummary says how many subscriptions of each kind are up.
func (rep *RoomReport) establishedSummary() string {
	var parts []string
	for _, k := range []struct {
		name string
		r    *RoomKindReport
	}{{"video", rep.Video}, {"audio", rep.Audio}} {
		if k.r != nil {
			parts = append(parts, fmt.Sprintf("%s %d/%d", k.name, k.r.Established, k.r.Expected))
		}
	}
	return strings.Join(parts, ", ")
}

// WriteTable prints the report for a person.
func (rep *RoomReport) WriteTable(w io.Writer) {
	tw, row := newTable(w)
	mode := fmt.Sprintf("room (%s, simulcast %v", rep.Codec, rep.Simulcast)
	if rep.AdaptiveSize != "" {
		mode += ", adaptive size " + rep.AdaptiveSize
	}
	row("mode", "%s)", mode)
	row("participants", "%d connected, %d failed, %d dropped of %d", rep.Connected, rep.Failed, rep.Dropped, rep.Participants)
	for _, e := range rep.Errors {
		row("  failure", "%s", e)
	}
	settled := "layers steady"
	if !rep.Settled {
		settled = "gave up"
	}
	row("window", "%.1f s after %.1f s settling (%s); run %.1f s", rep.Window, rep.Settle, settled, rep.Elapsed)
	row("subscriptions", "%d/%d established (%s)", rep.Established, rep.Expected, rep.establishedSummary())
	row("delivered", "%.0f packets/s, %.1f Mbit/s", rep.PacketsPerSecond, rep.MbitPerSecond)
	row("loss", "%.3f%% (worst subscription %.3f%%); delivered/sent on the forwarded layer ≥ %.1f%%",
		rep.LossPercent, rep.WorstLossPercent, rep.DeliveredOfSentMin)
	row("join (Join→connected)", "%s", rep.Join)
	row("forwarding latency", "%s", rep.Latency)
	for _, k := range []struct {
		name string
		r    *RoomKindReport
	}{{"video", rep.Video}, {"audio", rep.Audio}} {
		kr := k.r
		if kr == nil {
			continue
		}
		row(k.name, "%.0f packets/s, %.1f Mbit/s; loss %.3f%% (%d of %d), worst %.3f%%",
			kr.PacketsPerSecond, kr.MbitPerSecond, kr.LossPercent, kr.LostPackets, kr.MatchedSent, kr.WorstLossPercent)
		row("  delivered/sent", "min %.1f%%; %d of %d subscriptions under %d%%",
			kr.DeliveredOfSentMin, kr.Short, kr.Expected, shortOfSent)
		row("  per subscription", "packets/s min %.0f / median %.0f / max %.0f, kbit/s min %.0f / median %.0f",
			kr.SubscriptionPPS.Min, kr.SubscriptionPPS.Median, kr.SubscriptionPPS.Max, kr.SubscriptionKbps.Min, kr.SubscriptionKbps.Median)
		if kr.Padding > 0 && rep.Window > 0 {
			row("  padding", "%.0f packets/s (probes, not counted above)", float64(kr.Padding)/rep.Window)
		}
		if len(kr.Layers) > 0 {
			row("  layers forwarded", "%s (%d switches in the window)", layerSummary(kr.Layers), kr.LayerSwitches)
		}
		row("  first packet", "%s", kr.FirstPacket)
		row("  latency", "%s", kr.Latency)
	}
	row("tester CPU", "%.2f cores (%.2f while joining and settling), %d publisher stalls", rep.TesterCores, rep.TesterCoresSetup, rep.PublisherStalls)
	if s := rep.Server; s != nil {
		row("server CPU", "%.2f cores, %.2f µs per delivered packet", s.Cores, s.MicrosPerPacket)
		row("server memory", "%.1f MiB RSS, %.1f KiB per subscription", float64(s.RSSBytes)/(1<<20), float64(s.RSSPerSubscriber)/1024)
	}
	_ = tw.Flush()
}

func layerSummary(m map[string]int) string {
	var parts []string
	for _, l := range layerNames[:layerAudio] {
		if n := m[l]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", l, n))
		}
	}
	if n := m[""]; n > 0 {
		parts = append(parts, fmt.Sprintf("unmatched %d", n))
	}
	return strings.Join(parts, ", ")
}

// WriteJSON writes the report to path.
func (rep *RoomReport) WriteJSON(path string) error { return writeJSON(path, rep) }
