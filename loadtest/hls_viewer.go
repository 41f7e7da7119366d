package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// hlsViewer is one simulated LL-HLS player: it tunes in as hls.js does in
// low-latency mode and follows the live edge of one video rendition, and of
// its audio rendition when the audio is separate.
type hlsViewer struct {
	id        int
	run       *hlsRun
	start     time.Time
	player    player
	ready     chan error // one value: nil at the first video part, or why it never came
	readyOnce sync.Once

	firstPart   atomic.Int64 // nanoseconds from start to the first video part; 0 until then
	parts       atomic.Int64
	missed      atomic.Int64
	bytes       atomic.Int64 // media bytes: parts and init sections
	windowBytes atomic.Int64 // media bytes since the measurement window opened
	errors      atomic.Int64
	maxGap      atomic.Int64 // longest wait between two video parts, nanoseconds
	ended       atomic.Bool

	mu        sync.Mutex // guards the fields below
	rendition string
	tuned     bool // playlists and init sections loaded
	failure   string
}

func (v *hlsViewer) signal(err error) { v.readyOnce.Do(func() { v.ready <- err }) }

// watch tunes in and follows the stream until ctx ends.
func (v *hlsViewer) watch(ctx context.Context) {
	tracks, err := v.tuneIn(ctx)
	v.mu.Lock()
	v.tuned = err == nil
	if err != nil && ctx.Err() == nil {
		v.failure = err.Error()
	}
	v.mu.Unlock()
	if err != nil {
		v.signal(err)
		return
	}
	var wg sync.WaitGroup
	for _, f := range tracks {
		wg.Add(1)
		go func() { defer wg.Done(); f.follow(ctx) }()
	}
	wg.Wait()
	v.signal(fmt.Errorf("hls: viewer %d: no part before the run ended", v.id+1))
}

// tuneIn loads the playlists, picks the rendition and the start part and
// fetches the init sections, all within the start timeout.
func (v *hlsViewer) tuneIn(ctx context.Context) ([]*follower, error) {
	cfg := &v.run.cfg
	sctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("hls: playlist URL: %w", err)
	}
	res, err := v.startGet(sctx, u)
	if err != nil {
		return nil, err
	}
	mv, media, err := parsePlaylist(res.body)
	if err != nil {
		return nil, fmt.Errorf("hls: %s: %w", res.url, err)
	}
	videoURL, audioURL := res.url, (*url.URL)(nil)
	name := variantName(res.url.Path)
	if mv != nil {
		vr, err := v.run.pick(v.id, mv)
		if err != nil {
			return nil, err
		}
		name = vr.name
		if videoURL, err = res.url.Parse(vr.uri); err != nil {
			return nil, fmt.Errorf("hls: variant URI %q: %w", vr.uri, err)
		}
		if a := mv.audioFor(vr); a != "" && !cfg.NoAudio {
			if audioURL, err = res.url.Parse(a); err != nil {
				return nil, fmt.Errorf("hls: audio URI %q: %w", a, err)
			}
		}
	}
	v.mu.Lock()
	v.rendition = name
	v.mu.Unlock()
	v.player.setTracks(audioURL != nil)
	video := &follower{v: v, track: 0}
	var startAt time.Time
	if err := video.open(sctx, videoURL, media, res.done, &startAt); err != nil {
		return nil, err
	}
	tracks := []*follower{video}
	if audioURL != nil {
		audio := &follower{v: v, track: 1}
		if err := audio.open(sctx, audioURL, nil, time.Time{}, &startAt); err != nil {
			return nil, err
		}
		tracks = append(tracks, audio)
	}
	return tracks, nil
}

// startGet gets a playlist while the stream may still be starting: it
// waits and asks again after a 503, 502, 504 or 429, or a 404 that carries
// Retry-After (a server saying the stream is on its way), as long as the
// start timeout allows; any other failure ends the viewer at once.
func (v *hlsViewer) startGet(ctx context.Context, u *url.URL) (*fetched, error) {
	deadline, _ := ctx.Deadline()
	for {
		res, err := v.run.get(ctx, u, "")
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
				return nil, fmt.Errorf("hls: GET %s: no answer within the start timeout (%v)", u, v.run.cfg.StartTimeout)
			}
			return nil, fmt.Errorf("hls: GET %s: %w", u, err)
		}
		if res.status == 200 {
			if !looksLikePlaylist(res.body) {
				return nil, fmt.Errorf("hls: GET %s: %w (Content-Type %q, body starts %q)",
					res.url, errNotPlaylist, res.header.Get("Content-Type"), bodyStart(res.body))
			}
			return res, nil
		}
		retryAfter, hinted := parseRetryAfter(res.header.Get("Retry-After"))
		switch res.status {
		case 502, 503, 504, 429:
		case 404:
			if !hinted {
				return nil, fmt.Errorf("hls: GET %s: %w", res.url, statusErr(res))
			}
		default:
			return nil, fmt.Errorf("hls: GET %s: %w", res.url, statusErr(res))
		}
		if time.Now().Add(retryAfter).After(deadline) {
			if retryAfter > v.run.cfg.StartTimeout {
				return nil, fmt.Errorf("hls: GET %s: %w (it asks to retry in %v, past the start timeout of %v)", res.url, statusErr(res), retryAfter, v.run.cfg.StartTimeout)
			}
			return nil, fmt.Errorf("hls: GET %s: still %w when the start timeout (%v) ran out", res.url, statusErr(res), v.run.cfg.StartTimeout)
		}
		v.run.startRetries.Add(1)
		if err := sleepCtx(ctx, retryAfter); err != nil {
			return nil, fmt.Errorf("hls: GET %s: still %w when the start timeout (%v) ran out", res.url, statusErr(res), v.run.cfg.StartTimeout)
		}
	}
}

// parseRetryAfter reads a Retry-After in seconds; hinted is false when the
// header is absent or a date, and the wait then one second.
func parseRetryAfter(h string) (wait time.Duration, hinted bool) {
	if n, err := strconv.Atoi(h); err == nil && n >= 0 {
		return max(time.Duration(n)*time.Second, 100*time.Millisecond), true
	}
	return time.Second, h != ""
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// follower follows one media playlist from the start part on.
type follower struct {
	v        *hlsViewer
	track    int // 0 video, 1 audio
	url      *url.URL
	pl       *mediaPlaylist
	dates    map[uint64]time.Time // program dates of recent segments, for delta updates
	cursor   partID               // the last part fetched (or the one before the start)
	edge     partID               // the last part listed at tune-in: later ones are live
	lastEnd  time.Time            // program date where the last part fetched ends
	init     string               // the init section fetched, resolved
	lastPart time.Time            // wall clock of the last video part
	misses   int                  // consecutive failed reloads, for the backoff
	dated    bool                 // the stream has program dates
}

// open loads the track's first playlist (or takes first, already loaded),
// picks the start part and fetches its init section. The video track sets
// *startAt to its start part's date; the audio track joins there.
func (f *follower) open(ctx context.Context, u *url.URL, first *mediaPlaylist, at time.Time, startAt *time.Time) error {
	f.url, f.pl, f.dates = u, first, map[uint64]time.Time{}
	if first == nil {
		res, err := f.v.startGet(ctx, u)
		if err != nil {
			return err
		}
		_, pl, err := parsePlaylist(res.body)
		if err == nil && pl == nil {
			err = errors.New("a multivariant playlist where a media playlist belongs")
		}
		if err != nil {
			return fmt.Errorf("hls: %s: %w", res.url, err)
		}
		f.url, f.pl, at = res.url, pl, res.done
	}
	pl := f.pl
	if pl.partTarget <= 0 {
		return fmt.Errorf("hls: %s is not a low-latency playlist (no EXT-X-PART-INF)", f.url)
	}
	f.date(pl, at)
	holdBack := pl.partHoldBack
	if holdBack <= 0 {
		holdBack = 3 * pl.partTarget // the spec's minimum
	}
	var si, pi int
	var ok bool
	if f.track == 0 {
		si, pi, ok = pl.startPart(holdBack)
	} else {
		si, pi, ok = pl.partAt(*startAt)
	}
	if !ok {
		return fmt.Errorf("hls: %s lists no parts", f.url)
	}
	s := &pl.segments[si]
	f.cursor = partID{s.msn, pi - 1}
	f.edge, _ = pl.last()
	f.lastEnd = s.partStart(pi)
	if f.track == 0 {
		*startAt = f.lastEnd
		f.v.run.noteStream(pl, holdBack)
		var onLatency func(time.Duration)
		if pl.hasPDT {
			onLatency = func(d time.Duration) { f.v.run.playLatency.add(int64(d)) }
		}
		f.v.player.tuneIn(f.lastEnd, pl.end(), pl.partTarget, onLatency)
	}
	f.v.player.begin(f.track, f.lastEnd)
	if s.mapURI != "" {
		return f.ensureInit(ctx, s.mapURI)
	}
	return nil
}

// date gives pl's segments program dates: from the playlist, from earlier
// playlists (a delta update may skip the only dated segment), or, for a
// stream without any, anchored so that the first playlist ends at its
// arrival. It remembers them for later playlists.
func (f *follower) date(pl *mediaPlaylist, arrived time.Time) {
	// A delta update may have skipped every dated segment.
	f.dated = f.dated || pl.hasPDT
	pl.hasPDT = f.dated
	for i := range pl.segments {
		s := &pl.segments[i]
		if d, ok := f.dates[s.msn]; ok && !s.hasPDT {
			s.pdt, s.hasPDT = d, true
		}
	}
	fillPDT(pl.segments)
	if n := len(pl.segments); n > 0 && !pl.segments[n-1].hasPDT {
		last := &pl.segments[n-1]
		last.pdt, last.hasPDT = arrived.Add(-last.duration), true
		fillPDT(pl.segments)
	}
	for _, s := range pl.segments {
		f.dates[s.msn] = s.pdt
	}
	if n := len(pl.segments); n > 0 {
		for msn := range f.dates {
			if msn+uint64(2*n) < pl.segments[0].msn {
				delete(f.dates, msn)
			}
		}
	}
}
