package clip

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// Writer receives the packets a Player sends. pion's
// *webrtc.TrackLocalStaticRTP is one.
type Writer interface {
	WriteRTP(p *rtp.Packet) error
}

// Output routes one Stream to one Writer.
type Output struct {
	Layer  string // label handed to OnSend and used in errors: a rid, "audio", …
	Stream *Stream
	Writer Writer
}

// PlayerConfig configures a Player.
type PlayerConfig struct {
	Outputs []Output

	// OnSend, if set, is called just before each packet is written, from the
	// Player's goroutine. at is when the Player woke up to send the frame.
	// OnSend may change the packet's header (to add an extension, say) but
	// must not keep the packet after it returns.
	OnSend func(layer string, p *rtp.Packet, keyframe bool, at time.Time)
}

// maxLag is how late a frame may be before a Player stops catching up. An
// overloaded host that falls further behind skips the missed time instead of
// sending a burst: the RTP timestamps jump over the gap, as a real encoder's
// would after a stall, and the media carries on from where it was.
const maxLag = 250 * time.Millisecond

// Player sends several Streams in real time on one shared clock: frame n of
// each stream is written at start + n × the clip's frame duration, so the
// RTP timestamps of every stream track the wall clock together. A Player
// runs in one goroutine, the caller's, for all its streams, and sends without
// allocating.
type Player struct {
	outputs []output
	onSend  func(layer string, p *rtp.Packet, keyframe bool, at time.Time)
	now     time.Time // when the current frames are sent, for OnSend
	running atomic.Bool
	stalls  atomic.Uint64
}

type output struct {
	Output
	period time.Duration
	due    time.Time // when the stream's next frame is to be sent
	emit   func(p *rtp.Packet, keyframe bool) error
}

// NewPlayer returns a Player for cfg's outputs, each with its own Stream.
func NewPlayer(cfg PlayerConfig) (*Player, error) {
	if len(cfg.Outputs) == 0 {
		return nil, errors.New("clip: player without outputs")
	}
	p := &Player{onSend: cfg.OnSend, outputs: make([]output, len(cfg.Outputs))}
	seen := make(map[*Stream]bool, len(cfg.Outputs))
	for i, o := range cfg.Outputs {
		if o.Stream == nil || o.Writer == nil {
			return nil, fmt.Errorf("clip: output %q lacks a stream or a writer", o.Layer)
		}
		if seen[o.Stream] {
			return nil, fmt.Errorf("clip: output %q shares its stream with another output", o.Layer)
		}
		seen[o.Stream] = true
		p.outputs[i] = output{Output: o, period: o.Stream.Clip().FrameDuration}
		p.outputs[i].emit = p.emitter(&p.outputs[i])
	}
	return p, nil
}

// emitter returns the per-packet callback for o, built once so that sending
// a frame allocates no closure.
func (p *Player) emitter(o *output) func(*rtp.Packet, bool) error {
	return func(pkt *rtp.Packet, keyframe bool) error {
		if p.onSend != nil {
			p.onSend(o.Layer, pkt, keyframe, p.now)
		}
		return o.Writer.WriteRTP(pkt)
	}
}

// Run plays every output from its stream's current frame until ctx is done,
// then returns nil. It returns early with the first write error. A Player
// runs once at a time; the streams remember their place between runs.
func (p *Player) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("clip: player is already running")
	}
	defer p.running.Store(false)

	p.start(time.Now())
	timer := time.NewTimer(0)
	defer timer.Stop()
	for ctx.Err() == nil {
		next, err := p.sendDue(time.Now())
		if err != nil {
			return err
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
		case <-timer.C:
		}
	}
	return nil
}

// Stalls reports how many times the Player fell more than maxLag behind and
// skipped time rather than catch up. Nonzero means the host was too busy to
// play in real time, which a load test should report.
func (p *Player) Stalls() uint64 { return p.stalls.Load() }

// start makes every stream's next frame due at now.
func (p *Player) start(now time.Time) {
	for i := range p.outputs {
		p.outputs[i].due = now
	}
}

// sendDue sends every frame that is due at now and returns when the next one
// will be.
func (p *Player) sendDue(now time.Time) (time.Time, error) {
	p.now = now
	var next time.Time
	stalled := false
	for i := range p.outputs {
		o := &p.outputs[i]
		if lag := now.Sub(o.due); lag > maxLag {
			missed := int(lag / o.period)
			o.Stream.skipTime(missed)
			o.due = o.due.Add(time.Duration(missed) * o.period)
			stalled = true
		}
		for !o.due.After(now) {
			if err := o.Stream.NextFrame(o.emit); err != nil {
				return time.Time{}, fmt.Errorf("clip: play %s: %w", o.Layer, err)
			}
			o.due = o.due.Add(o.period)
		}
		if i == 0 || o.due.Before(next) {
			next = o.due
		}
	}
	if stalled {
		p.stalls.Add(1)
	}
	return next, nil
}
