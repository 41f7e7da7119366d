package rtc

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
	"github.com/starling-sfu/starling/rtcclient"
)

// join connects a protocol-level client (package rtcclient, which behaves as
// livekit-client does) with the given handlers.
func (h *harness) join(ctx context.Context, g grant, hs rtcclient.Handlers) *rtcclient.Client {
	h.t.Helper()
	c, err := rtcclient.Join(ctx, rtcclient.Options{URL: h.http.URL, Token: h.token(g), Handlers: hs, Logger: testLogger()})
	if err != nil {
		h.t.Fatalf("%s joins: %v", g.identity, err)
	}
	h.t.Cleanup(func() { _ = c.Close() })
	return c
}

// remote waits for c to receive a track of kind from the participant
// identity, and returns it.
func remote(t *testing.T, c *rtcclient.Client, identity string, kind webrtc.RTPCodecType) *rtcclient.RemoteTrack {
	t.Helper()
	var found *rtcclient.RemoteTrack
	eventually(t, 10*time.Second, c.Identity()+" receiving "+identity+"'s "+kind.String(), func() bool {
		for _, rt := range c.RemoteTracks() {
			if rt.ParticipantIdentity == identity && rt.Kind() == kind {
				found = rt
				return true
			}
		}
		return false
	})
	return found
}

// flowing waits until rt has received n more packets.
func flowing(t *testing.T, rt *rtcclient.RemoteTrack, n uint64, what string) {
	t.Helper()
	start := rt.Stats().Packets
	eventually(t, 10*time.Second, what, func() bool { return rt.Stats().Packets >= start+n })
}

// recorder keeps what handlers saw.
type recorder struct {
	mu       sync.Mutex
	data     []*livekit.DataPacket
	speakers map[string]bool
	quality  []*livekit.SubscribedQualityUpdate
}

func (r *recorder) handlers() rtcclient.Handlers {
	return rtcclient.Handlers{
		OnData: func(dp *livekit.DataPacket) {
			r.mu.Lock()
			r.data = append(r.data, dp)
			r.mu.Unlock()
		},
		OnSpeakersChanged: func(ss []*livekit.SpeakerInfo) {
			r.mu.Lock()
			for _, s := range ss {
				if s.GetActive() {
					r.speakers[s.GetSid()] = true
				}
			}
			r.mu.Unlock()
		},
		OnSubscribedQuality: func(u *livekit.SubscribedQualityUpdate) {
			r.mu.Lock()
			r.quality = append(r.quality, u)
			r.mu.Unlock()
		},
	}
}

func newRecorder() *recorder { return &recorder{speakers: map[string]bool{}} }

func (r *recorder) payloads(from string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, dp := range r.data {
		if dp.GetParticipantIdentity() == from {
			out = append(out, string(dp.GetUser().GetPayload()))
		}
	}
	return out
}

func TestParticipantsPublishSubscribeTalkMuteLeaveAndResume(t *testing.T) {
	h := newHarness(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	aliceRec, bobRec, carolRec := newRecorder(), newRecorder(), newRecorder()
	alice := h.join(ctx, everyone("stage", "alice"), aliceRec.handlers())
	pub, err := alice.PublishClip(ctx, rtcclient.ClipOptions{})
	if err != nil {
		t.Fatalf("alice publishes: %v", err)
	}
	defer pub.Stop()

	// bob joins after alice published: he is subscribed to what exists.
	bob := h.join(ctx, everyone("stage", "bob"), bobRec.handlers())
	bobVideo := remote(t, bob, "alice", webrtc.RTPCodecTypeVideo)
	bobAudio := remote(t, bob, "alice", webrtc.RTPCodecTypeAudio)
	flowing(t, bobVideo, 100, "alice's video reaching bob")
	flowing(t, bobAudio, 50, "alice's audio reaching bob")
	if bobVideo.TrackSID != pub.Video.SID() || bobVideo.ParticipantSID != alice.SID() {
		t.Errorf("bob's video is %s of %s, want %s of %s", bobVideo.TrackSID, bobVideo.ParticipantSID, pub.Video.SID(), alice.SID())
	}

	// carol may only watch: she is subscribed, her publishing is refused.
	carol := h.join(ctx, grant{room: "stage", identity: "carol", subscribe: true}, carolRec.handlers())
	flowing(t, remote(t, carol, "alice", webrtc.RTPCodecTypeVideo), 50, "alice's video reaching carol")
	if _, err := carol.PublishClip(ctx, rtcclient.ClipOptions{NoVideo: true}); err == nil {
		t.Error("a subscribe-only participant published")
	}

	// A track published while others are connected is offered to them.
	bobPub, err := bob.PublishClip(ctx, rtcclient.ClipOptions{NoVideo: true})
	if err != nil {
		t.Fatalf("bob publishes audio: %v", err)
	}
	defer bobPub.Stop()
	flowing(t, remote(t, alice, "bob", webrtc.RTPCodecTypeAudio), 50, "bob's audio reaching alice")

	// Speakers: the clip's audio carries the levels a speaking microphone
	// sends.
	eventually(t, 5*time.Second, "bob told alice speaks", func() bool {
		bobRec.mu.Lock()
		defer bobRec.mu.Unlock()
		return bobRec.speakers[alice.SID()]
	})

	// Data: to everyone on the reliable channel, to bob alone on the lossy
	// one; carol's data is not hers to send.
	if err := alice.SendData(livekit.DataPacket_RELIABLE, []byte("hello all"), "chat"); err != nil {
		t.Fatal(err)
	}
	if err := alice.SendData(livekit.DataPacket_LOSSY, []byte("psst bob"), "", "bob"); err != nil {
		t.Fatal(err)
	}
	if err := carol.SendData(livekit.DataPacket_RELIABLE, []byte("not allowed"), ""); err != nil && !errors.Is(err, rtcclient.ErrClosed) {
		t.Logf("carol's send: %v", err)
	}
	eventually(t, 5*time.Second, "alice's data reaching bob and carol", func() bool {
		return len(bobRec.payloads("alice")) == 2 && len(carolRec.payloads("alice")) == 1
	})
	if got := carolRec.payloads("alice"); got[0] != "hello all" {
		t.Errorf("carol got %q", got)
	}
	if got := aliceRec.payloads("carol"); len(got) != 0 {
		t.Errorf("a participant without canPublishData sent %q", got)
	}

	// Mute: the room sees alice's audio muted.
	if err := alice.SetMuted(pub.Audio.SID(), true); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "bob seeing alice's audio muted", func() bool {
		p, ok := bob.Participant("alice")
		if !ok {
			return false
		}
		for _, tr := range p.GetTracks() {
			if tr.GetSid() == pub.Audio.SID() {
				return tr.GetMuted()
			}
		}
		return false
	})

	// Adaptive stream: bob shows alice's video small; he gets the low
	// layer, and, as nobody needs more, alice is asked for the low layer
	// only (dynacast).
	if err := bob.UpdateTrackSettings(pub.Video.SID(), false, 320, 180, livekit.VideoQuality_HIGH); err != nil {
		t.Fatal(err)
	}
	if err := carol.UpdateTrackSettings(pub.Video.SID(), false, 320, 180, livekit.VideoQuality_HIGH); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "bob receiving the q layer", func() bool {
		return h.layerSent("bob", pub.Video.SID()) == 0
	})
	eventually(t, 8*time.Second, "alice told to send only the low layer", func() bool {
		aliceRec.mu.Lock()
		defer aliceRec.mu.Unlock()
		for _, u := range aliceRec.quality {
			if u.GetTrackSid() != pub.Video.SID() {
				continue
			}
			on := 0
			for _, q := range u.GetSubscribedQualities() {
				if q.GetEnabled() {
					on++
				}
			}
			if on == 1 {
				return true
			}
		}
		return false
	})

	// Resume: bob's websocket drops; he resumes and media never stopped.
	bob.DropSignal()
	if err := bob.Resume(ctx); err != nil {
		t.Fatalf("bob resumes: %v", err)
	}
	if got := h.server.Metrics().Resumes.Load(); got != 1 {
		t.Errorf("resumes %d, want 1", got)
	}
	flowing(t, bobVideo, 20, "alice's video reaching bob after his resume")
	if err := alice.SendData(livekit.DataPacket_RELIABLE, []byte("after resume"), ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "data reaching bob after his resume", func() bool { return len(bobRec.payloads("alice")) == 3 })
	if _, ok := alice.Participant("bob"); !ok {
		t.Error("bob left the room while resuming")
	}

	// Leave: bob is gone from alice's room at once.
	if err := bob.Leave(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "alice seeing bob leave", func() bool {
		_, ok := alice.Participant("bob")
		return !ok
	})
	flowing(t, remote(t, carol, "alice", webrtc.RTPCodecTypeVideo), 20, "alice's video still reaching carol")
}

// layerSent is the layer the SFU forwards of track sid to identity, -1 when
// none.
func (h *harness) layerSent(identity, sid string) int {
	for _, x := range h.server.roomList() {
		for _, s := range x.sessionList() {
			if s.identity != identity {
				continue
			}
			s.mu.Lock()
			sub, ok := s.downs[sid]
			s.mu.Unlock()
			if ok {
				return sub.down.Layer()
			}
		}
	}
	return -1
}
