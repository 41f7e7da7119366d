package signaling

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/pion/interceptor"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/starling-sfu/starling/access"
	"github.com/starling-sfu/starling/sfu"
	"github.com/starling-sfu/starling/transport"
)

// handlerNode is a node without an HTTP listener or connecting clients: its
// handler is called directly with recorded responses. Sessions it answers
// never connect; callers DELETE them.
type handlerNode struct {
	server  *Server
	handler http.Handler
	sfu     *sfu.SFU
	idle    chan struct{} // closed at cleanup: ends the fake publishers' readers
}

func newHandlerNode(t testing.TB, tweak func(*Options)) *handlerNode {
	t.Helper()
	engine, err := transport.New(transport.Config{UDPPort: 0, TCPPort: 0, IncludeLoopback: true, Logger: testLogger()})
	if err != nil {
		t.Fatalf("transport: %v", err)
	}
	n := &handlerNode{sfu: sfu.New(sfu.Settings{Logger: testLogger()}), idle: make(chan struct{})}
	opts := Options{
		SFU:          n.sfu,
		Engine:       engine,
		Verifier:     access.NewVerifier(map[string]string{testKey: testSecret}),
		AllowOrigins: []string{"*"},
		Logger:       testLogger(),
	}
	if tweak != nil {
		tweak(&opts)
	}
	n.server = New(opts)
	n.handler = n.server.Handler()
	t.Cleanup(func() {
		close(n.idle)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		n.server.Drain(ctx)
		_ = engine.Close()
	})
	return n
}

// idleReader is a published layer that never carries a packet.
type idleReader struct{ done <-chan struct{} }

func (r idleReader) Read([]byte) (int, interceptor.Attributes, error) {
	<-r.done
	return 0, nil, io.EOF
}

// fakePublish makes identity publish tracks in room (by default a VP8 video
// and an Opus audio track), with no media flowing: enough for WHEP to
// negotiate.
func (n *handlerNode) fakePublish(t testing.TB, room, identity string, tracks ...sfu.TrackInfo) *sfu.Participant {
	t.Helper()
	p := n.sfu.Room(room).Join(identity, nil)
	if len(tracks) == 0 {
		tracks = []sfu.TrackInfo{
			{ID: "video", StreamID: identity + "-stream", Kind: webrtc.RTPCodecTypeVideo, Codec: webrtc.RTPCodecParameters{
				RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96}},
			{ID: "audio", StreamID: identity + "-stream", Kind: webrtc.RTPCodecTypeAudio, Codec: webrtc.RTPCodecParameters{
				RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111}},
		}
	}
	for i, info := range tracks {
		if _, err := p.AddLayer(info, "", uint32(1000+i), idleReader{n.idle}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(p.Close)
	return p
}

// serve calls the handler. path may carry a query; hdr holds name/value pairs.
func (n *handlerNode) serve(method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	n.handler.ServeHTTP(w, req)
	return w
}

func recorded(w *httptest.ResponseRecorder) reply {
	return reply{status: w.Code, header: w.Result().Header, body: w.Body.String()}
}

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRealClientOffersAreAnswered(t *testing.T) {
	n := newHandlerNode(t, nil)
	n.fakePublish(t, "live", "obs")
	cases := []struct {
		name, path, offer, tok string
		check                  func(t *testing.T, ans *sdp.SessionDescription, raw string)
	}{
		{"Chrome simulcast WHIP", "/whip/stage", "chrome_simulcast_offer.sdp", token(t, "stage", "chrome", true, false),
			func(t *testing.T, ans *sdp.SessionDescription, raw string) {
				v := ans.MediaDescriptions[1]
				if sim, _ := v.Attribute("simulcast"); !strings.HasPrefix(sim, "recv ") {
					t.Errorf("video answer a=simulcast:%q, want recv", sim)
				}
				for _, rid := range []string{"q", "h", "f"} {
					if !strings.Contains(raw, "a=rid:"+rid+" recv") {
						t.Errorf("answer does not receive rid %s", rid)
					}
				}
			}},
		{"OBS H.264 and Opus WHIP", "/whip/studio", "obs_h264_opus_offer.sdp", token(t, "studio", "obs", true, false),
			func(t *testing.T, ans *sdp.SessionDescription, raw string) {
				if !strings.Contains(raw, "H264/90000") || !strings.Contains(raw, "opus/48000/2") {
					t.Errorf("answer does not accept H.264 and Opus:\n%s", raw)
				}
			}},
		{"Chrome WHEP", "/whep/live", "chrome_whep_offer.sdp", token(t, "live", "viewer", false, true),
			func(t *testing.T, ans *sdp.SessionDescription, raw string) {
				for _, m := range ans.MediaDescriptions {
					if _, ok := m.Attribute("sendonly"); !ok {
						t.Errorf("%s answer is not sendonly", m.MediaName.Media)
					}
				}
				if !strings.Contains(raw, "VP8/90000") {
					t.Errorf("answer does not send VP8:\n%s", raw)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := n.serve("POST", c.path, readTestdata(t, c.offer), "Authorization", "Bearer "+c.tok, "Content-Type", "application/sdp")
			if w.Code != http.StatusCreated {
				t.Fatalf("status %d, body %q", w.Code, w.Body.String())
			}
			var ans sdp.SessionDescription
			if err := ans.UnmarshalString(w.Body.String()); err != nil {
				t.Fatalf("answer does not parse: %v", err)
			}
			if len(ans.MediaDescriptions) != 2 {
				t.Fatalf("answer has %d media sections, want 2", len(ans.MediaDescriptions))
			}
			c.check(t, &ans, w.Body.String())
			if d := n.serve("DELETE", w.Header().Get("Location"), ""); d.Code != http.StatusOK {
				t.Errorf("DELETE: status %d", d.Code)
			}
		})
	}
}

func TestWHEPWithoutTokenPlaysOnlyInPublicRooms(t *testing.T) {
	offer := readTestdata(t, "chrome_whep_offer.sdp")
	for _, public := range []bool{false, true} {
		n := newHandlerNode(t, func(o *Options) { o.PublicPlayback = public })
		n.fakePublish(t, "live", "obs")
		w := n.serve("POST", "/whep/live", offer, "Content-Type", "application/sdp")
		if public {
			if w.Code != http.StatusCreated {
				t.Errorf("public room: status %d, body %q", w.Code, w.Body.String())
			}
			// A token, when given, is still checked.
			wantError(t, "public room, bad token", recorded(n.serve("POST", "/whep/live", offer, "Content-Type", "application/sdp", "Authorization", "Bearer junk")), http.StatusUnauthorized)
		} else {
			wantError(t, "private room, no token", recorded(w), http.StatusUnauthorized)
		}
		// The WHIP side never plays without a token.
		wantError(t, "WHIP without token", recorded(n.serve("POST", "/whip/live", readTestdata(t, "obs_h264_opus_offer.sdp"), "Content-Type", "application/sdp")), http.StatusUnauthorized)
	}
}

func TestWHEPPlaysANamedParticipantAndPinsALayer(t *testing.T) {
	n := newHandlerNode(t, nil)
	n.fakePublish(t, "live", "first")
	n.fakePublish(t, "live", "second")
	offer := readTestdata(t, "chrome_whep_offer.sdp")
	tok := token(t, "live", "viewer", false, true)
	for path, plays := range map[string]string{
		"/whep/live":                "first", // the oldest publisher
		"/whep/live/second":         "second",
		"/whep/live?layer=q":        "first",
		"/whep/live/second?layer=f": "second",
	} {
		w := n.serve("POST", path, offer, "Authorization", "Bearer "+tok, "Content-Type", "application/sdp")
		if w.Code != http.StatusCreated {
			t.Errorf("POST %s: status %d, body %q", path, w.Code, w.Body.String())
			continue
		}
		if !strings.Contains(w.Body.String(), "a=msid:"+plays+"-stream ") {
			t.Errorf("POST %s does not play %s:\n%s", path, plays, w.Body.String())
		}
		n.serve("DELETE", w.Header().Get("Location"), "")
	}
}

func TestWHIPAnswerCarriesICEServersAsLinkHeaders(t *testing.T) {
	n := newHandlerNode(t, func(o *Options) {
		o.ICEServers = func(identity string) []webrtc.ICEServer {
			return []webrtc.ICEServer{
				{URLs: []string{"stun:stun.example.net"}},
				{URLs: []string{"turn:turn.example.net?transport=udp", "turn:turn.example.net?transport=tcp"}, Username: "1700000000:" + identity, Credential: "c3VwZXJzZWNyZXQ="},
			}
		}
	})
	w := n.serve("POST", "/whip/stage", readTestdata(t, "obs_h264_opus_offer.sdp"),
		"Authorization", "Bearer "+token(t, "stage", "obs", true, false), "Content-Type", "application/sdp")
	if w.Code != http.StatusCreated {
		t.Fatalf("status %d, body %q", w.Code, w.Body.String())
	}
	want := []string{
		`<stun:stun.example.net>; rel="ice-server"`,
		`<turn:turn.example.net?transport=udp>; rel="ice-server"; username="1700000000:obs"; credential="c3VwZXJzZWNyZXQ="; credential-type="password"`,
		`<turn:turn.example.net?transport=tcp>; rel="ice-server"; username="1700000000:obs"; credential="c3VwZXJzZWNyZXQ="; credential-type="password"`,
	}
	got := w.Header().Values("Link")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Link headers:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	n.serve("DELETE", w.Header().Get("Location"), "")
}

func TestSessionThatNeverConnectsEndsAfterConnectTimeout(t *testing.T) {
	n := newHandlerNode(t, func(o *Options) { o.ConnectTimeout = 300 * time.Millisecond })
	w := n.serve("POST", "/whip/stage", readTestdata(t, "chrome_simulcast_offer.sdp"),
		"Authorization", "Bearer "+token(t, "stage", "chrome", true, false), "Content-Type", "application/sdp")
	if w.Code != http.StatusCreated {
		t.Fatalf("status %d, body %q", w.Code, w.Body.String())
	}
	eventually(t, 5*time.Second, "the unconnected session to end", func() bool {
		whip, _ := n.server.SessionCounts()
		return whip == 0
	})
	if _, ok := n.sfu.LookupRoom("stage"); ok {
		t.Error("the room outlived its only, never connected, publisher")
	}
	if d := n.serve("DELETE", w.Header().Get("Location"), ""); d.Code != http.StatusOK {
		t.Errorf("DELETE after the timeout: status %d", d.Code)
	}
}

func TestWHIPWithTheSameIdentityReplacesTheOldSession(t *testing.T) {
	h := newHarness(t, nil)
	old := h.publish("stage", "alice")
	fresh := h.publish("stage", "alice")
	eventually(t, 5*time.Second, "the replaced session to end", func() bool {
		whip, _ := h.server.SessionCounts()
		return whip == 1
	})
	if _, ok := h.server.sessions.get(strings.TrimPrefix(old.location, "/whip/stage/sessions/")); ok {
		t.Error("the old session is still live")
	}
	v := h.play("/whep/stage/alice", token(t, "stage", "bob", false, true))
	v.waitPackets(t, 10)
	if fresh.state() != webrtc.PeerConnectionStateConnected {
		t.Errorf("new publisher is %s", fresh.state())
	}
	if r := h.do("DELETE", old.location, "", "", ""); r.status != http.StatusOK {
		t.Errorf("DELETE of the replaced session: status %d", r.status)
	}
}

func TestErrorsWithoutAStatusAreAnsweredAs500JSON(t *testing.T) {
	w := httptest.NewRecorder()
	writeError(w, httptest.NewRequest("POST", "/whip/x", nil), testLogger(), io.ErrUnexpectedEOF)
	wantError(t, "plain error", recorded(w), http.StatusInternalServerError)
	if strings.Contains(w.Body.String(), "EOF") {
		t.Errorf("internal error detail leaked to the client: %q", w.Body.String())
	}
}

func TestVerifierChecksSignatureExpiryAndGrants(t *testing.T) {
	v := access.NewVerifier(map[string]string{testKey: testSecret})
	g, err := v.Verify(token(t, "stage", "alice", true, false))
	if err != nil {
		t.Fatal(err)
	}
	if g.Identity != "alice" || g.Room != "stage" || !g.CanPublish || g.CanSubscribe || !g.CanPublishData || !g.RoomJoin || g.RoomAdmin {
		t.Errorf("grant %+v", g)
	}
	if _, err := v.Verify(expiredToken(t, "stage", "alice")); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired token: %v", err)
	}
	if _, err := v.Verify(tokenWith(t, strings.Repeat("x", 40), "stage", "alice", true, true)); err == nil {
		t.Error("token with a bad signature verified")
	}
	if _, err := access.NewVerifier(map[string]string{"other": testSecret}).Verify(token(t, "stage", "alice", true, true)); err == nil {
		t.Error("token of an unknown key verified")
	}

	req := func(auth string) *http.Request {
		r := httptest.NewRequest("POST", "/whip/stage", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		return r
	}
	adminGrant := &auth.VideoGrant{RoomJoin: true, Room: "elsewhere", RoomAdmin: true}
	adminGrant.SetCanPublish(true)
	admin := mintToken(t, testSecret, "root", adminGrant)
	noJoin := &auth.VideoGrant{Room: "stage"}
	noJoin.SetCanPublish(true)
	for _, c := range []struct {
		name, auth        string
		publish, optional bool
		status            int
	}{
		{"lowercase scheme", "bearer " + token(t, "stage", "a", true, false), true, false, 0},
		{"no token, optional", "", false, true, 0},
		{"empty bearer", "Bearer ", true, false, http.StatusUnauthorized},
		{"basic auth", "Basic YWxpY2U6cHc=", true, false, http.StatusUnauthorized},
		{"subscribe-only publishing", "Bearer " + token(t, "stage", "a", false, true), true, false, http.StatusForbidden},
		{"publish-only subscribing", "Bearer " + token(t, "stage", "a", true, false), false, false, http.StatusForbidden},
		{"other room", "Bearer " + token(t, "other", "a", true, true), true, false, http.StatusForbidden},
		{"admin of another room", "Bearer " + admin, true, false, http.StatusForbidden},
		{"publish grant without roomJoin", "Bearer " + mintToken(t, testSecret, "a", noJoin), true, false, http.StatusForbidden},
	} {
		_, err := authorize(v, req(c.auth), "stage", c.publish, c.optional)
		if status := statusOf(err); status != c.status {
			t.Errorf("%s: status %d (%v), want %d", c.name, status, err, c.status)
		}
	}
}

func statusOf(err error) int {
	if err == nil {
		return 0
	}
	if he, ok := err.(*httpError); ok {
		return he.status
	}
	return http.StatusInternalServerError
}

func TestWHEPOfferWithoutAUsableFormOfThePublishedCodecIsABadRequest(t *testing.T) {
	n := newHandlerNode(t, nil)
	n.fakePublish(t, "live", "obs", sfu.TrackInfo{ID: "video", StreamID: "obs-stream", Kind: webrtc.RTPCodecTypeVideo, Codec: webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
		PayloadType: 102}})
	// The viewer decodes H.264, but only in packetization mode 0.
	offer := strings.Replace(readTestdata(t, "chrome_whep_offer.sdp"),
		"a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
		"a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f", 1)
	tok := token(t, "live", "viewer", false, true)
	wantError(t, "H.264 in another packetization mode", recorded(n.serve("POST", "/whep/live", offer, "Authorization", "Bearer "+tok, "Content-Type", "application/sdp")), http.StatusBadRequest)
	// An rtpmap naming the codec without a usable clock rate (found by FuzzWHEPHandler).
	n.fakePublish(t, "radio", "dj")
	garbled := "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=-\nt=0 0\nm=audio 9 UDP/TLS/RTP/SAVPF 0\na=ice-ufrag:abcd\na=ice-pwd:0123456789012345678901\n" +
		"a=fingerprint:sha-256 " + strings.Repeat("AB:", 31) + "AB\na=setup:actpass\na=mid:0\na=recvonly\na=rtpmap: opus\n"
	wantError(t, "garbled rtpmap", recorded(n.serve("POST", "/whep/radio", garbled, "Authorization", "Bearer "+token(t, "radio", "viewer", false, true), "Content-Type", "application/sdp")), http.StatusBadRequest)
	if _, whep := n.server.SessionCounts(); whep != 0 {
		t.Errorf("%d WHEP sessions left after failed negotiations", whep)
	}
}

func TestDrainEndsSessionsAndRefusesNewOnes(t *testing.T) {
	n := newHandlerNode(t, nil)
	offer := readTestdata(t, "obs_h264_opus_offer.sdp")
	tok := token(t, "stage", "obs", true, false)
	w := n.serve("POST", "/whip/stage", offer, "Authorization", "Bearer "+tok, "Content-Type", "application/sdp")
	if w.Code != http.StatusCreated {
		t.Fatalf("status %d, body %q", w.Code, w.Body.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no grace: close what is live at once
	n.server.Drain(ctx)
	if whip, whep := n.server.SessionCounts(); whip+whep != 0 {
		t.Errorf("%d sessions live after Drain", whip+whep)
	}
	wantError(t, "POST while draining", recorded(n.serve("POST", "/whip/stage", offer, "Authorization", "Bearer "+tok, "Content-Type", "application/sdp")), http.StatusServiceUnavailable)
	if d := n.serve("DELETE", w.Header().Get("Location"), ""); d.Code != http.StatusOK {
		t.Errorf("DELETE of a drained session: status %d", d.Code)
	}
}
