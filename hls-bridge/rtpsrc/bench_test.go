package rtpsrc

import (
	"testing"
	"time"

	"github.com/starling-sfu/starling/clip"
	"github.com/starling-sfu/starling/transcode"
)

type discard struct{}

func (discard) OnFormat(string, int, int) {}
func (discard) OnVideo(transcode.Frame)   {}
func (discard) OnAudio(transcode.Frame)   {}

// BenchmarkSourcePacket is the cost of one video packet through reorder,
// depacketizer and timeline (one allocation per frame, for its data).
func BenchmarkSourcePacket(b *testing.B) {
	for _, codec := range []clip.Codec{clip.VP8, clip.H264} {
		b.Run(string(codec), func(b *testing.B) {
			c := mustClip(b, codec, "f")
			s := newStream(codec, 1, 1, 1, 4500)
			var pkts []timedPacket
			for pass := time.Duration(0); len(pkts) < b.N; pass++ {
				for _, p := range packetsOf(s, c.Frames) {
					pkts = append(pkts, timedPacket{p.p, p.at + pass*c.Duration()})
				}
			}
			src := NewSource(discard{}, Options{SyncWait: -1, Logger: testLog()})
			tr, _ := src.AddTrack(TrackParams{MimeType: codec.MimeType()})
			b.ReportAllocs()
			b.ResetTimer()
			for _, p := range pkts[:b.N] {
				tr.WriteRTP(p.p, at(p.at))
			}
			b.StopTimer()
			if st := src.Stats().Video; st.Dropped != 0 || st.Lost != 0 {
				b.Fatalf("stats %+v", st)
			}
		})
	}
}
