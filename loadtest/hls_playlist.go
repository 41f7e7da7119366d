package loadtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// What an LL-HLS viewer reads from playlists (RFC 8216bis): just enough to
// follow the live edge, never an exhaustive parser.

// errNotPlaylist is a body that does not start with #EXTM3U.
var errNotPlaylist = errors.New("not an HLS playlist")

// variant is an EXT-X-STREAM-INF and its URI.
type variant struct {
	uri       string
	bandwidth int64
	audio     string // AUDIO group id
	name      string // the URI's directory, e.g. "720p" for 720p/index.m3u8
}

// audioRendition is an EXT-X-MEDIA of TYPE=AUDIO.
type audioRendition struct {
	group, uri string
	isDefault  bool
}

// multivariant is a multivariant playlist.
type multivariant struct {
	variants []variant
	audio    []audioRendition
}

// mediaPlaylist is a media playlist.
type mediaPlaylist struct {
	targetDuration time.Duration
	partTarget     time.Duration // 0: not low-latency
	partHoldBack   time.Duration // 0 when absent
	canBlock       bool
	canSkipUntil   time.Duration
	mediaSequence  uint64
	skipped        int // EXT-X-SKIP:SKIPPED-SEGMENTS
	// segments lists the segments after any skipped ones; the last may be
	// the one being built (no URI yet, only parts).
	segments []hlsSegment
	hint     string // URI of a TYPE=PART preload hint without a byte range
	ended    bool
	hasPDT   bool // some segment carries EXT-X-PROGRAM-DATE-TIME
}

type hlsSegment struct {
	msn      uint64
	uri      string // "" while being built
	duration time.Duration
	pdt      time.Time // filled in from neighbours when only some segments carry it
	hasPDT   bool
	mapURI   string // EXT-X-MAP in effect; "" when the playlist names none
	disc     bool   // EXT-X-DISCONTINUITY before it
	parts    []hlsPart
}

type hlsPart struct {
	uri         string
	duration    time.Duration
	independent bool
	gap         bool
	// byteRange is "start-end" for a Range header; "" for the whole URI.
	byteRange string
}

// partID names part n of segment msn.
type partID struct {
	msn uint64
	n   int
}

func (a partID) after(b partID) bool { return a.msn > b.msn || (a.msn == b.msn && a.n > b.n) }

// looksLikePlaylist says whether body starts like an M3U8 file.
func looksLikePlaylist(body []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(body, "\ufeff \t\r\n"), []byte("#EXTM3U"))
}

// parsePlaylist parses either kind of playlist: exactly one result is
// non-nil when err is nil.
func parsePlaylist(body []byte) (*multivariant, *mediaPlaylist, error) {
	if !looksLikePlaylist(body) {
		return nil, nil, errNotPlaylist
	}
	if bytes.Contains(body, []byte("#EXT-X-STREAM-INF")) {
		m, err := parseMultivariant(body)
		return m, nil, err
	}
	p, err := parseMedia(body)
	return nil, p, err
}

func parseMultivariant(body []byte) (*multivariant, error) {
	m := &multivariant{}
	var pending attrs
	for _, line := range playlistLines(body) {
		tag, value, _ := strings.Cut(line, ":")
		switch {
		case tag == "#EXT-X-STREAM-INF":
			a, err := parseAttrs(value)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", line, err)
			}
			pending = a
		case tag == "#EXT-X-MEDIA":
			a, err := parseAttrs(value)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", line, err)
			}
			if a["TYPE"] == "AUDIO" && a["URI"] != "" {
				m.audio = append(m.audio, audioRendition{group: a["GROUP-ID"], uri: a["URI"], isDefault: a["DEFAULT"] == "YES"})
			}
		case !strings.HasPrefix(line, "#"):
			if pending == nil {
				return nil, fmt.Errorf("URI %q without EXT-X-STREAM-INF", line)
			}
			bw, _ := strconv.ParseInt(pending["BANDWIDTH"], 10, 64)
			m.variants = append(m.variants, variant{uri: line, bandwidth: bw, audio: pending["AUDIO"], name: variantName(line)})
			pending = nil
		}
	}
	if len(m.variants) == 0 {
		return nil, errors.New("multivariant playlist without variants")
	}
	return m, nil
}

// variantName is what --rendition matches a variant by: the last directory
// of its URI, or the file name without extension.
func variantName(uri string) string {
	uri, _, _ = strings.Cut(uri, "?")
	parts := strings.Split(strings.TrimSuffix(uri, "/"), "/")
	if len(parts) >= 2 {
		return parts[len(parts)-2]
	}
	return strings.TrimSuffix(parts[0], ".m3u8")
}

// audioFor returns the audio rendition a player picks for v: the group's
// DEFAULT one, else its first; "" when the audio is muxed in.
func (m *multivariant) audioFor(v variant) string {
	uri := ""
	for _, a := range m.audio {
		if a.group != v.audio {
			continue
		}
		if a.isDefault {
			return a.uri
		}
		if uri == "" {
			uri = a.uri
		}
	}
	return uri
}

func parseMedia(body []byte) (*mediaPlaylist, error) {
	p := &mediaPlaylist{}
	var cur hlsSegment
	var mapURI string
	var rangeEnd map[string]int64 // where the last byte range of a URI ended
	for _, line := range playlistLines(body) {
		if !strings.HasPrefix(line, "#") {
			cur.uri, cur.mapURI = line, mapURI
			p.segments = append(p.segments, cur)
			cur = hlsSegment{}
			continue
		}
		tag, value, _ := strings.Cut(line, ":")
		var err error
		switch tag {
		case "#EXT-X-TARGETDURATION":
			p.targetDuration, err = parseSeconds(value)
		case "#EXT-X-MEDIA-SEQUENCE":
			p.mediaSequence, err = strconv.ParseUint(value, 10, 64)
		case "#EXT-X-SERVER-CONTROL":
			var a attrs
			if a, err = parseAttrs(value); err == nil {
				p.canBlock = a["CAN-BLOCK-RELOAD"] == "YES"
				p.partHoldBack, _ = parseSeconds(a["PART-HOLD-BACK"])
				p.canSkipUntil, _ = parseSeconds(a["CAN-SKIP-UNTIL"])
			}
		case "#EXT-X-PART-INF":
			var a attrs
			if a, err = parseAttrs(value); err == nil {
				p.partTarget, err = parseSeconds(a["PART-TARGET"])
			}
		case "#EXT-X-SKIP":
			var a attrs
			if a, err = parseAttrs(value); err == nil {
				p.skipped, err = strconv.Atoi(a["SKIPPED-SEGMENTS"])
			}
		case "#EXT-X-MAP":
			var a attrs
			if a, err = parseAttrs(value); err == nil {
				mapURI = a["URI"]
			}
		case "#EXT-X-PROGRAM-DATE-TIME":
			cur.pdt, err = time.Parse(time.RFC3339Nano, value)
			cur.hasPDT, p.hasPDT = err == nil, p.hasPDT || err == nil
		case "#EXTINF":
			d, _, _ := strings.Cut(value, ",")
			cur.duration, err = parseSeconds(d)
		case "#EXT-X-PART":
			var a attrs
			if a, err = parseAttrs(value); err == nil {
				var part hlsPart
				part, err = newPart(a, &rangeEnd)
				cur.parts = append(cur.parts, part)
			}
		case "#EXT-X-PRELOAD-HINT":
			var a attrs
			if a, err = parseAttrs(value); err == nil && a["TYPE"] == "PART" && a["BYTERANGE-START"] == "" {
				p.hint = a["URI"]
			}
		case "#EXT-X-DISCONTINUITY":
			cur.disc = true
		case "#EXT-X-ENDLIST":
			p.ended = true
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", line, err)
		}
	}
	if len(cur.parts) > 0 {
		cur.mapURI = mapURI
		p.segments = append(p.segments, cur)
	}
	for i := range p.segments {
		p.segments[i].msn = p.mediaSequence + uint64(p.skipped+i)
		if s := &p.segments[i]; s.uri == "" {
			for _, part := range s.parts {
				s.duration += part.duration
			}
		}
	}
	if p.targetDuration <= 0 {
		return nil, errors.New("media playlist without EXT-X-TARGETDURATION")
	}
	fillPDT(p.segments)
	return p, nil
}

func newPart(a attrs, rangeEnd *map[string]int64) (hlsPart, error) {
	d, err := parseSeconds(a["DURATION"])
	if err != nil || a["URI"] == "" {
		return hlsPart{}, errors.New("EXT-X-PART needs DURATION and URI")
	}
	part := hlsPart{uri: a["URI"], duration: d, independent: a["INDEPENDENT"] == "YES", gap: a["GAP"] == "YES"}
	if br := a["BYTERANGE"]; br != "" {
		// BYTERANGE=n[@o]; without o the range follows the URI's previous one.
		ns, os, hasOff := strings.Cut(br, "@")
		n, err := strconv.ParseInt(ns, 10, 64)
		if err != nil || n <= 0 {
			return part, fmt.Errorf("BYTERANGE %q", br)
		}
		if *rangeEnd == nil {
			*rangeEnd = map[string]int64{}
		}
		off := (*rangeEnd)[part.uri]
		if hasOff {
			if off, err = strconv.ParseInt(os, 10, 64); err != nil {
				return part, fmt.Errorf("BYTERANGE %q", br)
			}
		}
		(*rangeEnd)[part.uri] = off + n
		part.byteRange = fmt.Sprintf("%d-%d", off, off+n-1)
	}
	return part, nil
}

// fillPDT gives every segment a date when some carry one: a segment
// without EXT-X-PROGRAM-DATE-TIME follows on from the one before it (or
// ends where the one after it starts).
func fillPDT(segs []hlsSegment) {
	for i := 1; i < len(segs); i++ {
		if !segs[i].hasPDT && segs[i-1].hasPDT {
			segs[i].pdt, segs[i].hasPDT = segs[i-1].pdt.Add(segs[i-1].duration), true
		}
	}
	for i := len(segs) - 2; i >= 0; i-- {
		if !segs[i].hasPDT && segs[i+1].hasPDT {
			segs[i].pdt, segs[i].hasPDT = segs[i+1].pdt.Add(-segs[i].duration), true
		}
	}
}

// partStart is the media time (program date) at which part n of s starts:
// its segment's PROGRAM-DATE-TIME plus the durations of the parts before it.
func (s *hlsSegment) partStart(n int) time.Time {
	at := s.pdt
	for _, p := range s.parts[:n] {
		at = at.Add(p.duration)
	}
	return at
}

// end is the media time where the playlist's last part (or segment) ends.
func (p *mediaPlaylist) end() time.Time {
	if len(p.segments) == 0 {
		return time.Time{}
	}
	s := &p.segments[len(p.segments)-1]
	return s.pdt.Add(s.duration)
}

// last is the last part the playlist lists; ok is false without parts.
func (p *mediaPlaylist) last() (id partID, ok bool) {
	for i := len(p.segments) - 1; i >= 0; i-- {
		if s := &p.segments[i]; len(s.parts) > 0 {
			return partID{s.msn, len(s.parts) - 1}, true
		}
	}
	return partID{}, false
}

// next is the part a blocking reload asks for: the one after the last
// listed, which is part 0 of the next segment once the last is complete.
func (p *mediaPlaylist) next() partID {
	if n := len(p.segments); n > 0 {
		s := &p.segments[n-1]
		if s.uri == "" {
			return partID{s.msn, len(s.parts)}
		}
		return partID{s.msn + 1, 0}
	}
	return partID{p.mediaSequence + uint64(p.skipped), 0}
}

// startPart is where a viewer joins, as hls.js does in low-latency mode:
// the last INDEPENDENT part that starts at least holdBack before the end of
// the playlist, so that holdBack of media is there to buffer at once. When
// no part is that far back, the earliest independent part listed. A
// playlist that marks no part INDEPENDENT has them all independent (hls.js
// reads it so). ok is false when the playlist lists no parts.
func (p *mediaPlaylist) startPart(holdBack time.Duration) (seg, part int, ok bool) {
	anyIndependent := false
	for _, s := range p.segments {
		for _, pt := range s.parts {
			anyIndependent = anyIndependent || pt.independent
		}
	}
	end := p.end()
	seg, part = -1, -1
	for i := range p.segments {
		s := &p.segments[i]
		for j, pt := range s.parts {
			if anyIndependent && !pt.independent || pt.gap {
				continue
			}
			far := end.Sub(s.partStart(j)) >= holdBack
			if far || seg < 0 {
				seg, part = i, j
			}
			if !far {
				return seg, part, true
			}
		}
	}
	return seg, part, seg >= 0
}

// partAt is the part that holds media time t (or the last one starting
// before it), where a second track (audio) joins a viewer that started
// its video at t. ok is false when the playlist lists no parts.
func (p *mediaPlaylist) partAt(t time.Time) (seg, part int, ok bool) {
	seg, part = -1, -1
	for i := range p.segments {
		s := &p.segments[i]
		for j := range s.parts {
			// Half a millisecond absorbs dates printed to the millisecond.
			if seg < 0 || !s.partStart(j).After(t.Add(500*time.Microsecond)) {
				seg, part = i, j
			}
		}
	}
	return seg, part, seg >= 0
}

// parseSeconds reads a decimal number of seconds.
func parseSeconds(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f < 0 || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a number of seconds", s)
	}
	return time.Duration(math.Round(f * 1e9)), nil
}

// playlistLines returns the non-empty lines, trimmed, without #EXTM3U.
func playlistLines(body []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(strings.TrimPrefix(sc.Text(), "\ufeff"))
		if line != "" && line != "#EXTM3U" {
			out = append(out, line)
		}
	}
	return out
}

// attrs is a tag's attribute list, quoted values unquoted.
type attrs map[string]string

// parseAttrs parses KEY=value,KEY="quoted, value".
func parseAttrs(s string) (attrs, error) {
	a := attrs{}
	for s != "" {
		key, rest, ok := strings.Cut(s, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("attribute list %q: no value for %q", s, key)
		}
		var val string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("attribute %s: unterminated quoted string", key)
			}
			val, rest = rest[1:end+1], rest[end+2:]
		} else if i := strings.IndexByte(rest, ','); i >= 0 {
			val, rest = rest[:i], rest[i:]
		} else {
			val, rest = rest, ""
		}
		a[strings.TrimSpace(key)] = val
		s = strings.TrimPrefix(rest, ",")
	}
	return a, nil
}
