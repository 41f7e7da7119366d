//go:build rtclive

// Tests against a running Starling server. They are not built by default;
// run them with
//
//	STARLING_RTC_URL=http://127.0.0.1:7880 STARLING_RTC_KEYS=key:secret \
//	  go test -tags rtclive -run Live -v ./rtcclient/
//
// where the server was started with include-loopback and those keys.

package rtcclient

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"
)

type liveServer struct {
	url, key, secret string
}

func newLiveServer(t *testing.T) liveServer {
	u := os.Getenv("STARLING_RTC_URL")
	key, secret, ok := strings.Cut(os.Getenv("STARLING_RTC_KEYS"), ":")
	if u == "" || !ok {
		t.Fatal("STARLING_RTC_URL and STARLING_RTC_KEYS=key:secret must be set for the rtclive tests")
	}
	return liveServer{url: u, key: key, secret: secret}
}

func (s liveServer) token(t *testing.T, room, identity string, publish bool) string {
	g := &auth.VideoGrant{RoomJoin: true, Room: room}
	g.SetCanPublish(publish)
	g.SetCanSubscribe(true)
	g.SetCanPublishData(true)
	tok, err := auth.NewAccessToken(s.key, s.secret).SetIdentity(identity).SetValidFor(time.Hour).SetVideoGrant(g).ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (s liveServer) join(t *testing.T, room, identity string, publish bool, o Options) *Client {
	t.Helper()
	o.URL, o.Token = s.url, s.token(t, room, identity, publish)
	if os.Getenv("STARLING_TEST_LOG") != "" {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("client", identity)
	}
	c, err := Join(ctxTimeout(t, 15*time.Second), o)
	if err != nil {
		t.Fatalf("join %s: %v", identity, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func liveRoom(t *testing.T) string {
	return fmt.Sprintf("rc-%s-%d", strings.ToLower(t.Name()), time.Now().UnixNano()%100000)
}

func TestLiveRefusesBadTokens(t *testing.T) {
	s := newLiveServer(t)
	_, err := Join(ctxTimeout(t, 5*time.Second), Options{URL: s.url, Token: "not-a-jwt"})
	var he *HandshakeError
	if !errors.As(err, &he) || he.Status != 401 {
		t.Errorf("bad token: %v, want a 401 HandshakeError", err)
	} else {
		t.Logf("bad token: %v", he)
	}
	_, err = Join(ctxTimeout(t, 5*time.Second), Options{URL: s.url})
	t.Logf("no token: %v", err)
	if !errors.As(err, &he) || he.Status != 401 {
		t.Errorf("no token: %v, want a 401 HandshakeError", err)
	}
}

func TestLivePublishSubscribeDataMuteLeave(t *testing.T) {
	s := newLiveServer(t)
	room := liveRoom(t)
	var mu sync.Mutex
	signals := map[string]int{} // message name → count, seen by the subscriber
	count := func(res *livekit.SignalResponse) {
		mu.Lock()
		signals[messageName(res)]++
		mu.Unlock()
	}
	pubc := s.join(t, room, "alice", true, Options{})
	data := make(chan *livekit.DataPacket, 16)
	subc := s.join(t, room, "bob", false, Options{Handlers: Handlers{
		OnData: func(dp *livekit.DataPacket) { data <- dp },
		OnSignal: func(res *livekit.SignalResponse) {
			count(res)
		},
	}})
	t.Logf("join: subscriber_primary=%v ping=%d/%d ice_servers=%d server=%s", subc.JoinResponse().GetSubscriberPrimary(),
		subc.JoinResponse().GetPingInterval(), subc.JoinResponse().GetPingTimeout(), len(subc.JoinResponse().GetIceServers()),
		subc.JoinResponse().GetServerVersion())

	pub, err := pubc.PublishClip(ctxTimeout(t, 20*time.Second), ClipOptions{})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	t.Logf("published video %s %v, audio %s", pub.Video.SID(), pub.Video.Info().GetLayers(), pub.Audio.SID())

	eventually(t, 15*time.Second, "bob receives both tracks", func() bool {
		v, okv := subc.RemoteTrack(pub.Video.SID())
		a, oka := subc.RemoteTrack(pub.Audio.SID())
		return okv && oka && v.Stats().Packets > 50 && a.Stats().Packets > 50
	})
	for _, rt := range subc.RemoteTracks() {
		if rt.ParticipantSID != pubc.SID() || rt.ParticipantIdentity != "alice" {
			t.Errorf("track %s from %s/%s, want %s/alice", rt.TrackSID, rt.ParticipantSID, rt.ParticipantIdentity, pubc.SID())
		}
		t.Logf("bob receives %s %s msid %s %s: %+v", rt.Kind(), rt.TrackSID, rt.Track.StreamID(), rt.Track.ID(), rt.Stats())
	}
	if p, ok := subc.Participant("alice"); !ok || len(p.GetTracks()) != 2 {
		t.Errorf("bob's view of alice: %v", p)
	}

	// Data from alice to bob.
	if err := pubc.SendData(livekit.DataPacket_RELIABLE, []byte("hi bob"), "chat", "bob"); err != nil {
		t.Fatal(err)
	}
	select {
	case dp := <-data:
		if string(dp.GetUser().GetPayload()) != "hi bob" || dp.GetUser().GetTopic() != "chat" || dp.ParticipantIdentity != "alice" {
			t.Errorf("bob got %v", dp)
		}
	case <-time.After(10 * time.Second):
		t.Error("bob got no data packet")
	}

	// bob asks for the low layer; alice should hear which qualities are wanted.
	if err := subc.UpdateTrackSettings(pub.Video.SID(), false, 320, 180, livekit.VideoQuality_LOW); err != nil {
		t.Fatal(err)
	}
	eventually(t, 8*time.Second, "alice told only LOW is wanted", func() bool {
		q := pubc.SubscribedQuality(pub.Video.SID())
		qs := q.GetSubscribedQualities()
		return len(qs) == 3 && qs[0].GetEnabled() && !qs[2].GetEnabled()
	})
	t.Logf("alice's subscribed quality: %v", pubc.SubscribedQuality(pub.Video.SID()))

	// alice mutes her microphone; bob should see it in a participant update.
	if err := pubc.SetMuted(pub.Audio.SID(), true); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "bob sees the microphone muted", func() bool {
		p, ok := subc.Participant("alice")
		if !ok {
			return false
		}
		for _, ti := range p.GetTracks() {
			if ti.GetSid() == pub.Audio.SID() {
				return ti.GetMuted()
			}
		}
		return false
	})
	t.Logf("speakers seen by bob: %v; RTT %v", subc.Speakers(), subc.RTT())

	if err := pubc.Leave(); err != nil {
		t.Errorf("leave: %v", err)
	}
	eventually(t, 10*time.Second, "alice gone from bob's view", func() bool {
		_, ok := subc.Participant("alice")
		return !ok
	})
	mu.Lock()
	t.Logf("bob saw %v", signals)
	mu.Unlock()
}

func TestLivePublishWithoutGrantIsRefused(t *testing.T) {
	s := newLiveServer(t)
	c := s.join(t, liveRoom(t), "viewer", false, Options{PublishTimeout: 3 * time.Second})
	_, err := c.PublishClip(ctxTimeout(t, 10*time.Second), ClipOptions{NoVideo: true})
	t.Logf("publish without grant: %v (session err %v)", err, c.Err())
	if err == nil {
		t.Fatal("publish without the grant succeeded")
	}
}

func TestLiveResumeKeepsMediaFlowing(t *testing.T) {
	s := newLiveServer(t)
	room := liveRoom(t)
	pubc := s.join(t, room, "alice", true, Options{})
	subc := s.join(t, room, "bob", false, Options{})
	pub, err := pubc.PublishClip(ctxTimeout(t, 20*time.Second), ClipOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "bob receives video", func() bool {
		v, ok := subc.RemoteTrack(pub.Video.SID())
		return ok && v.Stats().Packets > 50
	})

	for _, c := range []*Client{pubc, subc} {
		c.DropSignal()
		start := time.Now()
		if err := c.Resume(ctxTimeout(t, 20*time.Second)); err != nil {
			t.Fatalf("%s resume: %v", c.Identity(), err)
		}
		t.Logf("%s resumed in %v", c.Identity(), time.Since(start))
	}
	v, ok := subc.RemoteTrack(pub.Video.SID())
	if !ok {
		t.Fatal("bob lost the video track over the resumes")
	}
	before := v.Stats().Packets
	eventually(t, 10*time.Second, "video after resume", func() bool { return v.Stats().Packets > before+50 })

	// A second resume with AutoResume on.
	resumed := make(chan struct{}, 1)
	auto := s.join(t, room, "carol", false, Options{AutoResume: true, Handlers: Handlers{OnResumed: func() { resumed <- struct{}{} }}})
	auto.DropSignal()
	select {
	case <-resumed:
	case <-time.After(20 * time.Second):
		t.Fatalf("carol not resumed: %v", auto.Err())
	}
}

// TestLiveFirstMessageIsJoin dials raw websockets, the second into a room
// with someone in it, and records what the server sends first.
func TestLiveFirstMessageIsJoin(t *testing.T) {
	s := newLiveServer(t)
	room := liveRoom(t)
	for i, identity := range []string{"first", "second", "third"} {
		conn, _, err := DialRaw(ctxTimeout(t, 5*time.Second), s.url, s.token(t, room, identity, true),
			url.Values{"auto_subscribe": {"1"}, "sdk": {"go"}, "protocol": {"16"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var names []string
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		for len(names) < 4 {
			_, b, err := conn.ReadMessage()
			if err != nil {
				break
			}
			res := &livekit.SignalResponse{}
			if err := proto.Unmarshal(b, res); err != nil {
				t.Fatal(err)
			}
			names = append(names, messageName(res))
		}
		t.Logf("participant %d (%s) first messages: %v", i+1, identity, names)
		if len(names) == 0 || names[0] != "join" {
			t.Errorf("participant %d (%s): first message %v, want join (livekit-client fails the connection otherwise)", i+1, identity, names)
		}
	}
}

// TestLiveJoinBesideANewcomer joins right after another participant came up,
// the moment its state changes reach the room, many times over.
func TestLiveJoinBesideANewcomer(t *testing.T) {
	s := newLiveServer(t)
	var failures []string
	for i := 0; i < 20; i++ {
		room := fmt.Sprintf("%s-%d", liveRoom(t), i)
		a := s.join(t, room, "a", true, Options{})
		// Vary the moment: the server's updates about a trail its join.
		time.Sleep(time.Duration(i%5) * 5 * time.Millisecond)
		conn, _, err := DialRaw(ctxTimeout(t, 5*time.Second), s.url, s.token(t, room, "b", true),
			url.Values{"auto_subscribe": {"1"}, "sdk": {"go"}, "protocol": {"16"}})
		if err != nil {
			t.Fatal(err)
		}
		_, b, err := conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		res := &livekit.SignalResponse{}
		_ = proto.Unmarshal(b, res)
		if name := messageName(res); name != "join" {
			failures = append(failures, fmt.Sprintf("run %d: first message %s: %v", i, name, res))
		}
		_ = conn.Close()
		_ = a.Close()
	}
	if len(failures) > 0 {
		t.Errorf("%d of 20 joins did not start with join:\n%s", len(failures), strings.Join(failures, "\n"))
	}
}

func TestLiveSubscriptionControlAndDuplicateIdentity(t *testing.T) {
	s := newLiveServer(t)
	room := liveRoom(t)
	pubc := s.join(t, room, "alice", true, Options{})
	tracks := make(chan *RemoteTrack, 8)
	subc := s.join(t, room, "bob", false, Options{Handlers: Handlers{OnTrack: func(rt *RemoteTrack) { tracks <- rt }}})
	carolData := make(chan *livekit.DataPacket, 4)
	s.join(t, room, "carol", false, Options{Handlers: Handlers{OnData: func(dp *livekit.DataPacket) { carolData <- dp }}})
	pub, err := pubc.PublishClip(ctxTimeout(t, 20*time.Second), ClipOptions{NoAudio: true})
	if err != nil {
		t.Fatal(err)
	}
	sid := pub.Video.SID()
	first := waitTrack(t, tracks, sid)
	eventually(t, 10*time.Second, "video flowing", func() bool { return first.Stats().Packets > 30 })

	// Paused by track settings: packets stop, then resume.
	if err := subc.UpdateTrackSettings(sid, true, 0, 0, livekit.VideoQuality_HIGH); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	paused := first.Stats().Packets
	time.Sleep(time.Second)
	if n := first.Stats().Packets; n > paused+5 {
		t.Errorf("disabled track still receives: %d → %d packets", paused, n)
	}
	if err := subc.UpdateTrackSettings(sid, false, 1280, 720, livekit.VideoQuality_HIGH); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "video after enabling", func() bool { return first.Stats().Packets > paused+30 })

	// Unsubscribed: the track ends; subscribed again: a new one arrives.
	if err := subc.UpdateSubscription([]string{sid}, false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-first.Ended():
	case <-time.After(10 * time.Second):
		t.Error("unsubscribed track did not end")
	}
	if err := subc.UpdateSubscription([]string{sid}, true); err != nil {
		t.Fatal(err)
	}
	again := waitTrack(t, tracks, sid)
	eventually(t, 10*time.Second, "video after resubscribing", func() bool { return again.Stats().Packets > 30 })

	// Data for bob alone does not reach carol.
	if err := pubc.SendData(livekit.DataPacket_RELIABLE, []byte("for bob"), "", "bob"); err != nil {
		t.Fatal(err)
	}
	select {
	case dp := <-carolData:
		t.Errorf("carol got data meant for bob: %v", dp)
	case <-time.After(time.Second):
	}

	// A second session of bob's identity ends the first with a leave.
	s.join(t, room, "bob", false, Options{})
	select {
	case <-subc.Done():
		var le *LeaveError
		if !errors.As(subc.Err(), &le) || le.Leave.GetReason() != livekit.DisconnectReason_DUPLICATE_IDENTITY {
			t.Errorf("first bob ended with %v, want a DUPLICATE_IDENTITY leave", subc.Err())
		}
	case <-time.After(10 * time.Second):
		t.Error("first bob not ended by the duplicate")
	}
}

func waitTrack(t *testing.T, tracks <-chan *RemoteTrack, sid string) *RemoteTrack {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case rt := <-tracks:
			if rt.TrackSID == sid {
				return rt
			}
		case <-deadline:
			t.Fatalf("no track %s", sid)
		}
	}
}

func TestLivePublishH264SingleLayerAndLossyData(t *testing.T) {
	s := newLiveServer(t)
	room := liveRoom(t)
	pubc := s.join(t, room, "alice", true, Options{})
	data := make(chan *livekit.DataPacket, 4)
	subc := s.join(t, room, "bob", false, Options{Handlers: Handlers{OnData: func(dp *livekit.DataPacket) { data <- dp }}})
	pub, err := pubc.PublishClip(ctxTimeout(t, 20*time.Second), ClipOptions{Codec: "h264", NoSimulcast: true})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "h264 video at bob", func() bool {
		v, ok := subc.RemoteTrack(pub.Video.SID())
		return ok && v.Stats().Packets > 50 && strings.EqualFold(v.Track.Codec().MimeType, "video/H264")
	})
	if err := pubc.SendData(livekit.DataPacket_LOSSY, []byte("lossy"), "t"); err != nil {
		t.Fatal(err)
	}
	select {
	case dp := <-data:
		t.Logf("bob got lossy %v", dp)
	case <-time.After(5 * time.Second):
		t.Error("no lossy packet")
	}
	t.Logf("bob's data channels: %v; alice's: %v", subc.dataChannelInfos(), pubc.dataChannelInfos())
}
