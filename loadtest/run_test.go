package loadtest_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/starling-sfu/starling/config"
	"github.com/starling-sfu/starling/loadtest"
	"github.com/starling-sfu/starling/node"
)

const (
	key    = "lt"
	secret = "loadtest-secret-0123456789-0123456789"
)

// startStarling runs an in-process node on loopback.
func startStarling(t *testing.T) string {
	t.Helper()
	cfg := config.Default()
	cfg.RTC.UDPPort, cfg.RTC.TCPPort, cfg.RTC.IncludeLoopback = 0, 0, true
	cfg.RTC.Interfaces = []string{"lo"}
	cfg.Keys = map[string]string{key: secret}
	cfg.TURN.Enabled = false
	cfg.DataDir = t.TempDir()
	n, err := node.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(n.Handler())
	t.Cleanup(func() { srv.Close(); _ = n.Close() })
	return srv.URL
}

func token(t *testing.T, room string, publish bool) string {
	g := &auth.VideoGrant{RoomJoin: true, Room: room}
	g.SetCanPublish(publish)
	g.SetCanSubscribe(true)
	tok, err := auth.NewAccessToken(key, secret).SetIdentity("lt-pub").SetValidFor(time.Hour).SetVideoGrant(g).ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestFanoutAgainstStarlingDeliversEverythingToTwentyViewers(t *testing.T) {
	base := startStarling(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := loadtest.Run(ctx, loadtest.Config{
		Mode: "fanout", WHIP: base + "/whip/lt", WHEP: base + "/whep/lt",
		PublishToken: token(t, "lt", true), Subscribers: 20, Simulcast: true, Audio: true,
		Duration: 3 * time.Second, Ramp: 50, MaxLoss: 0, Loopback: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.WriteTable(&b)
	t.Log("\n" + b.String())
	if rep.Connected != 20 || rep.Failed != 0 {
		t.Fatalf("%d connected, %d failed, want 20 and 0", rep.Connected, rep.Failed)
	}
	if rep.LossPercent != 0 {
		t.Fatalf("loss %.3f%%, want 0", rep.LossPercent)
	}
	// Each viewer gets the top layer (~130 packets/s of video) plus audio
	// (50/s): at least 90% of that rate.
	if rep.SubscriberPPSMin < 0.9*(130+50) {
		t.Fatalf("slowest viewer got %.0f packets/s, want ≥ %.0f", rep.SubscriberPPSMin, 0.9*(130+50))
	}
	if rep.Latency.Count == 0 || rep.FirstVideo.Count != 20 || rep.Join.Count != 20 {
		t.Fatalf("missing measurements: latency n=%d first-video n=%d join n=%d", rep.Latency.Count, rep.FirstVideo.Count, rep.Join.Count)
	}
}

func TestBadTargetsFailFastWithAClearError(t *testing.T) {
	base := startStarling(t)
	cases := []struct {
		name, whip, token, want string
	}{
		{"refused", "http://127.0.0.1:1/whip/x", "", "connection refused"},
		{"unauthorized", base + "/whip/x", "", "401"},
		{"wrong path", base + "/nope/x", "", "404"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := loadtest.Run(context.Background(), loadtest.Config{
				Mode: "fanout", WHIP: tc.whip, WHEP: base + "/whep/x", PublishToken: tc.token,
				Subscribers: 2, Duration: time.Second, Loopback: true,
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("took %v to fail", d)
			}
		})
	}
	// A viewer-side failure before any viewer connected ends the run too.
	_, err := loadtest.Run(context.Background(), loadtest.Config{
		Mode: "subscribe", WHEP: base + "/whep/empty", Subscribers: 3, Duration: time.Second, Loopback: true,
	})
	var se *loadtest.StatusError
	if !errors.As(err, &se) || se.Code != 404 {
		t.Fatalf("subscribe to an empty room: %v, want a 404 StatusError", err)
	}
}
