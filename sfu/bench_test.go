package sfu

import (
	"fmt"
	"testing"

	"github.com/pion/rtp"
)

// BenchmarkForward measures the SFU's own per-packet cost of forwarding one
// received packet to n subscribers: keyframe check, cache write, fan-out,
// layer check, rewriting and bookkeeping. The transport (SRTP, sockets) is a
// counting fake. ns/op is per received packet; ns/fwd per forwarded copy.
func BenchmarkForward(b *testing.B) {
	for _, n := range []int{1, 50, 200} {
		for _, workers := range []int{0, 1} {
			b.Run(fmt.Sprintf("subs=%d/workers=%d", n, workers), func(b *testing.B) {
				tt := newTestTrack(b, workers)
				for range n {
					tt.subscribe(b, DownTrackOptions{Layer: 2, Pinned: true}, false)
				}
				tt.frame(2, 0, true)
				l := tt.layers[2].Load()
				payload := make([]byte, 1100)
				payload[0] = 0x10
				payload[1] = 0x01 // interframe
				hdr := rtp.Header{Version: 2, PayloadType: 96, SSRC: 12, SequenceNumber: tt.seq[2], Timestamp: tt.ts[2]}
				raw, _ := (&rtp.Packet{Header: hdr, Payload: payload}).Marshal()
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					hdr.SequenceNumber++
					hdr.Timestamp += 1500
					tt.ingest(l, &hdr, raw, payload, &tt.wg)
				}
				b.StopTimer()
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/fwd")
			})
		}
	}
}
