package transcode

import (
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestSessionRestartsFFmpegAfterCrash kills ffmpeg mid-stream: the session
// starts a new one at the next keyframe it asks for, counts the restart,
// and the samples go on on the same timeline.
func TestSessionRestartsFFmpegAfterCrash(t *testing.T) {
	const fps = 30
	video := makeVP8(t, 640, 360, fps, 4, 15) // a keyframe every 0.5 s
	audio := shift(makeOpus(t, 4), 0, 4*time.Second)
	tr := testTranscoder(t, Config{})
	var got collector
	var keyRequests atomic.Int32
	s, err := tr.Start(t.Context(), Input{
		Name: "crash", VideoCodec: "VP8", Width: 640, Height: 360, HasAudio: true,
		RequestKeyframe: func() { keyRequests.Add(1) },
	}, got.emit)
	if err != nil {
		t.Fatal(err)
	}
	fed := make(chan *pacedFeed)
	go func() { fed <- feedPaced(t.Context(), s, video, audio, 1) }()

	waitFor(t, 10*time.Second, "first samples", func() bool { return got.count(0) >= 20 })
	pid := s.PID()
	requestsBefore := keyRequests.Load()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	before := got.count(0)
	waitFor(t, 10*time.Second, "a new ffmpeg", func() bool {
		return s.Stats().Restarts == 1 && s.PID() != 0 && s.PID() != pid
	})
	waitFor(t, 10*time.Second, "samples from the new ffmpeg", func() bool { return got.count(0) > before+15 })
	<-fed
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	st := s.Stats()
	if st.Restarts != 1 || !strings.Contains(st.LastError, "killed") {
		t.Errorf("restarts %d, last error %q; want 1 and a kill", st.Restarts, st.LastError)
	}
	if keyRequests.Load() <= requestsBefore {
		t.Errorf("no keyframe requested after the crash")
	}
	samples := got.of(0)
	gap, widest := 0, time.Duration(0) // the restart is the widest PTS step
	for i := 1; i < len(samples); i++ {
		if d := samples[i].PTS - samples[i-1].PTS; d > widest {
			gap, widest = i, d
		}
	}
	if widest <= 2*time.Second/fps {
		t.Fatalf("no gap in the samples around the restart")
	}
	after := samples[gap:]
	t.Logf("restart: last sample before at %v, first after at %v; %d video frames dropped meanwhile",
		samples[gap-1].PTS, after[0].PTS, st.VideoFramesDropped)
	if after[0].PTS%(500*time.Millisecond) != 0 {
		t.Errorf("new ffmpeg starts at %v, not at one of the input's keyframes (every 0.5 s)", after[0].PTS)
	}
	checkVideoSamples(t, s.Renditions()[0], after, after[0].PTS, time.Second/fps, tr.cfg.KeyframeInterval, true)
	last := video[len(video)-1].PTS
	if d := absDur(after[len(after)-1].PTS - last); d >= time.Second/fps {
		t.Errorf("last sample at %v, last input frame at %v: the timeline did not continue", after[len(after)-1].PTS, last)
	}
	aac := got.of(AudioRendition)
	if len(aac) == 0 || aac[len(aac)-1].PTS < after[0].PTS {
		t.Errorf("no audio after the restart")
	}
}
