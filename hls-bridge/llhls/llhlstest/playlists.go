package llhlstest

import (
	"bytes"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// durationSlack absorbs the rounding of printed durations.
const durationSlack = 1e-5

func (s *suite) checkMultivariant(t *testing.T) {
	groups := map[string]bool{}
	for _, m := range s.mv.Media {
		if m["TYPE"] == "AUDIO" {
			groups[m["GROUP-ID"]] = true
			if m["URI"] == "" {
				t.Errorf("EXT-X-MEDIA %v has no URI", m)
			}
		}
	}
	for _, tr := range s.tracks {
		p, _ := s.playlist(t, tr, "")
		if len(p.Segments) == 0 && p.Tail == nil {
			t.Fatalf("%s lists no media", tr.url)
		}
		in := s.init(t, tr, p)
		if tr.variant == nil {
			if in.video || in.codec != "mp4a.40.2" {
				t.Errorf("audio init codec %s, want mp4a.40.2", in.codec)
			}
			continue
		}
		v, uri := tr.variant.Attrs, tr.variant.URI
		bw, avg := v.Float("BANDWIDTH"), v.Float("AVERAGE-BANDWIDTH")
		if bw <= 0 || avg <= 0 || avg > bw {
			t.Errorf("%s: BANDWIDTH %v, AVERAGE-BANDWIDTH %v", uri, v["BANDWIDTH"], v["AVERAGE-BANDWIDTH"])
		}
		codecs := strings.Split(strings.ToLower(v["CODECS"]), ",")
		if !in.video || !contains(codecs, in.codec) {
			t.Errorf("%s: CODECS %q does not name the init's %s", uri, v["CODECS"], in.codec)
		}
		if len(groups) > 0 && (!contains(codecs, "mp4a.40.2") || !groups[v["AUDIO"]]) {
			t.Errorf("%s: CODECS %q, AUDIO %q: want mp4a.40.2 and an audio group", uri, v["CODECS"], v["AUDIO"])
		}
		if want := strconv.Itoa(in.width) + "x" + strconv.Itoa(in.height); v["RESOLUTION"] != want {
			t.Errorf("%s: RESOLUTION %s, the SPS says %s", uri, v["RESOLUTION"], want)
		}
		if v.Float("FRAME-RATE") <= 0 {
			t.Errorf("%s: FRAME-RATE %q", uri, v["FRAME-RATE"])
		}
	}
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if strings.TrimSpace(l) == s {
			return true
		}
	}
	return false
}

// init fetches and reads the init section in effect for a playlist's
// first segment.
func (s *suite) init(t *testing.T, tr *track, p *MediaPlaylist) initInfo {
	t.Helper()
	first := p.Tail
	if len(p.Segments) > 0 {
		first = &p.Segments[0]
	}
	if first == nil || first.Map == "" {
		t.Fatalf("%s: no EXT-X-MAP", tr.url)
	}
	r := s.get(t, s.resolve(t, tr.url, first.Map))
	if r.status != 200 {
		t.Fatalf("init %s: %d", first.Map, r.status)
	}
	checkMediaHeaders(t, "init "+first.Map, r)
	in, err := inspectInit(r.body)
	if err != nil {
		t.Fatalf("init %s: %v", first.Map, err)
	}
	return in
}

func (s *suite) checkPlaylists(t *testing.T) {
	for _, tr := range s.tracks {
		p, r := s.playlist(t, tr, "")
		if ct := r.header.Get("Content-Type"); ct != "application/vnd.apple.mpegurl" && ct != "audio/mpegurl" {
			t.Errorf("%s: Content-Type %q", tr.url, ct)
		}
		if n := cacheSeconds(r.header); n > 1 {
			t.Errorf("%s: Cache-Control %q keeps a live playlist %ds", tr.url, r.header.Get("Cache-Control"), n)
		}
		s.checkPlaylist(t, tr, p)
	}
}

// checkPlaylist checks one media playlist on its own.
func (s *suite) checkPlaylist(t *testing.T, tr *track, p *MediaPlaylist) {
	t.Helper()
	name := tr.url.Path
	sc, pt, td := p.ServerControl, p.PartTarget, p.TargetDuration
	if p.Version < 6 || (p.Skipped > 0 && p.Version < 9) {
		t.Errorf("%s: EXT-X-VERSION %d too low for its tags", name, p.Version)
	}
	if sc["CAN-BLOCK-RELOAD"] != "YES" {
		t.Errorf("%s: SERVER-CONTROL %v without CAN-BLOCK-RELOAD=YES", name, sc)
	}
	if pt <= 0 || td <= 0 {
		t.Fatalf("%s: PART-TARGET %v, TARGETDURATION %v", name, pt, td)
	}
	if phb := sc.Float("PART-HOLD-BACK"); phb < 3*pt-1e-9 {
		t.Errorf("%s: PART-HOLD-BACK %v below 3 × PART-TARGET %v", name, phb, pt)
	}
	if skip, ok := sc["CAN-SKIP-UNTIL"]; ok && sc.Float("CAN-SKIP-UNTIL") < 6*td {
		t.Errorf("%s: CAN-SKIP-UNTIL %s below 6 × TARGETDURATION", name, skip)
	}
	if !p.Ended && (p.PreloadHint == nil || p.PreloadHint["TYPE"] != "PART" || p.PreloadHint["URI"] == "") {
		t.Errorf("%s: PRELOAD-HINT %v, want TYPE=PART with a URI", name, p.PreloadHint)
	}
	segs := p.Segments
	if p.Tail != nil {
		segs = append(segs[:len(segs):len(segs)], *p.Tail)
	}
	var partsFromEnd float64
	end := segs[len(segs)-1].PDT.Add(seconds(sum(segs[len(segs)-1])))
	for i, seg := range segs {
		complete := p.Tail == nil || i < len(segs)-1
		if complete && math.Round(seg.Duration) > td {
			t.Errorf("%s: segment %d lasts %v, above TARGETDURATION %v", name, seg.MSN, seg.Duration, td)
		}
		if seg.Map == "" || seg.PDT.IsZero() {
			t.Errorf("%s: segment %d has no EXT-X-MAP or PROGRAM-DATE-TIME", name, seg.MSN)
			continue
		}
		if i > 0 && !seg.Discontinuity {
			prev := segs[i-1]
			want := prev.PDT.Add(seconds(prev.Duration))
			if d := seg.PDT.Sub(want); d < -2*time.Millisecond || d > 2*time.Millisecond {
				t.Errorf("%s: segment %d PDT %v, the previous ends at %v", name, seg.MSN, seg.PDT, want)
			}
		}
		if len(seg.Parts) > 0 && complete && math.Abs(sum(seg)-seg.Duration) > 1e-3 {
			t.Errorf("%s: segment %d lasts %v, its parts %v", name, seg.MSN, seg.Duration, sum(seg))
		}
		if len(seg.Parts) > 0 && end.Sub(seg.PDT) > seconds(4*td) {
			t.Errorf("%s: segment %d still lists parts %v before the live edge", name, seg.MSN, end.Sub(seg.PDT))
		}
		for n, part := range seg.Parts {
			last := n == len(seg.Parts)-1
			if part.Duration > pt+durationSlack {
				t.Errorf("%s: part %d.%d lasts %v, above PART-TARGET %v", name, seg.MSN, n, part.Duration, pt)
			}
			if !last && part.Duration < 0.85*pt-durationSlack {
				t.Errorf("%s: part %d.%d lasts %v, below 85%% of PART-TARGET %v", name, seg.MSN, n, part.Duration, pt)
			}
			partsFromEnd += part.Duration
		}
	}
	if phb := sc.Float("PART-HOLD-BACK"); partsFromEnd < phb {
		t.Errorf("%s: parts cover %vs, less than PART-HOLD-BACK %v", name, partsFromEnd, phb)
	}
	s.checkReports(t, tr, p)
}

func sum(seg Segment) float64 {
	var d float64
	for _, p := range seg.Parts {
		d += p.Duration
	}
	if d == 0 {
		return seg.Duration
	}
	return d
}

// checkReports checks that the rendition reports name every other media
// playlist, once.
func (s *suite) checkReports(t *testing.T, tr *track, p *MediaPlaylist) {
	t.Helper()
	seen := map[string]bool{}
	for _, rep := range p.Reports {
		u := s.resolve(t, tr.url, rep["URI"]).String()
		if seen[u] || u == tr.url.String() {
			t.Errorf("%s: RENDITION-REPORT for %s twice or for itself", tr.url.Path, u)
		}
		seen[u] = true
		if _, err := strconv.ParseUint(rep["LAST-MSN"], 10, 64); err != nil {
			t.Errorf("%s: RENDITION-REPORT %v without LAST-MSN", tr.url.Path, rep)
		}
	}
	for _, o := range s.tracks {
		if o != tr && !seen[o.url.String()] {
			t.Errorf("%s: no RENDITION-REPORT for %s", tr.url.Path, o.url)
		}
	}
}

// checkMediaHeaders checks what a CDN and a player on another origin need
// of a part, segment or init section.
func checkMediaHeaders(t *testing.T, what string, r response) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !regexp.MustCompile(`^(video|audio|application)/mp4`).MatchString(ct) {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
	if n := cacheSeconds(r.header); n < 60 {
		t.Errorf("%s: Cache-Control %q: media should be cacheable", what, r.header.Get("Cache-Control"))
	}
	if r.header.Get("Access-Control-Allow-Origin") == "" {
		t.Errorf("%s: no Access-Control-Allow-Origin", what)
	}
}

// checkMedia fetches every listed part and segment and checks them
// against the playlist: decode times, durations, keyframes.
func (s *suite) checkMedia(t *testing.T) {
	for _, tr := range s.tracks {
		p := s.fresh(t, tr)
		in := s.init(t, tr, p)
		segs := p.Segments
		if p.Tail != nil {
			segs = append(segs[:len(segs):len(segs)], *p.Tail)
		}
		var prevEnd uint64
		for i, seg := range segs {
			if seg.Gap {
				prevEnd = 0
				continue
			}
			var whole []byte
			var partsData []byte
			if seg.URI != "" {
				whole = s.fetchFragments(t, tr, in, seg.URI, seg.Duration, true, prevEnd)
			}
			partEnd := uint64(0)
			if seg.URI == "" {
				partEnd = prevEnd
			}
			for n, part := range seg.Parts {
				data := s.fetchFragments(t, tr, in, part.URI, part.Duration, part.Independent, partEnd)
				f, _ := inspectFragments(data, in.video)
				if n == 0 && seg.URI != "" {
					if whole := mustInspect(t, whole, in.video); f.baseTime != whole.baseTime {
						t.Errorf("%s: part %s starts at %d, its segment at %d", tr.url.Path, part.URI, f.baseTime, whole.baseTime)
					}
				}
				partEnd = f.end()
				partsData = append(partsData, data...)
			}
			if seg.URI != "" && len(seg.Parts) > 0 && !bytes.Equal(whole, partsData) {
				t.Errorf("%s: segment %s is not its parts back to back", tr.url.Path, seg.URI)
			}
			switch {
			case seg.URI != "":
				prevEnd = mustInspect(t, whole, in.video).end()
			default:
				prevEnd = partEnd
			}
			if i+1 < len(segs) && segs[i+1].Discontinuity {
				prevEnd = 0
			}
		}
	}
}

// fetchFragments fetches a part or segment and checks its duration against
// the playlist, that it starts at prevEnd (when not zero), and that an
// independent one starts on a keyframe.
func (s *suite) fetchFragments(t *testing.T, tr *track, in initInfo, uri string, dur float64, independent bool, prevEnd uint64) []byte {
	t.Helper()
	r := s.get(t, s.resolve(t, tr.url, uri))
	if r.status != 200 {
		t.Errorf("%s: GET %s: %d", tr.url.Path, uri, r.status)
		return nil
	}
	checkMediaHeaders(t, uri, r)
	f := mustInspect(t, r.body, in.video)
	if got := float64(f.duration) / float64(in.timescale); math.Abs(got-dur) > 1e-3 {
		t.Errorf("%s: %s holds %.5fs of samples, the playlist says %v", tr.url.Path, uri, got, dur)
	}
	if !f.contiguous || (prevEnd != 0 && f.baseTime != prevEnd) {
		t.Errorf("%s: %s starts at decode time %d, the media before it ends at %d", tr.url.Path, uri, f.baseTime, prevEnd)
	}
	if independent && (!f.firstSync || (in.video && !f.firstIDR)) {
		t.Errorf("%s: %s should start on a keyframe: sync %v, IDR %v", tr.url.Path, uri, f.firstSync, f.firstIDR)
	}
	return r.body
}

func mustInspect(t *testing.T, data []byte, video bool) fragments {
	t.Helper()
	f, err := inspectFragments(data, video)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
