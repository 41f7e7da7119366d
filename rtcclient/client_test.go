package rtcclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"

	"github.com/starling-sfu/starling/clip"
)

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func join(t *testing.T, s *fakeServer, identity string, o Options) *Client {
	t.Helper()
	o.URL, o.Token = s.URL(), identity
	c, err := Join(ctxTimeout(t, 10*time.Second), o)
	if err != nil {
		t.Fatalf("join %s: %v", identity, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestJoinRefusedUpgradeReportsStatusAndBody(t *testing.T) {
	s := newFakeServer(t)
	for _, tc := range []struct {
		token  string
		status int
		body   string
	}{
		{"bad", http.StatusUnauthorized, "invalid token"},
		{"forbidden", http.StatusForbidden, "no room join grant"},
	} {
		_, err := Join(ctxTimeout(t, 5*time.Second), Options{URL: s.URL(), Token: tc.token})
		var he *HandshakeError
		if !errors.As(err, &he) {
			t.Fatalf("token %q: error %v is not a HandshakeError", tc.token, err)
		}
		if he.Status != tc.status || !strings.Contains(he.Body, tc.body) {
			t.Errorf("token %q: got %d %q, want %d with %q", tc.token, he.Status, he.Body, tc.status, tc.body)
		}
	}
}

func TestJoinFailsWhenFirstResponseIsNotJoin(t *testing.T) {
	s := newFakeServer(t)
	_, err := Join(ctxTimeout(t, 5*time.Second), Options{URL: s.URL(), Token: "leave"})
	var le *LeaveError
	if !errors.As(err, &le) || le.Leave.GetReason() != livekit.DisconnectReason_JOIN_FAILURE {
		t.Errorf("leave first: got %v, want a LeaveError with ROOM_FULL", err)
	}
	_, err = Join(ctxTimeout(t, 5*time.Second), Options{URL: s.URL(), Token: "pong"})
	if err == nil || !strings.Contains(err.Error(), "pong, not join") {
		t.Errorf("pong first: got %v, want an error naming it", err)
	}
}

func TestJoinDialsWithLivekitClientQuery(t *testing.T) {
	s := newFakeServer(t)
	join(t, s, "alice", Options{AdaptiveStream: true})
	q := s.lastQuery()
	want := map[string]string{
		"access_token": "alice", "auto_subscribe": "1", "sdk": "go", "protocol": "16", "adaptive_stream": "1",
		"reconnect": "", "sid": "",
	}
	for k, v := range want {
		if got := q.Get(k); got != v {
			t.Errorf("query %s = %q, want %q", k, got, v)
		}
	}
}

func TestJoinConnectsAndAnswersSubscriberOfferWithItsID(t *testing.T) {
	s := newFakeServer(t)
	s.withRemoteTrack = true
	var tracks atomic.Int32
	c := join(t, s, "bob", Options{Handlers: Handlers{OnTrack: func(*RemoteTrack) { tracks.Add(1) }}})
	fs := s.session(c.SID())
	if err := c.WaitConnected(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	answers := requestsOf[*livekit.SignalRequest_Answer](fs)
	if len(answers) != 1 || answers[0].Answer.Id != 1 || answers[0].Answer.Type != "answer" {
		t.Fatalf("answers = %v, want one answer to offer 1", answers)
	}
	offers := requestsOf[*livekit.SignalRequest_Offer](fs)
	if len(offers) == 0 || offers[0].Offer.Id != 1 || !strings.Contains(offers[0].Offer.Sdp, "m=application") {
		t.Fatalf("publisher offers = %v, want offer 1 with the data channels", offers)
	}
	for _, tr := range requestsOf[*livekit.SignalRequest_Trickle](fs) {
		if !strings.Contains(tr.Trickle.CandidateInit, `"candidate":"candidate:`) || !strings.Contains(tr.Trickle.CandidateInit, `"sdpMid"`) {
			t.Errorf("trickle %q is not an RTCIceCandidateInit", tr.Trickle.CandidateInit)
		}
	}

	eventually(t, 10*time.Second, "remote track with packets", func() bool {
		rt, ok := c.RemoteTrack("TR_remote")
		return ok && rt.Stats().Packets > 10
	})
	rt, _ := c.RemoteTrack("TR_remote")
	if rt.ParticipantSID != "PA_other" || rt.ParticipantIdentity != "other" {
		t.Errorf("remote track from %s/%s, want PA_other/other", rt.ParticipantSID, rt.ParticipantIdentity)
	}
	if st := rt.Stats(); st.Bytes == 0 || time.Since(st.LastPacket) > 5*time.Second {
		t.Errorf("stats %+v", st)
	}
	if tracks.Load() != 1 {
		t.Errorf("OnTrack called %d times, want 1", tracks.Load())
	}
	var replayed atomic.Int32
	c.OnTrack(func(*RemoteTrack) { replayed.Add(1) })
	eventually(t, 2*time.Second, "OnTrack replay", func() bool { return replayed.Load() == 1 })
	if p, ok := c.Participant("other"); !ok || p.Sid != "PA_other" {
		t.Errorf("participant other = %v", p)
	}
}

func TestJoinSubscriberPrimaryWaitsForTheSubscriber(t *testing.T) {
	s := newFakeServer(t)
	s.subscriberPrimary = true
	c := join(t, s, "carol", Options{})
	if !c.sub.connected() {
		t.Error("subscriber not connected after join")
	}
	if c.pub.wasNegotiated() {
		t.Error("publisher negotiated with subscriber_primary and nothing to publish")
	}
}

func TestPublishClipSendsSimulcastAndAudio(t *testing.T) {
	s := newFakeServer(t)
	c := join(t, s, "dave", Options{})
	pub, err := c.PublishClip(ctxTimeout(t, 15*time.Second), ClipOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fs := s.session(c.SID())
	adds := requestsOf[*livekit.SignalRequest_AddTrack](fs)
	if len(adds) != 2 {
		t.Fatalf("%d AddTrackRequests, want 2", len(adds))
	}
	video, audio := adds[0].AddTrack, adds[1].AddTrack
	if video.Type != livekit.TrackType_VIDEO || video.Source != livekit.TrackSource_CAMERA ||
		video.Width != 1280 || video.Height != 720 || len(video.Layers) != 3 ||
		video.Layers[0].Quality != livekit.VideoQuality_LOW || video.Layers[2].Quality != livekit.VideoQuality_HIGH ||
		video.Layers[1].Width != 640 || video.Layers[1].Bitrate != 500_000 || video.Cid != pub.Video.CID() {
		t.Errorf("video AddTrackRequest %v", video)
	}
	if audio.Type != livekit.TrackType_AUDIO || audio.Source != livekit.TrackSource_MICROPHONE {
		t.Errorf("audio AddTrackRequest %v", audio)
	}
	if pub.Video.SID() == "" || !pub.Video.Info().Simulcast {
		t.Errorf("video track info %v", pub.Video.Info())
	}
	eventually(t, 15*time.Second, "media on every layer", func() bool {
		p := fs.packets()
		return p["video:q"] > 10 && p["video:h"] > 10 && p["video:f"] > 10 && p["audio:"] > 10
	})
	if err := pub.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if n := len(c.LocalTracks()); n != 2 {
		t.Errorf("%d local tracks, want 2", n)
	}
}

func TestPublishTrackErrors(t *testing.T) {
	s := newFakeServer(t)
	c := join(t, s, "erin", Options{PublishTimeout: 500 * time.Millisecond})
	opus := PublishOptions{Codec: clip.Opus.Capability()}

	opus.Name = "refused"
	_, err := c.PublishTrack(ctxTimeout(t, 5*time.Second), opus)
	var re *RequestError
	if !errors.As(err, &re) || re.Response.Reason != livekit.RequestResponse_NOT_ALLOWED {
		t.Errorf("refused: got %v, want a NOT_ALLOWED RequestError", err)
	}

	opus.Name = "ignored"
	_, err = c.PublishTrack(ctxTimeout(t, 5*time.Second), opus)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no track_published") {
		t.Errorf("ignored: got %v, want a timeout", err)
	}

	opus.Name = "kick"
	_, err = c.PublishTrack(ctxTimeout(t, 5*time.Second), opus)
	var le *LeaveError
	if !errors.As(err, &le) {
		t.Errorf("kick: got %v, want a LeaveError", err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session not ended by the leave")
	}
	if !errors.As(c.Err(), &le) {
		t.Errorf("Err() = %v, want the LeaveError", c.Err())
	}
}

func TestDataRoundTrip(t *testing.T) {
	s := newFakeServer(t)
	got := make(chan *livekit.DataPacket, 4)
	c := join(t, s, "frank", Options{Handlers: Handlers{OnData: func(dp *livekit.DataPacket) { got <- dp }}})
	if err := c.SendData(livekit.DataPacket_RELIABLE, []byte("hello"), "chat", "grace"); err != nil {
		t.Fatal(err)
	}
	if err := c.SendData(livekit.DataPacket_LOSSY, []byte("fast"), ""); err != nil {
		t.Fatal(err)
	}
	seen := map[string]*livekit.DataPacket{}
	for len(seen) < 2 {
		select {
		case dp := <-got:
			seen[string(dp.GetUser().GetPayload())] = dp
		case <-time.After(10 * time.Second):
			t.Fatalf("echoes received: %v", seen)
		}
	}
	r := seen["hello"]
	if r.Kind != livekit.DataPacket_RELIABLE || r.GetUser().GetTopic() != "chat" || r.Sequence != 1 ||
		len(r.DestinationIdentities) != 1 || r.DestinationIdentities[0] != "grace" ||
		r.GetUser().GetDestinationIdentities()[0] != "grace" || r.ParticipantIdentity != "frank" {
		t.Errorf("reliable echo %v", r)
	}
	if l := seen["fast"]; l.Kind != livekit.DataPacket_LOSSY || l.GetUser().Topic != nil || l.Sequence != 0 {
		t.Errorf("lossy echo %v", l)
	}
}

func TestPingMeasuresRTTAndTimesOut(t *testing.T) {
	s := newFakeServer(t)
	s.pingInterval, s.pingTimeout = 1, 2
	lost := make(chan error, 1)
	c := join(t, s, "heidi", Options{Handlers: Handlers{OnSignalLost: func(err error) { lost <- err }}})
	fs := s.session(c.SID())
	eventually(t, 5*time.Second, "a ping_req and a legacy ping", func() bool {
		return len(requestsOf[*livekit.SignalRequest_PingReq](fs)) > 0 && len(requestsOf[*livekit.SignalRequest_Ping](fs)) > 0
	})
	eventually(t, 5*time.Second, "an RTT", func() bool { return c.RTT() >= 0 && len(requestsOf[*livekit.SignalRequest_PingReq](fs)) > 1 })
	fs.silence()
	select {
	case err := <-lost:
		if !errors.Is(err, errPingTimeout) {
			t.Errorf("signal lost with %v, want the ping timeout", err)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("no ping timeout")
	}
}

func TestResumeAfterDroppedSignal(t *testing.T) {
	s := newFakeServer(t)
	s.withRemoteTrack = true
	lost := make(chan error, 1)
	c := join(t, s, "ivan", Options{StrictResume: true, Handlers: Handlers{OnSignalLost: func(err error) { lost <- err }}})
	pub, err := c.PublishClip(ctxTimeout(t, 15*time.Second), ClipOptions{NoSimulcast: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.UpdateSubscription([]string{"TR_remote"}, false); err != nil {
		t.Fatal(err)
	}
	fs := s.session(c.SID())
	c.DropSignal()
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("loss not reported")
	}
	if err := c.SetMuted(pub.Audio.SID(), true); !errors.Is(err, errSignalDown) {
		t.Errorf("request while down: %v", err)
	}
	if err := c.Resume(ctxTimeout(t, 15*time.Second)); err != nil {
		t.Fatal(err)
	}
	q := s.lastQuery()
	if q.Get("reconnect") != "1" || q.Get("sid") != c.SID() || q.Get("reconnect_reason") != "1" {
		t.Errorf("resume query %v", q)
	}
	syncs := requestsOf[*livekit.SignalRequest_SyncState](fs)
	if len(syncs) != 1 {
		t.Fatalf("%d sync states, want 1", len(syncs))
	}
	st := syncs[0].SyncState
	if st.Answer.GetType() != "answer" || st.Offer.GetType() != "offer" || len(st.PublishTracks) != 2 ||
		len(st.DataChannels) != 3 || st.Subscription.GetSubscribe() ||
		len(st.Subscription.GetTrackSids()) != 1 || st.Subscription.TrackSids[0] != "TR_remote" {
		t.Errorf("sync state %v", st)
	}
	offers := requestsOf[*livekit.SignalRequest_Offer](fs)
	last := offers[len(offers)-1].Offer
	if !strings.Contains(last.Sdp, "a=ice-ufrag") || last.Id != uint32(len(offers)) {
		t.Errorf("ICE-restart offer %d of %d", last.Id, len(offers))
	}
	before := fs.packets()
	eventually(t, 10*time.Second, "media after resume", func() bool {
		p := fs.packets()
		return p["video:"] > before["video:"]+20 && p["audio:"] > before["audio:"]+20
	})
	rt, ok := c.RemoteTrack("TR_remote")
	if !ok {
		t.Fatal("remote track gone after resume")
	}
	received := rt.Stats().Packets
	eventually(t, 10*time.Second, "subscribed media after resume", func() bool { return rt.Stats().Packets > received+20 })
	if err := c.SetMuted(pub.Audio.SID(), true); err != nil {
		t.Errorf("mute after resume: %v", err)
	}
	eventually(t, 5*time.Second, "mute request", func() bool { return len(requestsOf[*livekit.SignalRequest_Mute](fs)) == 1 })
}

func TestAutoResumeAndResumeWithoutSubscriberRestart(t *testing.T) {
	s := newFakeServer(t)
	resumed := make(chan struct{}, 1)
	c := join(t, s, "judy", Options{AutoResume: true, Handlers: Handlers{OnResumed: func() { resumed <- struct{}{} }}})
	c.DropSignal()
	select {
	case <-resumed:
	case <-time.After(15 * time.Second):
		t.Fatal("not resumed")
	}
	if n := s.session(c.SID()).reconnects(); n != 1 {
		t.Errorf("%d reconnects, want 1", n)
	}

	// A server that does not restart the subscriber's ICE: fine for
	// livekit-client, an error under StrictResume.
	s.noSubscriberRestart.Store(true)
	if err := c.Resume(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Errorf("resume without a subscriber offer: %v", err)
	}
	c.opts.StrictResume = true
	err := c.Resume(ctxTimeout(t, 2*time.Second))
	if err == nil || !strings.Contains(err.Error(), "no ICE-restart subscriber offer") {
		t.Errorf("strict resume without a subscriber offer: %v", err)
	}
}

func TestServerStateUpdates(t *testing.T) {
	s := newFakeServer(t)
	var mu sync.Mutex
	var mutes []bool
	var qualities int
	c := join(t, s, "kim", Options{Handlers: Handlers{
		OnMute:              func(_ string, m bool) { mu.Lock(); mutes = append(mutes, m); mu.Unlock() },
		OnSubscribedQuality: func(*livekit.SubscribedQualityUpdate) { mu.Lock(); qualities++; mu.Unlock() },
	}})
	fs := s.session(c.SID())
	push := func(res *livekit.SignalResponse) { fs.write(res) }
	push(&livekit.SignalResponse{Message: &livekit.SignalResponse_Update{Update: &livekit.ParticipantUpdate{Participants: []*livekit.ParticipantInfo{
		{Sid: "PA_x", Identity: "x", State: livekit.ParticipantInfo_ACTIVE, Version: 2},
		{Sid: "PA_y", Identity: "y", State: livekit.ParticipantInfo_ACTIVE, Version: 1},
		{Sid: c.SID(), Identity: "kim", State: livekit.ParticipantInfo_ACTIVE, Version: 3, Metadata: "me"},
	}}}})
	push(&livekit.SignalResponse{Message: &livekit.SignalResponse_Update{Update: &livekit.ParticipantUpdate{Participants: []*livekit.ParticipantInfo{
		{Sid: "PA_x", Identity: "x", State: livekit.ParticipantInfo_ACTIVE, Version: 1, Metadata: "stale"},
		{Sid: "PA_y", Identity: "y", State: livekit.ParticipantInfo_DISCONNECTED, Version: 2},
	}}}})
	push(&livekit.SignalResponse{Message: &livekit.SignalResponse_SpeakersChanged{SpeakersChanged: &livekit.SpeakersChanged{Speakers: []*livekit.SpeakerInfo{
		{Sid: "PA_x", Level: 0.5, Active: true}, {Sid: c.SID(), Level: 0.9, Active: true},
	}}}})
	push(&livekit.SignalResponse{Message: &livekit.SignalResponse_SpeakersChanged{SpeakersChanged: &livekit.SpeakersChanged{Speakers: []*livekit.SpeakerInfo{
		{Sid: "PA_x", Active: false},
	}}}})
	push(&livekit.SignalResponse{Message: &livekit.SignalResponse_SubscribedQualityUpdate{SubscribedQualityUpdate: &livekit.SubscribedQualityUpdate{
		TrackSid: "TR_v", SubscribedQualities: []*livekit.SubscribedQuality{{Quality: livekit.VideoQuality_LOW, Enabled: true}},
	}}})
	push(&livekit.SignalResponse{Message: &livekit.SignalResponse_Mute{Mute: &livekit.MuteTrackRequest{Sid: "TR_v", Muted: true}}})
	push(&livekit.SignalResponse{Message: &livekit.SignalResponse_RefreshToken{RefreshToken: "kim-2"}})
	push(&livekit.SignalResponse{Message: &livekit.SignalResponse_RoomUpdate{RoomUpdate: &livekit.RoomUpdate{Room: &livekit.Room{Sid: "RM_test", Name: "test", NumParticipants: 2}}}})

	eventually(t, 5*time.Second, "room update", func() bool { return c.Room().GetNumParticipants() == 2 })
	ps := c.Participants()
	if len(ps) != 1 || ps["PA_x"].GetVersion() != 2 {
		t.Errorf("participants %v, want x at version 2 only", ps)
	}
	if c.LocalParticipant().GetMetadata() != "me" {
		t.Errorf("local participant %v", c.LocalParticipant())
	}
	if sp := c.Speakers(); len(sp) != 1 || sp[0].Sid != c.SID() {
		t.Errorf("speakers %v", sp)
	}
	if q := c.SubscribedQuality("TR_v"); len(q.GetSubscribedQualities()) != 1 {
		t.Errorf("subscribed quality %v", q)
	}
	if c.Token() != "kim-2" {
		t.Errorf("token %q, want the refreshed one", c.Token())
	}
	eventually(t, 2*time.Second, "callbacks", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(mutes) == 1 && mutes[0] && qualities == 1
	})
}

func TestRequestsCarryWhatLivekitClientSends(t *testing.T) {
	s := newFakeServer(t)
	s.withRemoteTrack = true
	c := join(t, s, "leo", Options{})
	fs := s.session(c.SID())
	if err := c.UpdateSubscription([]string{"TR_remote"}, false); err != nil {
		t.Fatal(err)
	}
	if err := c.UpdateTrackSettings("TR_remote", false, 320, 180, livekit.VideoQuality_LOW); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "requests", func() bool {
		return len(requestsOf[*livekit.SignalRequest_Subscription](fs)) == 1 && len(requestsOf[*livekit.SignalRequest_TrackSetting](fs)) == 1
	})
	sub := requestsOf[*livekit.SignalRequest_Subscription](fs)[0].Subscription
	if sub.Subscribe || len(sub.ParticipantTracks) != 1 || sub.ParticipantTracks[0].ParticipantSid != "PA_other" {
		t.Errorf("subscription %v", sub)
	}
	ts := requestsOf[*livekit.SignalRequest_TrackSetting](fs)[0].TrackSetting
	if ts.TrackSids[0] != "TR_remote" || ts.Width != 320 || ts.Quality != livekit.VideoQuality_LOW {
		t.Errorf("track settings %v", ts)
	}
	if err := c.Leave(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "leave", func() bool { return len(requestsOf[*livekit.SignalRequest_Leave](fs)) == 1 })
	l := requestsOf[*livekit.SignalRequest_Leave](fs)[0].Leave
	if l.Reason != livekit.DisconnectReason_CLIENT_INITIATED || l.Action != livekit.LeaveRequest_DISCONNECT {
		t.Errorf("leave %v", l)
	}
	if !errors.Is(c.Err(), ErrClosed) {
		t.Errorf("Err() after Leave = %v", c.Err())
	}
}

func TestCloseStopsEveryGoroutine(t *testing.T) {
	s := newFakeServer(t)
	s.withRemoteTrack = true
	s.pingInterval, s.pingTimeout = 1, 5
	c := join(t, s, "mallory", Options{AutoResume: true})
	if _, err := c.PublishClip(ctxTimeout(t, 15*time.Second), ClipOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "remote track", func() bool { return len(c.RemoteTracks()) == 1 })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	for _, frame := range []string{"rtcclient.(*Client)", "rtcclient.(*transport)", "rtcclient.(*dispatcher)", "clip.(*Player)"} {
		if strings.Contains(stacks, frame) {
			t.Errorf("a goroutine in %s outlived Close:\n%s", frame, stacks)
		}
	}
	if _, err := c.PublishTrack(ctxTimeout(t, time.Second), PublishOptions{Codec: clip.Opus.Capability()}); err == nil {
		t.Error("publish after Close succeeded")
	}
}

func TestConcurrentPublishesNegotiateOneOfferAtATime(t *testing.T) {
	s := newFakeServer(t)
	s.subscriberPrimary = true
	c := join(t, s, "nina", Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for i, codec := range []clip.Codec{clip.Opus, clip.VP8, clip.H264} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.PublishTrack(ctxTimeout(t, 15*time.Second), PublishOptions{
				Name: fmt.Sprint("track", i), Codec: codec.Capability(), Width: 640, Height: 360,
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	fs := s.session(c.SID())
	offers := requestsOf[*livekit.SignalRequest_Offer](fs)
	for i, o := range offers {
		if o.Offer.Id != uint32(i+1) {
			t.Errorf("offer %d has id %d", i+1, o.Offer.Id)
		}
	}
	if last := offers[len(offers)-1].Offer.Sdp; strings.Count(last, "a=sendonly") != 3 {
		t.Errorf("last offer has %d send-only sections, want 3", strings.Count(last, "a=sendonly"))
	}
	if err := c.WaitConnected(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
}

func TestResumeOffersAgainWhenTheFirstOfferWasNeverAnswered(t *testing.T) {
	s := newFakeServer(t)
	s.subscriberPrimary = true
	s.ignoreOffers.Store(1)
	c := join(t, s, "olga", Options{PublishTimeout: 20 * time.Second})
	published := make(chan error, 1)
	go func() {
		_, err := c.PublishTrack(ctxTimeout(t, 20*time.Second), PublishOptions{Name: "mic", Codec: clip.Opus.Capability()})
		published <- err
	}()
	fs := s.session(c.SID())
	eventually(t, 5*time.Second, "the unanswered offer", func() bool { return len(requestsOf[*livekit.SignalRequest_Offer](fs)) == 1 })
	c.DropSignal()
	if err := c.Resume(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	offers := requestsOf[*livekit.SignalRequest_Offer](fs)
	if len(offers) != 2 || offers[1].Offer.Id != 2 || iceUfrag(offers[1].Offer.Sdp) != iceUfrag(offers[0].Offer.Sdp) {
		t.Errorf("offers after resume: %v, want the first sent again as offer 2", offers)
	}
}
