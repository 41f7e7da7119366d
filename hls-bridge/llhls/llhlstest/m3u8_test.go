package llhlstest

import (
	"reflect"
	"testing"
	"time"
)

func TestParseAttrsHandlesQuotedCommas(t *testing.T) {
	got, err := ParseAttrs(`BANDWIDTH=580000,CODECS="avc1.42c014,mp4a.40.2",RESOLUTION=320x180,AUDIO="audio"`)
	want := Attrs{"BANDWIDTH": "580000", "CODECS": "avc1.42c014,mp4a.40.2", "RESOLUTION": "320x180", "AUDIO": "audio"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, %v", got, err)
	}
	for _, bad := range []string{`A`, `A="x`, `A="x"B=1`, `A=1,A=2`} {
		if _, err := ParseAttrs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

const delta = `#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.801,CAN-SKIP-UNTIL=12
#EXT-X-PART-INF:PART-TARGET=0.26667
#EXT-X-MEDIA-SEQUENCE:100
#EXT-X-SKIP:SKIPPED-SEGMENTS=4
#EXT-X-MAP:URI="init-100.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:08.000Z
#EXT-X-PART:DURATION=0.26667,URI="part-104-0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.23333,URI="part-104-1.m4s"
#EXTINF:0.50000,
seg-104.m4s
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:08.500Z
#EXT-X-PART:DURATION=0.26667,URI="part-105-0.m4s",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-105-1.m4s"
#EXT-X-RENDITION-REPORT:URI="../audio/index.m3u8",LAST-MSN=105,LAST-PART=0
`

func TestParseMediaNumbersSegmentsAfterSkipAndKeepsTheTail(t *testing.T) {
	p, err := ParseMedia([]byte(delta))
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != 9 || p.Skipped != 4 || p.PartTarget != 0.26667 || p.ServerControl.Float("CAN-SKIP-UNTIL") != 12 {
		t.Errorf("header %+v", p)
	}
	if len(p.Segments) != 1 || p.Segments[0].MSN != 104 || len(p.Segments[0].Parts) != 2 || p.Segments[0].Map != "init-100.mp4" {
		t.Fatalf("segments %+v", p.Segments)
	}
	tail := p.Tail
	if tail == nil || tail.MSN != 105 || !tail.Discontinuity || !tail.PDT.Equal(time.Date(2026, 3, 1, 12, 0, 8, 5e8, time.UTC)) {
		t.Fatalf("tail %+v", tail)
	}
	if m, n, _ := p.Head(); m != 105 || n != 0 {
		t.Errorf("head %d.%d", m, n)
	}
	if m, n := p.Next(); m != 105 || n != 1 || p.LastMSN() != 104 {
		t.Errorf("next %d.%d, last %d", m, n, p.LastMSN())
	}
	if p.PreloadHint["URI"] != "part-105-1.m4s" || len(p.Reports) != 1 || p.Reports[0]["LAST-MSN"] != "105" {
		t.Errorf("hint %v, reports %v", p.PreloadHint, p.Reports)
	}
}

func TestPartsAfter(t *testing.T) {
	p, err := ParseMedia([]byte(delta))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		msn         uint64
		part, after int
		ok          bool
	}{
		{104, 0, 2, true},
		{104, 1, 1, true},
		{104, 2, 0, true}, // segment 104 has two parts: 105.0 is next
		{105, 0, 0, true},
		{105, 1, 0, false},
	} {
		if after, ok := partsAfter(p, c.msn, c.part); after != c.after || ok != c.ok {
			t.Errorf("partsAfter(%d.%d) = %d, %v; want %d, %v", c.msn, c.part, after, ok, c.after, c.ok)
		}
	}
}

func TestParseMultivariant(t *testing.T) {
	mv, err := ParseMultivariant([]byte("#EXTM3U\n" +
		`#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="audio",URI="audio/index.m3u8"` + "\n" +
		`#EXT-X-STREAM-INF:BANDWIDTH=1000,CODECS="avc1.64001f,mp4a.40.2",AUDIO="audio"` + "\n720p/index.m3u8\n"))
	if err != nil || len(mv.Variants) != 1 || mv.Variants[0].URI != "720p/index.m3u8" || mv.Media[0]["URI"] != "audio/index.m3u8" {
		t.Errorf("%+v, %v", mv, err)
	}
	if _, err := ParseMultivariant([]byte("#EXTM3U\n720p/index.m3u8\n")); err == nil {
		t.Error("URI without EXT-X-STREAM-INF accepted")
	}
}
