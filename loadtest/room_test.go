package loadtest_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/starling-sfu/starling/loadtest"
)

// roomToken mints tokens for room with publish, subscribe and data grants,
// signed with secret.
func roomToken(room, secret string) func(string) (string, error) {
	return func(identity string) (string, error) {
		g := &auth.VideoGrant{RoomJoin: true, Room: room}
		g.SetCanPublish(true)
		g.SetCanSubscribe(true)
		g.SetCanPublishData(true)
		return auth.NewAccessToken(key, secret).SetIdentity(identity).SetValidFor(time.Hour).SetVideoGrant(g).ToJWT()
	}
}

func TestRoomOfFourEveryoneReceivesEveryoneWithoutLoss(t *testing.T) {
	base := startStarling(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var progress strings.Builder
	rep, err := loadtest.RunRoom(ctx, loadtest.RoomConfig{
		URL: base, Token: roomToken("lt-room", secret), Participants: 4, Ramp: 10,
		Settle: 10 * time.Second, Duration: 5 * time.Second, MaxLoss: 0, Loopback: true, Progress: &progress,
	})
	if rep != nil {
		var b strings.Builder
		rep.WriteTable(&b)
		t.Log("\n" + b.String())
	}
	if err != nil {
		if rep != nil {
			for _, s := range rep.Subscriptions {
				t.Logf("%+v", s)
			}
		}
		t.Fatal(err)
	}
	if rep.Connected != 4 || rep.Failed != 0 || rep.Dropped != 0 {
		t.Fatalf("%d connected, %d failed, %d dropped; want 4, 0, 0", rep.Connected, rep.Failed, rep.Dropped)
	}
	for _, k := range []struct {
		name string
		r    *loadtest.RoomKindReport
	}{{"video", rep.Video}, {"audio", rep.Audio}} {
		if k.r == nil || k.r.Expected != 12 || k.r.Established != 12 {
			t.Fatalf("%s subscriptions: %+v, want 12 of 12", k.name, k.r)
		}
		if k.r.LostPackets != 0 || k.r.MatchedSent == 0 {
			t.Errorf("%s: %d of %d matched packets lost", k.name, k.r.LostPackets, k.r.MatchedSent)
		}
		if k.r.FirstPacket.Count != 12 || k.r.Latency.Count == 0 || k.r.Short != 0 {
			t.Errorf("%s: first packet n=%d, latency n=%d, %d short subscriptions", k.name, k.r.FirstPacket.Count, k.r.Latency.Count, k.r.Short)
		}
	}
	if rep.Expected != 24 || rep.Established != 24 || len(rep.Subscriptions) != 24 || rep.LossPercent != 0 {
		t.Fatalf("%d/%d subscriptions established, %d listed, loss %.3f%%", rep.Established, rep.Expected, len(rep.Subscriptions), rep.LossPercent)
	}
	// Each subscription got at least 90% of what its publisher sent, in
	// the window, on the layer the SFU forwarded to it. It may get more:
	// packets in flight at the window's start, and the cached frames the
	// SFU replays when it starts or moves a subscriber, count as received
	// in the window but were sent before it; never much more.
	var sum, video, audio int64
	var mbit float64
	for _, s := range rep.Subscriptions {
		if s.Subscriber == s.Publisher {
			t.Errorf("%s subscribed to itself", s.Subscriber)
		}
		if s.DeliveredPercent < 90 || float64(s.Received) > 1.25*float64(s.SentOnLayer)+10 || s.Lost != 0 {
			t.Errorf("%s ← %s %s (layer %q): received %d of %d sent (%.1f%%), lost %d",
				s.Subscriber, s.Publisher, s.Kind, s.Layer, s.Received, s.SentOnLayer, s.DeliveredPercent, s.Lost)
		}
		if s.Kind == "video" && s.Layer == "" {
			t.Errorf("%s ← %s: no video frame matched", s.Subscriber, s.Publisher)
		}
		sum += s.Received
		mbit += s.Kbps / 1000
		if s.Kind == "video" {
			video += s.Received
		} else {
			audio += s.Received
		}
	}
	// The reported totals are the sums of the subscriptions.
	if sum != rep.DeliveredPackets || video != rep.Video.Packets || audio != rep.Audio.Packets {
		t.Errorf("delivered %d (video %d, audio %d), subscriptions sum to %d (%d, %d)",
			rep.DeliveredPackets, rep.Video.Packets, rep.Audio.Packets, sum, video, audio)
	}
	if math.Abs(rep.PacketsPerSecond-float64(rep.DeliveredPackets)/rep.Window) > 1 || math.Abs(mbit-rep.MbitPerSecond) > 0.01 {
		t.Errorf("%.1f packets/s, %.2f Mbit/s; sums say %.1f and %.2f",
			rep.PacketsPerSecond, rep.MbitPerSecond, float64(rep.DeliveredPackets)/rep.Window, mbit)
	}
	// Audio is 50 packets/s per subscription.
	if m := rep.Audio.SubscriptionPPS.Min; m < 45 || rep.Audio.SubscriptionPPS.Max > 55 {
		t.Errorf("audio subscriptions got %+v packets/s, want about 50", rep.Audio.SubscriptionPPS)
	}
	if rep.Join.Count != 4 || rep.DeliveredOfSentMin < 90 || rep.Window < 4.5 {
		t.Errorf("join n=%d, delivered/sent min %.1f%%, window %.1f s", rep.Join.Count, rep.DeliveredOfSentMin, rep.Window)
	}
	if !strings.Contains(progress.String(), "participants 4/4  subs video 12/12, audio 12/12") {
		t.Errorf("no progress line:\n%s", progress.String())
	}
}

func TestRoomAdaptiveSizeMovesEveryVideoToTheSmallLayer(t *testing.T) {
	base := startStarling(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := loadtest.RunRoom(ctx, loadtest.RoomConfig{
		URL: base, Token: roomToken("lt-tiles", secret), Participants: 3, Ramp: 10, NoAudio: true,
		AdaptiveWidth: 320, AdaptiveHeight: 180, Settle: 2 * time.Second, Duration: 2 * time.Second, MaxLoss: 0, Loopback: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Video.Layers["q"] != 6 || rep.Audio != nil {
		t.Fatalf("layers forwarded %v, want q for all 6; audio %+v", rep.Video.Layers, rep.Audio)
	}
}

func TestRoomAgainstABadTargetFailsFastWithAClearError(t *testing.T) {
	base := startStarling(t)
	cases := []struct {
		name, url, secret, want string
	}{
		{"wrong secret", base, "not-the-secret-0123456789-0123456789", "401"},
		{"refused", "http://127.0.0.1:1", secret, "connection refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Now()
			rep, err := loadtest.RunRoom(context.Background(), loadtest.RoomConfig{
				URL: tc.url, Token: roomToken("lt-bad", tc.secret), Participants: 3, Duration: time.Second, Loopback: true,
			})
			if err == nil || rep != nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("report %v, error %v; want none and one mentioning %q", rep, err, tc.want)
			}
			if d := time.Since(t0); d > 5*time.Second {
				t.Fatalf("took %v to fail", d)
			}
			t.Log(err)
		})
	}
}
