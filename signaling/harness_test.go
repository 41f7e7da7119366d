package signaling

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/starling-sfu/starling/access"
	"github.com/starling-sfu/starling/sfu"
	"github.com/starling-sfu/starling/transport"
)

// The harness's API key pair; LiveKit requires secrets of 32 characters or more.
const (
	testKey    = "APIstarlingtest"
	testSecret = "starling-test-secret-0123456789abcdef"
)

// testLogger discards logs unless STARLING_TEST_LOG is set: sessions log from
// goroutines that may outlive a test, which t.Log does not allow.
func testLogger() *slog.Logger {
	if os.Getenv("STARLING_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// harness is an in-process Starling node: transport, SFU and the WHIP/WHEP
// server behind a real HTTP listener, its Handler mounted at /whip/ and /whep/
// as package node (cmd/starling serve) mounts it.
type harness struct {
	t      testing.TB
	engine *transport.Engine
	sfu    *sfu.SFU
	server *Server
	http   *httptest.Server
	client *webrtc.API
}

func newHarness(t testing.TB, tweak func(*Options)) *harness {
	t.Helper()
	engine, err := transport.New(transport.Config{UDPPort: 0, TCPPort: 0, IncludeLoopback: true, Logger: testLogger()})
	if err != nil {
		t.Fatalf("transport: %v", err)
	}
	h := &harness{t: t, engine: engine, client: newClientAPI(t)}
	h.sfu = sfu.New(sfu.Settings{PLIInterval: 100 * time.Millisecond, Logger: testLogger()})
	opts := Options{
		SFU:          h.sfu,
		Engine:       engine,
		Verifier:     access.NewVerifier(map[string]string{testKey: testSecret}),
		AllowOrigins: []string{"https://app.example"},
		Logger:       testLogger(),
	}
	if tweak != nil {
		tweak(&opts)
	}
	h.server = New(opts)
	mux := http.NewServeMux()
	api := h.server.Handler()
	mux.Handle("/whip/", api)
	mux.Handle("/whep/", api)
	h.http = httptest.NewServer(mux)
	// Cleanups run last-registered first: clients registered later close
	// before the node goes away.
	t.Cleanup(func() {
		h.http.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		h.server.Drain(ctx)
		_ = engine.Close()
	})
	return h
}

// newClientAPI is a plain pion client: default codecs and interceptors, and
// loopback candidates so that it reaches the node on this machine.
func newClientAPI(t testing.TB) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

// token mints an access token for room with explicit publish and subscribe
// grants (a nil CanPublish would mean granted).
func token(t testing.TB, room, identity string, publish, subscribe bool) string {
	t.Helper()
	return tokenWith(t, testSecret, room, identity, publish, subscribe)
}

func tokenWith(t testing.TB, secret, room, identity string, publish, subscribe bool) string {
	t.Helper()
	g := &auth.VideoGrant{RoomJoin: true, Room: room}
	g.SetCanPublish(publish)
	g.SetCanSubscribe(subscribe)
	return mintToken(t, secret, identity, g)
}

func mintToken(t testing.TB, secret, identity string, g *auth.VideoGrant) string {
	t.Helper()
	tok, err := auth.NewAccessToken(testKey, secret).SetIdentity(identity).SetVideoGrant(g).SetValidFor(time.Hour).ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// expiredToken is signed correctly but expired an hour ago; auth.AccessToken
// cannot mint one (it treats a negative validity as the default).
func expiredToken(t testing.TB, room, identity string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	now := time.Now()
	claims, err := json.Marshal(map[string]any{
		"iss": testKey, "sub": identity,
		"iat": now.Add(-2 * time.Hour).Unix(), "nbf": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix(),
		"video": map[string]any{"room": room, "roomJoin": true, "canPublish": true, "canSubscribe": true},
	})
	if err != nil {
		t.Fatal(err)
	}
	signing := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(claims)
	mac := hmac.New(sha256.New, []byte(testSecret))
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil))
}

// reply is a finished HTTP exchange.
type reply struct {
	status int
	header http.Header
	body   string
}

// do sends one request to the node. hdr holds extra header name/value pairs.
// It never fails the test itself, so subtests may call it: a request that
// gets no response is a reply with status 0 and the error as its body.
func (h *harness) do(method, path, tok, contentType, body string, hdr ...string) reply {
	req, err := http.NewRequest(method, h.http.URL+path, strings.NewReader(body))
	if err != nil {
		return reply{body: "bad request: " + err.Error()}
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return reply{body: "no response: " + err.Error()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{status: resp.StatusCode, header: resp.Header, body: "reading body: " + err.Error()}
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// wantError checks an error reply: its status and a JSON {"error": "..."} body.
func wantError(t testing.TB, what string, r reply, status int) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d (body %q)", what, r.status, status, r.body)
		return
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	var body struct {
		Error *string `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.body), &body); err != nil || body.Error == nil || *body.Error == "" {
		t.Errorf("%s: body %q is not a JSON error", what, r.body)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// peer is a pion client peer connection with the history of its states.
type peer struct {
	pc *webrtc.PeerConnection

	mu     sync.Mutex
	states []webrtc.PeerConnectionState

	location string // session URL path
	etag     string
	answer   string // the server's SDP answer
}

func (h *harness) newPeer() *peer {
	h.t.Helper()
	pc, err := h.client.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		h.t.Fatal(err)
	}
	p := &peer{pc: pc}
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.mu.Lock()
		p.states = append(p.states, s)
		p.mu.Unlock()
	})
	h.t.Cleanup(func() { _ = pc.Close() })
	return p
}

func (p *peer) state() webrtc.PeerConnectionState { return p.pc.ConnectionState() }

// sawState reports whether the connection was ever in state s.
func (p *peer) sawState(s webrtc.PeerConnectionState) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, x := range p.states {
		if x == s {
			return true
		}
	}
	return false
}

func (p *peer) waitConnected(t testing.TB) {
	t.Helper()
	eventually(t, 10*time.Second, "peer connection to connect", func() bool {
		return p.state() == webrtc.PeerConnectionStateConnected
	})
}

// offer creates the local offer; with complete it waits for gathering so
// the offer carries the candidates, otherwise it carries none (they trickle).
func (p *peer) offer(t testing.TB, complete bool) string {
	t.Helper()
	o, err := p.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return p.setLocal(t, o, complete)
}

func (p *peer) setLocal(t testing.TB, o webrtc.SessionDescription, complete bool) string {
	t.Helper()
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(o); err != nil {
		t.Fatal(err)
	}
	if !complete {
		return o.SDP
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
		t.Fatal("ICE gathering did not complete")
	}
	return p.pc.LocalDescription().SDP
}

// negotiate POSTs offer to path and applies the 201's answer.
func (p *peer) negotiate(t testing.TB, h *harness, path, tok, offer string) reply {
	t.Helper()
	r := h.do(http.MethodPost, path, tok, "application/sdp", offer)
	if r.status != http.StatusCreated {
		t.Fatalf("POST %s: status %d, body %q", path, r.status, r.body)
	}
	p.location, p.etag, p.answer = r.header.Get("Location"), r.header.Get("ETag"), r.body
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: r.body}); err != nil {
		t.Fatalf("POST %s: apply answer: %v", path, err)
	}
	return r
}

// Synthetic VP8: the SFU only parses the payload descriptor and the first
// byte of the frame header (P bit clear on keyframes), and nothing decodes.
var (
	vp8Key   = []byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x10, 0x00, 0x10, 0x00}
	vp8Delta = []byte{0x11, 0x02, 0x00}
	// mediaMagic marks every frame, so a viewer can tell it receives the
	// publisher's media and not something else.
	mediaMagic = []byte("starling-test-media")
)

// publisher is a WHIP client sending a synthetic VP8 track.
type publisher struct {
	*peer
	track *webrtc.TrackLocalStaticSample
	plis  atomic.Int64
	keys  atomic.Int64
	sent  atomic.Int64
	stop  chan struct{}
	done  chan struct{}
}

// newPublisher prepares a sendonly VP8 publisher and starts its media loop
// (samples written before the connection is up are dropped by pion).
func (h *harness) newPublisher() *publisher {
	h.t.Helper()
	p := &publisher{peer: h.newPeer(), stop: make(chan struct{}), done: make(chan struct{})}
	var err error
	p.track, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "camera")
	if err != nil {
		h.t.Fatal(err)
	}
	tr, err := p.pc.AddTransceiverFromTrack(p.track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		h.t.Fatal(err)
	}
	pli := make(chan struct{}, 1)
	go func() { // ends when the peer connection closes
		for {
			pkts, _, err := tr.Sender().ReadRTCP()
			if err != nil {
				return
			}
			for _, pk := range pkts {
				if _, ok := pk.(*rtcp.PictureLossIndication); ok {
					p.plis.Add(1)
					select {
					case pli <- struct{}{}:
					default:
					}
				}
			}
		}
	}()
	go p.run(pli)
	h.t.Cleanup(p.halt)
	return p
}

func (p *publisher) run(pli <-chan struct{}) {
	defer close(p.done)
	const frame = 20 * time.Millisecond
	tick := time.NewTicker(frame)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		key := n%50 == 0
		select {
		case <-pli:
			key = true
		default:
		}
		hdr := vp8Delta
		if key {
			hdr = vp8Key
			p.keys.Add(1)
		}
		data := make([]byte, 0, 300)
		data = append(append(data, hdr...), mediaMagic...)
		data = append(data, bytes.Repeat([]byte{byte(n)}, 300-len(data))...)
		if err := p.track.WriteSample(media.Sample{Data: data, Duration: frame}); err == nil {
			p.sent.Add(1)
		}
	}
}

// halt stops the media loop.
func (p *publisher) halt() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

// publish connects a publisher to room with a complete offer.
func (h *harness) publish(room, identity string) *publisher {
	h.t.Helper()
	p := h.newPublisher()
	p.negotiate(h.t, h, "/whip/"+room, token(h.t, room, identity, true, false), p.offer(h.t, true))
	p.waitConnected(h.t)
	h.waitPublished(room, identity)
	return p
}

// waitPublished waits until identity's track has reached the SFU (on its
// first packet): until then the room has no publisher to play.
func (h *harness) waitPublished(room, identity string) {
	h.t.Helper()
	eventually(h.t, 5*time.Second, "the SFU to receive the published track", func() bool {
		r, ok := h.sfu.LookupRoom(room)
		if !ok {
			return false
		}
		pub, ok := r.Participant(identity)
		return ok && len(pub.Tracks()) > 0
	})
}

// viewer is a WHEP client receiving video.
type viewer struct {
	*peer
	packets atomic.Int64
	magic   atomic.Int64 // packets carrying mediaMagic
	mime    atomic.Value // string: the received track's codec
	ended   chan struct{}
}

func (h *harness) newViewer() *viewer {
	h.t.Helper()
	v := &viewer{peer: h.newPeer(), ended: make(chan struct{})}
	if _, err := v.pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		h.t.Fatal(err)
	}
	var once sync.Once
	v.pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		v.mime.Store(tr.Codec().MimeType)
		go func() { // ends when the track does
			for {
				pkt, _, err := tr.ReadRTP()
				if err != nil {
					once.Do(func() { close(v.ended) })
					return
				}
				v.packets.Add(1)
				if bytes.Contains(pkt.Payload, mediaMagic) {
					v.magic.Add(1)
				}
			}
		}()
	})
	return v
}

// play connects a viewer to path (a /whep/ URL, query included).
func (h *harness) play(path, tok string) *viewer {
	h.t.Helper()
	v := h.newViewer()
	v.negotiate(h.t, h, path, tok, v.offer(h.t, true))
	v.waitConnected(h.t)
	return v
}

// waitPackets waits until the viewer has received more than n packets.
func (v *viewer) waitPackets(t testing.TB, n int64) {
	t.Helper()
	eventually(t, 10*time.Second, "viewer to receive media", func() bool { return v.packets.Load() > n })
}

// sessionEnded reports whether the viewer saw its session end: its track
// stopped, or its connection closed or failed.
func (v *viewer) sessionEnded() bool {
	select {
	case <-v.ended:
		return true
	default:
	}
	switch v.state() {
	case webrtc.PeerConnectionStateClosed, webrtc.PeerConnectionStateFailed:
		return true
	}
	return false
}
