package loadtest

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// HLSReport is what an LL-HLS run measured. Counts and distributions cover
// each viewer from its start to the end of the run; rates cover the window
// after the last viewer started.
type HLSReport struct {
	Mode        string  `json:"mode"` // "hls"
	URL         string  `json:"url"`
	Rendition   string  `json:"rendition_choice"`
	Audio       bool    `json:"audio"`
	PreloadHint bool    `json:"preload_hint"`
	Viewers     int     `json:"viewers"`
	Started     int     `json:"started"` // tuned in: playlists and init sections loaded
	Failed      int     `json:"failed"`
	Playing     int     `json:"playing"` // at the end of the window
	Ended       int     `json:"ended"`   // saw EXT-X-ENDLIST
	Window      float64 `json:"window_seconds"`
	Elapsed     float64 `json:"elapsed_seconds"`
	FirstError  string  `json:"first_error,omitempty"`

	// What the first viewer's video playlist said, in seconds.
	PartTarget     float64        `json:"part_target_seconds"`
	TargetDuration float64        `json:"target_duration_seconds"`
	PartHoldBack   float64        `json:"part_hold_back_seconds"`
	Renditions     map[string]int `json:"renditions"` // viewers per rendition

	Parts            int64            `json:"parts"`
	WindowParts      int64            `json:"window_parts"`
	MissedParts      int64            `json:"missed_parts"` // left the playlist, or failed, before a viewer got them
	Reloads          int64            `json:"playlist_reloads"`
	DeltaUpdates     int64            `json:"delta_updates"`         // reloads answered with EXT-X-SKIP
	MediaBytes       int64            `json:"media_bytes"`           // parts and init sections
	PlaylistBytes    int64            `json:"playlist_bytes"`        // as read, after gzip
	MbitPerSecond    float64          `json:"media_mbit_per_second"` // all viewers, over the window
	ViewerKbpsMin    float64          `json:"viewer_kbps_min"`
	ViewerKbpsMedian float64          `json:"viewer_kbps_median"`
	HTTPErrors       map[string]int64 `json:"http_errors"` // by status, or "timeout", "network", "bad playlist"
	StartRetries     int64            `json:"start_retries"`

	Stalls         int     `json:"stalls"`
	StalledSeconds float64 `json:"stalled_seconds"`
	ViewersStalled int     `json:"viewers_stalled"`
	MaxPartGapMs   float64 `json:"max_part_gap_ms"` // longest wait between two video parts, worst viewer

	FirstPart       Percentiles `json:"first_part_ms"`       // viewer start to its first video part
	StartPlayback   Percentiles `json:"start_playback_ms"`   // viewer start to playback start
	Reload          Percentiles `json:"blocking_reload_ms"`  // request to last byte
	PartFetch       Percentiles `json:"part_fetch_ms"`       // listed part, request to last byte
	HintFetch       Percentiles `json:"hinted_part_ms"`      // hinted part, request to last byte
	PartLatency     Percentiles `json:"part_latency_ms"`     // arrival minus the date the part's media ends
	PlaybackLatency Percentiles `json:"playback_latency_ms"` // wall clock minus the date of the media playing

	TesterCores      float64         `json:"tester_cores"`
	TesterCoresSetup float64         `json:"tester_cores_during_ramp"`
	Server           *HLSServerUsage `json:"server,omitempty"`

	PerViewer []HLSViewerReport `json:"per_viewer"`
}

// HLSViewerReport is one viewer's share.
type HLSViewerReport struct {
	Viewer         int     `json:"viewer"`
	Rendition      string  `json:"rendition"`
	Error          string  `json:"error,omitempty"`
	FirstPartMs    float64 `json:"first_part_ms"`
	Parts          int64   `json:"parts"`
	MissedParts    int64   `json:"missed_parts"`
	MediaBytes     int64   `json:"media_bytes"`
	Kbps           float64 `json:"kbps"` // over the window
	Stalls         int     `json:"stalls"`
	StalledSeconds float64 `json:"stalled_seconds"`
	MaxPartGapMs   float64 `json:"max_part_gap_ms"`
	Errors         int64   `json:"http_errors"`
	Playing        bool    `json:"playing"`
	LatencyMs      float64 `json:"playback_latency_ms"` // at the end
}

// HLSServerUsage is the server process's cost during the window.
type HLSServerUsage struct {
	PID           int     `json:"pid"`
	Cores         float64 `json:"cores"`
	MicrosPerPart float64 `json:"cpu_us_per_part"`
	RSSBytes      int64   `json:"rss_bytes"`
	RSSPerViewer  int64   `json:"rss_bytes_per_viewer"`
}

// report sums the viewers up at now; window > 0 is the final report,
// which also stops the players' clocks.
func (r *hlsRun) report(now time.Time, window time.Duration) *HLSReport {
	final := window > 0
	r.mu.Lock()
	st := r.stream
	errs := make(map[string]int64, len(r.errs))
	for k, n := range r.errs {
		errs[k] = n
	}
	r.mu.Unlock()
	rep := &HLSReport{
		Mode: "hls", URL: r.cfg.URL, Rendition: r.cfg.Rendition, Audio: !r.cfg.NoAudio, PreloadHint: r.cfg.PreloadHint,
		Viewers: r.cfg.Viewers, Window: window.Seconds(),
		PartTarget: st.partTarget.Seconds(), TargetDuration: st.targetDuration.Seconds(), PartHoldBack: st.holdBk.Seconds(),
		Renditions: map[string]int{}, HTTPErrors: errs,
		Parts: r.parts.Load(), Reloads: r.reloads.Load(), DeltaUpdates: r.deltas.Load(),
		MediaBytes: r.mediaBytes.Load(), PlaylistBytes: r.playlistBytes.Load(), StartRetries: r.startRetries.Load(),
		FirstPart: r.firstPart.percentiles(), Reload: r.reload.percentiles(), PartFetch: r.partFetch.percentiles(),
		HintFetch: r.hintFetch.percentiles(), PartLatency: r.partLatency.percentiles(), PlaybackLatency: r.playLatency.percentiles(),
	}
	if rep.Rendition == "" {
		rep.Rendition = "all-round-robin"
	}
	var startPlay histogram
	var kbps []float64
	for _, v := range r.snapshot() {
		vr := v.summary(window, final)
		if final {
			rep.PerViewer = append(rep.PerViewer, vr.HLSViewerReport)
		}
		if vr.Error != "" {
			rep.Failed++
			if rep.FirstError == "" {
				rep.FirstError = vr.Error
			}
			continue
		}
		if !vr.tuned {
			continue // still tuning in
		}
		ps := v.player.stats(now, final)
		rep.Started++
		rep.Renditions[vr.Rendition]++
		rep.MissedParts += vr.MissedParts
		rep.Stalls += ps.stalls
		rep.StalledSeconds += ps.stalled.Seconds()
		rep.MaxPartGapMs = max(rep.MaxPartGapMs, vr.MaxPartGapMs)
		if ps.stalls > 0 {
			rep.ViewersStalled++
		}
		if ps.playing {
			rep.Playing++
		}
		if ps.started {
			startPlay.add(int64(ps.began.Sub(v.start)))
		}
		if v.ended.Load() {
			rep.Ended++
		}
		if final {
			rep.PerViewer[len(rep.PerViewer)-1].Stalls = ps.stalls
			rep.PerViewer[len(rep.PerViewer)-1].StalledSeconds = ps.stalled.Seconds()
			rep.PerViewer[len(rep.PerViewer)-1].Playing = ps.playing
			rep.PerViewer[len(rep.PerViewer)-1].LatencyMs = float64(ps.latency) / 1e6
			kbps = append(kbps, vr.Kbps)
			rep.MbitPerSecond += vr.Kbps / 1000
		}
	}
	rep.StartPlayback = startPlay.percentiles()
	if len(kbps) > 0 {
		sort.Float64s(kbps)
		rep.ViewerKbpsMin, rep.ViewerKbpsMedian = kbps[0], kbps[len(kbps)/2]
	}
	if final {
		rep.WindowParts = rep.Parts - r.windowBase.Load()
	}
	return rep
}

// summary is what v counted; its player's figures are added by report.
func (v *hlsViewer) summary(window time.Duration, final bool) viewerSummary {
	v.mu.Lock()
	defer v.mu.Unlock()
	vr := HLSViewerReport{
		Viewer: v.id + 1, Rendition: v.rendition, Error: v.failure,
		FirstPartMs: float64(v.firstPart.Load()) / 1e6, Parts: v.parts.Load(), MissedParts: v.missed.Load(),
		MediaBytes: v.bytes.Load(), MaxPartGapMs: float64(v.maxGap.Load()) / 1e6, Errors: v.errors.Load(),
	}
	if final && window > 0 {
		vr.Kbps = float64(v.windowBytes.Load()) * 8 / 1000 / window.Seconds()
	}
	return viewerSummary{vr, v.tuned}
}

type viewerSummary struct {
	HLSViewerReport
	tuned bool
}

// HTTPErrorCount is the number of failed requests, of every kind.
func (rep *HLSReport) HTTPErrorCount() int64 {
	var n int64
	for _, c := range rep.HTTPErrors {
		n += c
	}
	return n
}

// WriteTable prints the report for a person.
func (rep *HLSReport) WriteTable(w io.Writer) {
	tw, row := newTable(w)
	row("mode", "hls (%s, audio %v, preload hints %v)", rep.Rendition, rep.Audio, rep.PreloadHint)
	row("stream", "%s", rep.URL)
	row("playlist", "PART-TARGET %.3f s, TARGETDURATION %.0f s, PART-HOLD-BACK %.3f s", rep.PartTarget, rep.TargetDuration, rep.PartHoldBack)
	row("viewers", "%d started, %d failed of %d; %d playing at the end, %d saw the stream end", rep.Started, rep.Failed, rep.Viewers, rep.Playing, rep.Ended)
	if rep.FirstError != "" {
		row("first failure", "%s", rep.FirstError)
	}
	row("renditions", "%s", formatCounts(rep.Renditions))
	row("window", "%.1f s (run %.1f s)", rep.Window, rep.Elapsed)
	row("delivered", "%.1f Mbit/s of media; per viewer min %.0f / median %.0f kbit/s", rep.MbitPerSecond, rep.ViewerKbpsMin, rep.ViewerKbpsMedian)
	row("parts", "%d fetched, %d missed", rep.Parts, rep.MissedParts)
	row("playlists", "%d reloads (%d delta updates), %.1f MiB", rep.Reloads, rep.DeltaUpdates, float64(rep.PlaylistBytes)/(1<<20))
	errs := "none"
	if len(rep.HTTPErrors) > 0 {
		var b strings.Builder
		for _, k := range sortedKeys(rep.HTTPErrors) {
			fmt.Fprintf(&b, "%s: %d  ", k, rep.HTTPErrors[k])
		}
		errs = strings.TrimSpace(b.String())
	}
	row("HTTP errors", "%s (start retries %d)", errs, rep.StartRetries)
	row("stalls", "%d (%.2f s stalled, %d viewers); longest wait between video parts %.0f ms", rep.Stalls, rep.StalledSeconds, rep.ViewersStalled, rep.MaxPartGapMs)
	row("first part", "%s", rep.FirstPart)
	row("playback start", "%s", rep.StartPlayback)
	row("blocking reload", "%s", rep.Reload)
	row("part fetch", "%s", rep.PartFetch)
	if rep.PreloadHint {
		row("hinted part", "%s", rep.HintFetch)
	}
	row("part latency", "%s", rep.PartLatency)
	row("playback latency", "%s", rep.PlaybackLatency)
	row("tester CPU", "%.2f cores (%.2f while starting viewers)", rep.TesterCores, rep.TesterCoresSetup)
	if s := rep.Server; s != nil {
		row("server CPU", "%.2f cores, %.1f µs per part delivered", s.Cores, s.MicrosPerPart)
		per := fmt.Sprintf("%.1f KiB per viewer", float64(s.RSSPerViewer)/1024)
		if s.RSSPerViewer < 0 {
			per = "less than at the start (garbage collection)"
		}
		row("server memory", "%.1f MiB RSS, %s", float64(s.RSSBytes)/(1<<20), per)
	}
	_ = tw.Flush()
}

// WriteJSON writes the report to path.
func (rep *HLSReport) WriteJSON(path string) error { return writeJSON(path, rep) }

func formatCounts(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
