package signaling

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

var sessionLocation = regexp.MustCompile(`^/(whip|whep)/([^/]+)/sessions/([0-9a-f]+)$`)

func TestWHIPPublishIsAnsweredAndPlayedOverWHEP(t *testing.T) {
	h := newHarness(t, nil)
	pub := h.newPublisher()
	r := pub.negotiate(t, h, "/whip/stage", token(t, "stage", "alice", true, false), pub.offer(t, true))

	m := sessionLocation.FindStringSubmatch(r.header.Get("Location"))
	if m == nil || m[1] != "whip" || m[2] != "stage" {
		t.Errorf("Location %q, want /whip/stage/sessions/{id}", r.header.Get("Location"))
	}
	if etag := r.header.Get("ETag"); !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || len(etag) < 3 {
		t.Errorf("ETag %q is not a quoted entity tag", etag)
	}
	if got := r.header.Get("Accept-Patch"); got != "application/trickle-ice-sdpfrag" {
		t.Errorf("Accept-Patch %q", got)
	}
	if got := r.header.Get("Content-Type"); got != "application/sdp" {
		t.Errorf("Content-Type %q", got)
	}
	var ans sdp.SessionDescription
	if err := ans.UnmarshalString(r.body); err != nil {
		t.Fatalf("answer does not parse: %v", err)
	}
	if len(ans.MediaDescriptions) != 1 || ans.MediaDescriptions[0].MediaName.Media != "video" {
		t.Errorf("answer has %d media sections, want one video", len(ans.MediaDescriptions))
	}
	if _, ok := ans.MediaDescriptions[0].Attribute("recvonly"); !ok {
		t.Error("answer to a sendonly offer is not recvonly")
	}
	if !strings.Contains(r.body, "a=candidate:") {
		t.Error("answer carries no candidates")
	}
	pub.waitConnected(t)
	if whip, _ := h.server.SessionCounts(); whip != 1 {
		t.Errorf("%d live WHIP sessions, want 1", whip)
	}

	h.waitPublished("stage", "alice")
	v := h.newViewer()
	vr := v.negotiate(t, h, "/whep/stage", token(t, "stage", "bob", false, true), v.offer(t, true))
	if m := sessionLocation.FindStringSubmatch(vr.header.Get("Location")); m == nil || m[1] != "whep" || m[2] != "stage" {
		t.Errorf("WHEP Location %q, want /whep/stage/sessions/{id}", vr.header.Get("Location"))
	}
	if vr.header.Get("ETag") == "" || vr.header.Get("Accept-Patch") != "application/trickle-ice-sdpfrag" {
		t.Errorf("WHEP headers: ETag %q, Accept-Patch %q", vr.header.Get("ETag"), vr.header.Get("Accept-Patch"))
	}
	v.waitConnected(t)
	v.waitPackets(t, 20)
	if mime, _ := v.mime.Load().(string); !strings.EqualFold(mime, webrtc.MimeTypeVP8) {
		t.Errorf("viewer received %q, want VP8", mime)
	}
	if v.magic.Load() == 0 {
		t.Error("viewer's packets do not carry the publisher's media")
	}
	if _, whep := h.server.SessionCounts(); whep != 1 {
		t.Errorf("%d live WHEP sessions, want 1", whep)
	}
}

func TestBadRequestsAreRefusedWithJSONErrorsWhileAStreamKeepsFlowing(t *testing.T) {
	const maxBody = 32 << 10
	h := newHarness(t, func(o *Options) {
		o.MaxSessions = 3
		o.MaxBodyBytes = maxBody
	})
	h.publish("stage", "alice")
	v := h.play("/whep/stage", token(t, "stage", "bob", false, true))
	v.waitPackets(t, 10)

	// Real offers from clients that never connect.
	pubOffer := h.newPublisher().offer(t, true)
	viewOffer := h.newViewer().offer(t, true)
	noMedia := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
	recvOnly := strings.ReplaceAll(pubOffer, "a=sendonly", "a=recvonly")

	pubTok := token(t, "stage", "carol", true, false)
	subTok := token(t, "stage", "dave", false, true)
	cases := []struct {
		name, method, path, tok, ctype, body string
		status                               int
	}{
		{"malformed SDP", "POST", "/whip/stage", pubTok, "application/sdp", "this is not SDP", 400},
		{"SDP without media", "POST", "/whip/stage", pubTok, "application/sdp", noMedia, 400},
		{"WHIP offer that sends nothing", "POST", "/whip/stage", pubTok, "application/sdp", recvOnly, 400},
		{"WHEP offer without media", "POST", "/whep/stage", subTok, "application/sdp", noMedia, 400},
		{"WHEP offer that receives nothing", "POST", "/whep/stage", subTok, "application/sdp", pubOffer, 400},
		{"invalid room name", "POST", "/whip/bad%20room", pubTok, "application/sdp", pubOffer, 400},
		{"missing token", "POST", "/whip/stage", "", "application/sdp", pubOffer, 401},
		{"garbage token", "POST", "/whip/stage", "not.a.jwt", "application/sdp", pubOffer, 401},
		{"bad signature", "POST", "/whip/stage", tokenWith(t, "another-secret-of-at-least-32-characters", "stage", "eve", true, false), "application/sdp", pubOffer, 401},
		{"expired token", "POST", "/whip/stage", expiredToken(t, "stage", "eve"), "application/sdp", pubOffer, 401},
		{"expired token on WHEP", "POST", "/whep/stage", expiredToken(t, "stage", "eve"), "application/sdp", viewOffer, 401},
		{"token for another room", "POST", "/whip/stage", token(t, "backstage", "eve", true, true), "application/sdp", pubOffer, 403},
		{"subscribe-only token on WHIP", "POST", "/whip/stage", subTok, "application/sdp", pubOffer, 403},
		{"publish-only token on WHEP", "POST", "/whep/stage", pubTok, "application/sdp", viewOffer, 403},
		{"wrong content type", "POST", "/whip/stage", pubTok, "text/plain", pubOffer, 415},
		{"no content type", "POST", "/whep/stage", subTok, "", viewOffer, 415},
		{"oversized offer", "POST", "/whip/stage", pubTok, "application/sdp", pubOffer + strings.Repeat("a=x-padding:0123456789abcdef\r\n", 2*maxBody/30), 413},
		{"PATCH unknown session", "PATCH", "/whip/stage/sessions/0123456789abcdef01234567", pubTok, "application/trickle-ice-sdpfrag", "a=end-of-candidates\r\n", 404},
		{"DELETE unknown session", "DELETE", "/whip/stage/sessions/0123456789abcdef01234567", pubTok, "", "", 404},
		{"DELETE a WHEP session through a WHIP URL", "DELETE", strings.Replace(v.location, "/whep/", "/whip/", 1), pubTok, "", "", 404},
		{"WHEP with no publisher", "POST", "/whep/empty", token(t, "empty", "dave", false, true), "application/sdp", viewOffer, 404},
		{"WHEP for a participant not in the room", "POST", "/whep/stage/nobody", subTok, "application/sdp", viewOffer, 404},
		{"invalid layer", "POST", "/whep/stage?layer=ultra", subTok, "application/sdp", viewOffer, 400},
		{"GET on the WHIP endpoint", "GET", "/whip/stage", pubTok, "", "", 405},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, c.name, h.do(c.method, c.path, c.tok, c.ctype, c.body), c.status)
		})
	}

	t.Run("session limit", func(t *testing.T) {
		// Two sessions are live; a third fills the node.
		third := h.do("POST", "/whep/stage", subTok, "application/sdp", viewOffer)
		if third.status != http.StatusCreated {
			t.Fatalf("third session: status %d, body %q", third.status, third.body)
		}
		wantError(t, "WHEP over the limit", h.do("POST", "/whep/stage", subTok, "application/sdp", viewOffer), 503)
		wantError(t, "WHIP over the limit", h.do("POST", "/whip/other", token(t, "other", "zed", true, false), "application/sdp", pubOffer), 503)
		if r := h.do("DELETE", third.header.Get("Location"), "", "", ""); r.status != http.StatusOK {
			t.Fatalf("DELETE third session: status %d", r.status)
		}
	})

	if whip, whep := h.server.SessionCounts(); whip != 1 || whep != 1 {
		t.Errorf("live sessions after the bad requests: %d WHIP, %d WHEP; want 1 and 1", whip, whep)
	}
	before := v.packets.Load()
	v.waitPackets(t, before+25)
	if st := v.state(); st != webrtc.PeerConnectionStateConnected {
		t.Errorf("viewer is %s after the bad requests", st)
	}
}
