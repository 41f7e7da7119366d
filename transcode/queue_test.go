package transcode

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestWriteVideoDropsUntilKeyframeWhenQueueIsFull: a full queue drops the
// frame, asks for a keyframe, and keeps dropping video until one comes.
func TestWriteVideoDropsUntilKeyframeWhenQueueIsFull(t *testing.T) {
	var requests atomic.Int32
	s := &Session{
		queue: make(chan queued, 2),
		log:   slog.New(slog.DiscardHandler),
		in:    Input{RequestKeyframe: func() { requests.Add(1) }},
	}
	key := func(pts int) Frame { return Frame{PTS: time.Duration(pts), Key: true} }
	delta := func(pts int) Frame { return Frame{PTS: time.Duration(pts)} }

	for _, f := range []Frame{key(1), delta(2), delta(3)} { // the third does not fit
		if err := s.WriteVideo(f); err != nil {
			t.Fatal(err)
		}
	}
	<-s.queue
	<-s.queue
	for _, f := range []Frame{delta(4), key(5), delta(6)} { // room again: 4 still waits for a key
		_ = s.WriteVideo(f)
	}
	var queued []time.Duration
	for len(s.queue) > 0 {
		queued = append(queued, (<-s.queue).PTS)
	}
	if !equalDurations(queued, []time.Duration{5, 6}) {
		t.Errorf("queued after the drop: %v, want [5 6]", queued)
	}
	st := s.stats.snapshot("", 0)
	if st.VideoFramesIn != 6 || st.VideoFramesDropped != 2 || requests.Load() != 1 || st.KeyframeRequests != 1 {
		t.Errorf("in %d, dropped %d, keyframe requests %d/%d; want 6, 2, 1", st.VideoFramesIn, st.VideoFramesDropped, requests.Load(), st.KeyframeRequests)
	}
}

// TestSessionKillsFFmpegThatIgnoresClose uses a stand-in "ffmpeg" that
// never reads its input: the queue fills, frames are dropped rather than
// blocking the caller, and Close kills the process after StopGrace.
func TestSessionKillsFFmpegThatIgnoresClose(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "ffmpeg")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	const grace = 300 * time.Millisecond
	tr := testTranscoder(t, Config{FFmpeg: fake, QueueLength: 4, StopGrace: grace})
	var requests atomic.Int32
	s, err := tr.Start(t.Context(), Input{VideoCodec: "VP8", Width: 640, Height: 360, HasAudio: true,
		RequestKeyframe: func() { requests.Add(1) }}, func(Sample) { t.Error("a sample from nowhere") })
	if err != nil {
		t.Fatal(err)
	}
	// A keyframe bigger than a pipe's buffer: the feeder blocks writing it.
	_ = s.WriteVideo(Frame{PTS: 0, Key: true, Data: make([]byte, 256<<10)})
	waitFor(t, 5*time.Second, "ffmpeg to start", func() bool { return s.PID() != 0 })
	pid := s.PID()

	start := time.Now()
	for i := 1; i <= 7; i++ { // 4 fit in the queue
		_ = s.WriteVideo(Frame{PTS: time.Duration(i) * 33 * time.Millisecond, Key: i == 7, Data: []byte{1}})
	}
	_ = s.WriteAudio(Frame{PTS: 0, Data: []byte{1}})
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("writes blocked for %v", d)
	}
	st := s.Stats()
	if st.VideoFramesDropped != 3 || st.AudioFramesDropped != 1 || requests.Load() != 1 {
		t.Errorf("dropped %d video, %d audio, %d keyframe requests; want 3, 1, 1", st.VideoFramesDropped, st.AudioFramesDropped, requests.Load())
	}

	start = time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < grace || d > grace+2*time.Second {
		t.Errorf("Close took %v with a %v grace", d, grace)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("ffmpeg %d still there after Close: %v", pid, err)
	}
	if err := s.WriteAudio(Frame{}); err != ErrClosed {
		t.Errorf("WriteAudio after Close: %v", err)
	}
}

// TestSessionCloseBeforeFirstKeyframe: without a keyframe no ffmpeg runs;
// the session asks for one and closes at once.
func TestSessionCloseBeforeFirstKeyframe(t *testing.T) {
	tr := testTranscoder(t, Config{})
	var requests atomic.Int32
	s, err := tr.Start(t.Context(), Input{VideoCodec: "h264", Width: 1280, Height: 720,
		RequestKeyframe: func() { requests.Add(1) }}, func(Sample) {})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.WriteVideo(Frame{PTS: 0, Data: []byte{0, 0, 0, 1, 0x41, 0x9a}})
	// An IDR without SPS/PPS cannot start an H.264 stream either.
	_ = s.WriteVideo(Frame{PTS: 33, Key: true, Data: []byte{0, 0, 0, 1, 0x65, 0x88}})
	waitFor(t, 5*time.Second, "both frames dropped", func() bool { return s.Stats().VideoFramesDropped == 2 })
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Close took %v", d)
	}
	if s.PID() != 0 || requests.Load() != 1 {
		t.Errorf("pid %d, %d keyframe requests; want 0 and 1", s.PID(), requests.Load())
	}
}

func TestStartRejectsBadInput(t *testing.T) {
	tr := testTranscoder(t, Config{})
	for _, in := range []Input{
		{VideoCodec: "AV1", Width: 640, Height: 360},
		{VideoCodec: "VP8"},
		{},                                 // neither video nor audio
		{Width: 640, Height: 360, FPS: 30}, // still neither
	} {
		if _, err := tr.Start(t.Context(), in, func(Sample) {}); err == nil {
			t.Errorf("Start(%+v) succeeded", in)
		}
	}
}
