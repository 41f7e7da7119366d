package signaling

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
)

func FuzzParseSDPFrag(f *testing.F) {
	for _, name := range []string{"trickle_fragment.sdpfrag", "restart_fragment.sdpfrag"} {
		f.Add(readTestdata(f, name))
	}
	f.Add("a=end-of-candidates\r\n")
	f.Add("m=audio 9 RTP/AVP 0\na=mid:0\na=candidate:1 1 udp 1 192.0.2.1 9 typ host\n")
	f.Add("a=candidate:1 1 udp 2122260223 192.0.2.10 61764 typ host\r\nx")
	f.Add(strings.Repeat("\n", maxFragLines))
	f.Fuzz(func(t *testing.T, body string) {
		frag, err := parseSDPFrag(body)
		lines := strings.Count(strings.ReplaceAll(body, "\r\n", "\n"), "\n") + 1
		if lines > maxFragLines && err == nil {
			t.Fatalf("%d lines accepted, limit %d", lines, maxFragLines)
		}
		if err != nil {
			return
		}
		if len(frag.candidates) > lines {
			t.Fatalf("%d candidates from %d lines", len(frag.candidates), lines)
		}
		for _, c := range frag.candidates {
			if !strings.HasPrefix(c.candidate, "candidate:") || len(strings.Fields(c.candidate)) < 8 {
				t.Fatalf("accepted malformed candidate %q", c.candidate)
			}
		}
		for _, cred := range []string{frag.ufrag, frag.pwd} {
			if cred != "" && !iceChars(cred) {
				t.Fatalf("accepted ICE credential %q that is not ice-chars", cred)
			}
		}
	})
}

// Statuses a POST may be answered with (DESIGN.md: WHIP/WHEP errors).
var (
	whipStatuses = []int{201, 400, 401, 403, 413, 415, 503}
	whepStatuses = []int{201, 400, 401, 403, 404, 413, 415, 503}
)

// fuzzAuth picks the Authorization header from the fuzzer's inputs: none, a
// token that may publish and play in room, a play-only token, or raw bytes.
func fuzzAuth(t testing.TB, mode uint8, raw, room string) string {
	switch mode % 5 {
	case 0:
		return ""
	case 1:
		return "Bearer " + token(t, room, "fuzz", true, true)
	case 2:
		return "Bearer " + token(t, room, "fuzz", false, true)
	case 3:
		return raw
	default:
		return "Bearer " + raw
	}
}

// fuzzPost sends one POST to /kind/{segments...} straight to the handler and
// checks the answer: a documented status, JSON errors, and a complete 201
// whose session is then deleted so that the node stays small.
func fuzzPost(t *testing.T, n *handlerNode, kind string, segments []string, query, ctype, auth string, body []byte, allowed []int) {
	p, raw := "/"+kind, "/"+kind
	for _, seg := range segments {
		p, raw = p+"/"+seg, raw+"/"+url.PathEscape(seg)
	}
	if path.Clean(p) != p {
		t.Skip("empty or dot segments: http.ServeMux cleans or redirects such paths before signaling sees them")
	}
	req := httptest.NewRequest("POST", "/", strings.NewReader(string(body)))
	req.URL = &url.URL{Path: p, RawPath: raw, RawQuery: query}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	n.handler.ServeHTTP(w, req)

	if !slices.Contains(allowed, w.Code) {
		t.Fatalf("status %d is not one of %v; body %q", w.Code, allowed, w.Body.String())
	}
	if w.Code != http.StatusCreated {
		var e struct {
			Error string `json:"error"`
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("error %d with Content-Type %q", w.Code, ct)
		}
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
			t.Fatalf("error %d body %q is not {\"error\": ...}", w.Code, w.Body.String())
		}
		return
	}
	loc := w.Header().Get("Location")
	if m := sessionLocation.FindStringSubmatch(loc); m == nil || m[1] != kind {
		t.Fatalf("201 with Location %q", loc)
	}
	if w.Header().Get("ETag") == "" || w.Header().Get("Content-Type") != "application/sdp" {
		t.Fatalf("201 without ETag or SDP content type: %v", w.Header())
	}
	var ans sdp.SessionDescription
	if err := ans.UnmarshalString(w.Body.String()); err != nil {
		t.Fatalf("201 answer does not parse: %v", err)
	}
	d := httptest.NewRecorder()
	n.handler.ServeHTTP(d, httptest.NewRequest("DELETE", loc, nil))
	if d.Code != http.StatusOK {
		t.Fatalf("DELETE %s: status %d", loc, d.Code)
	}
}

func FuzzWHIPHandler(f *testing.F) {
	n := newHandlerNode(f, func(o *Options) { o.MaxBodyBytes = 16 << 10 })
	for _, name := range []string{"chrome_simulcast_offer.sdp", "obs_h264_opus_offer.sdp"} {
		offer := []byte(readTestdata(f, name))
		f.Add("stage", "application/sdp", uint8(1), "", offer)
		f.Add("stage", "application/sdp; charset=utf-8", uint8(2), "", offer)
		f.Add("stage", "application/sdp", uint8(4), "eyJhbGciOiJIUzI1NiJ9.e30.x", offer)
		f.Add("bad room", "application/sdp", uint8(1), "", offer)
		f.Add("stage", "text/plain", uint8(1), "", offer)
	}
	f.Add("stage", "application/sdp", uint8(1), "", []byte("v=0\r\n"))
	f.Add("stage", "application/sdp", uint8(0), "", []byte{})
	f.Add("stage", "application/sdp", uint8(3), "Basic Zm9vOmJhcg==", []byte("v=0\r\n"))
	f.Fuzz(func(t *testing.T, room, ctype string, authMode uint8, authRaw string, body []byte) {
		fuzzPost(t, n, "whip", []string{room}, "", ctype, fuzzAuth(t, authMode, authRaw, room), body, whipStatuses)
	})
}

func FuzzWHEPHandler(f *testing.F) {
	n := newHandlerNode(f, func(o *Options) { o.MaxBodyBytes = 16 << 10; o.PublicPlayback = true })
	n.fakePublish(f, "live", "obs")
	for _, name := range []string{"chrome_whep_offer.sdp", "chrome_simulcast_offer.sdp", "obs_h264_opus_offer.sdp"} {
		offer := []byte(readTestdata(f, name))
		f.Add("live", "", "application/sdp", uint8(1), "", offer)
		f.Add("live", "layer=h", "application/sdp", uint8(2), "", offer)
		f.Add("live", "layer=x", "application/sdp", uint8(0), "", offer)
		f.Add("live/obs", "", "application/sdp", uint8(2), "", offer)
		f.Add("empty", "", "application/sdp", uint8(2), "", offer)
	}
	f.Add("live", "", "application/sdp", uint8(4), "junk", []byte("v=0\r\n"))
	f.Fuzz(func(t *testing.T, room, query, ctype string, authMode uint8, authRaw string, body []byte) {
		// room may name a participant too: /whep/{room}/{participant}.
		segments := strings.SplitN(room, "/", 2)
		auth := fuzzAuth(t, authMode, authRaw, segments[0])
		fuzzPost(t, n, "whep", segments, query, ctype, auth, body, whepStatuses)
	})
}
