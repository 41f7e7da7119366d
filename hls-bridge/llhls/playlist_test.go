package llhls

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/starling-sfu/starling/transcode"
)

// A 1920x1080 Baseline SPS: the restarted encoder's.
var otherSPS = []byte{0x67, 0x42, 0xc0, 0x28, 0xd9, 0x00, 0x78, 0x02, 0x27, 0xe5, 0x84, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc9, 0x20}

// restartedLadder is the test ladder whose encoder died at 5 s, before the
// 360p rendition reached the 4 s segment, and came back with timestamps
// from zero and, for 720p, a new SPS.
func restartedLadder() (before, after []transcode.Sample) {
	for _, smp := range ladderSamples(5 * time.Second) {
		if smp.Rendition != 1 || smp.DTS < 3900*time.Millisecond {
			before = append(before, smp)
		}
	}
	for _, smp := range ladderSamples(40 * time.Second) {
		if smp.Rendition == 0 && smp.Key {
			smp.AU = [][]byte{otherSPS, testPPS, smp.AU[2]}
		}
		after = append(after, smp)
	}
	return before, after
}

func TestPlaylistsAfterARestartedEncoder(t *testing.T) {
	s, err := NewStream(Config{PlaylistSegments: 4}, testLadder, testAudio, testWall, testLog)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before, after := restartedLadder()
	base := s.first
	pushUntil(s, append(before, after...), 0) // nothing
	for _, smp := range before {
		s.Push(smp)
	}
	rest := pushUntil(s, after, 3*time.Second)

	// Every track starts its new timeline at the same msn, base+3, after
	// the furthest any track got (720p and audio opened base+2).
	disc := "#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:05.0"
	for name, want := range map[string][]string{
		"720p": {
			fmt.Sprintf("seg-%d.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-%d.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:05.0", base+2, base+3),
		},
		"360p": {
			fmt.Sprintf("#EXTINF:1.90000,\nseg-%d.m4s\n#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:03.900Z\n#EXT-X-GAP\n#EXTINF:1.1", base+1),
			fmt.Sprintf("seg-%d.m4s\n%s", base+2, disc),
		},
		"audio": {fmt.Sprintf("seg-%d.m4s\n%s", base+2, disc)},
	} {
		body := get(s, "/"+name+"/index.m3u8").Body.String()
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s playlist lacks\n%s\nin\n%s", name, w, body)
			}
		}
		if strings.Contains(body, "DISCONTINUITY-SEQUENCE") {
			t.Errorf("%s: DISCONTINUITY-SEQUENCE while the discontinuity is listed", name)
		}
	}
	if rec := get(s, fmt.Sprintf("/360p/seg-%d.m4s", base+2)); rec.Code != 404 {
		t.Errorf("gap segment: %d, want 404", rec.Code)
	}
	if rec := get(s, "/index.m3u8"); !strings.Contains(rec.Body.String(), `CODECS="avc1.42c028,mp4a.40.2",RESOLUTION=1920x1080`) {
		t.Errorf("multivariant not updated for the new SPS:\n%s", rec.Body)
	}
	newInit := get(s, fmt.Sprintf("/720p/init-%d.mp4", base+3)).Body.String()
	if alias := get(s, "/720p/init.mp4").Body.String(); alias != newInit || newInit == "" {
		t.Errorf("init.mp4 is not the newest init section")
	}

	// Once the discontinuity leaves the window, the sequence counts it.
	pushUntil(s, rest, 20*time.Second)
	for _, name := range []string{"720p", "360p", "audio"} {
		body := get(s, "/"+name+"/index.m3u8").Body.String()
		if !strings.Contains(body, "#EXT-X-DISCONTINUITY-SEQUENCE:1\n") || strings.Contains(body, "#EXT-X-DISCONTINUITY\n") {
			t.Errorf("%s playlist after the discontinuity left it:\n%s", name, body)
		}
	}
	if st := s.Stats(); st.Discontinuities != 3 || st.GapSegments != 1 {
		t.Errorf("stats %+v, want 3 discontinuities and 1 gap", st)
	}
}

func TestEndedPlaylist(t *testing.T) {
	s, _ := testStream(t, Config{}, 4100*time.Millisecond)
	s.Close()
	body := get(s, "/720p/index.m3u8").Body.String()
	base := s.first
	// The open segment is completed with the parts it had.
	want := fmt.Sprintf("#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:04.000Z\n"+
		"#EXT-X-PART:DURATION=0.10000,URI=\"part-%d-0.m4s\",INDEPENDENT=YES\n"+
		"#EXTINF:0.10000,\nseg-%d.m4s\n"+
		"#EXT-X-RENDITION-REPORT:URI=\"../360p/index.m3u8\",LAST-MSN=%d,LAST-PART=0\n"+
		"#EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8\",LAST-MSN=%d,LAST-PART=0\n"+
		"#EXT-X-ENDLIST\n", base+2, base+2, base+2, base+2)
	if !strings.HasSuffix(body, want) {
		t.Errorf("ended playlist:\n%s\nwant it to end with\n%s", body, want)
	}
}
