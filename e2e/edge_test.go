package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starling-sfu/starling/hls-bridge/llhls/llhlstest"
	"github.com/starling-sfu/starling/loadtest"
)

// Through the reference nginx edge (deploy/nginx/llhls-edge.conf) a
// publisher's LL-HLS ladder passes the conformance suite; a crowd of
// players asking for the same blocking playlist costs the origin one
// request and is served from the cache; a blocking playlist reaches a
// player through the edge within 200 ms of one asked of the origin at the
// same moment (players who wait in nginx's cache lock meanwhile get it up
// to 500 ms later, its poll period); and the edge keeps one copy of a
// playlist per encoding, keeps no errors, and passes only /hls/.
func TestEdgeServesLLHLSFromItsCache(t *testing.T) {
	nginx := requireEdgeTools(t)
	srv := startServer(t, "--hls-mode", "live", "--hls-ladder", "640x360:800,320x180:300")
	cdn := startEdge(t, nginx, strings.TrimPrefix(srv.URL, "http://"))

	const room, identity = "edge", "cam"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pub, err := loadtest.Publish(ctx, loadtest.PublisherOptions{
		URL: srv.URL + "/whip/" + room, Token: srv.token(t, room, identity, true), Simulcast: true, Audio: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(context.Background())
	if err := pub.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}

	stream := "/hls/" + room + "/" + identity + "/"
	video := awaitLadderAtOrigin(t, srv.URL+stream)
	client := &http.Client{Timeout: 30 * time.Second}
	t.Run("Conformance", func(t *testing.T) {
		llhlstest.Check(t, client, cdn.URL+stream, llhlstest.Options{})
	})
	t.Run("ACrowdOfBlockingRequestsIsOneOriginRequest", func(t *testing.T) {
		checkEdgeCrowd(t, srv, srv.URL+stream+video, cdn.URL+stream+video)
	})
	t.Run("BlockingReloadWithin200msOfDirect", func(t *testing.T) {
		checkEdgeLatency(t, srv.URL+stream+video, cdn.URL+stream+video)
	})
	t.Run("CacheRulesMethodsPathsAndLongHolds", func(t *testing.T) {
		checkEdgeRules(t, srv.URL+stream+video, cdn.URL+stream+video, cdn.URL, "/hls/"+room+"/index.m3u8")
	})
}

// awaitLadderAtOrigin waits, at the origin, until every media playlist of the
// stream at base lists two whole segments, and returns the URI of the first
// video rendition's playlist, relative to base.
func awaitLadderAtOrigin(t *testing.T, base string) string {
	t.Helper()
	var mv *llhlstest.Multivariant
	eventually(t, 20*time.Second, "the ladder's multivariant playlist", func() (bool, string) {
		r, err := edgeFetch(context.Background(), http.DefaultClient, base+"index.m3u8")
		if err != nil || r.status != http.StatusOK {
			return false, fmt.Sprintf("%d %s %v", r.status, r.body, err)
		}
		mv, err = llhlstest.ParseMultivariant(r.body)
		return err == nil && len(mv.Variants) > 0, fmt.Sprint(err)
	})
	var uris []string
	for _, v := range mv.Variants {
		uris = append(uris, v.URI)
	}
	for _, m := range mv.Media {
		if m["TYPE"] == "AUDIO" {
			uris = append(uris, m["URI"])
		}
	}
	for _, uri := range uris {
		eventually(t, 15*time.Second, uri+" lists two segments", func() (bool, string) {
			r, err := edgeFetch(context.Background(), http.DefaultClient, base+uri)
			n := bytes.Count(r.body, []byte("#EXTINF"))
			return err == nil && n >= 2, fmt.Sprintf("%d segments, %v", n, err)
		})
	}
	return uris[0]
}

// checkEdgeCrowd has players ask the edge at once for the part after the one
// just made: one request reaches the origin, the others are answered from
// the cache, and so is a later identical request.
func checkEdgeCrowd(t *testing.T, srv *server, direct, viaEdge string) {
	const players = 8
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: players}, Timeout: 30 * time.Second}
	p := justMadePlaylist(t, client, direct)
	u := viaEdge + "?" + edgeBlockQuery(p.Next())

	before := metric(t, srv, "starling_hls_requests_total")
	results := make([]edgeFetched, players)
	errs := make([]error, players)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range players {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = edgeFetch(context.Background(), client, u)
		}()
	}
	wg.Wait()
	origin := metric(t, srv, "starling_hls_requests_total") - before

	statuses := map[string]int{}
	var first time.Time
	for i, r := range results {
		if errs[i] != nil || r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s %v", u, r.status, r.body, errs[i])
		}
		if !bytes.Equal(r.body, results[0].body) {
			t.Errorf("player %d got another playlist than player 0", i)
		}
		cache := r.header.Get("X-Cache-Status")
		statuses[cache]++
		if cache == "MISS" {
			first = r.done
		}
	}
	if statuses["MISS"] != 1 || statuses["HIT"] != players-1 || origin != 1 {
		t.Errorf("%d players: X-Cache-Status %v, %v requests at the origin; want one MISS, %d HIT, one origin request",
			players, statuses, origin, players-1)
	}
	var after []float64
	for _, r := range results {
		if r.header.Get("X-Cache-Status") == "HIT" {
			after = append(after, millis(r.done.Sub(first)))
		}
	}
	slices.Sort(after)
	t.Logf("edge crowd: players=%d origin_requests=%v miss=%d hit=%d first_ms=%.1f hits_after_first_ms=%v",
		players, origin, statuses["MISS"], statuses["HIT"], millis(first.Sub(start)), roundedMillis(after))

	before = metric(t, srv, "starling_hls_requests_total")
	again, err := edgeFetch(context.Background(), client, u)
	if err != nil || again.status != http.StatusOK || again.header.Get("X-Cache-Status") != "HIT" {
		t.Errorf("the same request again: %d X-Cache-Status %q %v, want a 200 HIT", again.status, again.header.Get("X-Cache-Status"), err)
	}
	if n := metric(t, srv, "starling_hls_requests_total") - before; n != 0 {
		t.Errorf("the same request again reached the origin (%v requests)", n)
	}
}

// checkEdgeLatency follows the stream's blocking reloads part after part,
// as a player at the origin would, and asks for each part at the same
// moment twice through the edge. The first edge request to arrive goes to
// the origin; the other waits in the edge's cache lock for its answer. The
// first must arrive within 200 ms of the direct answer (p50); the other
// within nginx's 500 ms lock poll and some slack.
func checkEdgeLatency(t *testing.T, direct, viaEdge string) {
	const rounds = 20
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}, Timeout: 30 * time.Second}
	type round struct {
		urls    [3]string // direct, edge, edge
		start   time.Time
		results [3]edgeFetched
		errs    [3]error
	}
	all := make([]*round, 0, rounds)
	var wg sync.WaitGroup
	p := justMadePlaylist(t, client, direct)
	for range rounds {
		q := "?" + edgeBlockQuery(p.Next())
		r := &round{urls: [3]string{direct + q, viaEdge + q, viaEdge + q}, start: time.Now()}
		all = append(all, r)
		answered := make(chan struct{})
		for i := range r.urls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.results[i], r.errs[i] = edgeFetch(context.Background(), client, r.urls[i])
				if i == 0 {
					close(answered)
				}
			}()
		}
		// The next round asks for the part after the one this direct
		// answer lists last, as soon as it comes.
		<-answered
		var err error
		if p, err = llhlstest.ParseMedia(r.results[0].body); err != nil || r.errs[0] != nil {
			wg.Wait()
			t.Fatalf("GET %s: %d %s %v", r.urls[0], r.results[0].status, r.results[0].body, errors.Join(r.errs[0], err))
		}
	}
	wg.Wait()

	var directMs, firstMs, firstExtra, waitingMs, waitingExtra []float64
	for _, r := range all {
		for i, res := range r.results {
			if r.errs[i] != nil || res.status != http.StatusOK {
				t.Fatalf("GET %s: %d %s %v", r.urls[i], res.status, res.body, r.errs[i])
			}
		}
		first, waiting := r.results[1], r.results[2]
		if first.header.Get("X-Cache-Status") == "HIT" {
			first, waiting = waiting, first
		}
		if first.header.Get("X-Cache-Status") != "MISS" || waiting.header.Get("X-Cache-Status") != "HIT" {
			t.Errorf("%s: X-Cache-Status %q and %q, want one MISS and one HIT", r.urls[1],
				r.results[1].header.Get("X-Cache-Status"), r.results[2].header.Get("X-Cache-Status"))
		}
		d := r.results[0].done
		directMs = append(directMs, millis(d.Sub(r.start)))
		firstMs = append(firstMs, millis(first.done.Sub(r.start)))
		firstExtra = append(firstExtra, millis(first.done.Sub(d)))
		waitingMs = append(waitingMs, millis(waiting.done.Sub(r.start)))
		waitingExtra = append(waitingExtra, millis(waiting.done.Sub(d)))
	}
	for _, s := range [][]float64{directMs, firstMs, firstExtra, waitingMs, waitingExtra} {
		slices.Sort(s)
	}
	t.Logf("edge latency: rounds=%d direct_p50_ms=%.1f direct_p95_ms=%.1f edge_p50_ms=%.1f edge_p95_ms=%.1f "+
		"edge_extra_p50_ms=%.1f edge_extra_p95_ms=%.1f edge_waiting_p50_ms=%.1f edge_waiting_p95_ms=%.1f "+
		"edge_waiting_extra_p50_ms=%.1f edge_waiting_extra_p95_ms=%.1f",
		rounds, edgeQuantile(directMs, 50), edgeQuantile(directMs, 95), edgeQuantile(firstMs, 50), edgeQuantile(firstMs, 95),
		edgeQuantile(firstExtra, 50), edgeQuantile(firstExtra, 95), edgeQuantile(waitingMs, 50), edgeQuantile(waitingMs, 95),
		edgeQuantile(waitingExtra, 50), edgeQuantile(waitingExtra, 95))
	if x := edgeQuantile(firstExtra, 50); x > 200 {
		t.Errorf("through the edge a blocking reload arrives %.0f ms after the direct one (p50), want at most 200 ms", x)
	}
	if x := edgeQuantile(waitingExtra, 95); x > 750 {
		t.Errorf("a request waiting in the edge's cache lock arrives %.0f ms after the direct one (p95), "+
			"want at most 750 ms (nginx polls the lock every 500 ms)", x)
	}
}

// checkEdgeRules checks what the configuration decides besides caching
// as the origin says: a playlist is kept once per encoding, not once per
// Accept-Encoding string; errors are not kept; ranges and HEAD are served
// from the cache; only /hls/, and only GET, HEAD and OPTIONS, go through;
// a request held for seconds neither times out nor goes through twice.
// roomPlaylist is the path that redirects to the room's publisher.
func checkEdgeRules(t *testing.T, direct, viaEdge, edgeRoot, roomPlaylist string) {
	client := &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	p := justMadePlaylist(t, client, direct)
	msn, part, _ := p.Head()
	playlist := viaEdge + "?" + edgeBlockQuery(msn, part)
	dir := strings.TrimSuffix(viaEdge, "index.m3u8")
	seg := p.Segments[len(p.Segments)-1]
	// The room's playlist redirects to the publisher's, a path: the player
	// stays on the edge.
	publisherPlaylist := path.Dir(path.Dir(strings.TrimPrefix(viaEdge, edgeRoot))) + "/index.m3u8"
	for _, c := range []struct {
		method, url, header string
		status              int
		cache, encoding     string // X-Cache-Status and Content-Encoding wanted
	}{
		{"GET", playlist, "Accept-Encoding: gzip", 200, "MISS", "gzip"},
		{"GET", playlist, "Accept-Encoding: gzip, deflate, br, zstd", 200, "HIT", "gzip"},
		{"GET", playlist, "Accept-Encoding: identity", 200, "MISS", ""},
		{"GET", playlist, "Accept-Encoding: gzip;q=0, deflate", 200, "HIT", ""},
		{"HEAD", playlist, "Accept-Encoding: gzip", 200, "HIT", "gzip"},
		{"GET", dir + seg.URI, "Range: bytes=0-99", 206, "MISS", ""},
		{"GET", dir + seg.URI, "Range: bytes=100-199", 206, "HIT", ""},
		{"GET", dir + "part-1-0.m4s", "", 404, "MISS", ""},
		{"GET", dir + "part-1-0.m4s", "", 404, "MISS", ""},
		{"GET", viaEdge + "?_HLS_msn=x", "", 400, "MISS", ""},
		{"GET", viaEdge + "?_HLS_msn=x", "", 400, "MISS", ""},
		{"OPTIONS", playlist, "Access-Control-Request-Method: GET", 204, "", ""},
		{"POST", playlist, "", 405, "", ""},
		{"GET", edgeRoot + roomPlaylist, "", 302, "MISS", ""},
		{"GET", edgeRoot + "/metrics", "", 404, "", ""},
	} {
		what := c.method + " " + strings.TrimPrefix(c.url, edgeRoot) + " " + c.header
		r, err := edgeDo(context.Background(), client, c.method, c.url, c.header)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		cache, enc := r.header.Get("X-Cache-Status"), r.header.Get("Content-Encoding")
		if r.status != c.status || cache != c.cache || enc != c.encoding {
			t.Errorf("%s: %d, X-Cache-Status %q, Content-Encoding %q; want %d, %q, %q",
				what, r.status, cache, enc, c.status, c.cache, c.encoding)
		}
		switch {
		case c.method == "HEAD" && len(r.body) != 0:
			t.Errorf("%s: %d bytes of body", what, len(r.body))
		case c.status == 206 && len(r.body) != 100:
			t.Errorf("%s: %d bytes, want 100", what, len(r.body))
		case c.status >= 400 && !bytes.HasPrefix(r.body, []byte(`{"error":`)):
			t.Errorf("%s: body %q, want a JSON error", what, r.body)
		case c.method == "OPTIONS" && r.header.Get("Access-Control-Allow-Methods") == "":
			t.Errorf("%s: no Access-Control-Allow-Methods", what)
		case c.method == "POST" && r.header.Get("Allow") == "":
			t.Errorf("%s: no Allow", what)
		case c.status == 302 && r.header.Get("Location") != publisherPlaylist:
			t.Errorf("%s: Location %q, want %s, on the edge", what, r.header.Get("Location"), publisherPlaylist)
		case strings.HasPrefix(c.header, "Accept-Encoding") && r.header.Get("Vary") != "Accept-Encoding":
			t.Errorf("%s: Vary %q, want Accept-Encoding", what, r.header.Get("Vary"))
		}
	}

	// A request the origin holds for seconds, for the segment after the
	// one being made, goes through the edge once however many wait for it.
	p = justMadePlaylist(t, client, direct)
	held := viaEdge + "?_HLS_msn=" + strconv.FormatUint(p.LastMSN()+2, 10)
	var results [2]edgeFetched
	var errs [2]error
	start := time.Now()
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = edgeFetch(context.Background(), client, held)
		}()
	}
	wg.Wait()
	cache := map[string]int{}
	for i, r := range results {
		if errs[i] != nil || r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s %v", held, r.status, r.body, errs[i])
		}
		cache[r.header.Get("X-Cache-Status")]++
	}
	if waited := time.Since(start); cache["MISS"] != 1 || cache["HIT"] != 1 || waited < time.Second {
		t.Errorf("two requests held %v for segment %d: X-Cache-Status %v, want one MISS and one HIT after at least 1s",
			waited.Round(time.Millisecond), p.LastMSN()+2, cache)
	}
}

// justMadePlaylist returns the media playlist at u as it is when its newest
// part has just been made: the answer to a blocking request for the part
// after the one a plain request lists last.
func justMadePlaylist(t *testing.T, client *http.Client, u string) *llhlstest.MediaPlaylist {
	t.Helper()
	var p *llhlstest.MediaPlaylist
	for _, q := range []string{"", "?"} {
		if p != nil {
			q += edgeBlockQuery(p.Next())
		}
		r, err := edgeFetch(context.Background(), client, u+q)
		if err != nil || r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s %v", u+q, r.status, r.body, err)
		}
		if p, err = llhlstest.ParseMedia(r.body); err != nil {
			t.Fatalf("GET %s: %v", u+q, err)
		}
	}
	return p
}

func edgeBlockQuery(msn uint64, part int) string {
	return "_HLS_msn=" + strconv.FormatUint(msn, 10) + "&_HLS_part=" + strconv.Itoa(part)
}

// edgeFetched is a response read to its end.
type edgeFetched struct {
	status int
	header http.Header
	body   []byte
	done   time.Time // when the last byte was read
}

// edgeFetch gets u with client and reads the whole answer.
func edgeFetch(ctx context.Context, client *http.Client, u string) (edgeFetched, error) {
	return edgeDo(ctx, client, http.MethodGet, u, "")
}

// edgeDo sends a request with one optional header line ("Key: value")
// and reads the whole answer.
func edgeDo(ctx context.Context, client *http.Client, method, u, header string) (edgeFetched, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return edgeFetched{}, err
	}
	if k, v, ok := strings.Cut(header, ": "); ok {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return edgeFetched{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return edgeFetched{status: resp.StatusCode, header: resp.Header, body: body, done: time.Now()}, err
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// edgeQuantile is the q-th percentile (0..100) of sorted values, by nearest
// rank.
func edgeQuantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func roundedMillis(values []float64) []float64 {
	out := make([]float64, len(values))
	for i, v := range values {
		out[i] = math.Round(v)
	}
	return out
}
