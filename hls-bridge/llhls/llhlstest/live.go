package llhlstest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// checkAligned checks that segment msn and part n start at the same instant
// in every rendition, and that rendition reports point at parts that exist.
func (s *suite) checkAligned(t *testing.T) {
	// Take every playlist at the same part: the earliest head of them all.
	var at [2]uint64
	for i, tr := range s.tracks {
		msn, part, _ := s.fresh(t, tr).Head()
		if i == 0 || msn < at[0] || (msn == at[0] && uint64(part) < at[1]) {
			at = [2]uint64{msn, uint64(part)}
		}
	}
	starts := make([]map[[2]uint64]time.Time, len(s.tracks))
	var tolerance time.Duration
	for i, tr := range s.tracks {
		p, _ := s.playlist(t, tr, blockQuery(at[0], int(at[1])))
		tolerance = max(tolerance, seconds(p.PartTarget/2))
		starts[i] = partStarts(p)
		for _, rep := range p.Reports {
			s.checkReportExists(t, tr, rep)
		}
	}
	common := 0
	for k, ref := range starts[0] {
		for i := 1; i < len(starts); i++ {
			got, ok := starts[i][k]
			if !ok {
				continue
			}
			common++
			if d := got.Sub(ref); d > tolerance || d < -tolerance {
				t.Errorf("part %d.%d starts at %v in %s, at %v in %s", k[0], k[1], got, s.tracks[i].url.Path, ref, s.tracks[0].url.Path)
			}
		}
	}
	if len(s.tracks) > 1 && common == 0 {
		t.Errorf("no part is listed in more than one rendition")
	}
}

// partStarts maps segment msn and part index to the part's start.
func partStarts(p *MediaPlaylist) map[[2]uint64]time.Time {
	m := map[[2]uint64]time.Time{}
	segs := p.Segments
	if p.Tail != nil {
		segs = append(segs[:len(segs):len(segs)], *p.Tail)
	}
	for _, seg := range segs {
		at := seg.PDT
		m[[2]uint64{seg.MSN, 0}] = at
		for n, part := range seg.Parts {
			m[[2]uint64{seg.MSN, uint64(n)}] = at
			at = at.Add(seconds(part.Duration))
		}
	}
	return m
}

// checkReportExists checks that the part a rendition report names is
// there: a blocking request for it is answered at once, as a player
// switching renditions expects.
func (s *suite) checkReportExists(t *testing.T, from *track, rep Attrs) {
	t.Helper()
	other := &track{url: s.resolve(t, from.url, rep["URI"])}
	msn, _ := strconv.ParseUint(rep["LAST-MSN"], 10, 64)
	part, err := strconv.Atoi(rep["LAST-PART"])
	if err != nil {
		t.Errorf("%s: RENDITION-REPORT %v without LAST-PART", from.url.Path, rep)
		return
	}
	p, r := s.playlist(t, other, blockQuery(msn, part))
	if r.elapsed > s.opts.Slack {
		t.Errorf("%s reports part %d.%d of %s, which took %v to appear", from.url.Path, msn, part, other.url.Path, r.elapsed)
	}
	if hm, hp, _ := p.Head(); hm < msn || (hm == msn && hp < part) {
		t.Errorf("%s reports part %d.%d of %s, which lists up to %d.%d", from.url.Path, msn, part, other.url.Path, hm, hp)
	}
}

// checkBlocking asks each playlist for its next part and checks the answer
// comes when that part exists, not later, and may be cached.
func (s *suite) checkBlocking(t *testing.T) {
	for _, tr := range s.tracks {
		p := s.fresh(t, tr)
		pt := seconds(p.PartTarget)
		var r response
		var msn uint64
		var part int
		// The first answers may come from parts made meanwhile; keep
		// asking until a request had to wait.
		for i := 0; i < 20 && r.elapsed < pt/4; i++ {
			msn, part = p.Next()
			p, r = s.playlist(t, tr, blockQuery(msn, part))
		}
		if r.elapsed < pt/4 {
			t.Fatalf("%s: never had to wait for a part: is the stream live?", tr.url.Path)
		}
		if limit := 2*pt + s.opts.Slack; r.elapsed > limit {
			t.Errorf("%s: part %d.%d took %v, more than %v", tr.url.Path, msn, part, r.elapsed, limit)
		}
		// One more part may have come while the answer was on its way;
		// more means the origin held it too long.
		if after, ok := partsAfter(p, msn, part); !ok || after > 1 {
			hm, hp, _ := p.Head()
			t.Errorf("%s: asked for part %d.%d, the answer ends at %d.%d", tr.url.Path, msn, part, hm, hp)
		}
		if n := cacheSeconds(r.header); n < 1 {
			t.Errorf("%s: Cache-Control %q: a blocking answer should be cacheable", tr.url.Path, r.header.Get("Cache-Control"))
		}
	}
}

// partsAfter counts the parts a playlist lists after part n of segment
// msn, or after part 0 of the next segment when segment msn has fewer
// parts; ok is false when it lists neither.
func partsAfter(p *MediaPlaylist, msn uint64, n int) (after int, ok bool) {
	segs := p.Segments
	if p.Tail != nil {
		segs = append(segs[:len(segs):len(segs)], *p.Tail)
	}
	for _, seg := range segs {
		for i := range seg.Parts {
			switch {
			case ok:
				after++
			case seg.MSN == msn && i == n, seg.MSN == msn+1 && i == 0:
				ok = true
			}
		}
	}
	return after, ok
}

// checkPreloadHint fetches each playlist's preload hint, which must come
// back once the part is complete, with the bytes the part is listed with.
func (s *suite) checkPreloadHint(t *testing.T) {
	for _, tr := range s.tracks {
		p := s.fresh(t, tr)
		if p.PreloadHint == nil {
			t.Fatalf("%s: no PRELOAD-HINT", tr.url.Path)
		}
		uri := p.PreloadHint["URI"]
		r := s.get(t, s.resolve(t, tr.url, uri))
		if r.status != http.StatusOK {
			t.Fatalf("%s: preload hint %s: %d %s", tr.url.Path, uri, r.status, r.body)
		}
		if limit := 2*seconds(p.PartTarget) + s.opts.Slack; r.elapsed > limit {
			t.Errorf("%s: preload hint %s took %v, more than %v", tr.url.Path, uri, r.elapsed, limit)
		}
		checkMediaHeaders(t, uri, r)
		msn, part := p.Next()
		next, _ := s.playlist(t, tr, blockQuery(msn, part))
		found := false
		for _, seg := range append(next.Segments, *orEmpty(next.Tail)) {
			for _, listed := range seg.Parts {
				found = found || listed.URI == uri
			}
		}
		if !found {
			t.Errorf("%s: hinted part %s is not listed once complete", tr.url.Path, uri)
		}
		again := s.get(t, s.resolve(t, tr.url, uri))
		if !bytes.Equal(again.body, r.body) {
			t.Errorf("%s: hinted part %s changed after it was served", tr.url.Path, uri)
		}
	}
}

func orEmpty(s *Segment) *Segment {
	if s == nil {
		return &Segment{}
	}
	return s
}

func (s *suite) checkBadRequests(t *testing.T) {
	tr := s.tracks[0]
	p := s.fresh(t, tr)
	for _, q := range []string{
		"_HLS_msn=abc",
		"_HLS_msn=-1",
		"_HLS_msn=1.5",
		"_HLS_part=0",
		fmt.Sprintf("_HLS_msn=%d&_HLS_part=x", p.LastMSN()),
		fmt.Sprintf("_HLS_msn=%d", p.LastMSN()+10),
	} {
		u := *tr.url
		u.RawQuery = q
		r := s.get(t, &u)
		checkError(t, q, r, http.StatusBadRequest)
		if r.elapsed > s.opts.Slack {
			t.Errorf("%s: answered after %v, want at once", q, r.elapsed)
		}
	}
}

func (s *suite) checkHoldLimit(t *testing.T) {
	tr := s.tracks[0]
	p := s.fresh(t, tr)
	hold := s.opts.HoldLimit
	if hold == 0 || hold >= seconds(p.TargetDuration) {
		t.Skipf("hold limit %v: a live stream reaches two segments ahead first", hold)
	}
	u := *tr.url
	u.RawQuery = "_HLS_msn=" + strconv.FormatUint(p.LastMSN()+2, 10)
	r := s.get(t, &u)
	checkError(t, u.RawQuery, r, http.StatusServiceUnavailable)
	if r.elapsed < hold*9/10 || r.elapsed > hold+s.opts.Slack {
		t.Errorf("503 after %v, want after the hold limit %v", r.elapsed, hold)
	}
}

// checkDelta asks for the same update in full and as a delta and checks
// that the delta is the full playlist with old segments skipped.
func (s *suite) checkDelta(t *testing.T) {
	for _, tr := range s.tracks {
		p := s.fresh(t, tr)
		if _, ok := p.ServerControl["CAN-SKIP-UNTIL"]; !ok {
			t.Skipf("%s: no CAN-SKIP-UNTIL", tr.url.Path)
		}
		msn, part := p.Next()
		var full, delta *MediaPlaylist
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); full, _ = s.playlistOrNil(t, tr, blockQuery(msn, part)) }()
		go func() { defer wg.Done(); delta, _ = s.playlistOrNil(t, tr, blockQuery(msn, part)+"&_HLS_skip=YES") }()
		wg.Wait()
		if full == nil || delta == nil {
			t.FailNow()
		}
		s.compareDelta(t, tr, full, delta)
	}
}

// playlistOrNil is playlist for other goroutines: it reports with Errorf.
func (s *suite) playlistOrNil(t *testing.T, tr *track, query string) (*MediaPlaylist, response) {
	u := *tr.url
	u.RawQuery = query
	r := s.get(t, &u)
	p, err := ParseMedia(r.body)
	if r.status != http.StatusOK || err != nil {
		t.Errorf("GET %s: %d %v", &u, r.status, err)
		return nil, r
	}
	return p, r
}

func (s *suite) compareDelta(t *testing.T, tr *track, full, delta *MediaPlaylist) {
	t.Helper()
	name := tr.url.Path
	until := full.ServerControl.Float("CAN-SKIP-UNTIL")
	var total, kept float64
	for _, seg := range full.Segments {
		total += seg.Duration
	}
	for _, seg := range delta.Segments {
		kept += seg.Duration
	}
	if delta.Version < 9 {
		t.Errorf("%s: delta update with EXT-X-VERSION %d, want at least 9", name, delta.Version)
	}
	if total > until+2*full.TargetDuration && delta.Skipped == 0 {
		t.Errorf("%s: %vs of segments, CAN-SKIP-UNTIL %v, yet nothing skipped", name, total, until)
	}
	if delta.Skipped > 0 && kept < until-full.TargetDuration {
		t.Errorf("%s: delta keeps %vs, less than CAN-SKIP-UNTIL %v", name, kept, until)
	}
	byMSN := map[uint64]Segment{}
	for _, seg := range full.Segments {
		byMSN[seg.MSN] = seg
	}
	for _, seg := range delta.Segments {
		f, ok := byMSN[seg.MSN]
		if !ok {
			if seg.MSN <= full.LastMSN() {
				t.Errorf("%s: delta has segment %d, the full playlist does not", name, seg.MSN)
			}
			continue
		}
		if seg.URI != f.URI || math.Abs(seg.Duration-f.Duration) > durationSlack || !seg.PDT.Equal(f.PDT) ||
			seg.Discontinuity != f.Discontinuity || len(seg.Parts) != len(f.Parts) {
			t.Errorf("%s: segment %d differs:\ndelta %+v\nfull  %+v", name, seg.MSN, seg, f)
		}
	}
	if len(delta.Segments) > 0 && delta.MediaSequence+uint64(delta.Skipped) != delta.Segments[0].MSN {
		t.Errorf("%s: delta numbering broken", name)
	}
}

func (s *suite) checkGzipAndCORS(t *testing.T) {
	for _, tr := range s.tracks {
		r := s.get(t, tr.url, "Accept-Encoding: gzip")
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d", tr.url.Path, r.status)
		}
		if r.header.Get("Access-Control-Allow-Origin") == "" {
			t.Errorf("%s: no Access-Control-Allow-Origin", tr.url.Path)
		}
		if !strings.Contains(strings.Join(r.header.Values("Vary"), ","), "Accept-Encoding") {
			t.Errorf("%s: Vary %q does not name Accept-Encoding", tr.url.Path, r.header.Values("Vary"))
		}
		if r.header.Get("Content-Encoding") != "gzip" {
			t.Errorf("%s: Content-Encoding %q, want gzip", tr.url.Path, r.header.Get("Content-Encoding"))
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(r.body))
		if err != nil {
			t.Fatalf("%s: gzip: %v", tr.url.Path, err)
		}
		body, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: gzip: %v", tr.url.Path, err)
		}
		if _, err := ParseMedia(body); err != nil {
			t.Errorf("%s: gzipped playlist: %v", tr.url.Path, err)
		}
	}
}
