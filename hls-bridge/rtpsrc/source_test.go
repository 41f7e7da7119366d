package rtpsrc

import (
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/starling-sfu/starling/clip"
)

const frameGap = 50 * time.Millisecond // the clips' 20 fps

// videoSource is a Source with one video track that starts its timeline at
// once, and counts keyframe requests.
func videoSource(t *testing.T, codec clip.Codec) (*Source, *Track, *recorder, *atomic.Int64) {
	t.Helper()
	rec := &recorder{}
	var asked atomic.Int64
	src := NewSource(rec, Options{SyncWait: -1, ReorderDelay: 100 * time.Millisecond, RequestKeyframe: func(uint32) { asked.Add(1) }, Logger: testLog()})
	tr, err := src.AddTrack(TrackParams{MimeType: mimeOf(codec)})
	if err != nil {
		t.Fatal(err)
	}
	return src, tr, rec, &asked
}

type timedPacket struct {
	p  *rtp.Packet
	at time.Duration
}

// packetsOf packetizes frames, frame i arriving at i×frameGap, its packets
// 100 µs apart.
func packetsOf(s *rtpStream, frames []clip.Frame) []timedPacket {
	var out []timedPacket
	for i, f := range frames {
		for k, p := range s.next(f.Data) {
			out = append(out, timedPacket{p, time.Duration(i)*frameGap + time.Duration(k)*100*time.Microsecond})
		}
	}
	return out
}

func play(src *Source, tr *Track, pkts []timedPacket) {
	var last time.Duration
	for _, tp := range pkts {
		tr.WriteRTP(tp.p, at(tp.at))
		src.Tick(at(tp.at))
		last = tp.at
	}
	src.Tick(at(last + time.Second))
}

func TestVideoFramesSurviveReorderingDuplicatesAndWraparound(t *testing.T) {
	for _, codec := range []clip.Codec{clip.VP8, clip.H264} {
		t.Run(string(codec), func(t *testing.T) {
			c := mustClip(t, codec, "q")
			src, tr, rec, _ := videoSource(t, codec)
			// Sequence numbers and timestamps both wrap a few frames in.
			s := newStream(codec, 1234, 65500, 1<<32-5*4500, 4500)
			pkts := packetsOf(s, c.Frames)
			rng := rand.New(rand.NewPCG(1, 2))
			// A quarter of the packets are delayed by up to 40 ms, so later
			// ones overtake them; one in 20 is repeated 30 ms later.
			dups := 0
			for i := range pkts {
				if rng.IntN(4) == 0 {
					pkts[i].at += time.Duration(1+rng.IntN(40)) * time.Millisecond
				}
				if rng.IntN(20) == 0 {
					pkts = append(pkts, timedPacket{pkts[i].p, pkts[i].at + 30*time.Millisecond})
					dups++
				}
			}
			slices.SortStableFunc(pkts, func(a, b timedPacket) int { return int(a.at - b.at) })
			play(src, tr, pkts)

			formats, video, _ := rec.snapshot()
			if len(video) != len(c.Frames) {
				t.Fatalf("%d frames out, want %d (stats %+v)", len(video), len(c.Frames), src.Stats().Video)
			}
			for i, f := range video {
				if !sameFrame(codec, f.Data, c.Frames[i].Data) || f.Key != c.Frames[i].Keyframe {
					t.Fatalf("frame %d differs from the one sent (key %v, want %v)", i, f.Key, c.Frames[i].Keyframe)
				}
				if want := time.Duration(i) * frameGap; f.PTS < want-time.Millisecond || f.PTS > want+time.Millisecond {
					t.Fatalf("frame %d PTS %v, want %v", i, f.PTS, want)
				}
			}
			if want := string(codec) + " 320x180 @0"; len(formats) != 1 || formats[0] != want {
				t.Fatalf("formats %q, want [%q]", formats, want)
			}
			st := src.Stats().Video
			if st.Lost != 0 || st.Dropped != 0 || st.Discarded != uint64(dups) {
				t.Fatalf("stats %+v, want no loss, no drop, %d discarded", st, dups)
			}
		})
	}
}

func TestVideoLossDropsFramesUntilTheNextKeyframe(t *testing.T) {
	for _, codec := range []clip.Codec{clip.VP8, clip.H264} {
		t.Run(string(codec), func(t *testing.T) {
			c := mustClip(t, codec, "q")
			src, tr, rec, asked := videoSource(t, codec)
			pkts := packetsOf(newStream(codec, 99, 100, 5000, 4500), c.Frames)
			const lostFrame = 25 // keyframes are 0, 20, 40, 60
			rest := -1           // packets of the frame left after the loss
			for i, tp := range pkts {
				if tp.at/frameGap == lostFrame {
					if rest < 0 {
						pkts = slices.Delete(pkts, i, i+1) // the frame's first packet
					}
					rest++
				}
			}
			wantDropped := uint64(14) // 26…39
			if rest > 0 {
				wantDropped++ // and what was left of 25
			}
			askedBefore := int64(-1)
			for _, tp := range pkts {
				if tp.at == 40*frameGap && askedBefore < 0 {
					askedBefore = asked.Load()
				}
				tr.WriteRTP(tp.p, at(tp.at))
				src.Tick(at(tp.at))
			}
			src.Tick(at(5 * time.Second))

			_, video, _ := rec.snapshot()
			want := len(c.Frames) - 15 // 25…39 dropped
			if len(video) != want {
				t.Fatalf("%d frames out, want %d", len(video), want)
			}
			if !video[lostFrame].Key || video[lostFrame].PTS != 40*frameGap {
				t.Fatalf("first frame after the loss: key=%v PTS %v, want the keyframe at %v", video[lostFrame].Key, video[lostFrame].PTS, 40*frameGap)
			}
			// None at the start (it is a keyframe), one when the loss is
			// found, another KeyframeInterval later.
			if askedBefore != 2 {
				t.Fatalf("%d keyframe requests before the next keyframe arrived, want 2", askedBefore)
			}
			if st := src.Stats().Video; st.Lost != 1 || st.Dropped != wantDropped {
				t.Fatalf("stats %+v, want 1 lost, %d dropped", st, wantDropped)
			}
		})
	}
}

func TestVideoSizeChangeIsReportedBeforeItsKeyframe(t *testing.T) {
	for _, codec := range []clip.Codec{clip.VP8, clip.H264} {
		t.Run(string(codec), func(t *testing.T) {
			q, h := mustClip(t, codec, "q"), mustClip(t, codec, "h")
			src, tr, rec, _ := videoSource(t, codec)
			frames := append(append([]clip.Frame(nil), q.Frames[:20]...), h.Frames[:20]...)
			play(src, tr, packetsOf(newStream(codec, 7, 1, 1, 4500), frames))
			formats, video, _ := rec.snapshot()
			want := []string{string(codec) + " 320x180 @0", string(codec) + " 640x360 @20"}
			if !slices.Equal(formats, want) || len(video) != 40 {
				t.Fatalf("formats %q over %d frames, want %q over 40", formats, len(video), want)
			}
		})
	}
}

func TestH264KeyframeWithoutParameterSetsIsCompleted(t *testing.T) {
	c := mustClip(t, clip.H264, "q")
	frames := append([]clip.Frame(nil), c.Frames[:21]...)
	// Strip SPS and PPS from the second keyframe, frame 20.
	var bare []byte
	for _, n := range nalUnits(frames[20].Data) {
		if typ := n[0] & 0x1f; typ != nalSPS && typ != nalPPS {
			bare = append(append(bare, 0, 0, 0, 1), n...)
		}
	}
	frames[20] = clip.Frame{Data: bare, Keyframe: true}
	src, tr, rec, _ := videoSource(t, clip.H264)
	play(src, tr, packetsOf(newStream(clip.H264, 7, 1, 1, 4500), frames))
	_, video, _ := rec.snapshot()
	if len(video) != 21 {
		t.Fatalf("%d frames out, want 21", len(video))
	}
	if got := video[20]; !got.Key || !sameFrame(clip.H264, got.Data, c.Frames[20].Data) {
		t.Fatalf("bare IDR came out as %d NAL units, key=%v; want the original's %d with SPS and PPS",
			len(nalUnits(got.Data)), got.Key, len(nalUnits(c.Frames[20].Data)))
	}
}

func TestOpusPacketsComeOutOn20msSteps(t *testing.T) {
	c := mustClip(t, clip.Opus, "")
	rec := &recorder{}
	src := NewSource(rec, Options{SyncWait: -1, Logger: testLog()})
	tr, err := src.AddTrack(TrackParams{MimeType: "audio/opus"})
	if err != nil {
		t.Fatal(err)
	}
	s := newStream(clip.Opus, 5, 65530, 1<<32-960*3, 960)
	const lost = 50
	for i, f := range c.Frames {
		p := s.next(f.Data)[0]
		if i != lost {
			tr.WriteRTP(p, at(time.Duration(i)*20*time.Millisecond))
		}
		src.Tick(at(time.Duration(i) * 20 * time.Millisecond))
	}
	src.Tick(at(time.Hour))
	_, _, audio := rec.snapshot()
	if len(audio) != len(c.Frames)-1 {
		t.Fatalf("%d packets out, want %d", len(audio), len(c.Frames)-1)
	}
	for i, f := range audio {
		src := i
		if i >= lost {
			src++
		}
		if want := time.Duration(src) * 20 * time.Millisecond; f.PTS != want || !f.Key || !sameFrame(clip.Opus, f.Data, c.Frames[src].Data) {
			t.Fatalf("packet %d: PTS %v key %v, want PTS %v, the sent bytes", i, f.PTS, f.Key, want)
		}
	}
	if st := src.Stats().Audio; st.Lost != 1 {
		t.Fatalf("stats %+v, want 1 lost", st)
	}
}
