package loadtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// follow fetches every part after the cursor, then asks for the next one
// with a blocking playlist reload, until ctx ends or the stream does.
func (f *follower) follow(ctx context.Context) {
	var hint *hintFetch
	defer func() { hint.drop() }()
	for {
		hint = f.fetchListed(ctx, hint)
		if ctx.Err() != nil {
			return
		}
		if f.pl.ended {
			f.v.ended.Store(true)
			f.v.player.end()
			return
		}
		if f.v.run.cfg.PreloadHint && f.pl.hint != "" {
			if u, err := f.url.Parse(f.pl.hint); err == nil && (hint == nil || hint.url != u.String()) {
				hint.drop()
				hint = f.startHint(ctx, u)
			}
		}
		prev, _ := f.pl.last()
		pl, wait := f.reload(ctx)
		if pl == nil {
			if sleepCtx(ctx, wait) != nil {
				return
			}
			continue
		}
		f.pl = pl
		if last, ok := pl.last(); ok && !last.after(prev) && !pl.ended {
			// Nothing new: a cache answered, or the server did not block.
			// Ask again a little later rather than at once.
			if sleepCtx(ctx, pl.partTarget/2) != nil {
				return
			}
		}
	}
}

// fetchListed fetches the parts the playlist lists after the cursor, in
// order, taking a part from hint when it is the hinted one. It returns the
// hint when it was not used.
func (f *follower) fetchListed(ctx context.Context, hint *hintFetch) *hintFetch {
	for si := range f.pl.segments {
		s := &f.pl.segments[si]
		for n := range s.parts {
			id := partID{s.msn, n}
			if !id.after(f.cursor) {
				continue
			}
			if ctx.Err() != nil {
				return hint
			}
			part := &s.parts[n]
			start := s.partStart(n)
			if gap := start.Sub(f.lastEnd); gap > f.pl.partTarget/2 && !(n == 0 && s.disc) {
				// Parts that left the playlist before this viewer got them.
				f.v.missed.Add(int64(math.Round(float64(gap) / float64(f.pl.partTarget))))
			}
			f.cursor, f.lastEnd = id, start.Add(part.duration)
			if part.gap {
				continue
			}
			if s.mapURI != "" && f.ensureInit(ctx, s.mapURI) != nil && ctx.Err() != nil {
				return hint
			}
			u, err := f.url.Parse(part.uri)
			if err != nil {
				f.v.missed.Add(1)
				continue
			}
			var res *fetched
			if hint != nil && hint.url == u.String() && part.byteRange == "" {
				res, hint = hint.result(ctx), nil
			}
			if res == nil {
				res = f.fetchPart(ctx, u, part.byteRange)
			}
			if res == nil {
				if ctx.Err() == nil {
					f.v.missed.Add(1)
				}
				continue
			}
			f.arrive(s, n, id, res)
		}
	}
	return hint
}

// partLatency is how late part n of segment s arrived at wall clock
// arrival: when its last byte arrives at A,
//
//	latency = A − (PDT(s) + d0 + … + dn)
//
// where PDT(s) is the segment's EXT-X-PROGRAM-DATE-TIME and d0…dn the
// durations of parts 0 to n: the arrival minus the date at which the part's
// media ends, i.e. how long after its last frame was captured (as the
// server dates its media) a player could have it. It includes the server's
// packaging delay (a part exists only once its last frame has) and the
// delivery; a wrong server clock shifts it.
func partLatency(s *hlsSegment, n int, arrival time.Time) time.Duration {
	return arrival.Sub(s.partStart(n).Add(s.parts[n].duration))
}

// arrive records a part that finished arriving. Only live parts count
// towards part latency, those the viewer learnt of after tuning in; the
// parts that already existed then are as old as the start point makes them.
func (f *follower) arrive(s *hlsSegment, n int, id partID, res *fetched) {
	v, part := f.v, &s.parts[n]
	now := res.done
	v.player.appendPart(f.track, now, s.partStart(n), part.duration)
	v.parts.Add(1)
	v.run.parts.Add(1)
	v.addBytes(len(res.body))
	if id.after(f.edge) && f.pl.hasPDT {
		v.run.partLatency.add(int64(partLatency(s, n, now)))
	}
	if f.track != 0 {
		return
	}
	if f.lastPart.IsZero() {
		d := now.Sub(v.start)
		v.firstPart.Store(int64(d))
		v.run.firstPart.add(int64(d))
		v.signal(nil)
	} else if gap := int64(now.Sub(f.lastPart)); gap > v.maxGap.Load() {
		v.maxGap.Store(gap)
	}
	f.lastPart = now
}

// fetchPart gets a part, trying twice more after a failure, as players
// retry a fragment; nil when it could not be had.
func (f *follower) fetchPart(ctx context.Context, u *url.URL, byteRange string) *fetched {
	backoff := f.pl.partTarget / 2
	for try := 0; ; try++ {
		t0 := time.Now()
		res, err := f.v.run.get(ctx, u, byteRange)
		if err == nil && res.ok() {
			f.v.run.partFetch.add(int64(res.done.Sub(t0)))
			return res
		}
		if ctx.Err() != nil {
			return nil
		}
		f.v.failed(res, err)
		if try == 2 || sleepCtx(ctx, backoff<<try) != nil {
			return nil
		}
	}
}

// ensureInit fetches the init section mapURI names unless it is the one
// fetched last.
func (f *follower) ensureInit(ctx context.Context, mapURI string) error {
	u, err := f.url.Parse(mapURI)
	if err != nil {
		return fmt.Errorf("hls: EXT-X-MAP %q: %w", mapURI, err)
	}
	if u.String() == f.init {
		return nil
	}
	res, err := f.v.run.get(ctx, u, "")
	if err == nil && !res.ok() {
		err = statusErr(res)
	}
	if err != nil {
		if ctx.Err() == nil {
			f.v.failed(res, err)
		}
		return fmt.Errorf("hls: init section %s: %w", u, err)
	}
	f.init = u.String()
	f.v.addBytes(len(res.body))
	return nil
}

// reload asks for the playlist that lists the next part: a blocking reload
// (_HLS_msn, _HLS_part, and _HLS_skip=YES for a delta update when the
// server can skip), or, from a server that cannot block, a plain reload a
// part target later. On failure it returns nil and how long to wait.
func (f *follower) reload(ctx context.Context) (*mediaPlaylist, time.Duration) {
	old := f.pl
	u := *f.url
	if old.canBlock {
		next := old.next()
		q := "_HLS_msn=" + strconv.FormatUint(next.msn, 10) + "&_HLS_part=" + strconv.Itoa(next.n)
		if old.canSkipUntil > 0 {
			q += "&_HLS_skip=YES"
		}
		u.RawQuery = strings.TrimPrefix(u.RawQuery+"&"+q, "&")
	} else if sleepCtx(ctx, old.partTarget) != nil {
		return nil, 0
	}
	t0 := time.Now()
	res, err := f.v.run.get(ctx, &u, "")
	if ctx.Err() != nil {
		return nil, 0
	}
	var pl *mediaPlaylist
	if err == nil && res.ok() {
		_, pl, err = parsePlaylist(res.body)
		if err == nil && pl == nil {
			err = errors.New("a multivariant playlist where a media playlist belongs")
		}
		if err != nil {
			f.v.run.countError("bad playlist")
			f.v.errors.Add(1)
		}
	} else {
		f.v.failed(res, err)
	}
	if pl == nil {
		f.misses++
		wait := min(old.partTarget<<min(f.misses, 4), 2*time.Second)
		if res != nil {
			if ra, ok := parseRetryAfter(res.header.Get("Retry-After")); ok {
				wait = min(ra, old.targetDuration)
			}
		}
		return nil, wait
	}
	f.misses = 0
	f.v.run.reloads.Add(1)
	f.v.run.playlistBytes.Add(int64(len(res.body)))
	if old.canBlock {
		f.v.run.reload.add(int64(res.done.Sub(t0)))
	}
	if pl.skipped > 0 {
		f.v.run.deltas.Add(1)
	}
	for i := range pl.segments {
		if s := &pl.segments[i]; s.mapURI == "" {
			s.mapURI = f.mapAt(s.msn)
		}
	}
	f.date(pl, res.done)
	return pl, 0
}

// mapAt is the init section in effect for segment msn in the previous
// playlist: a delta update may skip the EXT-X-MAP that applies.
func (f *follower) mapAt(msn uint64) string {
	m := ""
	for _, s := range f.pl.segments {
		if s.msn > msn {
			break
		}
		m = s.mapURI
	}
	return m
}

// hintFetch is a request for the part a preload hint names, sent before
// the part exists; the server answers it once the part is complete.
type hintFetch struct {
	url    string
	cancel context.CancelFunc
	done   chan struct{}
	res    *fetched
	err    error
	start  time.Time
	v      *hlsViewer
}

func (f *follower) startHint(ctx context.Context, u *url.URL) *hintFetch {
	hctx, cancel := context.WithCancel(ctx)
	h := &hintFetch{url: u.String(), cancel: cancel, done: make(chan struct{}), start: time.Now(), v: f.v}
	go func() {
		defer close(h.done)
		h.res, h.err = f.v.run.get(hctx, u, "")
	}()
	return h
}

// result waits for the hinted part; nil when it failed (counted), so that
// the caller fetches it as a listed part.
func (h *hintFetch) result(ctx context.Context) *fetched {
	defer h.cancel()
	select {
	case <-h.done:
	case <-ctx.Done():
		<-h.done
		return nil
	}
	if h.err != nil || !h.res.ok() {
		if ctx.Err() == nil {
			h.v.failed(h.res, h.err)
		}
		return nil
	}
	h.v.run.hintFetch.add(int64(h.res.done.Sub(h.start)))
	return h.res
}

// drop abandons a hint that was not used; nil does nothing.
func (h *hintFetch) drop() {
	if h == nil {
		return
	}
	h.cancel()
	<-h.done
}
