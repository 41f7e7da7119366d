package llhlstest

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MediaPlaylist is what the suite reads from a media playlist.
type MediaPlaylist struct {
	Version               int
	TargetDuration        float64
	MediaSequence         uint64
	DiscontinuitySequence uint64
	ServerControl         Attrs
	PartTarget            float64
	Skipped               int       // EXT-X-SKIP:SKIPPED-SEGMENTS
	Segments              []Segment // complete segments, after any skipped
	// Tail holds the parts of the segment being built, which has no URI
	// yet; nil when there are none.
	Tail        *Segment
	PreloadHint Attrs // nil when absent
	Reports     []Attrs
	Ended       bool
}

// Segment is a media segment and the tags before it.
type Segment struct {
	MSN           uint64
	URI           string
	Duration      float64
	PDT           time.Time // zero when absent
	Discontinuity bool
	Gap           bool
	Map           string // EXT-X-MAP URI in effect
	Parts         []Part
}

// Part is an EXT-X-PART.
type Part struct {
	URI         string
	Duration    float64
	Independent bool
}

// Head is the last part the playlist lists: its segment's number and index.
func (p *MediaPlaylist) Head() (msn uint64, part int, ok bool) {
	if p.Tail != nil && len(p.Tail.Parts) > 0 {
		return p.Tail.MSN, len(p.Tail.Parts) - 1, true
	}
	for i := len(p.Segments) - 1; i >= 0; i-- {
		if s := p.Segments[i]; len(s.Parts) > 0 {
			return s.MSN, len(s.Parts) - 1, true
		}
	}
	return 0, 0, false
}

// Next is the part a player asks for next with a blocking request.
func (p *MediaPlaylist) Next() (msn uint64, part int) {
	if p.Tail != nil && len(p.Tail.Parts) > 0 {
		return p.Tail.MSN, len(p.Tail.Parts)
	}
	return p.LastMSN() + 1, 0
}

// LastMSN is the number of the last complete segment.
func (p *MediaPlaylist) LastMSN() uint64 {
	return p.MediaSequence + uint64(p.Skipped+len(p.Segments)) - 1
}

// Attrs is a tag's attribute list, quoted values unquoted.
type Attrs map[string]string

// Float returns a decimal attribute, or -1 when absent or malformed.
func (a Attrs) Float(key string) float64 {
	v, err := strconv.ParseFloat(a[key], 64)
	if err != nil {
		return -1
	}
	return v
}

// ParseAttrs parses an attribute list: KEY=value,KEY="quoted, value".
func ParseAttrs(s string) (Attrs, error) {
	a := Attrs{}
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
		if _, dup := a[key]; dup {
			return nil, fmt.Errorf("attribute %s twice", key)
		}
		a[key] = val
		if rest != "" && rest[0] != ',' {
			return nil, fmt.Errorf("attribute %s: junk after value", key)
		}
		s = strings.TrimPrefix(rest, ",")
	}
	return a, nil
}

// ParseMedia parses a media playlist.
func ParseMedia(body []byte) (*MediaPlaylist, error) {
	p := &MediaPlaylist{}
	var cur Segment
	var mapURI string
	hasParts := false
	sc := bufio.NewScanner(bytes.NewReader(body))
	first := true
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if first {
			if line != "#EXTM3U" {
				return nil, fmt.Errorf("first line %q, want #EXTM3U", line)
			}
			first = false
			continue
		}
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, "#") {
			cur.URI, cur.Map = line, mapURI
			cur.MSN = p.MediaSequence + uint64(p.Skipped+len(p.Segments))
			p.Segments = append(p.Segments, cur)
			cur, hasParts = Segment{}, false
			continue
		}
		tag, value, _ := strings.Cut(line, ":")
		var err error
		switch tag {
		case "#EXT-X-VERSION":
			p.Version, err = strconv.Atoi(value)
		case "#EXT-X-TARGETDURATION":
			p.TargetDuration, err = strconv.ParseFloat(value, 64)
		case "#EXT-X-MEDIA-SEQUENCE":
			p.MediaSequence, err = strconv.ParseUint(value, 10, 64)
		case "#EXT-X-DISCONTINUITY-SEQUENCE":
			p.DiscontinuitySequence, err = strconv.ParseUint(value, 10, 64)
		case "#EXT-X-SERVER-CONTROL":
			p.ServerControl, err = ParseAttrs(value)
		case "#EXT-X-PART-INF":
			var a Attrs
			if a, err = ParseAttrs(value); err == nil {
				p.PartTarget = a.Float("PART-TARGET")
			}
		case "#EXT-X-SKIP":
			var a Attrs
			if a, err = ParseAttrs(value); err == nil {
				p.Skipped, err = strconv.Atoi(a["SKIPPED-SEGMENTS"])
			}
		case "#EXT-X-MAP":
			var a Attrs
			if a, err = ParseAttrs(value); err == nil {
				mapURI = a["URI"]
			}
		case "#EXT-X-PROGRAM-DATE-TIME":
			cur.PDT, err = time.Parse(time.RFC3339Nano, value)
		case "#EXT-X-DISCONTINUITY":
			cur.Discontinuity = true
		case "#EXT-X-GAP":
			cur.Gap = true
		case "#EXTINF":
			d, _, _ := strings.Cut(value, ",")
			cur.Duration, err = strconv.ParseFloat(d, 64)
		case "#EXT-X-PART":
			var a Attrs
			if a, err = ParseAttrs(value); err == nil {
				cur.Parts = append(cur.Parts, Part{URI: a["URI"], Duration: a.Float("DURATION"), Independent: a["INDEPENDENT"] == "YES"})
				hasParts = true
			}
		case "#EXT-X-PRELOAD-HINT":
			p.PreloadHint, err = ParseAttrs(value)
		case "#EXT-X-RENDITION-REPORT":
			var a Attrs
			if a, err = ParseAttrs(value); err == nil {
				p.Reports = append(p.Reports, a)
			}
		case "#EXT-X-ENDLIST":
			p.Ended = true
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", line, err)
		}
	}
	if hasParts {
		cur.Map = mapURI
		cur.MSN = p.MediaSequence + uint64(p.Skipped+len(p.Segments))
		p.Tail = &cur
	}
	return p, sc.Err()
}

// Multivariant is what the suite reads from a multivariant playlist.
type Multivariant struct {
	Variants []Variant
	Media    []Attrs // EXT-X-MEDIA
}

// Variant is an EXT-X-STREAM-INF and its URI.
type Variant struct {
	Attrs
	URI string
}

// ParseMultivariant parses a multivariant playlist.
func ParseMultivariant(body []byte) (*Multivariant, error) {
	m := &Multivariant{}
	var pending Attrs
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		tag, value, _ := strings.Cut(line, ":")
		switch {
		case line == "" || line == "#EXTM3U":
		case tag == "#EXT-X-STREAM-INF":
			a, err := ParseAttrs(value)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", line, err)
			}
			pending = a
		case tag == "#EXT-X-MEDIA":
			a, err := ParseAttrs(value)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", line, err)
			}
			m.Media = append(m.Media, a)
		case !strings.HasPrefix(line, "#"):
			if pending == nil {
				return nil, fmt.Errorf("URI %q without EXT-X-STREAM-INF", line)
			}
			m.Variants = append(m.Variants, Variant{Attrs: pending, URI: line})
			pending = nil
		}
	}
	if len(m.Variants) == 0 {
		return nil, fmt.Errorf("no variants")
	}
	return m, sc.Err()
}
