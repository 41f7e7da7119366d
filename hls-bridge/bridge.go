package hlsbridge

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starling-sfu/starling/hls-bridge/llhls"
	"github.com/starling-sfu/starling/hls-bridge/rtpsrc"
	"github.com/starling-sfu/starling/sfu"
	"github.com/starling-sfu/starling/transcode"
)

// tickEvery is how often a source's reorder buffer and timeline are
// serviced (rtpsrc.Source.Tick).
const tickEvery = 20 * time.Millisecond

// endedGrace is how long a ladder whose publisher left keeps serving its
// ended playlist, so players read EXT-X-ENDLIST rather than a 404.
const endedGrace = 30 * time.Second

// ladder is what a bridge feeds and serves: a transcoded pipeline, or a
// passthrough of the publisher's own simulcast layers.
type ladder interface {
	serve(w http.ResponseWriter, r *http.Request, ctx context.Context)
	stats() (transcode.Stats, llhls.Stats, bool)
	close()
}

// bridge is one publisher's ladder fed in-process from the SFU.
type bridge struct {
	key   string
	lad   ladder
	tick  func(time.Time) // services the sources
	part  *sfu.Participant
	downs []*sfu.DownTrack

	lastRequest atomic.Int64 // unix ns
	endedAt     atomic.Int64 // unix ns; 0 while the publisher is live

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// bridgeConfig is what a bridge needs from the manager's Config.
type bridgeConfig struct {
	hls         llhls.Config
	passthrough string
}

func startBridge(key string, p *sfu.Participant, tc *transcode.Transcoder, cfg bridgeConfig, log *slog.Logger) (*bridge, error) {
	var video, audio *sfu.Track
	for _, t := range p.Tracks() {
		switch {
		case t.Codec().IsVideo() && video == nil:
			video = t
		case !t.Codec().IsVideo() && audio == nil:
			audio = t
		}
	}
	if video == nil {
		return nil, errNoVideo
	}
	b := &bridge{key: key, part: p, stop: make(chan struct{})}
	if cfg.passthrough == PassthroughSimulcast && passable(video) {
		pt, err := startPassthrough(key, video, audio, tc, cfg.hls, log)
		if err != nil {
			return nil, fmt.Errorf("hls %s: %w", key, err)
		}
		b.lad, b.tick, b.downs = pt, pt.tick, pt.downs
	} else if err := b.startTranscoded(video, audio, tc, cfg.hls, log); err != nil {
		return nil, err
	}
	b.touch()
	b.wg.Add(1)
	go b.run()
	return b, nil
}

// startTranscoded feeds the publisher's top layer and audio to ffmpeg.
func (b *bridge) startTranscoded(video, audio *sfu.Track, tc *transcode.Transcoder, cfg llhls.Config, log *slog.Logger) error {
	pipe := newPipeline(b.key, tc, cfg, audio != nil, log)
	b.lad = pipe
	var vdown atomic.Pointer[sfu.DownTrack]
	src := rtpsrc.NewSource(pipe, rtpsrc.Options{
		// In-process the packets arrive as the SFU forwards them, audio and
		// video alike: arrival time is the capture clock.
		IgnoreSenderReports: true,
		SyncWait:            -1,
		RequestKeyframe: func(uint32) {
			if d := vdown.Load(); d != nil {
				video.RequestKeyframe(max(d.Layer(), 0))
			}
		},
		Logger: log,
	})
	b.tick = src.Tick
	pipe.origin = src.Origin
	pipe.keyframe = src.RequestKeyframe
	// The subscription starts on the highest layer arriving, which may not
	// be the top one yet (a browser starts its full layer seconds after
	// the others); the ladder is fitted to the top layer's size (the
	// publisher declared how many there are), taking each simulcast layer
	// as half the size of the one above, as browsers send them. Until the
	// top layer comes, ffmpeg scales the lower one up.
	pipe.fullSize = func(w, h int) (int, int) {
		d := vdown.Load()
		if d == nil || d.Layer() < 0 {
			return w, h
		}
		present, _ := video.Layers()
		top := max(d.Layer(), min(video.Info().Layers, sfu.MaxLayers)-1)
		for i := range present {
			if present[i] {
				top = max(top, i)
			}
		}
		return w << (top - d.Layer()), h << (top - d.Layer())
	}
	vd, err := attachLocal(src, video, -1)
	if err != nil {
		pipe.close()
		return fmt.Errorf("hls %s: %w", b.key, err)
	}
	vdown.Store(vd)
	b.downs = append(b.downs, vd)
	if audio != nil {
		ad, err := attachLocal(src, audio, -1)
		if err != nil {
			vd.Close()
			pipe.close()
			return fmt.Errorf("hls %s: %w", b.key, err)
		}
		b.downs = append(b.downs, ad)
	}
	return nil
}

// run services the source until the bridge stops, and notes when the
// publisher leaves (the stream then ends).
func (b *bridge) run() {
	defer b.wg.Done()
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-b.part.Done():
			b.endedAt.CompareAndSwap(0, time.Now().UnixNano())
			b.lad.close()
			return
		case now := <-tick.C:
			b.tick(now)
		}
	}
}

func (b *bridge) touch() { b.lastRequest.Store(time.Now().UnixNano()) }

// replaced says whether the ladder's publisher has left and someone
// publishes under its name again, so a new ladder should serve.
func (b *bridge) replaced(s *sfu.SFU) bool {
	select {
	case <-b.part.Done():
	default:
		return false
	}
	r, ok := s.LookupRoom(b.part.Room().Name())
	if !ok {
		return false
	}
	p, ok := r.Participant(b.part.Identity())
	return ok && p != b.part && len(p.Tracks()) > 0
}

// expired: the publisher left more than endedGrace ago, or, for on-demand
// ladders, nobody asked for it for idle.
func (b *bridge) expired(now time.Time, idle time.Duration, onDemand bool) bool {
	if e := b.endedAt.Load(); e != 0 {
		return now.UnixNano()-e > int64(endedGrace)
	}
	return onDemand && now.UnixNano()-b.lastRequest.Load() > int64(idle)
}

func (b *bridge) close() {
	b.once.Do(func() {
		close(b.stop)
		b.wg.Wait()
		for _, d := range b.downs {
			d.Close()
		}
		b.lad.close()
	})
}
