package loadtest

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// A media playlist as an LL-HLS origin writes it: two complete segments,
// three parts of the next, a preload hint and a rendition report.
const livePlaylist = `#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.75,CAN-SKIP-UNTIL=12
#EXT-X-PART-INF:PART-TARGET=0.25
#EXT-X-MEDIA-SEQUENCE:100
#EXT-X-MAP:URI="init-100.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:00.000Z
#EXTINF:2.00000,
seg-100.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:02.000Z
#EXT-X-PART:DURATION=0.25000,URI="part-101-0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.25000,URI="part-101-1.m4s"
#EXT-X-PART:DURATION=0.25000,URI="part-101-2.m4s"
#EXT-X-PART:DURATION=0.25000,URI="part-101-3.m4s"
#EXT-X-PART:DURATION=0.25000,URI="part-101-4.m4s"
#EXT-X-PART:DURATION=0.25000,URI="part-101-5.m4s"
#EXT-X-PART:DURATION=0.25000,URI="part-101-6.m4s"
#EXT-X-PART:DURATION=0.25000,URI="part-101-7.m4s"
#EXTINF:2.00000,
seg-101.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:04.000Z
#EXT-X-PART:DURATION=0.25000,URI="part-102-0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.25000,URI="part-102-1.m4s"
#EXT-X-PART:DURATION=0.23333,URI="part-102-2.m4s"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-102-3.m4s"
#EXT-X-RENDITION-REPORT:URI="../360p/index.m3u8",LAST-MSN=102,LAST-PART=2
`

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func mustMedia(t *testing.T, body string) *mediaPlaylist {
	t.Helper()
	mv, p, err := parsePlaylist([]byte(body))
	if err != nil || mv != nil {
		t.Fatalf("parse: %v (multivariant %v)", err, mv != nil)
	}
	return p
}

func TestParseMediaPlaylistReadsTheLowLatencyTags(t *testing.T) {
	p := mustMedia(t, livePlaylist)
	if p.targetDuration != 2*time.Second || p.partTarget != 250*time.Millisecond || p.partHoldBack != 750*time.Millisecond ||
		!p.canBlock || p.canSkipUntil != 12*time.Second || p.hint != "part-102-3.m4s" || p.ended {
		t.Fatalf("%+v", p)
	}
	if len(p.segments) != 3 {
		t.Fatalf("%d segments, want 2 complete and the one being built", len(p.segments))
	}
	open := p.segments[2]
	if open.msn != 102 || open.uri != "" || len(open.parts) != 3 || open.mapURI != "init-100.mp4" || !open.pdt.Equal(t0.Add(4*time.Second)) {
		t.Fatalf("open segment %+v", open)
	}
	if last, _ := p.last(); last != (partID{102, 2}) {
		t.Fatalf("last part %+v", last)
	}
	if next := p.next(); next != (partID{102, 3}) {
		t.Fatalf("next part %+v, want 102.3", next)
	}
	if want := t0.Add(4*time.Second + 733330*time.Microsecond); !p.end().Equal(want) {
		t.Fatalf("end %v, want %v", p.end(), want)
	}
}

func TestNextAfterACompleteSegmentIsPartZeroOfTheNext(t *testing.T) {
	body := livePlaylist[:strings.Index(livePlaylist, "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:04")]
	p := mustMedia(t, body)
	if next := p.next(); next != (partID{102, 0}) {
		t.Fatalf("next %+v, want 102.0", next)
	}
}

func TestStartPartIsTheLastIndependentPartAHoldBackFromTheEnd(t *testing.T) {
	p := mustMedia(t, livePlaylist)
	// The end is 4.733 s; part 102.0 starts 0.733 s before it, less than
	// PART-HOLD-BACK, so the viewer joins at 101.0, the last independent
	// part far enough back.
	si, pi, ok := p.startPart(p.partHoldBack)
	if !ok || p.segments[si].msn != 101 || pi != 0 {
		t.Fatalf("start %d.%d, want 101.0", p.segments[si].msn, pi)
	}
	// With one more part, 102.0 is 0.983 s back: far enough.
	more := strings.Replace(livePlaylist, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-102-3.m4s\"",
		"#EXT-X-PART:DURATION=0.25000,URI=\"part-102-3.m4s\"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-102-4.m4s\"", 1)
	p = mustMedia(t, more)
	if si, pi, _ := p.startPart(p.partHoldBack); p.segments[si].msn != 102 || pi != 0 {
		t.Fatalf("start %d.%d, want 102.0", p.segments[si].msn, pi)
	}
	// No independent part far enough back: the earliest one.
	if si, pi, _ := p.startPart(time.Minute); p.segments[si].msn != 101 || pi != 0 {
		t.Fatalf("start %d.%d with a minute of hold back, want 101.0", p.segments[si].msn, pi)
	}
	// A playlist that marks no part INDEPENDENT has them all independent.
	p = mustMedia(t, strings.ReplaceAll(livePlaylist, ",INDEPENDENT=YES", ""))
	if si, pi, _ := p.startPart(p.partHoldBack); p.segments[si].msn != 101 || pi != 7 {
		t.Fatalf("start %d.%d without INDEPENDENT, want 101.7 (0.983 s back)", p.segments[si].msn, pi)
	}
}

func TestPartAtFindsThePartHoldingADate(t *testing.T) {
	p := mustMedia(t, livePlaylist)
	for _, c := range []struct {
		at   time.Duration
		want partID
	}{
		{2 * time.Second, partID{101, 0}},
		{2*time.Second + 300*time.Millisecond, partID{101, 1}},
		{4*time.Second - 200*time.Microsecond, partID{102, 0}}, // a date printed to the millisecond
		{time.Second, partID{101, 0}},                          // before every part: the first
	} {
		si, pi, ok := p.partAt(t0.Add(c.at))
		if got := (partID{p.segments[si].msn, pi}); !ok || got != c.want {
			t.Errorf("part at %v: %+v, want %+v", c.at, got, c.want)
		}
	}
}

func TestPartLatencyIsArrivalMinusTheDateThePartEnds(t *testing.T) {
	p := mustMedia(t, livePlaylist)
	s := &p.segments[2]
	// Part 102.2 starts at 4.5 s (PDT 4 s plus two parts of 0.25 s) and
	// lasts 0.23333 s; its last byte arrives at 4.8 s.
	got := partLatency(s, 2, t0.Add(4800*time.Millisecond))
	if want := 4800*time.Millisecond - 4733330*time.Microsecond; got != want {
		t.Fatalf("latency %v, want %v", got, want)
	}
}

func TestDeltaUpdateTakesDatesFromEarlierPlaylists(t *testing.T) {
	// The origin dated only the first segment, which the delta skips.
	full := mustMedia(t, strings.Replace(strings.Replace(livePlaylist,
		"#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:02.000Z\n", "", 1),
		"#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:04.000Z\n", "", 1))
	if !full.segments[2].pdt.Equal(t0.Add(4 * time.Second)) {
		t.Fatalf("undated segment dated %v, want 4 s after the dated one", full.segments[2].pdt)
	}
	f := &follower{dates: map[uint64]time.Time{}}
	f.date(full, time.Now())
	delta := mustMedia(t, `#EXTM3U
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.75,CAN-SKIP-UNTIL=12
#EXT-X-PART-INF:PART-TARGET=0.25
#EXT-X-MEDIA-SEQUENCE:100
#EXT-X-SKIP:SKIPPED-SEGMENTS=2
#EXT-X-PART:DURATION=0.25000,URI="part-102-0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.25000,URI="part-102-1.m4s"
`)
	if delta.hasPDT || delta.segments[0].msn != 102 {
		t.Fatalf("delta %+v", delta)
	}
	f.date(delta, time.Now())
	if s := delta.segments[0]; !s.pdt.Equal(t0.Add(4*time.Second)) || !delta.hasPDT {
		t.Fatalf("delta segment %d dated %v (%v), want 4 s", s.msn, s.pdt, delta.hasPDT)
	}
}

func TestUndatedStreamIsAnchoredAtArrival(t *testing.T) {
	body := strings.NewReplacer(
		"#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:00.000Z\n", "",
		"#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:02.000Z\n", "",
		"#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:04.000Z\n", "").Replace(livePlaylist)
	p := mustMedia(t, body)
	arrived := time.Now()
	f := &follower{dates: map[uint64]time.Time{}}
	f.date(p, arrived)
	if p.hasPDT || !p.end().Equal(arrived) {
		t.Fatalf("end %v, want the arrival %v, and no latency (hasPDT %v)", p.end(), arrived, p.hasPDT)
	}
}

func TestParseMultivariantPicksAudioAndNames(t *testing.T) {
	mv, p, err := parsePlaylist([]byte(`#EXTM3U
#EXT-X-VERSION:9
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="audio",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="audio/index.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=3245000,AVERAGE-BANDWIDTH=2726000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO="audio"
720p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=1120000,AVERAGE-BANDWIDTH=940800,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=640x360,FRAME-RATE=30.000,AUDIO="audio"
360p/index.m3u8
`))
	if err != nil || p != nil {
		t.Fatalf("%v", err)
	}
	if len(mv.variants) != 2 || mv.variants[0].name != "720p" || mv.variants[1].bandwidth != 1120000 {
		t.Fatalf("%+v", mv.variants)
	}
	if a := mv.audioFor(mv.variants[1]); a != "audio/index.m3u8" {
		t.Fatalf("audio %q", a)
	}
	r := &hlsRun{cfg: HLSConfig{Rendition: "lowest"}}
	if v, _ := r.pick(0, mv); v.name != "360p" {
		t.Fatalf("lowest picked %s", v.name)
	}
	r.cfg.Rendition = "highest"
	if v, _ := r.pick(1, mv); v.name != "720p" {
		t.Fatalf("highest picked %s", v.name)
	}
	r.cfg.Rendition = ""
	if a, b := mustPick(t, r, 0, mv), mustPick(t, r, 1, mv); a == b {
		t.Fatalf("round robin gave viewers 1 and 2 both %s", a)
	}
	r.cfg.Rendition = "1080p"
	if _, err := r.pick(0, mv); err == nil || !strings.Contains(err.Error(), "720p, 360p") {
		t.Fatalf("unknown rendition: %v", err)
	}
}

func mustPick(t *testing.T, r *hlsRun, i int, mv *multivariant) string {
	t.Helper()
	v, err := r.pick(i, mv)
	if err != nil {
		t.Fatal(err)
	}
	return v.name
}

func TestParsePlaylistRejectsWhatIsNotAPlaylist(t *testing.T) {
	for _, body := range []string{"<!doctype html><html><body>hello</body></html>", "", `{"error":"x"}`} {
		if _, _, err := parsePlaylist([]byte(body)); !errors.Is(err, errNotPlaylist) {
			t.Errorf("%q: %v, want errNotPlaylist", body, err)
		}
	}
	if _, _, err := parsePlaylist([]byte("#EXTM3U\n#EXT-X-PART:DURATION=x,URI=\"a\"\n")); err == nil {
		t.Errorf("a bad part duration passed")
	}
}

func TestByteRangePartsFollowEachOther(t *testing.T) {
	p := mustMedia(t, `#EXTM3U
#EXT-X-TARGETDURATION:2
#EXT-X-PART-INF:PART-TARGET=0.5
#EXT-X-PART:DURATION=0.5,URI="seg-1.mp4",BYTERANGE="1000@0",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.5,URI="seg-1.mp4",BYTERANGE="500"
`)
	parts := p.segments[0].parts
	if parts[0].byteRange != "0-999" || parts[1].byteRange != "1000-1499" {
		t.Fatalf("ranges %q %q", parts[0].byteRange, parts[1].byteRange)
	}
}
