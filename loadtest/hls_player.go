package loadtest

import (
	"sync"
	"time"
)

// player models what a media element does with the parts a viewer
// fetches, without decoding them: each track (video, and audio when it is a
// separate rendition) has a buffer that the parts extend; the playhead
// moves in real time while every track has media ahead of it, and stops
// (a stall) when one runs dry.
//
// Times on the media clock are program dates: a track's buffer starts at
// the PROGRAM-DATE-TIME of its first part and grows by each part's
// duration, so that a discontinuity or a missed part shifts the clock but
// never tears the buffer (players stitch timelines the same way).
//
// Playback starts at the start part (hls.js joins at an INDEPENDENT part
// and, with a keyframe only at each segment start, plays from there: see
// docs/benchmarks.md) once the buffer reaches the live edge the viewer saw
// when it tuned in, i.e. once the parts that already existed have arrived:
// at least PART-HOLD-BACK of media, the cushion the server asks players to
// keep, and no wait for new media. A stalled player resumes once a part
// target of media is buffered again.
type player struct {
	mu        sync.Mutex
	tracks    []*trackBuffer
	playhead  time.Time // media clock
	startAt   time.Time // media clock the buffer must reach to start
	resumeBuf time.Duration
	updated   time.Time // wall clock of the last advance
	state     playerState
	ended     bool // the stream ended: running dry is its end, not a stall
	closed    bool
	closedAt  time.Time

	began      time.Time // wall clock playback started
	stalls     int
	stalled    time.Duration
	stallStart time.Time // wall clock the current stall began
	onLatency  func(time.Duration)
}

type playerState int

const (
	waiting playerState = iota // for the first parts
	playing
	stalled
)

// trackBuffer is one track's buffered media on the media clock.
type trackBuffer struct {
	started bool
	end     time.Time
	// dates maps the media clock back to program dates, one mark per part
	// appended; only the video track keeps them.
	dates []dateMark
	keep  bool
}

type dateMark struct{ clock, pdt time.Time }

// setTracks gives the player a video track and, with audio, a second one.
func (p *player) setTracks(audio bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tracks = []*trackBuffer{{keep: true}}
	if audio {
		p.tracks = append(p.tracks, &trackBuffer{})
	}
}

// tuneIn sets where playback starts (the video start part's date) and the
// buffer it waits for; resume is the buffer a stalled player waits for.
// onLatency, when not nil, receives the playback latency at each video part
// while it plays.
func (p *player) tuneIn(start, edge time.Time, resume time.Duration, onLatency func(time.Duration)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.playhead, p.startAt, p.resumeBuf, p.onLatency = start, edge, resume, onLatency
}

// begin places track i's buffer at the date of its first part.
func (p *player) begin(i int, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.tracks[i]
	t.started, t.end = true, at
}

// appendPart adds a part of track i that finished arriving at now; pdt is
// its program date.
func (p *player) appendPart(i int, now, pdt time.Time, dur time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.advance(now)
	t := p.tracks[i]
	if t.keep {
		t.dates = append(t.dates, dateMark{clock: t.end, pdt: pdt})
	}
	t.end = t.end.Add(dur)
	end, ok := p.bufferEnd()
	switch {
	case !ok:
	case p.state == waiting && !end.Before(p.startAt):
		p.state, p.began, p.updated = playing, now, now
	case p.state == stalled && end.Sub(p.playhead) >= p.resumeBuf:
		p.state, p.updated = playing, now
		p.stalled += now.Sub(p.stallStart)
	}
	if i == 0 && p.state == playing && p.onLatency != nil {
		p.onLatency(now.Sub(p.dateAt(p.playhead)))
	}
}

// advance moves the playhead to wall clock now, stalling where the buffer
// ran dry. Called with p.mu held.
func (p *player) advance(now time.Time) {
	if p.state != playing {
		return
	}
	end, _ := p.bufferEnd()
	ph := p.playhead.Add(now.Sub(p.updated))
	if !ph.Before(end) {
		dry := p.updated.Add(end.Sub(p.playhead))
		p.playhead = end
		if !p.ended {
			p.state, p.stallStart = stalled, dry
			p.stalls++
		}
	} else {
		p.playhead = ph
	}
	p.updated = now
	p.forgetDates()
}

// bufferEnd is where the media buffered in every track ends.
func (p *player) bufferEnd() (time.Time, bool) {
	var end time.Time
	if len(p.tracks) == 0 {
		return end, false
	}
	for i, t := range p.tracks {
		if !t.started {
			return time.Time{}, false
		}
		if i == 0 || t.end.Before(end) {
			end = t.end
		}
	}
	return end, true
}

// dateAt is the program date of the media at clock c.
func (p *player) dateAt(c time.Time) time.Time {
	if len(p.tracks) == 0 {
		return c
	}
	d := p.tracks[0].dates
	for i := len(d) - 1; i >= 0; i-- {
		if !d[i].clock.After(c) {
			return d[i].pdt.Add(c.Sub(d[i].clock))
		}
	}
	return c
}

// forgetDates drops the marks behind the playhead but the one it is in.
func (p *player) forgetDates() {
	if len(p.tracks) == 0 {
		return
	}
	t := p.tracks[0]
	n := 0
	for n+1 < len(t.dates) && !t.dates[n+1].clock.After(p.playhead) {
		n++
	}
	if n > 0 {
		t.dates = append(t.dates[:0], t.dates[n:]...)
	}
}

// end says the stream ended (EXT-X-ENDLIST): playing out is no stall.
func (p *player) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ended = true
}

// playerStats is what a player measured.
type playerStats struct {
	playing, started bool
	began            time.Time
	stalls           int
	stalled          time.Duration
	latency          time.Duration // wall clock minus the playhead's date; 0 unless playing
}

// stats advances to now and reports; a stall still going on counts up to
// now. With close, later parts are ignored.
func (p *player) stats(now time.Time, close bool) playerStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		now = p.closedAt
	} else {
		p.advance(now)
	}
	if close && !p.closed {
		p.closed, p.closedAt = true, now
	}
	s := playerStats{playing: p.state == playing, started: p.state != waiting, began: p.began, stalls: p.stalls, stalled: p.stalled}
	if p.state == stalled {
		s.stalled += now.Sub(p.stallStart)
	}
	if s.playing {
		s.latency = now.Sub(p.dateAt(p.playhead))
	}
	return s
}
