package loadtest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/starling-sfu/starling/loadtest"
)

func chatToken(room string) func(string) (string, error) {
	return func(identity string) (string, error) {
		g := &auth.VideoGrant{RoomJoin: true, Room: room}
		g.SetCanPublishData(true)
		return auth.NewAccessToken(key, secret).SetIdentity(identity).SetValidFor(time.Hour).SetVideoGrant(g).ToJWT()
	}
}

func TestChatAgainstStarlingDeliversEveryMessageToEveryClient(t *testing.T) {
	base := startStarling(t)
	url, err := loadtest.ChatURL(base, "lt-chat")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := loadtest.RunChat(ctx, loadtest.ChatConfig{
		URL: url, Token: chatToken("lt-chat"), Clients: 50, Rate: 40, Duration: 2 * time.Second, MaxLoss: 0,
	})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.WriteTable(&b)
	t.Log("\n" + b.String())
	if rep.Connected != 50 || rep.Failed != 0 || rep.Dropped != 0 {
		t.Errorf("connected %d, failed %d, dropped %d of 50", rep.Connected, rep.Failed, rep.Dropped)
	}
	// 40 messages/s for 2 s, each to all 50 clients.
	if rep.Sent < 70 || rep.Refused != 0 {
		t.Errorf("sent %d (want about 80), refused %d", rep.Sent, rep.Refused)
	}
	if rep.Lost != 0 || rep.Duplicates != 0 || rep.Delivered != rep.Sent*50 || rep.Expected != rep.Delivered {
		t.Errorf("delivered %d of %d expected (%d sent × 50), lost %d, duplicates %d",
			rep.Delivered, rep.Expected, rep.Sent, rep.Lost, rep.Duplicates)
	}
	if rep.Latency.Count != int(rep.Delivered) {
		t.Errorf("%d latency samples for %d deliveries", rep.Latency.Count, rep.Delivered)
	}
}

func TestChatAgainstABadTargetFailsFast(t *testing.T) {
	base := startStarling(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for name, c := range map[string]loadtest.ChatConfig{
		"refused connection": {URL: "ws://127.0.0.1:1/chat/x", Clients: 5},
		"wrong path":         {URL: strings.Replace(base, "http", "ws", 1) + "/nochat/x", Clients: 5},
		"bad token": {URL: strings.Replace(base, "http", "ws", 1) + "/chat/x", Clients: 5,
			Token: func(string) (string, error) { return "garbage", nil }},
	} {
		t0 := time.Now()
		rep, err := loadtest.RunChat(ctx, c)
		if err == nil || rep != nil {
			t.Errorf("%s: report %v, err %v; want an error", name, rep, err)
		}
		if d := time.Since(t0); d > 10*time.Second {
			t.Errorf("%s: took %v", name, d)
		}
		t.Logf("%s: %v", name, err)
	}
}
