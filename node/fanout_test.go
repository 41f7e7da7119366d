package node

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/starling-sfu/starling/clip"
	"github.com/starling-sfu/starling/loadtest"
	"github.com/starling-sfu/starling/sfu"
)

// TestSimulcastPublisherFansOutToFiftyWHEPViewers publishes real VP8 and
// H.264 clips with three simulcast layers over WHIP and plays them to 50 WHEP
// viewers. Every viewer must start on a keyframe, see sequence numbers with
// no hole and timestamps that never go back, and receive exactly the
// payloads the publisher sent on the top layer, in order.
func TestSimulcastPublisherFansOutToFiftyWHEPViewers(t *testing.T) {
	for _, codec := range []clip.Codec{clip.VP8, clip.H264} {
		t.Run(string(codec), func(t *testing.T) { testFanout(t, codec, 50) })
	}
}

func testFanout(t *testing.T, codec clip.Codec, viewers int) {
	n := startNode(t, nil)
	room := "fanout-" + string(codec)
	sent := newSentLog()
	pub, err := loadtest.Publish(ctxTimeout(t, 10*time.Second), loadtest.PublisherOptions{
		URL: n.url("/whip/" + room), Token: mintToken(t, room, "pub", true),
		Codec: codec, Simulcast: true, Audio: true, OnSend: sent.onSend,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(context.Background())
	if err := pub.WaitConnected(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	track := n.videoTrack(t, room, 3)

	// The viewers send NACKs and receiver reports but no transport-wide
	// feedback, as loadtest's viewers do: fifty of them in this process
	// stamp arrival times late whenever the machine is busy, which a
	// bandwidth estimator reads, rightly, as congestion and answers with
	// lower layers. This test is about forwarding (e2e/netpath tests the
	// estimates on real paths), so every viewer should get the top layer.
	api, err := loadtest.NewViewerAPI(true)
	if err != nil {
		t.Fatal(err)
	}
	subs := make([]*loadtest.Subscriber, viewers)
	logs := make([]*recvLog, viewers)
	connectedAt := make([]time.Time, viewers)
	var wg sync.WaitGroup
	errs := make(chan error, viewers)
	for i := range viewers {
		logs[i] = &recvLog{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rl := logs[i]
			s, err := loadtest.Subscribe(ctxTimeout(t, 20*time.Second), loadtest.SubscriberOptions{
				URL: n.url("/whep/" + room), API: api,
				OnRTP: func(kind webrtc.RTPCodecType, p *rtp.Packet, at time.Time) {
					r := recvPkt{seq: p.SequenceNumber, ts: p.Timestamp, fp: fingerprint(p.Payload), at: at, size: len(p.Payload),
						pad: p.Padding && len(p.Payload) == 0}
					rl.mu.Lock()
					if kind == webrtc.RTPCodecTypeVideo {
						r.key = track.Codec().KeyframeStart(p.Payload)
						rl.video = append(rl.video, r)
					} else {
						rl.audio = append(rl.audio, r)
					}
					rl.mu.Unlock()
				},
			})
			if err != nil {
				errs <- fmt.Errorf("viewer %d: %w", i, err)
				return
			}
			subs[i] = s
			if err := s.WaitConnected(ctxTimeout(t, 20*time.Second)); err != nil {
				errs <- fmt.Errorf("viewer %d: %w", i, err)
				return
			}
			connectedAt[i] = time.Now()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	defer func() {
		for _, s := range subs {
			_ = s.Close(context.Background())
		}
	}()

	// Let every viewer receive at least three seconds of the top layer.
	eventually(t, 30*time.Second, "every viewer to receive 3 s of video", func() bool {
		for _, rl := range logs {
			rl.mu.Lock()
			n := len(rl.video)
			var span time.Duration
			if n > 0 {
				span = rl.video[n-1].at.Sub(rl.video[0].at)
			}
			rl.mu.Unlock()
			if span < 3*time.Second {
				return false
			}
		}
		return true
	})
	stop := time.Now()

	var firstFrame []time.Duration
	for i, rl := range logs {
		rl.mu.Lock()
		video := append([]recvPkt(nil), rl.video...)
		audio := len(rl.audio)
		rl.mu.Unlock()
		if !video[0].key {
			t.Fatalf("viewer %d: first video packet is not a keyframe start", i)
		}
		firstFrame = append(firstFrame, video[0].at.Sub(connectedAt[i]))
		if audio == 0 {
			t.Fatalf("viewer %d: no audio", i)
		}
		checkNoHoles(t, i, video)
		checkMatchesPublisher(t, i, sent, video, codec == clip.VP8)
		// Of the packets sent on the top layer from the viewer's first packet
		// until a second before the end (so none is still in flight), at
		// least 99% arrived.
		got, want := sent.delivered("f", video, video[0].at, stop.Add(-time.Second))
		if got < want*99/100 || want == 0 {
			t.Fatalf("viewer %d: received %d of the %d top-layer packets sent", i, got, want)
		}
	}
	sort.Slice(firstFrame, func(i, j int) bool { return firstFrame[i] < firstFrame[j] })
	m := n.Signaling.Metrics()
	t.Logf("%s: %d viewers; first video packet after connect p50 %v p95 %v; mean WHEP POST→201 %v; PLIs %d, cached starts %d, retransmits %d",
		codec, viewers, firstFrame[len(firstFrame)/2], firstFrame[len(firstFrame)*95/100],
		time.Duration(m.PostDuration[1].Load()/max(m.Requests[1].Load(), 1)),
		n.SFU.Stats().PLIs.Load(), n.SFU.Stats().CachedStarts.Load(), n.SFU.Stats().Retransmits.Load())
}

// checkNoHoles: ordered by sequence number, the viewer's packets cover every
// number from first to last (retransmissions fill any loss), and timestamps
// never decrease.
func checkNoHoles(t *testing.T, viewer int, video []recvPkt) {
	t.Helper()
	// Unwrap 16-bit sequence numbers in arrival order.
	var cycles uint64
	var last uint16
	seen := map[uint64]uint32{}
	var lo, hi uint64
	for i, p := range video {
		if i > 0 && p.seq < last && last-p.seq > 0x8000 {
			cycles += 1 << 16
		}
		ext := cycles + uint64(p.seq)
		if i > 0 && p.seq > last && p.seq-last > 0x8000 {
			ext -= 1 << 16 // a late packet from before a wrap
		}
		last = p.seq
		seen[ext] = p.ts
		if i == 0 || ext < lo {
			lo = ext
		}
		if ext > hi {
			hi = ext
		}
	}
	var prevTs uint32
	for s := lo; s <= hi; s++ {
		ts, ok := seen[s]
		if !ok {
			t.Fatalf("viewer %d: sequence number %d never arrived (range %d..%d)", viewer, uint16(s), uint16(lo), uint16(hi))
		}
		if s > lo && ts-prevTs > 1<<31 {
			t.Fatalf("viewer %d: timestamp went back at seq %d: %d then %d", viewer, uint16(s), prevTs, ts)
		}
		prevTs = ts
	}
}

// checkMatchesPublisher: every payload the viewer got is one the publisher
// sent, and (when payloads are unique, as VP8's are with their picture IDs)
// in the publisher's order.
func checkMatchesPublisher(t *testing.T, viewer int, sent *sentLog, video []recvPkt, ordered bool) {
	t.Helper()
	sent.mu.Lock()
	defer sent.mu.Unlock()
	byseq := append([]recvPkt(nil), video...)
	sort.SliceStable(byseq, func(i, j int) bool { return int16(byseq[i].seq-byseq[0].seq) < int16(byseq[j].seq-byseq[0].seq) })
	prev := sentAt{i: -1}
	seen := map[uint64]bool{}
	for _, p := range byseq {
		if p.pad {
			continue // a bandwidth probe, not media
		}
		at, ok := sent.index[p.fp]
		if !ok {
			t.Fatalf("viewer %d: received a payload (seq %d, %d bytes) the publisher never sent", viewer, p.seq, p.size)
		}
		if seen[p.fp] {
			continue // a retransmission
		}
		seen[p.fp] = true
		if ordered && at.layer == prev.layer && at.i != prev.i+1 {
			t.Fatalf("viewer %d: payload order differs from the publisher's on layer %s: index %d after %d", viewer, at.layer, at.i, prev.i)
		}
		prev = at
	}
}

// keep sfu imported for the codec helper used above.
var _ = sfu.CodecVP8
