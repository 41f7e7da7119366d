package llhls

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// body returns the rendered playlist, gzipped or not.
func (r *rendering) body(gz bool, render func() []byte) []byte {
	r.plainOnce.Do(func() { r.plain = render() })
	if !gz {
		return r.plain
	}
	r.gzOnce.Do(func() { r.gz = gzipBytes(r.plain) })
	return r.gz
}

func gzipBytes(b []byte) []byte {
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestSpeed) // the level is valid
	zw.Write(b)                                        // writes to a bytes.Buffer do not fail
	zw.Close()
	return out.Bytes()
}

// playlist returns the media playlist, full or as a delta update.
func (v *view) playlist(skip, gz bool) []byte {
	i := 0
	if skip {
		i = 1
	}
	return v.render[i].body(gz, func() []byte { return v.renderMedia(skip) })
}

func (v *view) renderMedia(skip bool) []byte {
	t := v.t
	var b strings.Builder
	listed := v.listed()
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:9\n")
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", int(t.cfg.targetDuration()/time.Second))
	fmt.Fprintf(&b, "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=%s,CAN-SKIP-UNTIL=%s\n",
		t.holdBack, seconds(t.cfg.skipUntil()))
	fmt.Fprintf(&b, "#EXT-X-PART-INF:PART-TARGET=%s\n", t.partTarget)
	first := v.open
	if len(listed) > 0 {
		first = listed[0]
	}
	if first != nil {
		fmt.Fprintf(&b, "#EXT-X-MEDIA-SEQUENCE:%d\n", first.msn)
		if seq := first.discSeq - boolInt(first.disc); seq > 0 {
			fmt.Fprintf(&b, "#EXT-X-DISCONTINUITY-SEQUENCE:%d\n", seq)
		}
	}
	skipped := 0
	if skip {
		skipped = v.skippable(listed)
		if skipped > 0 {
			fmt.Fprintf(&b, "#EXT-X-SKIP:SKIPPED-SEGMENTS=%d\n", skipped)
		}
	}
	withParts := v.partWindow(listed)
	var m *initSection
	for i, s := range listed {
		if i < skipped {
			continue
		}
		v.writeSegmentTags(&b, s, &m)
		if i >= withParts {
			v.writeParts(&b, s.msn, s.parts)
		}
		if s.gap {
			b.WriteString("#EXT-X-GAP\n")
		}
		fmt.Fprintf(&b, "#EXTINF:%s,\nseg-%d.m4s\n", v.secs(s.dur), s.msn)
	}
	if v.open != nil && len(v.openParts) > 0 {
		v.writeSegmentTags(&b, v.open, &m)
		v.writeParts(&b, v.open.msn, v.openParts)
	}
	if msn, n, ok := v.hint(); ok {
		fmt.Fprintf(&b, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-%d-%d.m4s\"\n", msn, n)
	}
	for _, r := range v.reports {
		fmt.Fprintf(&b, "#EXT-X-RENDITION-REPORT:URI=\"../%s/index.m3u8\",LAST-MSN=%d", r.name, r.lastMSN)
		if r.lastPart >= 0 {
			fmt.Fprintf(&b, ",LAST-PART=%d", r.lastPart)
		}
		b.WriteString("\n")
	}
	if v.ended {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	return []byte(b.String())
}

// writeSegmentTags writes the tags that precede a segment's parts and URI;
// m is the init section in effect so far.
func (v *view) writeSegmentTags(b *strings.Builder, s *segment, m **initSection) {
	if s.disc {
		b.WriteString("#EXT-X-DISCONTINUITY\n")
	}
	if s.init != nil && s.init != *m {
		fmt.Fprintf(b, "#EXT-X-MAP:URI=%q\n", s.init.name)
		*m = s.init
	}
	fmt.Fprintf(b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", s.wall.UTC().Format("2006-01-02T15:04:05.000Z"))
}

func (v *view) writeParts(b *strings.Builder, msn uint64, parts []*part) {
	for n, p := range parts {
		fmt.Fprintf(b, "#EXT-X-PART:DURATION=%s,URI=\"part-%d-%d.m4s\"", v.secs(p.dur), msn, n)
		if p.independent {
			b.WriteString(",INDEPENDENT=YES")
		}
		b.WriteString("\n")
	}
}

// partWindow is the index of the first listed segment whose parts the
// playlist still shows: those that end within three target durations of
// the live edge.
func (v *view) partWindow(listed []*segment) int {
	window := durTicks(3*v.t.cfg.targetDuration(), v.t.timescale)
	var age int64
	for _, p := range v.openParts {
		age += p.dur
	}
	i := len(listed)
	for i > 0 && age+listed[i-1].dur <= window {
		i--
		age += listed[i].dur
	}
	return i
}

// skippable is how many listed segments a delta update replaces with
// EXT-X-SKIP: the oldest ones, as long as what remains still spans
// CAN-SKIP-UNTIL.
func (v *view) skippable(listed []*segment) int {
	var total int64
	for _, s := range listed {
		total += s.dur
	}
	for _, p := range v.openParts {
		total += p.dur
	}
	until := durTicks(v.t.cfg.skipUntil(), v.t.timescale)
	n := 0
	for n < len(listed) && total-listed[n].dur >= until {
		total -= listed[n].dur
		n++
	}
	return n
}

func (v *view) secs(ticks int64) string {
	return strconv.FormatFloat(float64(ticks)/float64(v.t.timescale), 'f', 5, 64)
}

func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }

func boolInt(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// variant is what the multivariant playlist says of one video rendition.
type variant struct {
	name          string
	codec         string
	width, height int
	bitrate       int
	fps           float64
}

// renderMultivariant writes the multivariant playlist; audio is nil for a
// stream without audio.
func renderMultivariant(variants []variant, audio *audioInfo) []byte {
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:9\n")
	if audio != nil {
		fmt.Fprintf(&b, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"%d\",URI=\"%s/index.m3u8\"\n",
			audio.channels, audioName)
	}
	for _, vr := range variants {
		codecs, bitrate := vr.codec, vr.bitrate
		if audio != nil {
			codecs += ",mp4a.40.2"
			bitrate += audio.bitrate
		}
		// AVERAGE-BANDWIDTH adds the fMP4 overhead to the encoder targets;
		// BANDWIDTH leaves room for the peak segment, IDRs included.
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d,AVERAGE-BANDWIDTH=%d,CODECS=\"%s\",RESOLUTION=%dx%d,FRAME-RATE=%.3f",
			bitrate*5/4, bitrate*21/20, codecs, vr.width, vr.height, vr.fps)
		if audio != nil {
			b.WriteString(",AUDIO=\"audio\"")
		}
		fmt.Fprintf(&b, "\n%s/index.m3u8\n", vr.name)
	}
	return []byte(b.String())
}

type audioInfo struct {
	channels int
	bitrate  int
}
