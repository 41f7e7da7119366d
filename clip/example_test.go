package clip_test

import (
	"context"
	"log/slog"

	"github.com/pion/webrtc/v4"

	"github.com/starling-sfu/starling/clip"
)

// A simulcast publisher: one local track per rung plus audio, all played by
// one Player. The tracks would be added to a PeerConnection before Run.
func Example() {
	var outputs []clip.Output
	for i, rid := range clip.RIDs() {
		c, err := clip.Video(clip.VP8, rid)
		if err != nil {
			panic(err)
		}
		track, err := webrtc.NewTrackLocalStaticRTP(clip.VP8.Capability(), "video", "publisher",
			webrtc.WithRTPStreamID(rid))
		if err != nil {
			panic(err)
		}
		outputs = append(outputs, clip.Output{Layer: rid, Stream: clip.NewStream(c, uint32(100+i), 96), Writer: track})
	}
	a, err := clip.Audio()
	if err != nil {
		panic(err)
	}
	audio, err := webrtc.NewTrackLocalStaticRTP(clip.Opus.Capability(), "audio", "publisher")
	if err != nil {
		panic(err)
	}
	outputs = append(outputs, clip.Output{Layer: "audio", Stream: clip.NewStream(a, 200, 111), Writer: audio})

	player, err := clip.NewPlayer(clip.PlayerConfig{Outputs: outputs})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a real publisher cancels when it hangs up
	if err := player.Run(ctx); err != nil {
		slog.Error("publisher stopped", "err", err)
	}
}
