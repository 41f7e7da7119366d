package transcode

import (
	"os"
	"strings"
	"testing"
	"time"
)

// BenchmarkLadder720p30 runs 20 s of a 720p30 VP8 + Opus source (testsrc2;
// STARLING_BENCH_VF=noise=alls=12:allf=t makes it as costly as a camera) through
// the default ladder (720p, 480p, 360p) with libx264, in real time, and
// reports the CPU cores ffmpeg used and whether it kept up: no frame
// dropped and a write→emit lag that does not grow.
//
//	go test ./transcode/ -run '^$' -bench Ladder720p30 -benchtime 1x
func BenchmarkLadder720p30(b *testing.B) {
	const fps, clip = 30, 10 // seconds; played twice
	v := makeVP8(b, 1280, 720, fps, clip, 2*fps)
	a := shift(makeOpus(b, clip), 0, clip*time.Second)
	video := append(shift(v, 0, 0), shift(v, clip*time.Second, 0)...)
	audio := append(shift(a, 0, 0), shift(a, clip*time.Second, 0)...)
	tr := testTranscoder(b, Config{})
	b.Logf("load average before: %s", loadavg())

	var cores float64
	var lat []time.Duration
	var dropped uint64
	for b.Loop() {
		var got collector
		s, err := tr.Start(b.Context(), Input{Name: "bench", VideoCodec: "VP8", Width: 1280, Height: 720,
			FPS: fps, HasAudio: true}, got.emit)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		feed := feedPaced(b.Context(), s, video, audio, 1)
		wall := time.Since(start)
		st := s.Stats() // before Close: the CPU of the real-time part only
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		cores = st.CPU.Seconds() / wall.Seconds()
		dropped = st.VideoFramesDropped + st.AudioFramesDropped
		lat = lags(&got, feed, 0)
		if n := len(s.Renditions()); n != 3 {
			b.Fatalf("%d renditions", n)
		}
	}
	b.Logf("load average after: %s", loadavg())
	q := len(lat) / 4
	early, late := percentile(lat[:q], 0.5), percentile(lat[len(lat)-q:], 0.5)
	keptUp := dropped == 0 && late < early+200*time.Millisecond && percentile(lat, 0.95) < time.Second
	b.ReportMetric(cores, "cores")
	b.ReportMetric(float64(dropped), "dropped")
	b.ReportMetric(ms(percentile(lat, 0.5)), "lag-p50-ms")
	b.ReportMetric(ms(percentile(lat, 0.95)), "lag-p95-ms")
	b.ReportMetric(ms(late), "lag-last-quarter-ms")
	realtime := 0.0
	if keptUp {
		realtime = 1
	}
	b.ReportMetric(realtime, "kept-up")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}
