package rtcclient

import (
	"context"
	"errors"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/rtp"

	"github.com/starling-sfu/starling/clip"
)

// ClipOptions configure PublishClip. The zero value publishes a VP8 camera
// in three simulcast layers and an Opus microphone.
type ClipOptions struct {
	Codec       clip.Codec // clip.VP8 (default) or clip.H264
	NoSimulcast bool       // send the top layer only
	NoVideo     bool
	NoAudio     bool
	// OnSend sees every packet just before it is sent, with its layer ("q",
	// "h", "f" or "audio"); it must not keep the packet.
	OnSend func(layer string, p *rtp.Packet, keyframe bool, at time.Time)
}

// ClipPublication is a camera and microphone playing the embedded clips.
type ClipPublication struct {
	Video, Audio *LocalTrack // nil when left out

	player *clip.Player
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// PublishClip publishes a camera (simulcast unless NoSimulcast) and a
// microphone and plays the embedded clips on them in real time, on one
// clock, until Stop or the client closes.
func (c *Client) PublishClip(ctx context.Context, o ClipOptions) (*ClipPublication, error) {
	if o.Codec == "" {
		o.Codec = clip.VP8
	}
	if o.NoVideo && o.NoAudio {
		return nil, errors.New("rtcclient: clip without video or audio")
	}
	p := &ClipPublication{done: make(chan struct{})}
	var outputs []clip.Output
	if !o.NoVideo {
		out, t, err := c.publishClipVideo(ctx, o)
		if err != nil {
			return nil, err
		}
		p.Video = t
		outputs = append(outputs, out...)
	}
	if !o.NoAudio {
		a, err := clip.Audio()
		if err != nil {
			return nil, err
		}
		t, err := c.PublishTrack(ctx, PublishOptions{
			Name: "microphone", Source: livekit.TrackSource_MICROPHONE, Codec: clip.Opus.Capability(),
		})
		if err != nil {
			return nil, err
		}
		p.Audio = t
		outputs = append(outputs, clip.Output{Layer: "audio", Stream: clip.NewStream(a, 0, 0), Writer: t.Writer("")})
	}
	player, err := clip.NewPlayer(clip.PlayerConfig{Outputs: outputs, OnSend: o.OnSend})
	if err != nil {
		return nil, err
	}
	p.player = player
	runCtx, cancel := context.WithCancel(c.lifetime)
	p.cancel = cancel
	if !c.goOwned(func() {
		defer close(p.done)
		p.err = player.Run(runCtx)
	}) {
		cancel()
		return nil, ErrClosed
	}
	return p, nil
}

func (c *Client) publishClipVideo(ctx context.Context, o ClipOptions) ([]clip.Output, *LocalTrack, error) {
	layers := clip.Layers()
	top := layers[len(layers)-1]
	opts := PublishOptions{
		Name: "camera", Source: livekit.TrackSource_CAMERA, Codec: o.Codec.Capability(),
		Width: uint32(top.Width), Height: uint32(top.Height),
	}
	if o.NoSimulcast {
		layers = layers[len(layers)-1:]
	} else {
		for _, l := range layers {
			opts.Layers = append(opts.Layers, Layer{
				RID: l.RID, Width: uint32(l.Width), Height: uint32(l.Height), Bitrate: uint32(l.Bitrate),
			})
		}
	}
	t, err := c.PublishTrack(ctx, opts)
	if err != nil {
		return nil, nil, err
	}
	var outputs []clip.Output
	for _, l := range layers {
		v, err := clip.Video(o.Codec, l.RID)
		if err != nil {
			return nil, nil, err
		}
		rid := l.RID
		if o.NoSimulcast {
			rid = ""
		}
		outputs = append(outputs, clip.Output{Layer: l.RID, Stream: clip.NewStream(v, 0, 0), Writer: t.Writer(rid)})
	}
	return outputs, t, nil
}

// Stop stops the media (the tracks stay published) and returns the error
// that stopped the player early, if any.
func (p *ClipPublication) Stop() error {
	p.cancel()
	<-p.done
	return p.err
}

// Stalls reports how often the player fell behind real time (see
// clip.Player.Stalls).
func (p *ClipPublication) Stalls() uint64 { return p.player.Stalls() }
