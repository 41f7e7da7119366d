package llhls

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/starling-sfu/starling/transcode"
)

// get serves one request and returns the recorded answer.
func get(s *Stream, target string, headers ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

// getAsync serves a request in a goroutine that ends with the request; the
// answer comes on the channel.
func getAsync(t *testing.T, s *Stream, target string) <-chan *httptest.ResponseRecorder {
	out := make(chan *httptest.ResponseRecorder, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		out <- get(s, target)
	}()
	t.Cleanup(func() {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("request %s never ended", target)
		}
	})
	return out
}

// waitBlocked waits until n requests are held.
func waitBlocked(t *testing.T, s *Stream, n int64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); s.Stats().Blocked != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests blocked, want %d", s.Stats().Blocked, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// receive waits for an answer that is due now: a woken request answers at
// once, it does not poll.
func receive(t *testing.T, ch <-chan *httptest.ResponseRecorder) *httptest.ResponseRecorder {
	t.Helper()
	select {
	case rec := <-ch:
		return rec
	case <-time.After(time.Second):
		t.Fatal("no answer within a second")
		return nil
	}
}

func notYet(t *testing.T, ch <-chan *httptest.ResponseRecorder) {
	t.Helper()
	select {
	case rec := <-ch:
		t.Fatalf("answered %d before its part existed:\n%s", rec.Code, rec.Body)
	default:
	}
}

// testStream is the synthetic ladder with audio, fed for d; it returns the
// samples left to push.
func testStream(t *testing.T, cfg Config, d time.Duration) (*Stream, []transcode.Sample) {
	t.Helper()
	s, err := NewStream(cfg, testLadder, testAudio, testWall, testLog)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, pushUntil(s, ladderSamples(60*time.Second), d)
}

// pushUntilPart pushes samples until track tr has part n of segment msn.
func pushUntilPart(t *testing.T, s *Stream, samples []transcode.Sample, tr *track, msn uint64, n int) []transcode.Sample {
	t.Helper()
	for !tr.view.Load().hasPart(msn, n) {
		if len(samples) == 0 {
			t.Fatalf("samples ran out before part %d.%d", msn, n)
		}
		s.Push(samples[0])
		samples = samples[1:]
	}
	return samples
}

func TestBlockingReloadAnswersWhenThePartIsPushed(t *testing.T) {
	s, rest := testStream(t, Config{}, 5*time.Second)
	tr := s.byName["720p"]
	msn, n, _ := tr.view.Load().hint()
	ch := getAsync(t, s, fmt.Sprintf("/720p/index.m3u8?_HLS_msn=%d&_HLS_part=%d", msn, n))
	waitBlocked(t, s, 1)
	notYet(t, ch)
	pushUntilPart(t, s, rest, tr, msn, n)

	rec := receive(t, ch)
	body := rec.Body.String()
	last := fmt.Sprintf("#EXT-X-PART:DURATION=0.23333,URI=\"part-%d-%d.m4s\"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-%d-%d.m4s\"\n", msn, n, msn, n+1)
	if rec.Code != 200 || !strings.Contains(body, last) {
		t.Fatalf("%d, want the playlist ending at part %d.%d:\n%s", rec.Code, msn, n, body)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "public, max-age=12" {
		t.Errorf("Cache-Control %q for a blocking answer", cc)
	}
	if got := s.Stats().Blocked; got != 0 {
		t.Errorf("%d requests still counted as blocked", got)
	}
}

func TestPreloadHintAnswersWithThePartOnceComplete(t *testing.T) {
	s, rest := testStream(t, Config{}, 5*time.Second)
	tr := s.byName["audio"]
	msn, n, _ := tr.view.Load().hint()
	ch := getAsync(t, s, fmt.Sprintf("/audio/part-%d-%d.m4s", msn, n))
	waitBlocked(t, s, 1)
	notYet(t, ch)
	pushUntilPart(t, s, rest, tr, msn, n)

	rec := receive(t, ch)
	want := tr.view.Load().part(msn, n).data
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), want) {
		t.Fatalf("%d with %d bytes, want the part's %d", rec.Code, rec.Body.Len(), len(want))
	}
	if ct, cc := rec.Header().Get("Content-Type"), rec.Header().Get("Cache-Control"); ct != "audio/mp4" || cc != cacheMedia {
		t.Errorf("Content-Type %q, Cache-Control %q", ct, cc)
	}
}

// checkJSONError checks an error answer as the house style has them.
func checkJSONError(t *testing.T, rec *httptest.ResponseRecorder, status int) {
	t.Helper()
	var body struct{ Error string }
	if rec.Code != status || json.Unmarshal(rec.Body.Bytes(), &body) != nil || body.Error == "" {
		t.Errorf("%d %q, want %d with a JSON error", rec.Code, rec.Body, status)
	}
	if cc, acao := rec.Header().Get("Cache-Control"), rec.Header().Get("Access-Control-Allow-Origin"); cc != "no-store" || acao != "*" {
		t.Errorf("Cache-Control %q, Access-Control-Allow-Origin %q on an error", cc, acao)
	}
}

func TestRequestsPastTheHoldLimitAre503(t *testing.T) {
	hold := 150 * time.Millisecond
	s, _ := testStream(t, Config{HoldLimit: hold}, 5*time.Second)
	v := s.byName["360p"].view.Load()
	msn, n, _ := v.hint()
	for _, target := range []string{
		fmt.Sprintf("/360p/index.m3u8?_HLS_msn=%d", v.headMSN+2),
		fmt.Sprintf("/360p/index.m3u8?_HLS_msn=%d&_HLS_part=%d", msn, n),
		fmt.Sprintf("/360p/part-%d-%d.m4s", msn, n),
	} {
		start := time.Now()
		rec := get(s, target)
		if elapsed := time.Since(start); elapsed < hold {
			t.Errorf("%s: answered after %v, before the hold limit", target, elapsed)
		}
		checkJSONError(t, rec, http.StatusServiceUnavailable)
	}
	if st := s.Stats(); st.Unavailable != 3 || st.Blocked != 0 {
		t.Errorf("stats %+v, want 3 unavailable and none blocked", st)
	}
}

func TestBadBlockingParametersAre400(t *testing.T) {
	s, _ := testStream(t, Config{HoldLimit: 10 * time.Millisecond}, 5*time.Second)
	v := s.byName["720p"].view.Load()
	head, part := v.headMSN, v.headPart
	for _, c := range []struct {
		query  string
		status int
	}{
		{"_HLS_msn=abc", 400},
		{"_HLS_msn=-1", 400},
		{"_HLS_msn=", 400},
		{"_HLS_msn=1&_HLS_msn=2", 400},
		{"_HLS_part=1", 400},
		{fmt.Sprintf("_HLS_msn=%d&_HLS_part=x", head), 400},
		{fmt.Sprintf("_HLS_msn=%d&_HLS_skip=NO", head), 400},
		{fmt.Sprintf("_HLS_msn=%d", head+3), 400},
		// The Advance Part Limit: 3 s of parts at 0.26667 s, 12 parts.
		{fmt.Sprintf("_HLS_msn=%d&_HLS_part=%d", head, part+13), 400},
		{fmt.Sprintf("_HLS_msn=%d&_HLS_part=%d", head, part+12), 503},
		{fmt.Sprintf("_HLS_msn=%d", head+2), 503},
		{fmt.Sprintf("_HLS_msn=%d&_HLS_part=%d", head, part), 200},
		{fmt.Sprintf("_HLS_msn=%d&_HLS_part=%d&_HLS_skip=v2", head, part), 200},
		{"cdn_cache_buster=1", 200},
	} {
		rec := get(s, "/720p/index.m3u8?"+c.query)
		if c.status == 200 {
			if rec.Code != 200 {
				t.Errorf("%s: %d %s", c.query, rec.Code, rec.Body)
			}
			continue
		}
		checkJSONError(t, rec, c.status)
	}
	if got := s.Stats().BadRequests; got != 9 {
		t.Errorf("%d bad requests counted, want 9", got)
	}
}

func TestCloseAnswersBlockedRequestsWithTheLastPlaylist(t *testing.T) {
	s, _ := testStream(t, Config{}, 5*time.Second)
	msn, n, _ := s.byName["720p"].view.Load().hint()
	list := getAsync(t, s, fmt.Sprintf("/720p/index.m3u8?_HLS_msn=%d&_HLS_part=%d", msn, n+1))
	hint := getAsync(t, s, fmt.Sprintf("/720p/part-%d-%d.m4s", msn, n))
	waitBlocked(t, s, 2)
	s.Close()

	rec := receive(t, list)
	if body := rec.Body.String(); rec.Code != 200 || !strings.HasSuffix(body, "#EXT-X-ENDLIST\n") || strings.Contains(body, "PRELOAD-HINT") {
		t.Errorf("%d, want the final playlist:\n%s", rec.Code, body)
	}
	// Closing completes the open part, which the hint named.
	if rec := receive(t, hint); rec.Code != 200 || rec.Body.Len() == 0 {
		t.Errorf("hinted part: %d", rec.Code)
	}
	if rec := get(s, fmt.Sprintf("/720p/part-%d-%d.m4s", msn, n+1)); rec.Code != 404 {
		t.Errorf("part after the end: %d, want 404", rec.Code)
	}
	s.Push(videoSample(0, 10*time.Second, true, 0)) // ignored
}

func TestDeltaUpdateIsTheFullPlaylistWithOldSegmentsSkipped(t *testing.T) {
	s, _ := testStream(t, Config{}, 25*time.Second)
	full := get(s, "/360p/index.m3u8").Body.String()
	for _, skip := range []string{"YES", "v2"} {
		delta := get(s, "/360p/index.m3u8?_HLS_skip="+skip).Body.String()
		// 10 segments of 2 s and 0.75 s of parts: skipping 4 leaves 12.75 s,
		// which still covers CAN-SKIP-UNTIL=12.
		lines := strings.SplitAfter(full, "\n")
		head, segs := lines[:7], lines[7:]
		var want strings.Builder
		for _, l := range head[:6] {
			want.WriteString(l)
		}
		want.WriteString("#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n")
		want.WriteString(head[6]) // EXT-X-MAP
		pdt := 0
		for i, l := range segs {
			if strings.HasPrefix(l, "#EXT-X-PROGRAM-DATE-TIME") {
				if pdt++; pdt == 5 {
					want.WriteString(strings.Join(segs[i:], ""))
					break
				}
			}
		}
		if delta != want.String() {
			t.Errorf("_HLS_skip=%s:\n%s\nwant\n%s", skip, delta, want.String())
		}
	}
}

func TestHeadersForPlayersAndCDNs(t *testing.T) {
	s, _ := testStream(t, Config{}, 5*time.Second)
	v := s.byName["720p"].view.Load()
	seg := v.segs[0]
	for _, c := range []struct {
		target, contentType, cache string
	}{
		{"/index.m3u8", mimePlaylist, cacheAlias},
		{"/720p/index.m3u8", mimePlaylist, cacheLive},
		{"/720p/init.mp4", "video/mp4", cacheAlias},
		{"/720p/" + seg.init.name, "video/mp4", cacheMedia},
		{fmt.Sprintf("/720p/seg-%d.m4s", seg.msn), "video/mp4", cacheMedia},
		{fmt.Sprintf("/audio/part-%d-0.m4s", seg.msn), "audio/mp4", cacheMedia},
	} {
		rec := get(s, c.target)
		h := rec.Header()
		if rec.Code != 200 || h.Get("Content-Type") != c.contentType || h.Get("Cache-Control") != c.cache || h.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: %d %v", c.target, rec.Code, h)
		}
	}

	plain := get(s, "/720p/index.m3u8").Body.Bytes()
	rec := get(s, "/720p/index.m3u8", "Accept-Encoding: br, gzip;q=0.8")
	if rec.Header().Get("Content-Encoding") != "gzip" || rec.Header().Get("Vary") != "Accept-Encoding" {
		t.Fatalf("headers %v, want gzip and Vary", rec.Header())
	}
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	if unzipped, _ := io.ReadAll(zr); !bytes.Equal(unzipped, plain) {
		t.Errorf("gzipped playlist differs from the plain one")
	}
	if rec := get(s, "/720p/index.m3u8", "Accept-Encoding: gzip;q=0"); rec.Header().Get("Content-Encoding") != "" {
		t.Errorf("gzip sent though refused")
	}

	req := httptest.NewRequest(http.MethodOptions, "/720p/index.m3u8", nil)
	pre := httptest.NewRecorder()
	s.ServeHTTP(pre, req)
	if pre.Code != 204 || pre.Header().Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(pre.Header().Get("Access-Control-Allow-Methods"), "GET") {
		t.Errorf("preflight: %d %v", pre.Code, pre.Header())
	}
	post := httptest.NewRecorder()
	s.ServeHTTP(post, httptest.NewRequest(http.MethodPost, "/720p/index.m3u8", nil))
	checkJSONError(t, post, http.StatusMethodNotAllowed)

	head := httptest.NewRecorder()
	s.ServeHTTP(head, httptest.NewRequest(http.MethodHead, fmt.Sprintf("/720p/seg-%d.m4s", seg.msn), nil))
	if head.Code != 200 || head.Body.Len() != 0 || head.Header().Get("Content-Length") == "" {
		t.Errorf("HEAD: %d, %d bytes, %v", head.Code, head.Body.Len(), head.Header())
	}
}

func TestSegmentsAreTheirPartsAndUnknownMediaIs404(t *testing.T) {
	s, _ := testStream(t, Config{}, 50*time.Second)
	v := s.byName["360p"].view.Load()
	seg := v.segs[len(v.segs)-1]
	var parts []byte
	for _, p := range seg.parts {
		parts = append(parts, p.data...)
	}
	if rec := get(s, fmt.Sprintf("/360p/seg-%d.m4s", seg.msn)); !bytes.Equal(rec.Body.Bytes(), parts) {
		t.Errorf("segment %d is not its parts back to back", seg.msn)
	}
	ranged := get(s, fmt.Sprintf("/360p/seg-%d.m4s", seg.msn), "Range: bytes=10-1000")
	if ranged.Code != http.StatusPartialContent || !bytes.Equal(ranged.Body.Bytes(), parts[10:1001]) {
		t.Errorf("range request: %d", ranged.Code)
	}
	hm, hn, _ := v.hint()
	for _, target := range []string{
		fmt.Sprintf("/360p/seg-%d.m4s", v.segs[0].msn-1),    // expired
		fmt.Sprintf("/360p/seg-%d.m4s", hm),                 // not complete
		fmt.Sprintf("/360p/part-%d-%d.m4s", hm, hn+1),       // after the hint
		fmt.Sprintf("/360p/part-%d-0.m4s", v.segs[0].msn-1), // expired
		"/360p/part-x-1.m4s",
		"/360p/init-1.mp4",
		"/480p/index.m3u8",
		"/360p/other.txt",
	} {
		checkJSONError(t, get(s, target), http.StatusNotFound)
	}
}

func TestMultivariantWaitsForEveryRenditionsSPS(t *testing.T) {
	s, err := NewStream(Config{}, testLadder, testAudio, testWall, testLog)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	samples := ladderSamples(time.Second)
	ch := getAsync(t, s, "/index.m3u8")
	for _, smp := range samples {
		if smp.Rendition != 1 {
			s.Push(smp)
		}
	}
	waitBlocked(t, s, 1)
	notYet(t, ch)
	s.Push(samples[0])
	s.Push(videoSample(1, 0, true, 0))

	rec := receive(t, ch)
	want := "#EXTM3U\n#EXT-X-VERSION:9\n" +
		"#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio/index.m3u8\"\n" +
		"#EXT-X-STREAM-INF:BANDWIDTH=3245000,AVERAGE-BANDWIDTH=2725800,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO=\"audio\"\n720p/index.m3u8\n" +
		"#EXT-X-STREAM-INF:BANDWIDTH=1120000,AVERAGE-BANDWIDTH=940800,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=20.000,AUDIO=\"audio\"\n360p/index.m3u8\n"
	if rec.Code != 200 || rec.Body.String() != want {
		t.Errorf("%d:\n%s\nwant\n%s", rec.Code, rec.Body, want)
	}
}

func TestNewStreamRejectsWhatItCannotServe(t *testing.T) {
	r := testLadder[0]
	for _, c := range []struct {
		name   string
		cfg    Config
		ladder []transcode.Rendition
	}{
		{"no renditions", Config{}, nil},
		{"duplicate names", Config{}, []transcode.Rendition{r, r}},
		{"name clashes with audio", Config{}, []transcode.Rendition{{Name: "audio", Width: 2, Height: 2, FPS: 30}}},
		{"name is not a path segment", Config{}, []transcode.Rendition{{Name: "a/b", Width: 2, Height: 2, FPS: 30}}},
		{"no frame rate", Config{}, []transcode.Rendition{{Name: "x", Width: 2, Height: 2}}},
		{"segment not whole parts", Config{PartTarget: 300 * time.Millisecond}, testLadder},
		{"too few segments", Config{PlaylistSegments: 2}, testLadder},
	} {
		if _, err := NewStream(c.cfg, c.ladder, testAudio, testWall, testLog); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}
