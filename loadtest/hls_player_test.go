package loadtest

import (
	"testing"
	"time"
)

const part = 250 * time.Millisecond

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// tunedPlayer is a video-only player tuned in at media date d0 with the
// live edge three parts later.
func tunedPlayer(d0 time.Time, latencies *[]time.Duration) *player {
	p := &player{}
	p.setTracks(false)
	p.tuneIn(d0, d0.Add(3*part), part, func(d time.Duration) { *latencies = append(*latencies, d) })
	p.begin(0, d0)
	return p
}

func TestPlayerStartsOnceTheHoldBackIsBufferedAndPlaysInRealTime(t *testing.T) {
	w0 := time.Now()
	d0 := w0.Add(-time.Second) // the start part's media is a second old
	var lat []time.Duration
	p := tunedPlayer(d0, &lat)
	for i := range 3 {
		if s := p.stats(w0.Add(ms(10*i)), false); s.started {
			t.Fatalf("playing after %d parts, before the edge it tuned in at was buffered", i)
		}
		p.appendPart(0, w0.Add(ms(10*(i+1))), d0.Add(time.Duration(i)*part), part)
	}
	s := p.stats(w0.Add(ms(30)), false)
	if !s.playing || !s.began.Equal(w0.Add(ms(30))) {
		t.Fatalf("%+v: want playing since the third part", s)
	}
	if s.latency != time.Second+ms(30) {
		t.Fatalf("playback latency %v, want 1.03 s (a second old, 30 ms to buffer)", s.latency)
	}
	// Parts on time keep it playing at a constant latency.
	for i := 3; i < 12; i++ {
		p.appendPart(0, w0.Add(ms(30)+time.Duration(i-2)*part), d0.Add(time.Duration(i)*part), part)
	}
	if s := p.stats(w0.Add(ms(30)+10*part), false); !s.playing || s.stalls != 0 || s.latency != time.Second+ms(30) {
		t.Fatalf("%+v: want playing, no stall, latency 1.03 s", s)
	}
	for _, d := range lat {
		if d != time.Second+ms(30) {
			t.Fatalf("latency samples %v, want 1.03 s each", lat)
		}
	}
}

func TestPlayerStallsWhenTheBufferRunsDryAndResumesWithAPart(t *testing.T) {
	w0 := time.Now()
	d0 := w0.Add(-time.Second)
	var lat []time.Duration
	p := tunedPlayer(d0, &lat)
	for i := range 3 {
		p.appendPart(0, w0, d0.Add(time.Duration(i)*part), part)
	}
	// 0.75 s buffered from w0; nothing comes for a second: dry at
	// w0+0.75 s, a stall of 0.25 s until the next part.
	if s := p.stats(w0.Add(900*time.Millisecond), false); s.playing || s.stalls != 1 || s.stalled != ms(150) {
		t.Fatalf("%+v: want one stall going on for 150 ms", s)
	}
	p.appendPart(0, w0.Add(time.Second), d0.Add(3*part), part)
	s := p.stats(w0.Add(time.Second), false)
	if !s.playing || s.stalls != 1 || s.stalled != ms(250) {
		t.Fatalf("%+v: want playing again after one stall of 250 ms", s)
	}
	if s.latency != time.Second+ms(250) {
		t.Fatalf("latency %v after the stall, want 1.25 s", s.latency)
	}
	// A stall still going on at the end counts up to the end, and the
	// closed player takes no more parts.
	end := w0.Add(2 * time.Second)
	s = p.stats(end, true)
	if s.stalls != 2 || s.stalled != ms(250)+ms(750) {
		t.Fatalf("%+v: want a second stall of 750 ms at the end", s)
	}
	p.appendPart(0, end.Add(time.Second), d0.Add(4*part), part)
	if again := p.stats(end.Add(time.Second), false); again != s {
		t.Fatalf("closed player changed: %+v, was %+v", again, s)
	}
}

func TestPlayerWaitsForEveryTrackAndPlaysOutAnEndedStream(t *testing.T) {
	w0 := time.Now()
	d0 := w0.Add(-time.Second)
	p := &player{}
	p.setTracks(true)
	p.tuneIn(d0, d0.Add(3*part), part, nil)
	p.begin(0, d0)
	p.begin(1, d0.Add(-ms(10))) // audio joins a little earlier
	for i := range 4 {
		p.appendPart(0, w0, d0.Add(time.Duration(i)*part), part)
	}
	if p.stats(w0, false).started {
		t.Fatal("started with video alone buffered")
	}
	p.appendPart(1, w0, d0.Add(-ms(10)), 3*part+ms(10))
	if !p.stats(w0, false).playing {
		t.Fatal("not playing with both tracks buffered to the edge")
	}
	p.end()
	if s := p.stats(w0.Add(5*time.Second), false); s.stalls != 0 {
		t.Fatalf("%+v: running out of an ended stream is not a stall", s)
	}
}
