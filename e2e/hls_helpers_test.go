package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/starling-sfu/starling/hls-bridge/llhls/llhlstest"
)

// requireFFmpeg skips an HLS test under -short, and checks that ffmpeg
// (the server transcodes with it) and ffprobe (the tests read the media
// with it) are installed. When one is missing the test fails under CI and
// is skipped elsewhere.
func requireFFmpeg(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end HLS test; skipped with -short")
	}
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not found: %v", tool, err)
			}
			t.Skipf("%s not found (install ffmpeg to run the HLS tests): %v", tool, err)
		}
	}
}

// hlsState mirrors window.starlingHLS on the HLS watch page.
type hlsState struct {
	State              string     `json:"state"`
	Error              string     `json:"error"`
	URL                string     `json:"url"`
	Level              int        `json:"level"`
	Levels             []hlsLevel `json:"levels"`
	LevelSwitches      int        `json:"levelSwitches"`
	BandwidthEstimate  float64    `json:"bandwidthEstimate"`
	FramesDecoded      int        `json:"framesDecoded"`
	DroppedFrames      int        `json:"droppedFrames"`
	VideoHeight        int        `json:"videoHeight"`
	Stalls             int        `json:"stalls"`
	WaitingStalls      int        `json:"waitingStalls"`
	BufferStalls       int        `json:"bufferStalls"`
	StalledMs          float64    `json:"stalledMs"`
	Seeks              int        `json:"seeks"`
	Latency            float64    `json:"latency"`
	LatencySamples     []float64  `json:"latencySamples"`
	LatencySampleCount int        `json:"latencySampleCount"`
	HLSLatency         float64    `json:"hlsLatency"`
	TargetLatency      float64    `json:"targetLatency"`
	Buffered           float64    `json:"buffered"`
}

type hlsLevel struct {
	Width   int `json:"width"`
	Height  int `json:"height"`
	Bitrate int `json:"bitrate"`
}

func (s hlsState) String() string {
	str := fmt.Sprintf("state=%s level=%dp (video %dp) levels=%d switches=%d bw=%.0fkbps frames=%d dropped=%d stalls=%d (waiting %d, buffer %d) stalled=%.0fms seeks=%d latency=%.2fs hls.latency=%.2fs (target %.2fs) buffered=%.2fs",
		s.State, s.Level, s.VideoHeight, len(s.Levels), s.LevelSwitches, s.BandwidthEstimate/1000, s.FramesDecoded, s.DroppedFrames,
		s.Stalls, s.WaitingStalls, s.BufferStalls, s.StalledMs, s.Seeks, s.Latency, s.HLSLatency, s.TargetLatency, s.Buffered)
	if s.Error != "" {
		str += fmt.Sprintf(" error=%q", s.Error)
	}
	return str
}

func hlsViewerState(t *testing.T, p *page) hlsState {
	t.Helper()
	s, err := eval[hlsState](p, "window.starlingHLS")
	if err != nil {
		t.Fatalf("%s: read window.starlingHLS: %v", p.name, err)
	}
	return s
}

// throttle caps the page's download throughput (fetch and XHR, which is
// what hls.js loads with) at bps bits per second; zero lifts the cap.
func (p *page) throttle(t *testing.T, bps float64) {
	t.Helper()
	cond := &network.Conditions{DownloadThroughput: -1, UploadThroughput: -1}
	if bps > 0 {
		cond.DownloadThroughput = bps / 8
	}
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	err := chromedp.Do(ctx, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
			MatchedNetworkConditions: []*network.Conditions{cond},
		})
		return chromedp.Void{}, err
	})
	if err != nil {
		t.Fatalf("%s: throttle to %.0f bit/s: %v", p.name, bps, err)
	}
}

// awaitTopLayer waits until the server receives the publisher's top
// simulcast layer (f). An HLS ladder fits its rungs to the first layer it
// sees and keeps them (see TestBrowserPublishesAndHLSJSPlaysTheLadder), so
// the tests start it only then.
func awaitTopLayer(t *testing.T, srv *server) {
	t.Helper()
	const series = `starling_packets_in_total{kind="video",layer="f"}`
	eventually(t, 30*time.Second, "the server receives the f layer", func() (bool, string) {
		n := metric(t, srv, series)
		return n > 0, fmt.Sprintf("%s %.0f", series, n)
	})
}

// hlsPercentile returns the p-th percentile (0..100) of sorted values, by
// nearest rank.
func hlsPercentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// loadAverage is /proc/loadavg's first three fields, or "?" where there is
// none.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// hlsTrack is one media playlist of a ladder (a video rendition or the
// audio) and the segments downloaded from it, by media sequence number.
type hlsTrack struct {
	name     string // "720p", "audio"
	url      *url.URL
	variant  *llhlstest.Variant // nil for audio
	init     string             // the EXT-X-MAP URI every segment uses
	initData []byte
	segs     map[uint64]hlsSegment
}

type hlsSegment struct {
	msn       uint64
	pdt       time.Time
	duration  float64
	available time.Time // when the blocking request for it was answered
	data      []byte
	start     float64 // tfdt of the first sample, seconds
	end       float64 // start plus every sample's duration, seconds
}

// mediaEnd is the wall clock at the end of the segment's media, by its
// PROGRAM-DATE-TIME.
func (s hlsSegment) mediaEnd() time.Time {
	return s.pdt.Add(time.Duration(s.duration * float64(time.Second)))
}

// hlsFetch GETs u; any status but 200 is an error.
func hlsFetch(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, body)
	}
	return body, nil
}

// hlsGet fetches u and returns its body; any status but 200 fails the test.
func hlsGet(t *testing.T, u string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	body, err := hlsFetch(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// ladderTracks reads the multivariant playlist at base+"index.m3u8" and
// returns its video renditions, in its order, then its audio.
func ladderTracks(t *testing.T, base string) []*hlsTrack {
	t.Helper()
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	mv, err := llhlstest.ParseMultivariant(hlsGet(t, base+"index.m3u8"))
	if err != nil {
		t.Fatalf("multivariant playlist: %v", err)
	}
	var tracks []*hlsTrack
	add := func(uri string, v *llhlstest.Variant) {
		u, err := b.Parse(uri)
		if err != nil {
			t.Fatalf("playlist URI %q: %v", uri, err)
		}
		name, _, _ := strings.Cut(uri, "/")
		tracks = append(tracks, &hlsTrack{name: name, url: u, variant: v, segs: map[uint64]hlsSegment{}})
	}
	for i := range mv.Variants {
		add(mv.Variants[i].URI, &mv.Variants[i])
	}
	for _, m := range mv.Media {
		if m["TYPE"] == "AUDIO" {
			add(m["URI"], nil)
		}
	}
	return tracks
}

// nextMSN is the number of the segment tr is building now.
func (tr *hlsTrack) nextMSN(t *testing.T) uint64 {
	t.Helper()
	p, err := llhlstest.ParseMedia(hlsGet(t, tr.url.String()))
	if err != nil {
		t.Fatalf("%s: %v", tr.url.Path, err)
	}
	return p.LastMSN() + 1
}

// follow downloads tr's segments in [from, to) as each completes: a
// blocking playlist request (_HLS_msn) for each, answered the moment the
// segment is there, which it notes. It stops at anything that would make
// the segments unplayable back to back: a gap, a discontinuity, a change
// of init section. It runs on a goroutine of its own and touches only tr.
func (tr *hlsTrack) follow(ctx context.Context, from, to uint64) error {
	for msn := from; msn < to; msn++ {
		if _, ok := tr.segs[msn]; ok {
			continue
		}
		body, err := hlsFetch(ctx, fmt.Sprintf("%s?_HLS_msn=%d", tr.url, msn))
		now := time.Now()
		if err != nil {
			return fmt.Errorf("%s: %w", tr.name, err)
		}
		p, err := llhlstest.ParseMedia(body)
		if err != nil {
			return fmt.Errorf("%s: %w", tr.url.Path, err)
		}
		for _, s := range p.Segments {
			if s.MSN < from || s.MSN >= to {
				continue
			}
			if _, ok := tr.segs[s.MSN]; ok {
				continue
			}
			if err := tr.download(ctx, s, now); err != nil {
				return fmt.Errorf("%s: segment %d: %w", tr.url.Path, s.MSN, err)
			}
		}
		if _, ok := tr.segs[msn]; !ok {
			return fmt.Errorf("%s: the answer to _HLS_msn=%d does not list segment %d", tr.url.Path, msn, msn)
		}
	}
	return nil
}

func (tr *hlsTrack) download(ctx context.Context, s llhlstest.Segment, available time.Time) error {
	if s.Gap || s.Discontinuity {
		return fmt.Errorf("a gap (%v) or after a discontinuity (%v)", s.Gap, s.Discontinuity)
	}
	if tr.init == "" {
		u, err := tr.url.Parse(s.Map)
		if err != nil {
			return err
		}
		if tr.initData, err = hlsFetch(ctx, u.String()); err != nil {
			return err
		}
		tr.init = s.Map
	} else if s.Map != tr.init {
		return fmt.Errorf("init section %s, the ones before have %s", s.Map, tr.init)
	}
	u, err := tr.url.Parse(s.URI)
	if err != nil {
		return err
	}
	seg := hlsSegment{msn: s.MSN, pdt: s.PDT, duration: s.Duration, available: available}
	if seg.data, err = hlsFetch(ctx, u.String()); err != nil {
		return err
	}
	if seg.start, seg.end, err = fragmentSpan(tr.initData, seg.data); err != nil {
		return err
	}
	tr.segs[s.MSN] = seg
	return nil
}

// bitrate is what tr's last n complete segments carry, in bit/s.
func (tr *hlsTrack) bitrate(t *testing.T, n int) float64 {
	t.Helper()
	p, err := llhlstest.ParseMedia(hlsGet(t, tr.url.String()))
	if err != nil {
		t.Fatalf("%s: %v", tr.url.Path, err)
	}
	if len(p.Segments) < n {
		t.Fatalf("%s lists %d segments, want %d", tr.url.Path, len(p.Segments), n)
	}
	var size, secs float64
	for _, s := range p.Segments[len(p.Segments)-n:] {
		u, err := tr.url.Parse(s.URI)
		if err != nil {
			t.Fatal(err)
		}
		size += float64(len(hlsGet(t, u.String())))
		secs += s.Duration
	}
	return 8 * size / secs
}

// file is tr's init section and its segments in [from, to), back to back:
// what a player appends to its buffer.
func (tr *hlsTrack) file(from, to uint64) []byte {
	var b bytes.Buffer
	b.Write(tr.initData)
	for msn := from; msn < to; msn++ {
		b.Write(tr.segs[msn].data)
	}
	return b.Bytes()
}

// fragmentSpan reads a segment's decode times: the first sample's tfdt and
// the end of its last sample, in seconds of the init section's timescale.
func fragmentSpan(initData, seg []byte) (start, end float64, err error) {
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(initData)); err != nil || len(in.Tracks) != 1 {
		return 0, 0, fmt.Errorf("init section: %v (%d tracks)", err, len(in.Tracks))
	}
	scale := float64(in.Tracks[0].TimeScale)
	var parts fmp4.Parts
	if err := parts.Unmarshal(seg); err != nil {
		return 0, 0, fmt.Errorf("segment: %w", err)
	}
	first := true
	var last uint64
	for _, p := range parts {
		for _, tr := range p.Tracks {
			if first {
				start, first = float64(tr.BaseTime)/scale, false
			}
			d := tr.BaseTime
			for _, s := range tr.Samples {
				d += uint64(s.Duration)
			}
			last = max(last, d)
		}
	}
	if first {
		return 0, 0, errors.New("segment without samples")
	}
	return start, float64(last) / scale, nil
}

// ffprobeInfo is what ffprobe reads from one file.
type ffprobeInfo struct {
	Streams []struct {
		CodecType     string `json:"codec_type"`
		CodecName     string `json:"codec_name"`
		Profile       string `json:"profile"`
		Width         int    `json:"width"`
		Height        int    `json:"height"`
		SampleRate    string `json:"sample_rate"`
		Channels      int    `json:"channels"`
		NbReadFrames  string `json:"nb_read_frames"`
		NbReadPackets string `json:"nb_read_packets"`
	} `json:"streams"`
	Packets []struct {
		PTSTime      string `json:"pts_time"`
		DurationTime string `json:"duration_time"`
	} `json:"packets"`
}

// ffprobe decodes file completely (-count_frames) and returns its streams
// and packets. Anything ffprobe reports at -v error fails the test.
func ffprobe(t *testing.T, file string) ffprobeInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-count_frames", "-count_packets",
		"-show_entries", "stream=codec_type,codec_name,profile,width,height,sample_rate,channels,nb_read_frames,nb_read_packets",
		"-show_entries", "packet=pts_time,duration_time",
		"-of", "json", file)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", file, err, stderr.String())
	}
	if msg := strings.TrimSpace(stderr.String()); msg != "" {
		t.Errorf("ffprobe %s reports errors:\n%s", file, msg)
	}
	var p ffprobeInfo
	if err := json.Unmarshal(stdout.Bytes(), &p); err != nil {
		t.Fatalf("ffprobe %s: %v", file, err)
	}
	if len(p.Streams) != 1 || len(p.Packets) == 0 {
		t.Fatalf("ffprobe %s: %d streams, %d packets; want one stream with packets", file, len(p.Streams), len(p.Packets))
	}
	return p
}

// span is the presentation time of the first packet and the end of the
// last one, in seconds. (ffprobe leaves out the duration of the first AAC
// packet, which carries the encoder's priming.)
func (p ffprobeInfo) span(t *testing.T) (start, end float64) {
	t.Helper()
	start, end = math.Inf(1), math.Inf(-1)
	for _, pk := range p.Packets {
		var pts, dur float64
		if _, err := fmt.Sscan(pk.PTSTime, &pts); err != nil {
			t.Fatalf("ffprobe packet pts_time %q: %v", pk.PTSTime, err)
		}
		if pk.DurationTime != "" {
			if _, err := fmt.Sscan(pk.DurationTime, &dur); err != nil {
				t.Fatalf("ffprobe packet duration_time %q: %v", pk.DurationTime, err)
			}
		}
		start, end = min(start, pts), max(end, pts+dur)
	}
	return start, end
}

// sortedCopy returns values sorted, leaving values as they are.
func sortedCopy(values []float64) []float64 {
	s := slices.Clone(values)
	slices.Sort(s)
	return s
}
