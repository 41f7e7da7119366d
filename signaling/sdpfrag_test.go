package signaling

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseSDPFragReadsCredentialsAndCandidatesPerSection(t *testing.T) {
	const c1 = "candidate:1387637174 1 udp 2122260223 192.0.2.10 61764 typ host generation 0 ufrag Gx7q network-id 1"
	const c2 = "candidate:3471623853 1 udp 1686052607 203.0.113.5 61764 typ srflx raddr 192.0.2.10 rport 61764 generation 0 ufrag Gx7q network-id 1"
	const c3 = "candidate:1 1 udp 2130706431 192.0.2.11 50000 typ host"
	cases := []struct {
		name string
		body string
		want sdpFrag
	}{
		{"trickle fragment of a browser", readTestdata(t, "trickle_fragment.sdpfrag"), sdpFrag{
			ufrag: "Gx7q", pwd: "Fh2dq0mVb6XJc0d2Kq2k3m9U",
			candidates:      []fragCandidate{{mid: "0", candidate: c1}, {mid: "0", candidate: c2}},
			endOfCandidates: true,
		}},
		{"ICE restart fragment", readTestdata(t, "restart_fragment.sdpfrag"), sdpFrag{
			ufrag: "Zr4T", pwd: "Qw8pLm2Nx5Vb7Cz9Ks3Hd6Fg",
			candidates: []fragCandidate{{mid: "0", candidate: "candidate:1387637174 1 udp 2122260223 192.0.2.11 50000 typ host generation 0 ufrag Zr4T network-id 2"}},
		}},
		{"candidates in two sections", "m=audio 9 RTP/AVP 0\na=mid:a\na=" + c1 + "\nm=video 9 RTP/AVP 0\na=mid:v\na=" + c3 + "\n", sdpFrag{
			candidates: []fragCandidate{{mid: "a", candidate: c1}, {mid: "v", candidate: c3}},
		}},
		{"session-level candidate has no mid", "a=" + c3 + "\r\n", sdpFrag{candidates: []fragCandidate{{candidate: c3}}}},
		{"LF line ends, indentation and blank lines", "\n  a=ice-ufrag:abcd  \n\n\ta=ice-pwd:0123456789012345678901\n", sdpFrag{ufrag: "abcd", pwd: "0123456789012345678901"}},
		{"unknown lines are ignored", "a=ice-options:trickle renomination\r\na=group:BUNDLE 0 1\r\nc=IN IP4 0.0.0.0\r\n", sdpFrag{}},
		{"end of candidates alone", "a=end-of-candidates", sdpFrag{endOfCandidates: true}},
		{"empty body", "", sdpFrag{}},
		{"exactly the line limit", strings.Repeat("a=x\n", maxFragLines-1), sdpFrag{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseSDPFrag(c.body)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestParseSDPFragRefusesMalformedFragments(t *testing.T) {
	for name, body := range map[string]string{
		"candidate with too few fields":         "a=candidate:1 1 udp 2122260223 192.0.2.10 61764 typ",
		"candidate in a section without mid":    "m=audio 9 RTP/AVP 0\na=candidate:1 1 udp 2122260223 192.0.2.10 61764 typ host",
		"mid of a previous section not carried": "m=audio 9 RTP/AVP 0\na=mid:0\nm=video 9 RTP/AVP 0\na=candidate:1 1 udp 1 192.0.2.1 9 typ host",
		"not an SDP line":                       "hello",
		"one-letter line":                       "a",
		"too many lines":                        strings.Repeat("a=x\n", maxFragLines),
		"ufrag with a bare CR":                  "a=ice-ufrag:\r00",
		"ufrag with a space":                    "a=ice-ufrag:ab cd\na=ice-pwd:0123456789012345678901",
		"empty ufrag":                           "a=ice-ufrag:",
		"pwd with a quote":                      "a=ice-ufrag:abcd\na=ice-pwd:0123456789\"012345678901",
	} {
		if f, err := parseSDPFrag(body); err == nil {
			t.Errorf("%s: accepted as %+v", name, f)
		}
	}
}

func TestWithICECredentialsRewritesEveryCredentialLine(t *testing.T) {
	offer := readTestdata(t, "chrome_simulcast_offer.sdp")
	got := withICECredentials(offer, "NEWu", "NEWpwd0123456789012345")
	if n := strings.Count(got, "a=ice-ufrag:NEWu\r\n"); n != 2 {
		t.Errorf("%d ice-ufrag lines rewritten, want 2 (one per section)", n)
	}
	if n := strings.Count(got, "a=ice-pwd:NEWpwd0123456789012345\r\n"); n != 2 {
		t.Errorf("%d ice-pwd lines rewritten, want 2", n)
	}
	if strings.Contains(got, "Gx7q") || strings.Contains(got, "Fh2dq0mVb6XJc0d2Kq2k3m9U") {
		t.Error("old credentials remain")
	}
	// Nothing but the credential lines changes, CRLF line ends included.
	want := strings.ReplaceAll(strings.ReplaceAll(offer, "a=ice-ufrag:Gx7q", "a=ice-ufrag:NEWu"), "a=ice-pwd:Fh2dq0mVb6XJc0d2Kq2k3m9U", "a=ice-pwd:NEWpwd0123456789012345")
	if got != want {
		t.Errorf("rewrite changed more than the credentials:\n%s", got)
	}

	for name, c := range map[string]struct{ in, want string }{
		"LF line ends":         {"v=0\na=ice-ufrag:old\na=ice-pwd:oldpwd\nm=audio 9 RTP/AVP 0\n", "v=0\na=ice-ufrag:u\na=ice-pwd:p\nm=audio 9 RTP/AVP 0\n"},
		"session level only":   {"a=ice-ufrag:old\r\na=ice-pwd:oldpwd\r\n", "a=ice-ufrag:u\r\na=ice-pwd:p\r\n"},
		"no credentials":       {"v=0\r\nm=audio 9 RTP/AVP 0\r\n", "v=0\r\nm=audio 9 RTP/AVP 0\r\n"},
		"last line without LF": {"v=0\r\na=ice-pwd:oldpwd", "v=0\r\na=ice-pwd:p"},
	} {
		if got := withICECredentials(c.in, "u", "p"); got != c.want {
			t.Errorf("%s: got %q, want %q", name, got, c.want)
		}
	}
	if u := iceUfrag(withICECredentials(offer, "X1", "Y2")); u != "X1" {
		t.Errorf("iceUfrag after rewrite %q", u)
	}
}

func TestWithoutCandidatesDropsOnlyCandidateLines(t *testing.T) {
	offer := readTestdata(t, "obs_h264_opus_offer.sdp")
	got := withoutCandidates(offer)
	if strings.Contains(got, "a=candidate:") || strings.Contains(got, "a=end-of-candidates") {
		t.Errorf("candidates remain:\n%s", got)
	}
	if want := len(strings.Split(offer, "\n")) - 3; len(strings.Split(got, "\n")) != want {
		t.Errorf("%d lines left, want %d", len(strings.Split(got, "\n")), want)
	}
	if !strings.HasSuffix(got, "\r\n") || strings.Contains(got, "\n\n") || strings.Contains(got, "\r\n\r\n") {
		t.Errorf("line structure damaged:\n%q", got)
	}
	if same := withoutCandidates("v=0\r\ns=-\r\n"); same != "v=0\r\ns=-\r\n" {
		t.Errorf("SDP without candidates changed: %q", same)
	}
}

func TestSDPAttrReturnsTheFirstValue(t *testing.T) {
	sdp := "v=0\r\na=ice-ufrag:first\r\nm=audio 9 RTP/AVP 0\r\na=ice-ufrag:second\r\na=ice-pwd:pw\r\n"
	if got := iceUfrag(sdp); got != "first" {
		t.Errorf("iceUfrag %q", got)
	}
	if got := sdpAttr(sdp, "ice-pwd"); got != "pw" {
		t.Errorf("ice-pwd %q", got)
	}
	if got := sdpAttr(sdp, "fingerprint"); got != "" {
		t.Errorf("missing attribute %q", got)
	}
}
