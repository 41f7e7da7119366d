package transcode

import (
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// aacDur is the duration of one 48 kHz AAC access unit.
const aacDur = time.Duration(aacFrameSamples) * time.Second / 48000

// TestAudioOnlySessionTranscodesOpusToAAC feeds 3 s of Opus, starting at a
// PTS that is no multiple of anything, into a session without video: it
// has no renditions, asks for no keyframe, and emits AAC that covers the
// input on its timeline, one access unit every 1024 samples.
func TestAudioOnlySessionTranscodesOpusToAAC(t *testing.T) {
	base := 7345 * time.Millisecond
	audio := shift(makeOpus(t, 3), base, 0)
	tr := testTranscoder(t, Config{})
	var got collector
	var keyRequests atomic.Int32
	s, err := tr.Start(t.Context(), Input{Name: "audio", HasAudio: true, Width: 1280, Height: 720,
		RequestKeyframe: func() { keyRequests.Add(1) }}, got.emit)
	if err != nil {
		t.Fatal(err)
	}
	feed := feedPaced(t.Context(), s, nil, audio, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if r := s.Renditions(); len(r) != 0 {
		t.Errorf("renditions %+v, want none", r)
	}
	if want := (AudioFormat{SampleRate: 48000, Channels: 2, Bitrate: 128_000}); s.Audio() != want {
		t.Errorf("audio format %+v, want %+v", s.Audio(), want)
	}
	aac := got.of(AudioRendition)
	if n := len(got.samples); n != len(aac) {
		t.Errorf("%d of %d samples are not audio", n-len(aac), n)
	}
	end := audio[len(audio)-1].PTS + 20*time.Millisecond
	checkAAC(t, aac, audio[0].PTS, end)
	if perSecond := float64(len(aac)) / (end - audio[0].PTS).Seconds(); perSecond < 45.5 || perSecond > 48.5 {
		t.Errorf("%.2f AAC samples a second, want about 46.875", perSecond)
	}

	st := s.Stats()
	if st.Backend != BackendX264 || st.AudioFramesIn != uint64(len(audio)) || st.AudioFramesDropped != 0 ||
		st.AudioSamplesOut != uint64(len(aac)) || len(st.SamplesOut) != 0 || st.VideoFramesIn != 0 ||
		st.KeyframeRequests != 0 || st.Restarts != 0 || st.CPU <= 0 {
		t.Errorf("stats %+v", st)
	}
	if keyRequests.Load() != 0 {
		t.Errorf("%d keyframe requests from an audio-only session", keyRequests.Load())
	}
	if feed.errors != 0 {
		t.Errorf("%d writes failed", feed.errors)
	}
	t.Logf("%d Opus frames %v–%v, %d AAC samples %v–%v", len(audio), audio[0].PTS, end,
		len(aac), aac[0].PTS, aac[len(aac)-1].PTS+aacDur)
}

// TestWriteVideoOnAudioOnlySessionFails: video has nowhere to go; the
// write fails with ErrNoVideo and changes nothing, and no ffmpeg starts.
func TestWriteVideoOnAudioOnlySessionFails(t *testing.T) {
	tr := testTranscoder(t, Config{FFmpeg: "/nonexistent/ffmpeg"}) // never started
	var requests atomic.Int32
	s, err := tr.Start(t.Context(), Input{HasAudio: true, RequestKeyframe: func() { requests.Add(1) }},
		func(Sample) { t.Error("a sample from nowhere") })
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []Frame{{PTS: 0, Key: true, Data: []byte{1}}, {PTS: 33, Data: []byte{2}}} {
		if err := s.WriteVideo(f); !errors.Is(err, ErrNoVideo) {
			t.Errorf("WriteVideo: %v, want ErrNoVideo", err)
		}
	}
	st := s.Stats()
	if len(s.queue) != 0 || st.VideoFramesIn != 0 || st.VideoFramesDropped != 0 || requests.Load() != 0 || s.PID() != 0 {
		t.Errorf("queue %d, stats %+v, %d keyframe requests, pid %d; want nothing", len(s.queue), st, requests.Load(), s.PID())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteVideo(Frame{}); !errors.Is(err, ErrNoVideo) {
		t.Errorf("WriteVideo after Close: %v, want ErrNoVideo", err)
	}
}

// TestAudioOnlySessionRestartsFFmpegAfterCrash kills ffmpeg mid-stream:
// the session starts a new one at the next audio frame after the backoff,
// without asking for a keyframe, and the AAC goes on on the same timeline.
func TestAudioOnlySessionRestartsFFmpegAfterCrash(t *testing.T) {
	audio := makeOpus(t, 4)
	tr := testTranscoder(t, Config{})
	var got collector
	var keyRequests atomic.Int32
	s, err := tr.Start(t.Context(), Input{Name: "audio-crash", HasAudio: true,
		RequestKeyframe: func() { keyRequests.Add(1) }}, got.emit)
	if err != nil {
		t.Fatal(err)
	}
	fed := make(chan *pacedFeed)
	go func() { fed <- feedPaced(t.Context(), s, nil, audio, 1) }()

	waitFor(t, 10*time.Second, "first samples", func() bool { return got.count(AudioRendition) >= 20 })
	pid := s.PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	before := got.count(AudioRendition)
	waitFor(t, 10*time.Second, "a new ffmpeg", func() bool {
		return s.Stats().Restarts == 1 && s.PID() != 0 && s.PID() != pid
	})
	waitFor(t, 10*time.Second, "samples from the new ffmpeg", func() bool { return got.count(AudioRendition) > before+20 })
	<-fed
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	st := s.Stats()
	if st.Restarts != 1 || st.KeyframeRequests != 0 || keyRequests.Load() != 0 {
		t.Errorf("restarts %d, keyframe requests %d/%d; want 1 and none", st.Restarts, st.KeyframeRequests, keyRequests.Load())
	}
	aac := got.of(AudioRendition)
	gap, widest := 0, time.Duration(0) // the restart is the widest PTS step
	for i := 1; i < len(aac); i++ {
		if d := aac[i].PTS - aac[i-1].PTS; d > widest {
			gap, widest = i, d
		}
	}
	if widest < minBackoff {
		t.Fatalf("widest step between AAC samples %v: no gap around the restart", widest)
	}
	// The new run starts at an Opus frame queued after the backoff: the
	// first at or after its first AAC, which the encoder's priming puts
	// up to an access unit early.
	after := aac[gap:]
	i := 0
	for i < len(audio)-1 && audio[i].PTS < after[0].PTS {
		i++
	}
	t.Logf("restart: last AAC before at %v, first after at %v; %d Opus frames dropped meanwhile",
		aac[gap-1].PTS, after[0].PTS, st.AudioFramesDropped)
	checkAAC(t, after, audio[i].PTS, audio[len(audio)-1].PTS+20*time.Millisecond)
	if st.AudioFramesDropped == 0 {
		t.Errorf("no Opus frame dropped across a restart with backoff")
	}
}

// checkAAC checks one run's AAC: it starts within two access units of the
// first input frame's PTS and ends within two of the input's end, each
// sample exactly one access unit after the last, PTS equal to DTS, one
// access unit per sample.
func checkAAC(t *testing.T, aac []Sample, first, end time.Duration) {
	t.Helper()
	if len(aac) == 0 {
		t.Fatalf("no AAC samples")
	}
	if d := absDur(aac[0].PTS - first); d > 2*aacDur {
		t.Errorf("first AAC at %v, first input frame at %v", aac[0].PTS, first)
	}
	if last := aac[len(aac)-1].PTS + aacDur; absDur(last-end) > 2*aacDur {
		t.Errorf("AAC ends at %v, input at %v", last, end)
	}
	for i, s := range aac {
		if s.Rendition != AudioRendition || s.DTS != s.PTS || s.Key || len(s.AU) != 1 || len(s.AU[0]) == 0 {
			t.Fatalf("AAC sample %d: rendition %d, PTS %v, DTS %v, key %v, %d AUs",
				i, s.Rendition, s.PTS, s.DTS, s.Key, len(s.AU))
		}
		if i == 0 {
			continue
		}
		if d := s.PTS - aac[i-1].PTS; absDur(d-aacDur) > 20*time.Microsecond {
			t.Fatalf("AAC sample %d at %v is %v after the previous, want %v", i, s.PTS, d, aacDur)
		}
	}
}
