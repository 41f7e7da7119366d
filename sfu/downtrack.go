package sfu

import (
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// DownTrackOptions set how a subscriber receives a track.
type DownTrackOptions struct {
	// SubscriberID names the subscriber in logs.
	SubscriberID string
	// StreamID is the msid stream the track appears in at the subscriber.
	StreamID string
	// Layer pins a simulcast layer (0..2) when Pinned; otherwise the SFU
	// picks the best layer the subscriber's path sustains. Where the
	// subscriber has a bandwidth estimate, a pinned layer is a maximum: the
	// SFU goes lower when the path cannot carry it.
	Layer  int
	Pinned bool
	// Exact, with Pinned, forwards Layer and nothing else: while that layer
	// is inactive the subscriber gets no video rather than another layer's
	// pictures (a consumer that serves each layer as its own rendition).
	Exact bool
	// MaxHeight, when set, caps the layer at the lowest one at least this
	// tall (the size the subscriber shows the video at), where the codec
	// tells layer sizes.
	MaxHeight int
	// TrackID, when set, is the track id the subscriber sees (msid)
	// instead of the publisher's.
	TrackID string
}

// Allocation states a DownTrack can be given besides a layer.
const (
	allocAuto  = -2 // no estimate: the loss selector decides
	allocPause = -1 // send no video
)

// DownTrack sends one published Track to one subscriber. It is a
// webrtc.TrackLocal: the subscriber's peer connection binds it, and from then
// on it rewrites SSRC, payload type, sequence numbers and timestamps of the
// chosen layer, switching layers only at keyframes.
type DownTrack struct {
	track *Track
	opts  DownTrackOptions
	log   *slog.Logger
	kind  int

	mu       sync.Mutex // guards everything below that is not atomic
	writer   webrtc.TrackLocalWriter
	ssrc     uint32
	pt       uint8
	rtxSSRC  uint32
	rtxPT    uint8
	rtxSeq   uint16
	running  bool
	closed   bool
	current  int8 // layer being forwarded, -1 before the first keyframe
	target   int8 // layer wanted; differs from current while waiting for its keyframe
	desired  int  // the highest layer the selector allows
	waitFrom int64
	rw       rewriter
	hdr      rtp.Header
	sent     sentRing
	scratch  [maxPacketSize]byte // cache reads for NACKs and replays
	rtxBuf   [maxPacketSize]byte
	// While replaying, the cached run is being sent and live packets are
	// left to the replay, which reads them from the cache. replayEnd is the
	// last source packet it sent; live copies of it and earlier ones are not
	// sent again.
	replaying bool
	replayRun *replay // the replay running; a switch down may replace it
	replayEnd uint16
	replayed  bool
	selector  lossSelector
	onClose   []func()
	// Paused video sends nothing until the allocator resumes it; the
	// numbering goes on from where it stopped at the next keyframe.
	paused      bool
	disabled    bool // the subscriber asked for no video (SetDisabled)
	pausedAt    int64
	pausedTotal int64
	lastMarker  bool    // the newest packet sent ended a frame
	rtxTokens   float64 // bytes of retransmission allowed now
	rtxLast     int64
	rtxRate     atomic.Int64     // bit/s retransmissions may use; 0 for no limit
	exts        [2]rtp.Extension // header extensions added by interceptors, reused

	sub   *Subscriber // nil when subscribed alone
	key   uint64      // identity within sub
	alloc atomic.Int32

	packets  atomic.Uint64
	bytes    atomic.Uint64
	switches atomic.Uint64
	nacks    atomic.Uint64
	resent   atomic.Uint64
	layerNow atomic.Int32
}

func newDownTrack(t *Track, opts DownTrackOptions) *DownTrack {
	d := &DownTrack{
		track:   t,
		opts:    opts,
		log:     t.log.With("subscriber", opts.SubscriberID),
		kind:    t.stats.kindIndex(t.info.Kind),
		current: -1,
		target:  -1,
		desired: MaxLayers - 1,
	}
	if opts.Pinned {
		d.desired = opts.Layer
	}
	d.rw.clockRate = t.info.Codec.ClockRate
	d.layerNow.Store(-1)
	d.alloc.Store(allocAuto)
	return d
}

// ID implements webrtc.TrackLocal.
func (d *DownTrack) ID() string {
	if d.opts.TrackID != "" {
		return d.opts.TrackID
	}
	return d.track.info.ID
}

// RID implements webrtc.TrackLocal; a DownTrack is never simulcast itself.
func (d *DownTrack) RID() string { return "" }

// StreamID implements webrtc.TrackLocal.
func (d *DownTrack) StreamID() string {
	if d.opts.StreamID != "" {
		return d.opts.StreamID
	}
	return d.track.info.StreamID
}

// Kind implements webrtc.TrackLocal.
func (d *DownTrack) Kind() webrtc.RTPCodecType { return d.track.info.Kind }

// Track is the published track this DownTrack sends.
func (d *DownTrack) Track() *Track { return d.track }

// Bind implements webrtc.TrackLocal: it picks the negotiated codec matching
// the published one and learns the SSRCs and payload types to send with.
func (d *DownTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	codec, ok := MatchCodec(d.track.info.Codec, ctx.CodecParameters())
	if !ok {
		return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
	}
	d.mu.Lock()
	d.writer = ctx.WriteStream()
	d.ssrc, d.pt = uint32(ctx.SSRC()), uint8(codec.PayloadType)
	if rtx, ok := rtxFor(codec, ctx.CodecParameters()); ok && ctx.SSRCRetransmission() != 0 {
		d.rtxSSRC, d.rtxPT = uint32(ctx.SSRCRetransmission()), uint8(rtx.PayloadType)
	}
	d.mu.Unlock()
	go d.readRTCP(ctx.RTCPReader())
	return codec, nil
}

// Unbind implements webrtc.TrackLocal.
func (d *DownTrack) Unbind(webrtc.TrackLocalContext) error {
	d.mu.Lock()
	d.running = false
	d.mu.Unlock()
	return nil
}

// MatchCodec finds, among negotiated codecs, the one that can carry media
// published as pub: the same mime type and, for H.264, the same profile and
// packetization mode where the subscriber offers it.
func MatchCodec(pub webrtc.RTPCodecParameters, negotiated []webrtc.RTPCodecParameters) (webrtc.RTPCodecParameters, bool) {
	var fallback *webrtc.RTPCodecParameters
	for i := range negotiated {
		c := &negotiated[i]
		if !strings.EqualFold(c.MimeType, pub.MimeType) {
			continue
		}
		if !strings.EqualFold(pub.MimeType, webrtc.MimeTypeH264) {
			return *c, true
		}
		if fmtpValue(c.SDPFmtpLine, "packetization-mode") != fmtpValue(pub.SDPFmtpLine, "packetization-mode") {
			continue
		}
		if strings.EqualFold(h264Profile(c.SDPFmtpLine), h264Profile(pub.SDPFmtpLine)) {
			return *c, true
		}
		if fallback == nil {
			fallback = c
		}
	}
	if fallback != nil {
		return *fallback, true
	}
	return webrtc.RTPCodecParameters{}, false
}

func rtxFor(codec webrtc.RTPCodecParameters, negotiated []webrtc.RTPCodecParameters) (webrtc.RTPCodecParameters, bool) {
	for _, c := range negotiated {
		if strings.EqualFold(c.MimeType, webrtc.MimeTypeRTX) && fmtpValue(c.SDPFmtpLine, "apt") == strconv.Itoa(int(codec.PayloadType)) {
			return c, true
		}
	}
	return webrtc.RTPCodecParameters{}, false
}

// h264Profile is the profile_idc and constraint bytes of profile-level-id,
// ignoring the level, which a decoder handles above what it signals.
func h264Profile(fmtp string) string {
	v := fmtpValue(fmtp, "profile-level-id")
	if len(v) >= 4 {
		return v[:4]
	}
	return v
}

func fmtpValue(fmtp, key string) string {
	for _, kv := range strings.Split(fmtp, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

// OnClose registers f to run once when the DownTrack ends: the publisher left,
// or Close was called.
func (d *DownTrack) OnClose(f func()) {
	d.mu.Lock()
	closed := d.closed
	if !closed {
		d.onClose = append(d.onClose, f)
	}
	d.mu.Unlock()
	if closed {
		f()
	}
}

// Start begins forwarding once the subscriber's connection is up (packets
// written before then would be dropped by the transport). A video subscriber
// starts on the newest cached keyframe when one is cached, and a keyframe is
// requested from the publisher either way.
func (d *DownTrack) Start() {
	_, active := d.track.Layers()
	now := time.Now().UnixNano()
	d.mu.Lock()
	if d.closed || d.running || d.writer == nil {
		d.mu.Unlock()
		return
	}
	d.running = true
	d.target = int8(d.pick(active))
	if d.target < 0 {
		d.target = int8(min(d.desired, MaxLayers-1))
	}
	d.waitFrom = now
	target := int(d.target)
	var r *replay
	if d.track.codec.IsVideo() {
		r = d.prepareReplay(target, now, joinPace)
	}
	d.mu.Unlock()
	if r != nil {
		go d.replay(r)
	}
	if d.track.codec.IsVideo() {
		d.track.RequestKeyframe(target)
		d.track.stats.KeyframeWaits.Add(1)
	}
}

// Close detaches the DownTrack from its track. Its owner removes it from the
// peer connection.
func (d *DownTrack) Close() {
	d.track.unsubscribe(d)
	d.close()
}

func (d *DownTrack) close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed, d.running = true, false
	if d.paused {
		d.paused = false
		now := time.Now().UnixNano()
		d.pausedTotal += now - d.pausedAt
		d.track.stats.PausedNanos.Add(uint64(now - d.pausedAt))
	}
	fns := d.onClose
	d.onClose = nil
	d.mu.Unlock()
	for _, f := range fns {
		f()
	}
}

// skip keeps numbering continuous when the source sends a padding-only packet.
func (d *DownTrack) skip(layer int8, seq uint16) {
	d.mu.Lock()
	if d.running && layer == d.current {
		d.rw.skip(seq)
	}
	d.mu.Unlock()
}

// writeRTP forwards p if it belongs to the layer being sent, switching to the
// target layer at its keyframe.
func (d *DownTrack) writeRTP(p *packet) {
	d.mu.Lock()
	if !d.running {
		d.mu.Unlock()
		return
	}
	if d.replaying {
		d.mu.Unlock()
		return
	}
	if p.layer != d.current {
		if p.layer != d.target || !p.keyStart {
			d.mu.Unlock()
			return
		}
		d.switchTo(p)
	} else if d.replayed {
		if !seqNewer(p.hdr.SequenceNumber, d.replayEnd) {
			d.mu.Unlock()
			return
		}
		d.replayed = false
	}
	seq, ts, ok := d.rw.rewrite(p.hdr.SequenceNumber, p.hdr.Timestamp, p.at)
	if !ok {
		d.mu.Unlock()
		return
	}
	d.sent.record(seq, p.layer, p.hdr.SequenceNumber, ts-p.hdr.Timestamp, p.at)
	d.send(p.hdr, p.payload, seq, ts)
	d.mu.Unlock()
	n := uint64(len(p.payload) + 12)
	d.packets.Add(1)
	d.bytes.Add(n)
	st := d.track.stats
	st.PacketsOut[d.kind][p.layer].Add(1)
	st.BytesOut[d.kind][p.layer].Add(n)
}

// switchTo makes p's layer current; p is a keyframe start. Caller holds mu.
func (d *DownTrack) switchTo(p *packet) {
	from := d.current
	d.rw.switchTo(p.hdr.SequenceNumber, p.hdr.Timestamp, p.at)
	d.current = p.layer
	d.replayed = false
	d.layerNow.Store(int32(p.layer))
	if from >= 0 {
		d.switches.Add(1)
		if p.layer > from {
			d.track.stats.LayerUps.Add(1)
		} else {
			d.track.stats.LayerDowns.Add(1)
		}
		d.log.Debug("layer switched", "from", LayerName(int(from)), "to", LayerName(int(p.layer)))
	}
}

// send writes one packet with the outgoing identity. Caller holds mu.
func (d *DownTrack) send(src *rtp.Header, payload []byte, seq uint16, ts uint32) {
	h := d.header()
	h.Marker = src.Marker
	d.lastMarker = src.Marker
	h.PayloadType = d.pt
	h.SequenceNumber = seq
	h.Timestamp = ts
	h.SSRC = d.ssrc
	h.CSRC = src.CSRC
	if _, err := d.writer.WriteRTP(h, payload); err != nil {
		d.log.Debug("write failed", "err", err)
	}
}

// header resets the reused outgoing header. Caller holds mu.
func (d *DownTrack) header() *rtp.Header {
	h := &d.hdr
	h.Version = 2
	h.Padding, h.PaddingSize = false, 0
	h.Extension = false
	h.Extensions = d.exts[:0]
	return h
}

// reselect moves the target layer as layers start or pause and as the
// allocator (or, without an estimate, the loss selector) allows; it runs a
// few times a second from the track, and at once on a new allocation.
func (d *DownTrack) reselect(active [MaxLayers]bool, now int64) {
	if !d.track.codec.IsVideo() {
		return
	}
	d.mu.Lock()
	if !d.running {
		d.mu.Unlock()
		return
	}
	a := int(d.alloc.Load())
	switch {
	case a == allocPause || d.disabled:
		d.pause(now)
		d.mu.Unlock()
		return
	case a >= 0:
		d.desired = a
	case !d.opts.Pinned:
		d.desired = d.selector.desired(now)
	default:
		d.desired = d.opts.Layer
	}
	if d.paused {
		d.paused = false
		d.pausedTotal += now - d.pausedAt
		d.track.stats.PausedNanos.Add(uint64(now - d.pausedAt))
	}
	want := int8(d.pick(active))
	var r *replay
	if a >= 0 && want >= 0 && want < d.current {
		// The allocator moves down because the path no longer carries this
		// layer: switch now, from the lower layer's cached keyframe.
		r = d.prepareReplay(int(want), now, switchPace)
	}
	if want >= 0 && want != d.target {
		d.target = want
		d.waitFrom = now
		if want != d.current {
			d.track.stats.KeyframeWaits.Add(1)
		}
	}
	waiting := d.target >= 0 && d.target != d.current
	target := int(d.target)
	d.mu.Unlock()
	if r != nil {
		go d.replay(r)
	}
	if waiting {
		d.track.RequestKeyframe(target)
	}
}

// pick is the layer to forward among the active ones: the desired one or
// the nearest below (above when none is), or exactly the pinned one.
// Caller holds mu.
func (d *DownTrack) pick(active [MaxLayers]bool) int {
	if d.opts.Exact && d.opts.Pinned {
		return d.opts.Layer
	}
	return pickLayer(d.desired, active)
}

// pause stops sending video until a layer is allocated again. Caller holds mu.
func (d *DownTrack) pause(now int64) {
	if d.paused {
		return
	}
	d.paused, d.pausedAt = true, now
	d.target, d.current, d.replaying = -1, -1, false
	d.layerNow.Store(-1)
	d.track.stats.Pauses.Add(1)
	d.log.Debug("video paused")
}

// allocate applies the allocator's decision: a layer, allocPause, or
// allocAuto.
func (d *DownTrack) allocate(layer int, active [MaxLayers]bool, now int64) {
	if d.alloc.Swap(int32(layer)) != int32(layer) {
		d.reselect(active, now)
	}
}

// maxLayer is the highest layer the subscriber asked for.
func (d *DownTrack) maxLayer() int {
	d.mu.Lock()
	top, maxHeight := MaxLayers-1, d.opts.MaxHeight
	if d.opts.Pinned {
		top = d.opts.Layer
	}
	d.mu.Unlock()
	if maxHeight > 0 {
		for i := range top {
			if l := d.track.layers[i].Load(); l != nil && int(l.height.Load()) >= maxHeight {
				return i
			}
		}
	}
	return top
}

// SetMaxLayer caps (pins) the layer this subscriber receives, e.g. to the
// size its video element shows; the switch happens at the layer's next
// keyframe, which is requested now.
func (d *DownTrack) SetMaxLayer(idx int) {
	idx = max(0, min(idx, MaxLayers-1))
	d.mu.Lock()
	d.opts.Layer, d.opts.Pinned, d.desired = idx, true, idx
	d.mu.Unlock()
	_, active := d.track.Layers()
	d.reselect(active, time.Now().UnixNano())
}

// SetDisabled stops (true) or resumes (false) sending video, as when the
// subscriber's video element is hidden. A disabled DownTrack asks the
// publisher for nothing.
func (d *DownTrack) SetDisabled(disabled bool) {
	d.mu.Lock()
	changed := d.disabled != disabled
	d.disabled = disabled
	d.mu.Unlock()
	if changed {
		_, active := d.track.Layers()
		d.reselect(active, time.Now().UnixNano())
	}
}

// wantedLayer is the highest layer the subscriber would take: its cap, or
// -1 while disabled.
func (d *DownTrack) wantedLayer() int {
	d.mu.Lock()
	disabled := d.disabled
	d.mu.Unlock()
	if disabled {
		return -1
	}
	return d.maxLayer()
}

// Layer is the layer being forwarded (-1 before the first keyframe).
func (d *DownTrack) Layer() int { return int(d.layerNow.Load()) }

// DownTrackStats is a snapshot of one subscriber's counters.
type DownTrackStats struct {
	Kind        string `json:"kind"` // "audio" or "video"
	Packets     uint64 `json:"packets"`
	Bytes       uint64 `json:"bytes"`
	Switches    uint64 `json:"switches"`
	NACKs       uint64 `json:"nacks"`
	Retransmits uint64 `json:"retransmits"`
	// Layer is the layer being forwarded (-1: none), Target the one being
	// switched to at its next keyframe.
	Layer  int  `json:"layer"`
	Target int  `json:"target"`
	Paused bool `json:"paused"`
	// Disabled: the subscriber asked for no video (SetDisabled); a
	// disabled track is paused too.
	Disabled bool `json:"disabled,omitempty"`
	// PausedSeconds is the total time video was paused, the current pause
	// included.
	PausedSeconds float64 `json:"pausedSeconds"`
}

// Stats returns the DownTrack's counters.
func (d *DownTrack) Stats() DownTrackStats {
	now := time.Now().UnixNano()
	d.mu.Lock()
	target, paused, pausedNs, disabled := int(d.target), d.paused, d.pausedTotal, d.disabled
	if paused {
		pausedNs += now - d.pausedAt
	}
	d.mu.Unlock()
	return DownTrackStats{
		Kind:          d.track.info.Kind.String(),
		Packets:       d.packets.Load(),
		Bytes:         d.bytes.Load(),
		Switches:      d.switches.Load(),
		NACKs:         d.nacks.Load(),
		Retransmits:   d.resent.Load(),
		Layer:         d.Layer(),
		Target:        target,
		Paused:        paused,
		Disabled:      disabled,
		PausedSeconds: float64(pausedNs) / 1e9,
	}
}
