package netpath

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/starling-sfu/starling/access"
	"github.com/starling-sfu/starling/bwe"
	"github.com/starling-sfu/starling/clip"
	"github.com/starling-sfu/starling/loadtest"
	"github.com/starling-sfu/starling/sfu"
	"github.com/starling-sfu/starling/signaling"
	"github.com/starling-sfu/starling/transport"
)

func TestMain(m *testing.M) {
	if url := os.Getenv(viewerEnv); url != "" {
		os.Exit(viewerMain(url, os.Getenv(viewerTokenEnv)))
	}
	removeStalePaths()
	os.Exit(m.Run())
}

const (
	testKey    = "APInetpath"
	testSecret = "netpath-test-secret-0123456789abcdef"
)

// server is an in-process Starling node (transport, SFU, WHIP/WHEP) whose
// media sockets are on the host ends of the test's paths only, so every
// viewer's media crosses its own veth pair.
type server struct {
	sfu    *sfu.SFU
	sig    *signaling.Server
	url    string // http://host:port reachable from the namespaces
	engine *transport.Engine
}

func testLogger() *slog.Logger {
	if os.Getenv("STARLING_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug - 4}))
	}
	return slog.New(slog.DiscardHandler)
}

func startServer(t *testing.T, trace func(string, bwe.Record), paths ...*path) *server {
	t.Helper()
	var devs []string
	for _, p := range paths {
		devs = append(devs, p.hostDev)
	}
	log := testLogger()
	engine, err := transport.New(transport.Config{Interfaces: devs, Bandwidth: bwe.Options{Trace: trace}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	s := &server{engine: engine, sfu: sfu.New(sfu.Settings{FanoutWorkers: 0, Logger: log})}
	s.sig = signaling.New(signaling.Options{
		SFU: s.sfu, Engine: engine, Verifier: access.NewVerifier(map[string]string{testKey: testSecret}),
		PublicPlayback: true, Logger: log,
	})
	ln, err := net.Listen("tcp", net.JoinHostPort(paths[0].hostIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s.sig.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	s.url = "http://" + ln.Addr().String()
	t.Cleanup(func() {
		_ = srv.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		s.sig.Drain(ctx)
		_ = engine.Close()
	})
	return s
}

// publish starts a simulcast VP8 publisher with audio (the embedded clips:
// 320x180, 640x360 and 1280x720 at 20 fps, a keyframe every second).
func (s *server) publish(t *testing.T, room string) *loadtest.Publisher {
	t.Helper()
	g := &auth.VideoGrant{RoomJoin: true, Room: room}
	g.SetCanPublish(true)
	tok, err := auth.NewAccessToken(testKey, testSecret).SetIdentity("camera").SetValidFor(time.Hour).SetVideoGrant(g).ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	api, err := loadtest.NewAPI(false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pub, err := loadtest.Publish(ctx, loadtest.PublisherOptions{
		URL: s.url + "/whip/" + room, Token: tok, Codec: clip.VP8, Simulcast: true, Audio: true, API: api,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close(context.Background()) })
	if err := pub.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	s.waitLayers(t, room)
	return pub
}

// waitLayers waits until the room's video track receives all three layers.
func (s *server) waitLayers(t *testing.T, room string) {
	t.Helper()
	eventually(t, 10*time.Second, "all three layers arriving", func() (bool, string) {
		tr := s.videoTrack(room)
		if tr == nil {
			return false, "no video track"
		}
		_, active := tr.Layers()
		return active == [sfu.MaxLayers]bool{true, true, true}, fmt.Sprint(active)
	})
}

func (s *server) videoTrack(room string) *sfu.Track {
	r, ok := s.sfu.LookupRoom(room)
	if !ok {
		return nil
	}
	p, ok := r.Publisher()
	if !ok {
		return nil
	}
	for _, tr := range p.Tracks() {
		if tr.Codec().IsVideo() {
			return tr
		}
	}
	return nil
}

// subscriber returns the server's view of the viewer named name.
func (s *server) subscriber(name string) *sfu.Subscriber {
	for _, sub := range s.sfu.Subscribers() {
		if sub.ID() == name {
			return sub
		}
	}
	return nil
}

// watch starts a viewer named name of room inside p's namespace.
func (s *server) watch(t *testing.T, room, name string, p *path) *viewer {
	t.Helper()
	t.Helper()
	g := &auth.VideoGrant{RoomJoin: true, Room: room}
	g.SetCanSubscribe(true)
	tok, err := auth.NewAccessToken(testKey, testSecret).SetIdentity(name).SetValidFor(time.Hour).SetVideoGrant(g).ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	return startViewer(t, name, p, s.url+"/whep/"+room, tok)
}

// eventually polls check every 100 ms until it reports done or timeout
// passes, then fails the test with what check last described. It returns
// how long it took.
func eventually(t *testing.T, timeout time.Duration, what string, check func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		done, state := check()
		if done {
			took := time.Since(start)
			t.Logf("%s: after %v (%s)", what, took.Round(time.Millisecond), state)
			return took
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %v; last: %s", what, timeout, state)
		}
		<-tick.C
	}
}
