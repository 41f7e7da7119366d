package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// RTPReader is where a layer's packets come from: a *webrtc.TrackRemote, or
// anything that yields whole RTP packets the same way.
type RTPReader interface {
	Read(b []byte) (int, interceptor.Attributes, error)
}

// KeyframeRequester asks the publisher for a keyframe on the stream with the
// given SSRC (an RTCP PLI on the publisher's peer connection).
type KeyframeRequester func(ssrc uint32) error

// ErrTrackClosed is returned when subscribing to a track that has ended.
var ErrTrackClosed = errors.New("sfu: track closed")

// ErrTooManySubscribers is returned when a track has reached its subscriber limit.
var ErrTooManySubscribers = errors.New("sfu: track has too many subscribers")

// TrackInfo describes a published track.
type TrackInfo struct {
	// SID is the server's id for the track; the SFU makes one when empty.
	SID      string
	ID       string // the publisher's track id
	StreamID string // the publisher's stream (msid) id
	Kind     webrtc.RTPCodecType
	Codec    webrtc.RTPCodecParameters
	// ScreenShare marks a shared screen, which a subscriber's bandwidth
	// serves before cameras.
	ScreenShare bool
	// Layers is how many simulcast encodings the publisher declared (0 or
	// 1 without simulcast); they may start at different times.
	Layers int
	// AudioLevelExt is the negotiated id of the ssrc-audio-level header
	// extension (RFC 6464) on an audio track; 0 when absent.
	AudioLevelExt uint8
}

// Track is one published media track and its simulcast layers. Packets flow
// from each layer's reader into the layer's cache and on to every subscribed
// DownTrack; nothing a subscriber does can stall that loop.
type Track struct {
	info      TrackInfo
	sid       string
	level     audioLevel
	codec     Codec
	log       *slog.Logger
	settings  *Settings
	stats     *Stats
	requestKF KeyframeRequester

	mu     sync.Mutex // guards layers being added, subs being changed, closed
	layers [MaxLayers]atomic.Pointer[layer]
	taken  [MaxLayers]bool
	subs   atomic.Pointer[[]*DownTrack]
	closed bool

	readers sync.WaitGroup
	fan     *fanout
	done    chan struct{}
}

func newTrack(info TrackInfo, s *Settings, st *Stats, kf KeyframeRequester, log *slog.Logger) *Track {
	if info.SID == "" {
		info.SID = newSID("TR_")
	}
	t := &Track{
		info:      info,
		sid:       info.SID,
		codec:     CodecFromMime(info.Codec.MimeType),
		log:       log.With("track", info.ID, "codec", info.Codec.MimeType),
		settings:  s,
		stats:     st,
		requestKF: kf,
		done:      make(chan struct{}),
	}
	t.subs.Store(&[]*DownTrack{})
	t.fan = newFanout(s.FanoutWorkers)
	go t.maintain()
	go func() {
		// The fan-out workers outlive close() until the readers, which
		// end when the publisher's transport closes, can no longer use them.
		<-t.done
		t.readers.Wait()
		t.fan.close()
	}()
	return t
}

// Info describes the track.
func (t *Track) Info() TrackInfo { return t.info }

// SID is the track's server id.
func (t *Track) SID() string { return t.sid }

// Codec is the track's codec.
func (t *Track) Codec() Codec { return t.codec }

// Done is closed when the track has ended.
func (t *Track) Done() <-chan struct{} { return t.done }

// Bitrates returns each active layer's bitrate in bit/s, measured over the
// last seconds, or its nominal rate until measured; 0 for a layer that is
// absent or paused.
func (t *Track) Bitrates() [MaxLayers]int {
	var out [MaxLayers]int
	now := time.Now().UnixNano()
	for i := range t.layers {
		l := t.layers[i].Load()
		if l == nil || !l.active(now) {
			continue
		}
		out[i] = int(l.rate.Load())
		if out[i] == 0 {
			out[i] = nominalRates[i]
			if !t.codec.IsVideo() {
				out[i] = nominalAudioRate
			}
		}
	}
	return out
}

// Layers reports which layer indexes exist and which are receiving packets.
func (t *Track) Layers() (present, active [MaxLayers]bool) {
	now := time.Now().UnixNano()
	for i := range t.layers {
		if l := t.layers[i].Load(); l != nil {
			present[i], active[i] = true, l.active(now)
		}
	}
	return present, active
}

// AddLayer starts reading one encoding of the track (rid "" when the track is
// not simulcast) from r, until r fails. It returns the layer index chosen.
func (t *Track) AddLayer(rid string, ssrc uint32, r RTPReader) (int, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return -1, ErrTrackClosed
	}
	// A new stream for a rid the publisher sends already (after an ICE
	// restart, pion may give one) replaces the old one, whose reader stops
	// at its next packet.
	idx, replaced := -1, false
	for i := range t.layers {
		if l := t.layers[i].Load(); l != nil && rid != "" && l.rid == rid {
			idx, replaced = i, true
		}
	}
	if idx < 0 {
		idx = layerIndexForRID(rid, t.taken)
	}
	if idx < 0 {
		t.mu.Unlock()
		return -1, fmt.Errorf("sfu: track %s: no free layer for rid %q", t.info.ID, rid)
	}
	t.taken[idx] = true
	l := &layer{index: idx, rid: rid, cache: newPacketCache()}
	l.ssrc.Store(ssrc)
	t.layers[idx].Store(l)
	t.readers.Add(1)
	t.mu.Unlock()

	t.log.Info("layer added", "rid", rid, "layer", LayerName(idx), "ssrc", ssrc, "replaced", replaced)
	go t.read(l, r)
	return idx, nil
}

// read is the per-layer ingest loop: it owns buf and hdr, and is the only
// writer of this layer's cache.
func (t *Track) read(l *layer, r RTPReader) {
	defer t.readers.Done()
	buf := make([]byte, maxPacketSize)
	var hdr rtp.Header
	var wg sync.WaitGroup
	for {
		n, _, err := r.Read(buf)
		if err != nil {
			t.log.Debug("layer ended", "layer", LayerName(l.index), "err", err)
			return
		}
		if t.layers[l.index].Load() != l {
			t.log.Debug("layer replaced", "layer", LayerName(l.index))
			return
		}
		hl, err := hdr.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		end := n
		if hdr.Padding && end > hl {
			pad := int(buf[end-1])
			if pad > end-hl {
				continue
			}
			end -= pad
		}
		t.ingest(l, &hdr, buf[:n], buf[hl:end], &wg)
	}
}

// ingest caches one received packet and forwards it to every subscriber.
// raw is the whole packet, payload its media payload without padding.
func (t *Track) ingest(l *layer, hdr *rtp.Header, raw, payload []byte, wg *sync.WaitGroup) {
	now := time.Now().UnixNano()
	kind := t.stats.kindIndex(t.info.Kind)
	l.lastPacket.Store(now)
	l.packets.Add(1)
	l.bytes.Add(uint64(len(raw)))
	t.stats.PacketsIn[kind][l.index].Add(1)
	t.stats.BytesIn[kind][l.index].Add(uint64(len(raw)))
	p := packet{layer: int8(l.index), hdr: hdr, at: now}
	if id := t.info.AudioLevelExt; id != 0 && hdr.Extension {
		if ext := hdr.GetExtension(id); len(ext) > 0 {
			t.level.observe(ext[0] & 0x7f)
		}
	}
	if len(payload) == 0 {
		t.fan.skip(t.subscribers(), p, wg)
		return
	}
	p.payload, p.keyStart = payload, t.codec.KeyframeStart(payload)
	if p.keyStart {
		if w, h, ok := t.codec.FrameSize(payload); ok {
			l.width.Store(int32(w))
			l.height.Store(int32(h))
		}
	}
	l.cache.put(hdr.SequenceNumber, hdr.Timestamp, raw, p.keyStart)
	t.fan.forward(t.subscribers(), p, wg)
}

func (t *Track) subscribers() []*DownTrack { return *t.subs.Load() }

// SubscriberCount is the number of DownTracks attached.
func (t *Track) SubscriberCount() int { return len(t.subscribers()) }

// RequestKeyframe asks the publisher for a keyframe on layer idx, at most once
// per Settings.PLIInterval however many subscribers ask.
func (t *Track) RequestKeyframe(idx int) {
	if !t.codec.IsVideo() || idx < 0 || idx >= MaxLayers {
		return
	}
	l := t.layers[idx].Load()
	if l == nil || t.requestKF == nil {
		return
	}
	now := time.Now().UnixNano()
	last := l.lastPLI.Load()
	if now-last < int64(t.settings.PLIInterval) || !l.lastPLI.CompareAndSwap(last, now) {
		return
	}
	t.sendPLI(l, idx)
}

func (t *Track) sendPLI(l *layer, idx int) {
	t.stats.PLIs.Add(1)
	if err := t.requestKF(l.ssrc.Load()); err != nil {
		t.log.Debug("keyframe request failed", "layer", LayerName(idx), "err", err)
	}
}

// RequestKeyframeNow asks the publisher for a keyframe on layer idx at once,
// whatever the PLIInterval throttle, which it restarts. It is for a consumer
// that needs keyframes at set moments and asks seldom, such as an LL-HLS
// ladder made of the layers themselves, which needs one at each segment.
func (t *Track) RequestKeyframeNow(idx int) {
	if !t.codec.IsVideo() || idx < 0 || idx >= MaxLayers {
		return
	}
	l := t.layers[idx].Load()
	if l == nil || t.requestKF == nil {
		return
	}
	l.lastPLI.Store(time.Now().UnixNano())
	t.sendPLI(l, idx)
}

// Subscribe attaches a new DownTrack to the track. The caller adds it to a
// peer connection (it is a webrtc.TrackLocal) and calls Start once that
// connection is up.
func (t *Track) Subscribe(opts DownTrackOptions) (*DownTrack, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrTrackClosed
	}
	old := t.subscribers()
	if max := t.settings.MaxSubscribersPerTrack; max > 0 && len(old) >= max {
		return nil, ErrTooManySubscribers
	}
	d := newDownTrack(t, opts)
	next := make([]*DownTrack, len(old), len(old)+1)
	copy(next, old)
	next = append(next, d)
	t.subs.Store(&next)
	t.stats.Subscriptions.Add(1)
	return d, nil
}

func (t *Track) unsubscribe(d *DownTrack) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.subscribers()
	next := make([]*DownTrack, 0, len(old))
	for _, x := range old {
		if x != d {
			next = append(next, x)
		}
	}
	if len(next) != len(old) {
		t.subs.Store(&next)
		t.stats.Subscriptions.Add(-1)
	}
}

// close ends the track: every DownTrack is closed, which tells its owner to
// end the subscription. The layer readers stop when the publisher's
// transport closes.
func (t *Track) close() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	subs := t.subscribers()
	t.subs.Store(&[]*DownTrack{})
	t.stats.Subscriptions.Add(-int64(len(subs)))
	t.mu.Unlock()

	close(t.done)
	for _, d := range subs {
		d.close()
	}
	t.log.Info("track closed", "subscribers", len(subs))
}

// maintain re-evaluates layer choices as layers start and pause, and keeps
// asking for keyframes for subscribers still waiting for one.
func (t *Track) maintain() {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var meters [MaxLayers]rateMeter
	for {
		select {
		case <-t.done:
			return
		case <-tick.C:
		}
		_, active := t.Layers()
		now := time.Now().UnixNano()
		for i := range t.layers {
			if l := t.layers[i].Load(); l != nil {
				l.rate.Store(meters[i].sample(l.bytes.Load(), now))
			}
		}
		for _, d := range t.subscribers() {
			d.reselect(active, now)
		}
	}
}

// LayerSize is the frame size of layer idx as its keyframes tell it; 0, 0
// when unknown (the layer is absent, has sent no keyframe yet, or its codec
// does not tell sizes).
func (t *Track) LayerSize(idx int) (width, height int) {
	if idx < 0 || idx >= MaxLayers {
		return 0, 0
	}
	l := t.layers[idx].Load()
	if l == nil {
		return 0, 0
	}
	return int(l.width.Load()), int(l.height.Load())
}
