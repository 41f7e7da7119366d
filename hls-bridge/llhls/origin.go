package llhls

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	mimePlaylist = "application/vnd.apple.mpegurl"

	// Media URLs never change content within a stream, and media sequence
	// numbers are taken from the wall clock, so a CDN may keep them.
	cacheMedia = "public, max-age=86400, immutable"
	// A playlist without _HLS_ parameters changes with every part; a second
	// of caching lets an edge collapse a crowd of first loads, and a player
	// that gets a stale one catches up with its next blocking request.
	cacheLive = "public, max-age=1"
	// The names of the current init and the multivariant playlist are
	// reused when the publisher comes back.
	cacheAlias = "public, max-age=2"
	// Errors must not outlive their cause: a 503 or a 404 for a part that
	// is about to exist.
	cacheError = "no-store"
)

// ServeHTTP serves the stream's playlists and media. The request path is
// relative to the stream root: mount the stream with http.StripPrefix.
func (s *Stream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.stats.requests.Add(1)
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Range")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		s.fail(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/")
	if path == "index.m3u8" {
		s.serveMultivariant(w, r)
		return
	}
	name, file, _ := strings.Cut(path, "/")
	t := s.byName[name]
	switch {
	case t == nil:
		s.fail(w, http.StatusNotFound, "no such rendition")
	case file == "index.m3u8":
		s.servePlaylist(w, r, t)
	case strings.HasPrefix(file, "init"):
		s.serveInit(w, r, t, file)
	case strings.HasPrefix(file, "seg-"):
		s.serveSegment(w, r, t, file)
	case strings.HasPrefix(file, "part-"):
		s.servePart(w, r, t, file)
	default:
		s.fail(w, http.StatusNotFound, "not found")
	}
}

func (s *Stream) serveMultivariant(w http.ResponseWriter, r *http.Request) {
	// Until every rendition's first IDR arrives, CODECS is unknown.
	select {
	case <-s.ready:
	default:
		s.stats.blocked.Add(1)
		timer := time.NewTimer(s.cfg.HoldLimit)
		select {
		case <-s.ready:
		case <-timer.C:
		case <-r.Context().Done():
		}
		timer.Stop()
		s.stats.blocked.Add(-1)
		if r.Context().Err() != nil {
			return
		}
	}
	m := s.multivariant.Load()
	if m == nil {
		s.fail(w, http.StatusServiceUnavailable, "no media yet")
		return
	}
	s.writePlaylist(w, r, func(gz bool) []byte { return m.body(gz, nil) }, cacheAlias)
}

// reload is a request's blocking-reload and delta-update parameters.
type reload struct {
	msn             uint64
	part            int
	hasMSN, hasPart bool
	skip            bool
}

func parseReload(q url.Values) (reload, error) {
	var rl reload
	one := func(key string) (string, bool, error) {
		vs, ok := q[key]
		if !ok {
			return "", false, nil
		}
		if len(vs) != 1 || vs[0] == "" {
			return "", false, fmt.Errorf("%s must have one value", key)
		}
		return vs[0], true, nil
	}
	v, ok, err := one("_HLS_msn")
	if err != nil {
		return rl, err
	}
	if ok {
		if rl.msn, err = strconv.ParseUint(v, 10, 63); err != nil {
			return rl, fmt.Errorf("_HLS_msn %q is not a media sequence number", v)
		}
		rl.hasMSN = true
	}
	if v, ok, err = one("_HLS_part"); err != nil {
		return rl, err
	} else if ok {
		p, err := strconv.ParseUint(v, 10, 31)
		if err != nil {
			return rl, fmt.Errorf("_HLS_part %q is not a part index", v)
		}
		if !rl.hasMSN {
			return rl, errors.New("_HLS_part without _HLS_msn")
		}
		rl.part, rl.hasPart = int(p), true
	}
	if v, ok, err = one("_HLS_skip"); err != nil {
		return rl, err
	} else if ok {
		if v != "YES" && v != "v2" {
			return rl, fmt.Errorf("_HLS_skip %q is neither YES nor v2", v)
		}
		rl.skip = true // no date ranges, so v2 skips what YES does
	}
	return rl, nil
}

func (s *Stream) servePlaylist(w http.ResponseWriter, r *http.Request, t *track) {
	rl, err := parseReload(r.URL.Query())
	if err != nil {
		s.fail(w, http.StatusBadRequest, err.Error())
		return
	}
	v := t.view.Load()
	if err := v.checkAhead(rl, s.first); err != nil {
		s.fail(w, http.StatusBadRequest, err.Error())
		return
	}
	ready := func(v *view) bool { return v.hasHead }
	switch {
	case rl.hasPart:
		ready = func(v *view) bool { return v.hasPart(rl.msn, rl.part) }
	case rl.hasMSN:
		ready = func(v *view) bool { return v.hasSegment(rl.msn) }
	}
	v, err = s.await(r.Context(), t, ready)
	if err != nil {
		s.failWait(w, err)
		return
	}
	cache := cacheLive
	if rl.hasMSN {
		// The answer to a blocking request holds at least what it asked
		// for, so an edge may serve it to every player asking the same;
		// nobody asks for it once it is older than a delta update reaches.
		cache = fmt.Sprintf("public, max-age=%d", int(6*s.cfg.targetDuration()/time.Second))
	}
	s.writePlaylist(w, r, func(gz bool) []byte { return v.playlist(rl.skip, gz) }, cache)
}

// checkAhead rejects blocking requests too far ahead of the playlist, as
// the spec asks: more than two segments, or more than the Advance Part
// Limit of parts.
func (v *view) checkAhead(rl reload, first uint64) error {
	if !rl.hasMSN {
		return nil
	}
	// Before the first part, the last segment is the one before the first.
	last := int64(first) - 1
	if v.hasHead {
		last = int64(v.headMSN)
	}
	if int64(rl.msn) > last+2 {
		return fmt.Errorf("_HLS_msn %d is more than two segments past the last, %d", rl.msn, last)
	}
	if rl.hasPart && v.hasHead {
		ahead := (int64(rl.msn)-int64(v.headMSN))*int64(v.t.perSegment) + int64(rl.part-v.headPart)
		if ahead > int64(v.t.partLimit) {
			return fmt.Errorf("_HLS_part %d of segment %d is more than %d parts past the last", rl.part, rl.msn, v.t.partLimit)
		}
	}
	return nil
}

var errHoldLimit = errors.New("not available within the hold limit")

// await returns t's first view for which ready holds, or which has ended.
// It waits on the views' broadcasts for at most the hold limit.
func (s *Stream) await(ctx context.Context, t *track, ready func(*view) bool) (*view, error) {
	v := t.view.Load()
	if ready(v) || v.ended {
		return v, nil
	}
	s.stats.blocked.Add(1)
	defer s.stats.blocked.Add(-1)
	timer := time.NewTimer(s.cfg.HoldLimit)
	defer timer.Stop()
	for {
		select {
		case <-v.changed:
			if v = t.view.Load(); ready(v) || v.ended {
				return v, nil
			}
		case <-timer.C:
			return nil, errHoldLimit
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *Stream) failWait(w http.ResponseWriter, err error) {
	if errors.Is(err, errHoldLimit) {
		w.Header().Set("Retry-After", "1")
		s.fail(w, http.StatusServiceUnavailable, err.Error())
	}
	// Otherwise the client left; nobody reads an answer.
}

// writePlaylist answers with a rendered playlist, gzipped when the client
// takes it.
func (s *Stream) writePlaylist(w http.ResponseWriter, r *http.Request, body func(gz bool) []byte, cache string) {
	gz := acceptsGzip(r.Header.Get("Accept-Encoding"))
	b := body(gz)
	h := w.Header()
	h.Set("Content-Type", mimePlaylist)
	h.Set("Cache-Control", cache)
	h.Add("Vary", "Accept-Encoding")
	if gz {
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		n, _ := w.Write(b)
		s.stats.bytes.Add(uint64(n))
	}
}

// acceptsGzip says whether an Accept-Encoding header admits gzip.
func acceptsGzip(header string) bool {
	for _, item := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(item), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}

// fail answers with a JSON error that no cache keeps.
func (s *Stream) fail(w http.ResponseWriter, status int, msg string) {
	switch status {
	case http.StatusBadRequest:
		s.stats.badRequests.Add(1)
	case http.StatusNotFound:
		s.stats.notFound.Add(1)
	case http.StatusServiceUnavailable:
		s.stats.unavailable.Add(1)
	}
	h := w.Header()
	h.Del("Content-Encoding")
	h.Del("Vary")
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", cacheError)
	w.WriteHeader(status)
	body, _ := json.Marshal(map[string]string{"error": msg}) // a map of strings always marshals
	n, _ := w.Write(append(body, '\n'))
	s.stats.bytes.Add(uint64(n))
}
