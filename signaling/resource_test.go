package signaling

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

const fragType = "application/trickle-ice-sdpfrag"

// lineValue returns the value of the first "a=name:" line of an SDP or
// fragment; the test client's own parsing, independent of the server's.
func lineValue(s, name string) string {
	for _, l := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "a="+name+":"); ok {
			return v
		}
	}
	return ""
}

// fragmentOf builds an RFC 8840 fragment from a local description: the ICE
// credentials, then each media section's m= line, mid and candidates.
func fragmentOf(sdp string) string {
	var b strings.Builder
	b.WriteString("a=ice-ufrag:" + lineValue(sdp, "ice-ufrag") + "\r\n")
	b.WriteString("a=ice-pwd:" + lineValue(sdp, "ice-pwd") + "\r\n")
	inMedia := false
	for _, l := range strings.Split(sdp, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "m="):
			inMedia = true
			b.WriteString(l + "\r\n")
		case !inMedia:
		case strings.HasPrefix(l, "a=mid:"), strings.HasPrefix(l, "a=candidate:"), l == "a=end-of-candidates":
			b.WriteString(l + "\r\n")
		}
	}
	return b.String()
}

// candidatesOf lists the a=candidate values of an SDP or fragment.
func candidatesOf(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "a="); ok && strings.HasPrefix(v, "candidate:") {
			out = append(out, v)
		}
	}
	return out
}

func TestPATCHTrickledCandidatesConnectAnOfferWithoutCandidates(t *testing.T) {
	h := newHarness(t, nil)
	pub := h.newPublisher()
	var mid string
	gathered := make(chan struct{})
	var cands []string
	pub.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			close(gathered)
			return
		}
		cands = append(cands, c.ToJSON().Candidate)
	})
	offer := pub.offer(t, false)
	if strings.Contains(offer, "a=candidate:") {
		t.Fatal("the offer should carry no candidates")
	}
	mid = lineValue(offer, "mid")
	pub.negotiate(t, h, "/whip/stage", token(t, "stage", "alice", true, false), offer)
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
		t.Fatal("ICE gathering did not complete")
	}
	if len(cands) == 0 {
		t.Fatal("client gathered no candidates")
	}
	var frag strings.Builder
	frag.WriteString("a=ice-ufrag:" + lineValue(offer, "ice-ufrag") + "\r\na=ice-pwd:" + lineValue(offer, "ice-pwd") + "\r\n")
	frag.WriteString("m=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:" + mid + "\r\n")
	for _, c := range cands {
		frag.WriteString("a=" + c + "\r\n")
	}
	frag.WriteString("a=end-of-candidates\r\n")

	r := h.do("PATCH", pub.location, "", fragType, frag.String(), "If-Match", pub.etag)
	if r.status != http.StatusNoContent {
		t.Fatalf("trickle PATCH: status %d, body %q", r.status, r.body)
	}
	pub.waitConnected(t)
	h.waitPublished("stage", "alice")
	v := h.play("/whep/stage", token(t, "stage", "bob", false, true))
	v.waitPackets(t, 10)
}

func TestPATCHIsRefusedForStaleETagWrongTypeAndBadFragments(t *testing.T) {
	h := newHarness(t, nil)
	pub := h.publish("stage", "alice")
	cand := candidatesOf(pub.pc.LocalDescription().SDP)[0]
	trickle := "a=ice-ufrag:" + lineValue(pub.pc.LocalDescription().SDP, "ice-ufrag") + "\r\n" +
		"a=ice-pwd:" + lineValue(pub.pc.LocalDescription().SDP, "ice-pwd") + "\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=" + cand + "\r\n"

	cases := []struct {
		name, ctype, body string
		hdr               []string
		status            int
	}{
		{"stale ETag", fragType, trickle, []string{"If-Match", `"stale"`}, http.StatusPreconditionFailed},
		{"wrong content type", "application/sdp", trickle, []string{"If-Match", pub.etag}, http.StatusUnsupportedMediaType},
		{"missing content type", "", trickle, nil, http.StatusUnsupportedMediaType},
		{"not a fragment", fragType, "hello world\r\n", nil, http.StatusBadRequest},
		{"malformed candidate", fragType, "m=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp\r\n", nil, http.StatusBadRequest},
		{"candidate without mid in a media section", fragType, "m=video 9 UDP/TLS/RTP/SAVPF 0\r\na=" + cand + "\r\n", nil, http.StatusBadRequest},
		{"another ICE generation", fragType, "a=ice-ufrag:zzzzzzzz\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=" + cand + "\r\n", nil, http.StatusConflict},
		{"oversized fragment", fragType, strings.Repeat("a=x:0123456789012345678901234567890123456789\r\n", 2000), nil, http.StatusRequestEntityTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, c.name, h.do("PATCH", pub.location, "", c.ctype, c.body, c.hdr...), c.status)
		})
	}
	for _, ifMatch := range []string{pub.etag, "*", ""} {
		if r := h.do("PATCH", pub.location, "", fragType+"; charset=utf-8", trickle, "If-Match", ifMatch); r.status != http.StatusNoContent {
			t.Errorf("trickle PATCH with If-Match %q: status %d, body %q", ifMatch, r.status, r.body)
		}
	}
	if pub.state() != webrtc.PeerConnectionStateConnected {
		t.Errorf("publisher is %s after the PATCHes", pub.state())
	}
}

// restartICE restarts ICE as a WHIP/WHEP client does (RFC 9725 §4.4.1): a
// restart offer applied locally, its new credentials and candidates PATCHed,
// and the server's new credentials applied to the previous answer.
func (p *peer) restartICE(t *testing.T, h *harness) reply {
	t.Helper()
	o, err := p.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		t.Fatal(err)
	}
	oldUfrag := lineValue(p.pc.LocalDescription().SDP, "ice-ufrag")
	local := p.setLocal(t, o, true)
	if lineValue(local, "ice-ufrag") == oldUfrag {
		t.Fatal("the restart offer kept the old ufrag")
	}
	r := h.do("PATCH", p.location, "", fragType, fragmentOf(local), "If-Match", p.etag)
	if r.status != http.StatusOK {
		t.Fatalf("ICE restart PATCH: status %d, body %q", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != fragType {
		t.Errorf("ICE restart answer Content-Type %q", ct)
	}
	ufrag, pwd := lineValue(r.body, "ice-ufrag"), lineValue(r.body, "ice-pwd")
	if ufrag == "" || pwd == "" {
		t.Fatalf("ICE restart answer has no credentials: %q", r.body)
	}
	if ufrag == lineValue(p.answer, "ice-ufrag") || pwd == lineValue(p.answer, "ice-pwd") {
		t.Errorf("server kept its ICE credentials across a restart")
	}
	if etag := r.header.Get("ETag"); etag == "" || etag == p.etag {
		t.Errorf("ETag after restart %q, before %q", etag, p.etag)
	}
	if len(candidatesOf(r.body)) == 0 {
		t.Errorf("ICE restart answer carries no candidates: %q", r.body)
	}
	answer := strings.ReplaceAll(p.answer, "a=ice-ufrag:"+lineValue(p.answer, "ice-ufrag"), "a=ice-ufrag:"+ufrag)
	answer = strings.ReplaceAll(answer, "a=ice-pwd:"+lineValue(p.answer, "ice-pwd"), "a=ice-pwd:"+pwd)
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatalf("apply restarted answer: %v", err)
	}
	for _, c := range candidatesOf(r.body) {
		if err := p.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: c}); err != nil {
			t.Fatalf("add candidate %q: %v", c, err)
		}
	}
	p.etag, p.answer = r.header.Get("ETag"), answer
	return r
}

func TestPATCHRestartsICEAndMediaKeepsFlowing(t *testing.T) {
	for _, kind := range []string{"whip", "whep"} {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t, nil)
			pub := h.publish("stage", "alice")
			v := h.play("/whep/stage", token(t, "stage", "bob", false, true))
			v.waitPackets(t, 10)

			restarted := v.peer
			if kind == "whip" {
				restarted = pub.peer
			}
			oldETag := restarted.etag
			oldCands := candidatesOf(restarted.pc.LocalDescription().SDP)
			restarted.restartICE(t, h)
			eventually(t, 10*time.Second, "the restarted connection to be connected", func() bool {
				return restarted.state() == webrtc.PeerConnectionStateConnected
			})
			before := v.packets.Load()
			v.waitPackets(t, before+25)

			if whip, whep := h.server.SessionCounts(); whip != 1 || whep != 1 {
				t.Errorf("live sessions after the restart: %d WHIP, %d WHEP", whip, whep)
			}
			for _, st := range []webrtc.PeerConnectionState{webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed} {
				if restarted.sawState(st) {
					t.Errorf("connection went %s during the restart", st)
				}
			}
			// The old ETag names an ICE generation that no longer exists.
			wantError(t, "PATCH with the pre-restart ETag", h.do("PATCH", restarted.location, "", fragType, "a=end-of-candidates\r\n", "If-Match", oldETag), http.StatusPreconditionFailed)
			if r := h.do("PATCH", restarted.location, "", fragType, "a=end-of-candidates\r\n", "If-Match", restarted.etag); r.status != http.StatusNoContent {
				t.Errorf("PATCH with the new ETag: status %d, body %q", r.status, r.body)
			}
			// The server dropped the old generation's candidates.
			for _, addr := range remoteCandidatesThenEnd(t, h, restarted.location) {
				for _, c := range oldCands {
					if f := strings.Fields(c); f[4]+":"+f[5] == addr {
						t.Errorf("server still holds pre-restart candidate %s", addr)
					}
				}
			}
		})
	}
}

func TestDELETEEndsThePublisherAndItsViewers(t *testing.T) {
	h := newHarness(t, nil)
	pub := h.publish("stage", "alice")
	viewers := []*viewer{
		h.play("/whep/stage", token(t, "stage", "bob", false, true)),
		h.play("/whep/stage/alice", token(t, "stage", "carol", false, true)),
	}
	for _, v := range viewers {
		v.waitPackets(t, 5)
	}

	if r := h.do("DELETE", pub.location, "", "", ""); r.status != http.StatusOK {
		t.Fatalf("DELETE: status %d, body %q", r.status, r.body)
	}
	for i, v := range viewers {
		eventually(t, 10*time.Second, fmt.Sprintf("viewer %d to see its session end", i), v.sessionEnded)
	}
	eventually(t, 5*time.Second, "every session to end", func() bool {
		whip, whep := h.server.SessionCounts()
		return whip == 0 && whep == 0
	})
	if _, ok := h.sfu.LookupRoom("stage"); ok {
		t.Error("room still exists after its only participant left")
	}
	// A DELETE arriving after the session ended is answered, not an error.
	if r := h.do("DELETE", pub.location, "", "", ""); r.status != http.StatusOK {
		t.Errorf("second DELETE: status %d, body %q", r.status, r.body)
	}
	if r := h.do("DELETE", viewers[0].location, "", "", ""); r.status != http.StatusOK {
		t.Errorf("DELETE of a viewer session the publisher's departure ended: status %d, body %q", r.status, r.body)
	}
	wantError(t, "PATCH of an ended session", h.do("PATCH", pub.location, "", fragType, "a=end-of-candidates\r\n"), http.StatusNotFound)
}

func TestDELETEAfterTheClientClosedItsConnectionIsAnswered(t *testing.T) {
	h := newHarness(t, nil)
	pub := h.publish("stage", "alice")
	v := h.play("/whep/stage", token(t, "stage", "bob", false, true))
	v.waitPackets(t, 5)

	// The viewer hangs up first; the server notices on its own.
	if err := v.pc.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the server to end the viewer's session", func() bool {
		_, whep := h.server.SessionCounts()
		return whep == 0
	})
	if r := h.do("DELETE", v.location, "", "", ""); r.status != http.StatusOK {
		t.Errorf("late DELETE: status %d, body %q", r.status, r.body)
	}
	if pub.state() != webrtc.PeerConnectionStateConnected {
		t.Errorf("publisher is %s after its viewer left", pub.state())
	}
	// Deleting a viewer leaves the publisher alone.
	v2 := h.play("/whep/stage", token(t, "stage", "carol", false, true))
	v2.waitPackets(t, 5)
	if r := h.do("DELETE", v2.location, "", "", ""); r.status != http.StatusOK {
		t.Fatalf("DELETE viewer: status %d", r.status)
	}
	eventually(t, 10*time.Second, "the deleted viewer to see its session end", v2.sessionEnded)
	if whip, whep := h.server.SessionCounts(); whip != 1 || whep != 0 {
		t.Errorf("live sessions: %d WHIP, %d WHEP; want 1 and 0", whip, whep)
	}
}

func TestOPTIONSPreflightNamesTheHeadersBrowsersNeed(t *testing.T) {
	h := newHarness(t, nil)
	for _, path := range []string{"/whip/stage", "/whep/stage", "/whep/stage/alice", "/whip/stage/sessions/0123456789abcdef01234567"} {
		t.Run(path, func(t *testing.T) {
			r := h.do("OPTIONS", path, "", "", "",
				"Origin", "https://app.example",
				"Access-Control-Request-Method", "POST",
				"Access-Control-Request-Headers", "authorization, content-type")
			if r.status != http.StatusNoContent {
				t.Fatalf("status %d, body %q", r.status, r.body)
			}
			if got := r.header.Get("Access-Control-Allow-Origin"); got != "https://app.example" {
				t.Errorf("Access-Control-Allow-Origin %q", got)
			}
			for hdr, want := range map[string][]string{
				"Access-Control-Allow-Headers":  {"Authorization", "Content-Type", "If-Match"},
				"Access-Control-Expose-Headers": {"Location", "ETag", "Link", "Accept-Patch"},
				"Access-Control-Allow-Methods":  {"POST", "PATCH", "DELETE", "OPTIONS"},
			} {
				got := strings.Split(r.header.Get(hdr), ",")
				for i := range got {
					got[i] = strings.ToLower(strings.TrimSpace(got[i]))
				}
				for _, w := range want {
					if !contains(got, strings.ToLower(w)) {
						t.Errorf("%s %q does not name %s", hdr, r.header.Get(hdr), w)
					}
				}
			}
			if got := r.header.Get("Accept-Patch"); got != fragType {
				t.Errorf("Accept-Patch %q", got)
			}
			isSession := strings.Contains(path, "/sessions/")
			if got := r.header.Get("Accept-Post"); isSession != (got == "") {
				t.Errorf("Accept-Post %q on %s", got, path)
			}
		})
	}
	t.Run("origin not allowed", func(t *testing.T) {
		r := h.do("OPTIONS", "/whip/stage", "", "", "", "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
		if got := r.header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("Access-Control-Allow-Origin %q for an origin not allowed", got)
		}
	})
	t.Run("error replies carry CORS headers", func(t *testing.T) {
		r := h.do("POST", "/whip/stage", "", "application/sdp", "v=0\r\n", "Origin", "https://app.example")
		wantError(t, "POST without a token", r, http.StatusUnauthorized)
		if got := r.header.Get("Access-Control-Allow-Origin"); got != "https://app.example" {
			t.Errorf("Access-Control-Allow-Origin %q on an error reply", got)
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// remoteCandidatesThenEnd lists the addresses ("ip:port") of the remote
// candidates the server's end of a session knows, then ends the session from
// this goroutine: pion's GetStats reads fields that a close begun elsewhere
// (by the client's DTLS close_notify) writes without a lock.
func remoteCandidatesThenEnd(t *testing.T, h *harness, location string) []string {
	t.Helper()
	sess, ok := h.server.sessions.get(location[strings.LastIndex(location, "/")+1:])
	if !ok {
		t.Fatalf("no live session at %s", location)
	}
	var out []string
	for _, s := range sess.pc.GetStats() {
		if c, ok := s.(webrtc.ICECandidateStats); ok && c.Type == webrtc.StatsTypeRemoteCandidate {
			out = append(out, c.IP+":"+strconv.Itoa(int(c.Port)))
		}
	}
	sess.close(h.server.sessions, "test done")
	return out
}
