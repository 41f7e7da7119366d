package rtpsrc

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/starling-sfu/starling/clip"
	"github.com/starling-sfu/starling/transcode"
)

// syncSender is a synthetic sender that captures video (25 fps) and audio
// (20 ms) from the same instant, 0, with random RTP timestamp bases, and
// whose packets cross a network with a base delay per track and jitter.
type syncSender struct {
	videoDelay, audioDelay time.Duration
	jitter                 time.Duration
	// senderClock is how far the sender's NTP clock is ahead of ours.
	senderClock time.Duration
	// srFrom is when the sender starts sending Sender Reports, every
	// 500 ms; negative: never.
	srFrom time.Duration
	// badVideoSR puts the video SR sent at a capture time this far off.
	badVideoSR map[time.Duration]time.Duration
	duration   time.Duration
}

const (
	videoStep = 40 * time.Millisecond
	audioStep = 20 * time.Millisecond
)

type syncEvent struct {
	at   time.Duration
	pkts []timedPacket // RTP for tr
	sr   *rtcp.SenderReport
	tr   *Track
}

// run plays the sender into src and returns the frames delivered.
func (s syncSender) run(t *testing.T, o Options) (*Source, []transcode.Frame, []transcode.Frame) {
	t.Helper()
	rec := &recorder{}
	o.Logger = testLog()
	src := NewSource(rec, o)
	video, err := src.AddTrack(TrackParams{MimeType: mimeOf(clip.VP8)})
	if err != nil {
		t.Fatal(err)
	}
	audio, err := src.AddTrack(TrackParams{MimeType: mimeOf(clip.Opus)})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	vclip, aclip := mustClip(t, clip.VP8, "q"), mustClip(t, clip.Opus, "")
	vs := newStream(clip.VP8, 1, uint16(rng.Uint32()), rng.Uint32(), 3600)
	as := newStream(clip.Opus, 2, uint16(rng.Uint32()), rng.Uint32(), 960)
	vBase, aBase := vs.ts, as.ts
	jitter := func() time.Duration {
		if s.jitter == 0 {
			return 0
		}
		return time.Duration(rng.Int64N(int64(s.jitter)))
	}

	var events []syncEvent
	for c := time.Duration(0); c < s.duration; c += audioStep {
		if c%videoStep == 0 {
			for k, p := range vs.next(vclip.Frames[int(c/videoStep)%len(vclip.Frames)].Data) {
				a := c + s.videoDelay + time.Duration(k)*200*time.Microsecond + jitter()
				events = append(events, syncEvent{at: a, pkts: []timedPacket{{p, a}}, tr: video})
			}
		}
		p := as.next(aclip.Frames[int(c/audioStep)%len(aclip.Frames)].Data)[0]
		a := c + s.audioDelay + jitter()
		events = append(events, syncEvent{at: a, pkts: []timedPacket{{p, a}}, tr: audio})
		if s.srFrom >= 0 && c >= s.srFrom && c%(500*time.Millisecond) == 0 {
			ntp := ntpTime(at(c + s.senderClock))
			vntp := ntpTime(at(c + s.senderClock + s.badVideoSR[c]))
			events = append(events,
				syncEvent{at: c + s.videoDelay, tr: video, sr: &rtcp.SenderReport{SSRC: 1, NTPTime: vntp, RTPTime: vBase + uint32(c/time.Millisecond)*90}},
				syncEvent{at: c + s.audioDelay, tr: audio, sr: &rtcp.SenderReport{SSRC: 2, NTPTime: ntp, RTPTime: aBase + uint32(c/time.Millisecond)*48}})
		}
	}
	for c := time.Duration(0); c < s.duration+time.Second; c += 10 * time.Millisecond {
		events = append(events, syncEvent{at: c})
	}
	slices.SortStableFunc(events, func(a, b syncEvent) int { return int(a.at - b.at) })
	for _, e := range events {
		switch {
		case e.sr != nil:
			e.tr.WriteRTCP([]rtcp.Packet{e.sr}, at(e.at))
		case e.tr != nil:
			e.tr.WriteRTP(e.pkts[0].p, at(e.at))
		default:
			src.Tick(at(e.at))
		}
	}
	_, v, a := rec.snapshot()
	if len(v) != int(s.duration/videoStep) || len(a) != int(s.duration/audioStep) {
		t.Fatalf("%d video and %d audio frames out, want %d and %d", len(v), len(a), s.duration/videoStep, s.duration/audioStep)
	}
	for _, fs := range [][]transcode.Frame{v, a} {
		for i := 1; i < len(fs); i++ {
			if fs[i].PTS <= fs[i-1].PTS {
				t.Fatalf("PTS went from %v to %v", fs[i-1].PTS, fs[i].PTS)
			}
		}
	}
	return src, v, a
}

// ntpTime is the 64-bit NTP form of t.
func ntpTime(t time.Time) uint64 {
	sec := uint64(t.Unix() + ntpEpochOffset)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return sec<<32 | frac
}

// skew returns, for the video frames captured in [from, to), or from `from`
// on when to is 0, the PTS of each minus that of the audio frame captured at
// the same instant; the largest in magnitude.
func skew(v, a []transcode.Frame, from, to time.Duration) time.Duration {
	end := len(v)
	if to > 0 {
		end = int(to / videoStep)
	}
	var worst time.Duration
	for i := int(from / videoStep); i < end; i++ {
		if d := v[i].PTS - a[2*i].PTS; d.Abs() > worst.Abs() {
			worst = d
		}
	}
	return worst
}

func within(d, want, tol time.Duration) bool { return d >= want-tol && d <= want+tol }

func TestSenderReportsAlignTracksDespiteUnequalDelays(t *testing.T) {
	s := syncSender{videoDelay: 30 * time.Millisecond, audioDelay: 10 * time.Millisecond, jitter: 3 * time.Millisecond,
		senderClock: 3700 * time.Millisecond, srFrom: 0, duration: 4 * time.Second}
	src, v, a := s.run(t, Options{})
	if st := src.Stats(); st.Sync != SyncSenderReports {
		t.Fatalf("sync %v, want sender reports", st.Sync)
	}
	if d := skew(v, a, 0, 0); !within(d, 0, time.Millisecond) {
		t.Fatalf("video and audio captured together are %v apart", d)
	}
	// PTS 0 is the first frame, mapped to when the least-delayed track
	// (audio, 10 ms) would have brought it; the sender's clock offset does
	// not leak in.
	if o, ok := src.Origin(); !ok || !within(o.Sub(at(0)), s.audioDelay, 3*time.Millisecond) {
		t.Fatalf("origin %v after capture, want about %v", o.Sub(at(0)), s.audioDelay)
	}
	if v[0].PTS != 0 && a[0].PTS != 0 {
		t.Fatalf("first frames at %v and %v, want one at 0", v[0].PTS, a[0].PTS)
	}
}

func TestArrivalFallbackAlignsTracksWithEqualDelays(t *testing.T) {
	s := syncSender{videoDelay: 20 * time.Millisecond, audioDelay: 20 * time.Millisecond, jitter: 3 * time.Millisecond,
		srFrom: -1, duration: 4 * time.Second}
	src, v, a := s.run(t, Options{})
	if st := src.Stats(); st.Sync != SyncArrival || st.SenderReports != 0 {
		t.Fatalf("stats %+v, want arrival sync", st)
	}
	if d := skew(v, a, 0, 0); !within(d, 0, time.Millisecond) {
		t.Fatalf("video and audio captured together are %v apart", d)
	}
	if o, ok := src.Origin(); !ok || !within(o.Sub(at(0)), s.videoDelay, time.Millisecond) {
		t.Fatalf("origin %v after capture, want about %v", o.Sub(at(0)), s.videoDelay)
	}
}

// The fallback's limit: without Sender Reports, a difference in the tracks'
// delays is a difference in their timing.
func TestArrivalFallbackCannotSeeUnequalDelays(t *testing.T) {
	s := syncSender{videoDelay: 30 * time.Millisecond, audioDelay: 10 * time.Millisecond, srFrom: 0, duration: 2 * time.Second}
	src, v, a := s.run(t, Options{IgnoreSenderReports: true})
	if st := src.Stats(); st.Sync != SyncArrival {
		t.Fatalf("sync %v, want arrival", st.Sync)
	}
	if d := skew(v, a, 0, 0); !within(d, 20*time.Millisecond, time.Millisecond) {
		t.Fatalf("skew %v, want the 20 ms delay difference", d)
	}
}

// Sender Reports that come after SyncWait: the timeline starts by arrival,
// and aligns once both tracks have had one.
func TestLateSenderReportsAlignTheRunningTimeline(t *testing.T) {
	s := syncSender{videoDelay: 30 * time.Millisecond, audioDelay: 10 * time.Millisecond, jitter: 2 * time.Millisecond,
		senderClock: -2 * time.Second, srFrom: time.Second, duration: 4 * time.Second}
	src, v, a := s.run(t, Options{SyncWait: 200 * time.Millisecond})
	if st := src.Stats(); st.Sync != SyncSenderReports {
		t.Fatalf("sync %v, want sender reports", st.Sync)
	}
	if d := skew(v, a, 0, time.Second); !within(d, 20*time.Millisecond, 3*time.Millisecond) {
		t.Fatalf("skew before the reports %v, want the 20 ms delay difference", d)
	}
	// Trusted from the second report of each track, at 1.5 s.
	if d := skew(v, a, 1600*time.Millisecond, 0); !within(d, 0, time.Millisecond) {
		t.Fatalf("skew after the reports %v, want 0", d)
	}
}

// An SFU that builds Sender Reports from send times gives a wild one while it
// replays cached frames to a new viewer. A report is trusted only when the
// next agrees with it, so a lone wild one, at the start or later, moves
// nothing.
func TestALoneWildSenderReportIsNotTrusted(t *testing.T) {
	s := syncSender{videoDelay: 30 * time.Millisecond, audioDelay: 10 * time.Millisecond, jitter: 2 * time.Millisecond,
		srFrom: 0, duration: 4 * time.Second,
		badVideoSR: map[time.Duration]time.Duration{500 * time.Millisecond: 400 * time.Millisecond, 2500 * time.Millisecond: -300 * time.Millisecond}}
	src, v, a := s.run(t, Options{SyncWait: 3 * time.Second})
	if st := src.Stats(); st.Sync != SyncSenderReports {
		t.Fatalf("sync %v, want sender reports", st.Sync)
	}
	if d := skew(v, a, 0, 0); !within(d, 0, time.Millisecond) {
		t.Fatalf("video and audio captured together are up to %v apart", d)
	}
}
