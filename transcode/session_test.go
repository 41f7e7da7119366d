package transcode

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// TestSessionTranscodesVP8AndOpusToAlignedLadder feeds 6 s of 720p30 VP8
// and Opus in real time and checks the whole contract of the output.
func TestSessionTranscodesVP8AndOpusToAlignedLadder(t *testing.T) {
	const fps = 30
	base := 4 * time.Second // a multiple of the keyframe interval
	t0 := time.Now()
	video := shift(makeVP8(t, 1280, 720, fps, 6, 60), base, 0)
	audio := shift(makeOpus(t, 6), base, 6*time.Second)
	t.Logf("test media made in %v", time.Since(t0))

	tr := testTranscoder(t, Config{})
	var got collector
	var keyRequests atomic.Int32
	s, err := tr.Start(t.Context(), Input{
		Name: "vp8", VideoCodec: "VP8", Width: 1280, Height: 720, FPS: fps, HasAudio: true,
		RequestKeyframe: func() { keyRequests.Add(1) },
	}, got.emit)
	if err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	feed := feedPaced(t.Context(), s, video, audio, 1)
	t.Logf("fed in %v", time.Since(t0))
	closeStart := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Close took %v", time.Since(closeStart))

	rends := s.Renditions()
	wantNames := []string{"720p", "480p", "360p"}
	if len(rends) != len(wantNames) {
		t.Fatalf("renditions %+v, want %v", rends, wantNames)
	}
	st := s.Stats()
	dropped := st.VideoFramesDropped > 0 || st.AudioFramesDropped > 0
	if dropped {
		t.Logf("ffmpeg fell behind on this busy machine: %d video and %d audio frames dropped; checking what got through",
			st.VideoFramesDropped, st.AudioFramesDropped)
	}
	frameDur := time.Second / fps
	interval := tr.cfg.KeyframeInterval
	var firstKeys []time.Duration
	for i, r := range rends {
		if r.Name != wantNames[i] {
			t.Errorf("rendition %d is %q, want %q", i, r.Name, wantNames[i])
		}
		samples := got.of(i)
		if want := int(st.VideoFramesIn - st.VideoFramesDropped); len(samples) != want {
			t.Errorf("%s: %d samples, want one per frame given to ffmpeg (%d)", r.Name, len(samples), want)
		}
		if len(samples) == 0 {
			continue
		}
		checkVideoSamples(t, r, samples, video[0].PTS, frameDur, interval, dropped)
		keys := keyPTS(samples)
		if i == 0 {
			firstKeys = keys
		} else if !equalDurations(keys, firstKeys) {
			t.Errorf("%s IDRs at %v, %s at %v: not aligned", r.Name, keys, rends[0].Name, firstKeys)
		}
		for k, pts := range keys {
			if !dropped && (pts-base)%interval != 0 {
				t.Errorf("%s IDR %d at %v: not a multiple of %v", r.Name, k, pts, interval)
			}
		}
	}
	if len(firstKeys) != 3 {
		t.Errorf("IDRs at %v, want 3 (every %v over 6 s)", firstKeys, interval)
	}

	aac := got.of(AudioRendition)
	if len(aac) < 270 {
		t.Fatalf("%d AAC samples, want about 281 for 6 s", len(aac))
	}
	aacDur := time.Duration(aacFrameSamples) * time.Second / 48000
	for i := 1; i < len(aac); i++ {
		if d := aac[i].PTS - aac[i-1].PTS; absDur(d-aacDur) > 20*time.Microsecond {
			t.Fatalf("AAC sample %d is %v after the previous, want %v", i, d, aacDur)
		}
	}
	v0 := got.of(0)
	videoEnd := v0[len(v0)-1].PTS + frameDur
	audioEnd := aac[len(aac)-1].PTS + aacDur
	if d := absDur(videoEnd - audioEnd); d > 40*time.Millisecond {
		t.Errorf("video ends at %v, audio at %v: %v apart", videoEnd, audioEnd, d)
	}
	if d := absDur(aac[0].PTS - audio[0].PTS); d > 30*time.Millisecond {
		t.Errorf("first AAC at %v, first Opus at %v", aac[0].PTS, audio[0].PTS)
	}

	if st.VideoFramesIn != uint64(len(video)) || st.AudioFramesIn != uint64(len(audio)) {
		t.Errorf("stats: %d/%d frames in, want %d/%d", st.VideoFramesIn, st.AudioFramesIn, len(video), len(audio))
	}
	for i := range rends {
		if st.SamplesOut[i] != uint64(got.count(i)) {
			t.Errorf("stats: %d samples out for %s, emitted %d", st.SamplesOut[i], rends[i].Name, got.count(i))
		}
	}
	if st.AudioSamplesOut != uint64(len(aac)) || st.Restarts != 0 || st.CPU <= 0 {
		t.Errorf("stats %+v", st)
	}
	if feed.errors != 0 {
		t.Errorf("%d writes failed", feed.errors)
	}
	if err := s.WriteVideo(video[0]); err != ErrClosed {
		t.Errorf("WriteVideo after Close: %v, want ErrClosed", err)
	}
	logLatency(t, &got, feed)
	t.Logf("ffmpeg CPU %v for %v of media; %d keyframe requests", st.CPU, videoEnd-base, keyRequests.Load())
}

// TestSessionTranscodesH264Input feeds Annex-B H.264 that starts at an
// arbitrary PTS, video only.
func TestSessionTranscodesH264Input(t *testing.T) {
	const fps = 30
	base := 1234 * time.Millisecond
	video := shift(makeH264(t, 640, 360, fps, 3, 30), base, 0)
	tr := testTranscoder(t, Config{Ladder: []Rendition{
		{Name: "360p", Width: 640, Height: 360, Bitrate: 800_000},
		{Name: "240p", Width: 426, Height: 240, Bitrate: 400_000},
	}})
	var got collector
	s, err := tr.Start(t.Context(), Input{Name: "h264", VideoCodec: "H264", Width: 640, Height: 360}, got.emit)
	if err != nil {
		t.Fatal(err)
	}
	feedPaced(t.Context(), s, video, nil, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rends := s.Renditions()
	if len(rends) != 2 || rends[1].Width != 426 {
		t.Fatalf("renditions %+v", rends)
	}
	frameDur := time.Second / fps
	st := s.Stats()
	k0 := keyPTS(got.of(0))
	for i, r := range rends {
		samples := got.of(i)
		if want := int(st.VideoFramesIn - st.VideoFramesDropped); len(samples) != want || want == 0 {
			t.Errorf("%s: %d samples for %d frames given to ffmpeg", r.Name, len(samples), want)
		}
		if len(samples) == 0 {
			continue
		}
		checkVideoSamples(t, r, samples, video[0].PTS, frameDur, tr.cfg.KeyframeInterval, st.VideoFramesDropped > 0)
		if k := keyPTS(samples); !equalDurations(k, k0) {
			t.Errorf("%s IDRs at %v, %s at %v", r.Name, k, rends[0].Name, k0)
		}
	}
	if len(k0) != 3 {
		t.Errorf("IDRs at %v, want the first frame, ~2 s and ~4 s", k0)
	}
	if s.Audio() != (AudioFormat{}) || got.count(AudioRendition) != 0 {
		t.Errorf("audio without audio input: %+v, %d samples", s.Audio(), got.count(AudioRendition))
	}
}

// checkVideoSamples checks one rendition: it starts with an IDR at the
// first input PTS; PTS rises (by about a frame unless input was dropped)
// and DTS equals PTS; no AUDs; a sample is an IDR exactly when it is the
// first of a keyframe interval (so IDRs sit at multiples of the interval,
// or at the first frame after one when frames are missing), and each IDR
// carries an SPS of the rendition's size.
func checkVideoSamples(t *testing.T, r Rendition, samples []Sample, firstIn, frameDur, interval time.Duration, gaps bool) {
	t.Helper()
	if d := absDur(samples[0].PTS - firstIn); d >= frameDur {
		t.Errorf("%s: first sample at %v, first input at %v", r.Name, samples[0].PTS, firstIn)
	}
	for i, s := range samples {
		if s.DTS != s.PTS {
			t.Fatalf("%s sample %d: DTS %v != PTS %v", r.Name, i, s.DTS, s.PTS)
		}
		newInterval := i == 0
		if i > 0 {
			prev := samples[i-1].PTS
			if d := s.PTS - prev; d <= 0 || (!gaps && d > 2*frameDur) {
				t.Fatalf("%s sample %d: PTS step %v", r.Name, i, d)
			}
			newInterval = floorMultiple(s.PTS, interval) > floorMultiple(prev, interval)
		}
		if s.Key != newInterval {
			t.Errorf("%s sample %d at %v: IDR %v, want %v (interval %v)", r.Name, i, s.PTS, s.Key, newInterval, interval)
		}
		var sps []byte
		for _, n := range s.AU {
			switch h264.NALUType(n[0] & 0x1F) {
			case h264.NALUTypeAccessUnitDelimiter:
				t.Fatalf("%s sample %d carries an AUD", r.Name, i)
			case h264.NALUTypeSPS:
				sps = n
			}
		}
		if !s.Key {
			continue
		}
		var p h264.SPS
		if sps == nil {
			t.Fatalf("%s: IDR at %v without SPS", r.Name, s.PTS)
		}
		if err := p.Unmarshal(sps); err != nil {
			t.Fatalf("%s: SPS: %v", r.Name, err)
		}
		if p.Width() != r.Width || p.Height() != r.Height {
			t.Errorf("%s: SPS says %dx%d, want %dx%d", r.Name, p.Width(), p.Height(), r.Width, r.Height)
		}
	}
}

// logLatency reports how long video frames took from WriteVideo to emit.
func logLatency(t *testing.T, got *collector, feed *pacedFeed) {
	lat := lags(got, feed, 0)
	t.Logf("write→emit latency of %d frames: p50 %v p95 %v max %v", len(lat),
		percentile(lat, 0.5).Round(time.Millisecond), percentile(lat, 0.95).Round(time.Millisecond), percentile(lat, 1).Round(time.Millisecond))
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
