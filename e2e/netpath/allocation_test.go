package netpath

import (
	"fmt"
	"testing"
	"time"
)

// Layer heights of the clip publisher's simulcast rungs.
const (
	lowHeight = 180
	topHeight = 720
	sourceFPS = 20
)

func (s *server) describe(name string) string {
	sub := s.subscriber(name)
	if sub == nil {
		return name + ": not connected"
	}
	st := sub.Stats()
	out := fmt.Sprintf("%s: estimate %d kbit/s (%s) budget %d kbit/s probing=%v probes=%d failed=%d",
		name, st.Estimate/1000, st.Source, st.Budget/1000, st.Probing, st.Probes, st.ProbesFailed)
	for _, tr := range st.Tracks {
		if tr.Kind == "video" {
			out += fmt.Sprintf(" video layer=%d target=%d switches=%d paused=%v (%.1fs) nacks=%d rtx=%d",
				tr.Layer, tr.Target, tr.Switches, tr.Paused, tr.PausedSeconds, tr.NACKs, tr.Retransmits)
		}
	}
	return out
}

func (r report) String() string {
	return fmt.Sprintf("%dx%d frames=%d frozen=%dms freezes=%d since=%dms audio=%d video=%d plis=%d",
		r.Width, r.Height, r.Frames, r.FrozenMs, r.Freezes, r.SinceMs, r.Audio, r.Video, r.PLIs)
}

// TestCappedViewerDropsToLowLayerAndRecoversWhileOthersStayOnTop: two
// viewers of one simulcast publisher, each behind its own veth pair. Capping
// one path to 400 kbit/s takes that viewer to the lowest layer within 5 s,
// with at most one second frozen while capped; lifting the cap brings it
// back to the top layer within 15 s. The other viewer never leaves the top.
func TestCappedViewerDropsToLowLayerAndRecoversWhileOthersStayOnTop(t *testing.T) {
	capped, free := newPath(t), newPath(t)
	srv := startServer(t, recorder(t), capped, free)
	const room = "capped"
	srv.publish(t, room)
	recordRates(func() []int {
		out := []int{0}
		if r, ok := srv.sfu.LookupRoom(room); ok {
			if p, ok := r.Publisher(); ok {
				for _, tr := range p.Tracks() {
					if !tr.Codec().IsVideo() {
						out[0] = tr.Bitrates()[0]
					}
				}
			}
		}
		if tr := srv.videoTrack(room); tr != nil {
			b := tr.Bitrates()
			out = append(out, b[:]...)
		}
		return out
	})
	a := srv.watch(t, room, "capped", capped)
	b := srv.watch(t, room, "free", free)

	eventually(t, 20*time.Second, "both viewers decode the top layer", func() (bool, string) {
		ra, rb := a.last(t), b.last(t)
		return ra.Height == topHeight && rb.Height == topHeight, "capped " + ra.String() + "; free " + rb.String()
	})
	freeTop := time.Now()
	freeSwitches := srv.subscriber("free").Stats().Tracks
	// Steady state first: estimates from feedback, a few seconds of video.
	warm := a.last(t).Frames + 3*sourceFPS
	eventually(t, 10*time.Second, "both viewers play the top layer for 3 s", func() (bool, string) {
		r := a.last(t)
		return r.Frames >= warm && r.Height == topHeight && srv.subscriber("capped").Stats().Source == "twcc",
			r.String() + "; " + srv.describe("capped")
	})

	// Cap: down to the lowest layer, quickly and without a long freeze.
	before := a.last(t)
	capped.capRate(t, "400kbit")
	capAt := time.Now()
	markRecord("cap 400kbit")
	t.Logf("capped at %s", capAt.Format("15:04:05.000"))
	dropped := eventually(t, 5*time.Second, "capped viewer drops to the lowest layer", func() (bool, string) {
		r := a.last(t)
		return r.Height == lowHeight, r.String() + "; " + srv.describe("capped")
	})
	// It stays there, decoding, for the rest of the capped period.
	hold := capAt.Add(12 * time.Second)
	eventually(t, time.Until(hold)+2*time.Second, "capped period ends", func() (bool, string) {
		r := a.last(t)
		if r.Height != lowHeight {
			t.Fatalf("capped viewer left the lowest layer while capped: %s; %s", r, srv.describe("capped"))
		}
		return time.Now().After(hold), r.String()
	})
	during := a.last(t)
	frozen := during.frozenAt() - before.frozenAt()
	fps := float64(during.Frames-before.Frames) / during.time().Sub(before.time()).Seconds()
	t.Logf("capped for %v: dropped after %v, frozen %v in %d freezes, %.1f fps decoded; %s",
		time.Since(capAt).Round(time.Millisecond), dropped.Round(time.Millisecond), frozen,
		during.Freezes-before.Freezes, fps, srv.describe("capped"))
	if frozen > time.Second {
		t.Errorf("capped viewer was frozen %v while capped, want at most 1s", frozen)
	}

	// Lift the cap: back to the top.
	capped.uncap(t)
	markRecord("uncap")
	eventually(t, 15*time.Second, "capped viewer returns to the top layer", func() (bool, string) {
		r := a.last(t)
		return r.Height == topHeight, r.String() + "; " + srv.describe("capped")
	})

	// The free viewer stayed on the top layer all along.
	for _, r := range b.since(freeTop) {
		if r.Height != topHeight {
			t.Errorf("free viewer left the top layer at %s: %s", r.time().Format("15:04:05.000"), r)
			break
		}
	}
	st := srv.subscriber("free").Stats()
	for i, tr := range st.Tracks {
		if tr.Kind == "video" && (tr.Layer != 2 || tr.Switches != freeSwitches[i].Switches) {
			t.Errorf("free viewer's video switched layers on the server: %s", srv.describe("free"))
		}
	}
	rb := b.last(t)
	t.Logf("free viewer: %s; %s", rb, srv.describe("free"))
}

// TestLossyPathKeepsTheDecodedFrameRate: 5% of the packets to one viewer
// are dropped at random; retransmissions from the SFU's cache keep its
// decoded frame rate above 90% of the source's.
func TestLossyPathKeepsTheDecodedFrameRate(t *testing.T) {
	lossy := newPath(t)
	srv := startServer(t, nil, lossy)
	const room = "lossy"
	srv.publish(t, room)
	lossy.dropRandom(t, 5)
	v := srv.watch(t, room, "lossy", lossy)
	eventually(t, 15*time.Second, "the viewer decodes video", func() (bool, string) {
		r := v.last(t)
		return r.Frames >= 2*sourceFPS, r.String()
	})
	first := v.last(t)
	const window = 12 * time.Second
	eventually(t, window+2*time.Second, "the measurement window ends", func() (bool, string) {
		r := v.last(t)
		return r.time().Sub(first.time()) >= window, r.String()
	})
	last := v.last(t)
	span := last.time().Sub(first.time()).Seconds()
	fps := float64(last.Frames-first.Frames) / span
	st := srv.subscriber("lossy").Stats()
	var nacks, rtx uint64
	for _, tr := range st.Tracks {
		nacks += tr.NACKs
		rtx += tr.Retransmits
	}
	t.Logf("over %.1fs: %.1f fps decoded of %d sent (%.0f%%), frozen %v in %d freezes, %d NACKed, %d retransmitted; %s",
		span, fps, sourceFPS, 100*fps/sourceFPS, last.frozenAt()-first.frozenAt(), last.Freezes-first.Freezes, nacks, rtx, srv.describe("lossy"))
	if fps < 0.9*sourceFPS {
		t.Errorf("decoded %.1f fps, want at least 90%% of the source's %d", fps, sourceFPS)
	}
	if rtx == 0 {
		t.Error("nothing was retransmitted: the path lost nothing, or NACKs went unanswered")
	}
}

// TestStarvedViewerKeepsAudioWhileVideoIsPaused: a path too narrow for even
// the lowest video layer next to the audio gets its video paused, and the
// audio keeps flowing; when the path widens, video comes back.
func TestStarvedViewerKeepsAudioWhileVideoIsPaused(t *testing.T) {
	narrow := newPath(t)
	srv := startServer(t, nil, narrow)
	const room = "starved"
	srv.publish(t, room)
	v := srv.watch(t, room, "starved", narrow)
	eventually(t, 15*time.Second, "the viewer decodes video", func() (bool, string) {
		r := v.last(t)
		return r.Frames >= 2*sourceFPS, r.String()
	})
	// Audio (Opus at ~75 kbit/s, ~105 kbit/s on the wire) fits in 200
	// kbit/s; with the lowest video layer (~180 kbit/s more) it does not.
	narrow.capRate(t, "200kbit")
	eventually(t, 10*time.Second, "the server pauses the video", func() (bool, string) {
		return srv.paused("starved"), srv.describe("starved")
	})
	from := v.last(t)
	const window = 8 * time.Second
	eventually(t, window+2*time.Second, "the measurement window ends", func() (bool, string) {
		if !srv.paused("starved") {
			t.Fatalf("video resumed on the narrow path: %s", srv.describe("starved"))
		}
		r := v.last(t)
		return r.time().Sub(from.time()) >= window, r.String()
	})
	to := v.last(t)
	span := to.time().Sub(from.time()).Seconds()
	audioRate := float64(to.Audio-from.Audio) / span
	t.Logf("paused for %.1fs: %.1f audio packets/s (the source sends 50), %d video frames decoded; %s",
		span, audioRate, to.Frames-from.Frames, srv.describe("starved"))
	if audioRate < 0.9*50 {
		t.Errorf("audio at %.1f packets/s while video was paused, want at least 45", audioRate)
	}
	narrow.uncap(t)
	eventually(t, 15*time.Second, "video resumes once the path widens", func() (bool, string) {
		r := v.last(t)
		return r.Frames > to.Frames+sourceFPS && !srv.paused("starved"), r.String() + "; " + srv.describe("starved")
	})
}

// paused reports whether the named viewer's video is paused on the server.
func (s *server) paused(name string) bool {
	sub := s.subscriber(name)
	if sub == nil {
		return false
	}
	for _, tr := range sub.Stats().Tracks {
		if tr.Kind == "video" {
			return tr.Paused
		}
	}
	return false
}
