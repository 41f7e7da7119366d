package clip

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// sentPacket is a copy of one packet a Stream emitted.
type sentPacket struct {
	pkt      rtp.Packet
	keyframe bool
	frame    int // count of NextFrame calls before this one
}

// collect runs frames NextFrame calls on s and copies every packet.
func collect(t testing.TB, s *Stream, frames int) []sentPacket {
	t.Helper()
	var out []sentPacket
	for i := range frames {
		err := s.NextFrame(func(p *rtp.Packet, keyframe bool) error {
			c := *p
			c.Payload = append([]byte(nil), p.Payload...)
			out = append(out, sentPacket{pkt: c, keyframe: keyframe, frame: i})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// allClips returns every video clip and the audio clip.
func allClips(t testing.TB) []*Clip {
	t.Helper()
	a, err := Audio()
	if err != nil {
		t.Fatal(err)
	}
	return append(videoClips(t), a)
}

func name(c *Clip) string {
	if c.RID == "" {
		return string(c.Codec)
	}
	return fmt.Sprintf("%s/%s", c.Codec, c.RID)
}

func TestStreamHeadersContinueAcrossLoops(t *testing.T) {
	for _, c := range allClips(t) {
		t.Run(name(c), func(t *testing.T) {
			frames := 2*len(c.Frames) + len(c.Frames)/2 // two and a half loops
			s := NewStream(c, 0x1234, 96)
			pkts := collect(t, s, frames)
			first := pkts[0].pkt
			for i, sp := range pkts {
				p := sp.pkt
				if p.Version != 2 || p.SSRC != 0x1234 || p.PayloadType != 96 {
					t.Fatalf("packet %d: version %d ssrc %#x pt %d", i, p.Version, p.SSRC, p.PayloadType)
				}
				if want := first.SequenceNumber + uint16(i); p.SequenceNumber != want {
					t.Fatalf("packet %d: seq %d, want %d", i, p.SequenceNumber, want)
				}
				if want := first.Timestamp + uint32(sp.frame)*c.TimestampStep(); p.Timestamp != want {
					t.Fatalf("packet %d (frame %d): ts %d, want %d", i, sp.frame, p.Timestamp, want)
				}
				if want := c.Frames[sp.frame%len(c.Frames)].Keyframe; sp.keyframe != want {
					t.Fatalf("packet %d (frame %d): keyframe %v, want %v", i, sp.frame, sp.keyframe, want)
				}
				if len(p.Payload) > maxPayload || p.MarshalSize() > MTU {
					t.Fatalf("packet %d: %d bytes on the wire, MTU %d", i, p.MarshalSize(), MTU)
				}
				lastOfFrame := i == len(pkts)-1 || pkts[i+1].frame != sp.frame
				wantMarker := lastOfFrame
				if !c.Codec.isVideo() {
					wantMarker = i == 0
				}
				if p.Marker != wantMarker {
					t.Fatalf("packet %d (frame %d): marker %v, want %v", i, sp.frame, p.Marker, wantMarker)
				}
			}
		})
	}
}

func TestStreamLoopRestartsAtKeyframe(t *testing.T) {
	c, err := Video(VP8, "q")
	if err != nil {
		t.Fatal(err)
	}
	pkts := collect(t, NewStream(c, 1, 96), len(c.Frames)+1)
	i := len(pkts) - 1
	for pkts[i-1].frame == len(c.Frames) {
		i--
	}
	next := pkts[i]
	if !next.keyframe {
		t.Fatalf("frame %d after the loop is not a keyframe", next.frame)
	}
	var d codecs.VP8Packet
	if _, err := d.Unmarshal(next.pkt.Payload); err != nil {
		t.Fatal(err)
	}
	if d.S != 1 || d.Payload[0]&1 != 0 {
		t.Error("first packet after the loop does not start a VP8 keyframe")
	}
}

func TestVP8PacketsReassembleIntoTheFrameWithContinuousPictureIDs(t *testing.T) {
	for _, rid := range RIDs() {
		c, err := Video(VP8, rid)
		if err != nil {
			t.Fatal(err)
		}
		pkts := collect(t, NewStream(c, 1, 96), len(c.Frames)+5)
		frames := make([][]byte, len(c.Frames)+5)
		var firstID uint16
		for i, sp := range pkts {
			var d codecs.VP8Packet
			if _, err := d.Unmarshal(sp.pkt.Payload); err != nil {
				t.Fatalf("%s packet %d: %v", rid, i, err)
			}
			if i == 0 {
				firstID = d.PictureID
			}
			if want := (firstID + uint16(sp.frame)) & 0x7fff; d.PictureID != want {
				t.Fatalf("%s frame %d: picture id %d, want %d", rid, sp.frame, d.PictureID, want)
			}
			startsFrame := i == 0 || pkts[i-1].frame != sp.frame
			if (d.S == 1) != startsFrame {
				t.Fatalf("%s packet %d: S bit %d, starts frame %v", rid, i, d.S, startsFrame)
			}
			frames[sp.frame] = append(frames[sp.frame], d.Payload...)
		}
		for i, f := range frames {
			if !bytes.Equal(f, c.Frames[i%len(c.Frames)].Data) {
				t.Fatalf("%s frame %d: reassembled %d bytes differ from the clip's %d",
					rid, i, len(f), len(c.Frames[i%len(c.Frames)].Data))
			}
		}
	}
}

func TestH264PacketsReassembleIntoTheAccessUnit(t *testing.T) {
	for _, rid := range RIDs() {
		c, err := Video(H264, rid)
		if err != nil {
			t.Fatal(err)
		}
		pkts := collect(t, NewStream(c, 1, 102), len(c.Frames))
		frames := make([][]byte, len(c.Frames))
		var d codecs.H264Packet
		for i, sp := range pkts {
			out, err := d.Unmarshal(sp.pkt.Payload)
			if err != nil {
				t.Fatalf("%s packet %d: %v", rid, i, err)
			}
			frames[sp.frame] = append(frames[sp.frame], out...)
		}
		for i, f := range frames {
			if got, want := nalUnits(f), nalUnits(c.Frames[i].Data); !equalUnits(got, want) {
				t.Fatalf("%s frame %d: reassembled %d nal units differ from the clip's %d", rid, i, len(got), len(want))
			}
		}
	}
}

// nalUnits splits an Annex-B buffer into NAL units without start codes.
func nalUnits(annexB []byte) [][]byte {
	var units [][]byte
	for off := 0; off < len(annexB); {
		_, start, next := nextNAL(annexB, off)
		if start < 0 {
			break
		}
		units = append(units, annexB[start:next])
		off = next
	}
	return units
}

func equalUnits(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestStreamResetsHeaderChangesMadeByEmit(t *testing.T) {
	c, err := Video(H264, "q")
	if err != nil {
		t.Fatal(err)
	}
	s := NewStream(c, 7, 102)
	err = s.NextFrame(func(p *rtp.Packet, _ bool) error {
		p.SSRC, p.PayloadType = 99, 99
		return p.SetExtension(3, []byte{1, 2, 3})
	})
	if err != nil {
		t.Fatal(err)
	}
	pkts := collect(t, s, 1)
	if p := pkts[0].pkt; p.SSRC != 7 || p.PayloadType != 102 || p.Extension || len(p.Extensions) != 0 {
		t.Errorf("header after emit changed it: %+v", p.Header)
	}
}

func TestStreamNextFrameDoesNotAllocate(t *testing.T) {
	for _, c := range allClips(t) {
		s := NewStream(c, 1, 96)
		emit := func(*rtp.Packet, bool) error { return nil }
		// Run through more than one loop so every frame size is seen.
		if allocs := testing.AllocsPerRun(2*len(c.Frames), func() { _ = s.NextFrame(emit) }); allocs != 0 {
			t.Errorf("%s: %.1f allocations per frame, want 0", name(c), allocs)
		}
	}
}

func BenchmarkStreamNextFrame(b *testing.B) {
	for _, c := range allClips(b) {
		b.Run(name(c), func(b *testing.B) {
			s := NewStream(c, 1, 96)
			var bytes, packets int
			emit := func(p *rtp.Packet, _ bool) error {
				bytes += len(p.Payload)
				packets++
				return nil
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := s.NextFrame(emit); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(packets)/float64(b.N), "packets/frame")
			b.SetBytes(int64(bytes / max(b.N, 1)))
		})
	}
}

// A keyframe request is answered at the next frame, by skipping ahead to
// the clip's next keyframe, with timestamps one frame on.
func TestStreamAnswersAKeyframeRequestAtTheNextFrame(t *testing.T) {
	c, err := Video(H264, "h")
	if err != nil {
		t.Fatal(err)
	}
	s := NewStream(c, 1, 96)
	var keys []bool
	var stamps []uint32
	for i := range 8 {
		if i == 3 {
			s.RequestKeyframe()
		}
		first := true
		if err := s.NextFrame(func(p *rtp.Packet, key bool) error {
			if first {
				keys, stamps, first = append(keys, key), append(stamps, p.Timestamp), false
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for i, k := range keys {
		if want := i == 0 || i == 3; k != want {
			t.Errorf("frame %d keyframe=%v, want %v (requested before frame 3)", i, k, want)
		}
		if i > 0 && stamps[i]-stamps[i-1] != c.TimestampStep() {
			t.Errorf("frame %d timestamp steps by %d, want %d", i, stamps[i]-stamps[i-1], c.TimestampStep())
		}
	}
}
