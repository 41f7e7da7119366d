package node

import (
	"context"
	"hash/fnv"
	"log/slog"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/pion/rtp"
	"github.com/starling-sfu/starling/config"
	"github.com/starling-sfu/starling/sfu"
)

const (
	testKey    = "testkey"
	testSecret = "test-secret-that-is-long-enough-0123456789"
)

// testNode is an in-process Starling node on loopback with an HTTP server.
type testNode struct {
	*Node
	srv *httptest.Server
	cfg config.Config
}

func startNode(t testing.TB, tweak func(*config.Config)) *testNode {
	t.Helper()
	cfg := config.Default()
	cfg.RTC.UDPPort, cfg.RTC.TCPPort, cfg.RTC.IncludeLoopback = 0, 0, true
	cfg.RTC.Interfaces = []string{"lo"}
	cfg.Keys = map[string]string{testKey: testSecret}
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.TURN.Enabled = false
	cfg.DataDir = t.TempDir()
	if tweak != nil {
		tweak(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	level := slog.LevelWarn
	if os.Getenv("STARLING_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	n, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(n.Handler())
	t.Cleanup(func() {
		srv.Close()
		_ = n.Close()
	})
	return &testNode{Node: n, srv: srv, cfg: cfg}
}

func (n *testNode) url(path string) string { return n.srv.URL + path }

func mintToken(t testing.TB, room, identity string, publish bool) string {
	t.Helper()
	g := &auth.VideoGrant{RoomJoin: true, Room: room}
	g.SetCanPublish(publish)
	g.SetCanSubscribe(true)
	tok, err := auth.NewAccessToken(testKey, testSecret).SetIdentity(identity).SetValidFor(time.Hour).SetVideoGrant(g).ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// publishedTrack waits for the room's publisher to have a video track with
// n active layers, and returns it.
func (n *testNode) videoTrack(t testing.TB, room string, layers int) *sfu.Track {
	t.Helper()
	var found *sfu.Track
	eventually(t, 15*time.Second, "video track with active layers", func() bool {
		r, ok := n.SFU.LookupRoom(room)
		if !ok {
			return false
		}
		p, ok := r.Publisher()
		if !ok {
			return false
		}
		for _, tr := range p.Tracks() {
			if !tr.Codec().IsVideo() {
				continue
			}
			_, active := tr.Layers()
			c := 0
			for _, a := range active {
				if a {
					c++
				}
			}
			if c >= layers {
				found = tr
				return true
			}
		}
		return false
	})
	return found
}

func fingerprint(b []byte) uint64 {
	h := fnv.New64a()
	_, _ = h.Write(b)
	return h.Sum64()
}

// sentLog records what a publisher sent, per layer, in order.
type sentLog struct {
	mu    sync.Mutex
	order map[string][]uint64    // layer → payload fingerprints in send order
	index map[uint64]sentAt      // fingerprint → where it was sent (last time)
	times map[string][]time.Time // layer → send times
}

type sentAt struct {
	layer string
	i     int
}

func newSentLog() *sentLog {
	return &sentLog{order: map[string][]uint64{}, index: map[uint64]sentAt{}, times: map[string][]time.Time{}}
}

func (l *sentLog) onSend(layer string, p *rtp.Packet, _ bool, at time.Time) {
	f := fingerprint(p.Payload)
	l.mu.Lock()
	l.index[f] = sentAt{layer, len(l.order[layer])}
	l.order[layer] = append(l.order[layer], f)
	l.times[layer] = append(l.times[layer], at)
	l.mu.Unlock()
}

// delivered counts, of the packets sent on layer in [from, to], how many
// the viewer received (matched by payload).
func (l *sentLog) delivered(layer string, video []recvPkt, from, to time.Time) (got, want int) {
	recv := make(map[uint64]bool, len(video))
	for _, p := range video {
		recv[p.fp] = true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, at := range l.times[layer] {
		if at.Before(from) || at.After(to) {
			continue
		}
		want++
		if recv[l.order[layer][i]] {
			got++
		}
	}
	return got, want
}

// recvLog records what a subscriber received on its video track.
type recvLog struct {
	mu    sync.Mutex
	video []recvPkt
	audio []recvPkt
}

type recvPkt struct {
	seq  uint16
	ts   uint32
	fp   uint64
	key  bool
	at   time.Time
	size int
	// pad marks a padding-only packet: the SFU's bandwidth probe, numbered
	// in line with the media, carrying nothing a decoder sees.
	pad bool
}
