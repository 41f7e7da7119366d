// Package llhlstest is a conformance suite for Low-Latency HLS origins. It
// speaks only HTTP, so it checks an origin directly or through a CDN edge:
// playlists against RFC 8216bis and what hls.js relies on, fMP4 parts and
// segments against their playlists, blocking reload, preload hints, delta
// updates, errors and caching headers.
package llhlstest

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Options tunes the suite to the origin under test.
type Options struct {
	// HoldLimit is how long the origin holds a blocking request. When it
	// is shorter than the target duration, the suite checks that a request
	// for the segment after next is answered 503 once it passes; zero
	// skips that check (with the spec's three target durations, a live
	// stream always gets there first).
	HoldLimit time.Duration
	// Slack is added to every latency bound, for the network and any CDN
	// between; default 500 ms.
	Slack time.Duration
}

// Check runs the suite against the live stream whose multivariant playlist
// is baseURL + "index.m3u8". The stream must be live (producing parts in
// real time) for the whole run and must have audio in an EXT-X-MEDIA
// group or none at all.
func Check(t *testing.T, client *http.Client, baseURL string, opts Options) {
	if opts.Slack == 0 {
		opts.Slack = 500 * time.Millisecond
	}
	s := &suite{client: client, opts: opts}
	var err error
	if s.base, err = url.Parse(baseURL); err != nil {
		t.Fatalf("base URL: %v", err)
	}
	s.load(t)
	for _, c := range []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"Multivariant", s.checkMultivariant},
		{"MediaPlaylists", s.checkPlaylists},
		{"PartsAndSegmentsMatchTheirPlaylists", s.checkMedia},
		{"RenditionsAlign", s.checkAligned},
		{"BlockingReloadReturnsOnceThePartExists", s.checkBlocking},
		{"PreloadHintBlocksUntilThePartIsComplete", s.checkPreloadHint},
		{"BadBlockingParametersAre400", s.checkBadRequests},
		{"PastTheHoldLimitIs503", s.checkHoldLimit},
		{"DeltaUpdateMatchesTheFullPlaylist", s.checkDelta},
		{"GzipAndCORS", s.checkGzipAndCORS},
	} {
		t.Run(c.name, c.fn)
	}
}

type suite struct {
	client *http.Client
	base   *url.URL
	opts   Options
	mv     *Multivariant
	tracks []*track // video variants, then audio
}

// track is one media playlist.
type track struct {
	url     *url.URL
	video   bool
	variant *Variant // nil for audio
}

type response struct {
	status  int
	header  http.Header
	body    []byte
	elapsed time.Duration
}

// get fetches u (relative to the base URL) with header lines "Key: value".
func (s *suite) get(t *testing.T, u *url.URL, headers ...string) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", u, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body, elapsed: time.Since(start)}
}

func (s *suite) resolve(t *testing.T, base *url.URL, ref string) *url.URL {
	t.Helper()
	r, err := base.Parse(ref)
	if err != nil {
		t.Fatalf("URI %q: %v", ref, err)
	}
	return r
}

// playlist fetches a media playlist with query parameters; it fails the
// test unless the answer is a 200 playlist.
func (s *suite) playlist(t *testing.T, tr *track, query string) (*MediaPlaylist, response) {
	t.Helper()
	u := *tr.url
	u.RawQuery = query
	r := s.get(t, &u)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", &u, r.status, r.body)
	}
	p, err := ParseMedia(r.body)
	if err != nil {
		t.Fatalf("GET %s: %v", &u, err)
	}
	return p, r
}

// fresh fetches a playlist that holds at least the part the origin had
// last: a blocking request, so that no cache answers with an old one.
func (s *suite) fresh(t *testing.T, tr *track) *MediaPlaylist {
	t.Helper()
	p, _ := s.playlist(t, tr, "")
	msn, part, ok := p.Head()
	if !ok {
		t.Fatalf("%s lists no parts", tr.url)
	}
	p, _ = s.playlist(t, tr, blockQuery(msn, part))
	return p
}

func blockQuery(msn uint64, part int) string {
	return "_HLS_msn=" + strconv.FormatUint(msn, 10) + "&_HLS_part=" + strconv.Itoa(part)
}

func (s *suite) load(t *testing.T) {
	u := s.resolve(t, s.base, "index.m3u8")
	r := s.get(t, u)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, r.status, r.body)
	}
	mv, err := ParseMultivariant(r.body)
	if err != nil {
		t.Fatalf("multivariant: %v", err)
	}
	s.mv = mv
	for i := range mv.Variants {
		s.tracks = append(s.tracks, &track{url: s.resolve(t, u, mv.Variants[i].URI), video: true, variant: &mv.Variants[i]})
	}
	for _, m := range mv.Media {
		if m["TYPE"] == "AUDIO" && m["URI"] != "" {
			s.tracks = append(s.tracks, &track{url: s.resolve(t, u, m["URI"])})
		}
	}
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

var maxAge = regexp.MustCompile(`max-age=(\d+)`)

// cacheSeconds is a response's max-age; -1 when it may not be stored.
func cacheSeconds(h http.Header) int {
	cc := h.Get("Cache-Control")
	if strings.Contains(cc, "no-store") || strings.Contains(cc, "no-cache") || strings.Contains(cc, "private") {
		return -1
	}
	m := maxAge.FindStringSubmatch(cc)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// checkError checks an error answer: the status, a JSON body with an
// error, and no caching beyond a second.
func checkError(t *testing.T, what string, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d (%s)", what, r.status, status, r.body)
		return
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") || !regexp.MustCompile(`"error"\s*:\s*"[^"]+"`).Match(r.body) {
		t.Errorf("%s: body %q (%s), want JSON with an error", what, r.body, ct)
	}
	if n := cacheSeconds(r.header); n > 1 {
		t.Errorf("%s: Cache-Control %q keeps an error %ds", what, r.header.Get("Cache-Control"), n)
	}
}
