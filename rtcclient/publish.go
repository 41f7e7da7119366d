package rtcclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/proto"

	"github.com/starling-sfu/starling/clip"
)

// PublishOptions describe one track to publish.
type PublishOptions struct {
	Name string
	// Source defaults to CAMERA for video and MICROPHONE for audio.
	Source livekit.TrackSource
	// Codec is the local track's codec; its MIME type decides the kind.
	Codec webrtc.RTPCodecCapability
	// Width and Height are the video's full size.
	Width, Height uint32
	// Layers, two or more, make a simulcast track: one encoding per layer
	// on one transceiver, lowest first, as Layers of the clip package.
	Layers []Layer
	Muted  bool
	// AudioLevel is the level, in -dBov, written with the voice-activity
	// flag into the audio-level extension of every audio packet, as a
	// browser does for a speaking microphone: 0 means 30, -1 leaves the
	// extension out.
	AudioLevel int
}

// Layer is one simulcast encoding.
type Layer struct {
	RID           string
	Width, Height uint32
	Bitrate       uint32 // bit/s
}

// Quality maps the rid to a VideoQuality as livekit-client's
// videoQualityForRid does: q LOW, h MEDIUM, anything else HIGH.
func (l Layer) Quality() livekit.VideoQuality {
	switch l.RID {
	case "q":
		return livekit.VideoQuality_LOW
	case "h":
		return livekit.VideoQuality_MEDIUM
	}
	return livekit.VideoQuality_HIGH
}

// LocalTrack is a published track. Media goes in through Writer.
type LocalTrack struct {
	cid         string
	kind        webrtc.RTPCodecType
	transceiver *webrtc.RTPTransceiver
	writers     map[string]*extWriter // by rid, "" when not simulcast

	mu    sync.Mutex
	info  *livekit.TrackInfo
	muted bool
}

// CID returns the client's id of the track, the msid track id in the SDP.
func (t *LocalTrack) CID() string { return t.cid }

// SID returns the server's id of the track.
func (t *LocalTrack) SID() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.info.GetSid()
}

// Info returns the TrackInfo of track_published.
func (t *LocalTrack) Info() *livekit.TrackInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	return proto.Clone(t.info).(*livekit.TrackInfo)
}

// Muted reports the mute state last set by SetMuted or the server.
func (t *LocalTrack) Muted() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.muted
}

// Sender returns the track's RTP sender.
func (t *LocalTrack) Sender() *webrtc.RTPSender { return t.transceiver.Sender() }

// Writer returns the writer of the encoding rid ("" for a track without
// simulcast), or nil. It tags every packet with the negotiated MID and RID
// extensions (or the audio level) and must be used from one goroutine.
func (t *LocalTrack) Writer(rid string) clip.Writer {
	if w, ok := t.writers[rid]; ok {
		return w
	}
	return nil
}

// extWriter writes to one encoding, adding the header extensions a browser
// would: MID and RID on simulcast video, so the server tells the encodings
// apart (pion leaves that to the application), and the audio level.
type extWriter struct {
	track    *webrtc.TrackLocalStaticRTP
	rid, mid []byte
	level    []byte
	// Extension ids, read from the negotiated parameters before the writer
	// is handed out; 0 when not negotiated.
	midID, ridID, levelID uint8
}

func (w *extWriter) bind(tr *webrtc.RTPTransceiver) {
	w.mid = []byte(tr.Mid())
	for _, e := range tr.Sender().GetParameters().HeaderExtensions {
		switch e.URI {
		case sdp.SDESMidURI:
			w.midID = uint8(e.ID)
		case sdp.SDESRTPStreamIDURI:
			w.ridID = uint8(e.ID)
		case sdp.AudioLevelURI:
			w.levelID = uint8(e.ID)
		}
	}
}

func (w *extWriter) WriteRTP(p *rtp.Packet) error {
	if len(w.rid) > 0 {
		if w.midID != 0 {
			_ = p.Header.SetExtension(w.midID, w.mid)
		}
		if w.ridID != 0 {
			_ = p.Header.SetExtension(w.ridID, w.rid)
		}
	}
	if w.level != nil && w.levelID != 0 {
		_ = p.Header.SetExtension(w.levelID, w.level)
	}
	return w.track.WriteRTP(p)
}

type publishResult struct {
	info *livekit.TrackInfo
	err  error
}

// PublishTrack publishes a track as LocalParticipant.publishTrack does:
// it sends an AddTrackRequest (cid, name, type, source, size, layers), waits
// for the track_published that names the cid, then adds the track to the
// publisher connection (all encodings on one send-only transceiver) and
// waits for the answer to the renegotiation. A request_response refusing
// the track, a leave, or no answer in time is an error.
func (c *Client) PublishTrack(ctx context.Context, o PublishOptions) (*LocalTrack, error) {
	mime := strings.ToLower(o.Codec.MimeType)
	kind := webrtc.RTPCodecTypeVideo
	if strings.HasPrefix(mime, "audio/") {
		kind = webrtc.RTPCodecTypeAudio
	} else if !strings.HasPrefix(mime, "video/") {
		return nil, fmt.Errorf("rtcclient: publish %q: codec %q is neither audio nor video", o.Name, o.Codec.MimeType)
	}
	t := &LocalTrack{cid: newID(), kind: kind, writers: map[string]*extWriter{}, muted: o.Muted}
	tracks, err := t.localTracks(o)
	if err != nil {
		return nil, err
	}
	info, err := c.addTrack(ctx, addTrackRequest(t.cid, kind, o))
	if err != nil {
		return nil, err
	}
	t.info = info
	if t.transceiver, err = c.pub.pc.AddTransceiverFromTrack(tracks[0],
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		return nil, fmt.Errorf("rtcclient: publish %q: %w", o.Name, err)
	}
	for _, track := range tracks[1:] {
		if err := t.transceiver.Sender().AddEncoding(track); err != nil {
			return nil, fmt.Errorf("rtcclient: publish %q: encoding %s: %w", o.Name, track.RID(), err)
		}
	}
	// Known before the offer, so a resume in between lists it in sync_state.
	c.mu.Lock()
	c.localTracks[t.cid] = t
	c.mu.Unlock()
	if err := c.pub.negotiate(ctx); err != nil {
		c.mu.Lock()
		delete(c.localTracks, t.cid)
		c.mu.Unlock()
		return nil, fmt.Errorf("rtcclient: publish %q: %w", o.Name, err)
	}
	for _, w := range t.writers {
		w.bind(t.transceiver)
	}
	sender := t.transceiver.Sender()
	c.goOwned(func() { drainRTCP(sender) })
	return t, nil
}

// localTracks makes the pion track of every encoding and its writer. Every
// encoding carries the cid as its msid track id, as a browser's
// MediaStreamTrack id, which is how the server ties the SDP to the
// AddTrackRequest.
func (t *LocalTrack) localTracks(o PublishOptions) ([]*webrtc.TrackLocalStaticRTP, error) {
	streamID := newID()
	var level []byte
	if t.kind == webrtc.RTPCodecTypeAudio && o.AudioLevel >= 0 {
		l := o.AudioLevel
		if l == 0 {
			l = 30
		}
		level = []byte{0x80 | byte(min(l, 127))}
	}
	rids := []string{""}
	if len(o.Layers) > 1 {
		rids = rids[:0]
		for _, l := range o.Layers {
			rids = append(rids, l.RID)
		}
	}
	var tracks []*webrtc.TrackLocalStaticRTP
	for _, rid := range rids {
		var opts []func(*webrtc.TrackLocalStaticRTP)
		if rid != "" {
			opts = append(opts, webrtc.WithRTPStreamID(rid))
		}
		track, err := webrtc.NewTrackLocalStaticRTP(o.Codec, t.cid, streamID, opts...)
		if err != nil {
			return nil, fmt.Errorf("rtcclient: publish %q: %w", o.Name, err)
		}
		tracks = append(tracks, track)
		t.writers[rid] = &extWriter{track: track, rid: []byte(rid), level: level}
	}
	return tracks, nil
}

// addTrackRequest builds the request as LocalParticipant.publishTrack does.
func addTrackRequest(cid string, kind webrtc.RTPCodecType, o PublishOptions) *livekit.AddTrackRequest {
	req := &livekit.AddTrackRequest{
		Cid:    cid,
		Name:   o.Name,
		Muted:  o.Muted,
		Source: o.Source,
	}
	if kind == webrtc.RTPCodecTypeAudio {
		req.Type = livekit.TrackType_AUDIO
		if req.Source == livekit.TrackSource_UNKNOWN {
			req.Source = livekit.TrackSource_MICROPHONE
		}
		return req
	}
	req.Type = livekit.TrackType_VIDEO
	if req.Source == livekit.TrackSource_UNKNOWN {
		req.Source = livekit.TrackSource_CAMERA
	}
	req.Width, req.Height = o.Width, o.Height
	req.SimulcastCodecs = []*livekit.SimulcastCodec{{
		Codec: strings.ToLower(strings.TrimPrefix(strings.ToLower(o.Codec.MimeType), "video/")),
		Cid:   cid,
	}}
	if len(o.Layers) > 1 {
		for _, l := range o.Layers {
			req.Layers = append(req.Layers, &livekit.VideoLayer{
				Quality: l.Quality(), Width: l.Width, Height: l.Height, Bitrate: l.Bitrate,
			})
		}
	} else {
		// One encoding without a rid is one HIGH layer, as
		// videoLayersFromEncodings makes it.
		req.Layers = []*livekit.VideoLayer{{Quality: livekit.VideoQuality_HIGH, Width: o.Width, Height: o.Height}}
	}
	return req
}

// addTrack sends req and waits for the track_published naming its cid.
func (c *Client) addTrack(ctx context.Context, req *livekit.AddTrackRequest) (*livekit.TrackInfo, error) {
	ch := make(chan publishResult, 1)
	c.mu.Lock()
	c.pending[req.Cid] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, req.Cid)
		c.mu.Unlock()
	}()
	if err := c.send(&livekit.SignalRequest{Message: &livekit.SignalRequest_AddTrack{AddTrack: req}}); err != nil {
		return nil, fmt.Errorf("rtcclient: publish %q: %w", req.Name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.PublishTimeout)
	defer cancel()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("rtcclient: publish %q: %w", req.Name, r.err)
		}
		return r.info, nil
	case <-c.done:
		return nil, fmt.Errorf("rtcclient: publish %q: %w", req.Name, c.Err())
	case <-ctx.Done():
		err := fmt.Errorf("rtcclient: publish %q: no track_published: %w", req.Name, ctx.Err())
		c.mu.Lock()
		refusal := c.lastRefusal
		c.mu.Unlock()
		if refusal != nil {
			err = fmt.Errorf("%w (latest unmatched refusal: %w)", err, &RequestError{Response: refusal})
		}
		return nil, err
	}
}

func (c *Client) onTrackPublished(res *livekit.TrackPublishedResponse) {
	c.mu.Lock()
	ch, ok := c.pending[res.GetCid()]
	c.mu.Unlock()
	if !ok {
		c.log.Warn("rtcclient: track_published for no pending track", "cid", res.GetCid())
		return
	}
	select {
	case ch <- publishResult{info: res.GetTrack()}:
	default:
	}
}

// onRequestResponse fails the publication a refusal names; a refusal that
// names none is kept for the error of a publication that times out.
func (c *Client) onRequestResponse(r *livekit.RequestResponse) {
	if r.GetReason() == livekit.RequestResponse_OK {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if add := r.GetAddTrack(); add != nil {
		if ch, ok := c.pending[add.GetCid()]; ok {
			select {
			case ch <- publishResult{err: &RequestError{Response: r}}:
			default:
			}
			return
		}
	}
	c.lastRefusal = r
}

func (c *Client) onMute(sid string, muted bool) {
	if t := c.localTrack(sid); t != nil {
		t.mu.Lock()
		t.muted = muted
		t.mu.Unlock()
	}
	c.post(func(h *Handlers) {
		if h.OnMute != nil {
			h.OnMute(sid, muted)
		}
	})
}

func (c *Client) onTrackUnpublished(sid string) {
	c.mu.Lock()
	for cid, t := range c.localTracks {
		if t.SID() == sid {
			delete(c.localTracks, cid)
		}
	}
	c.mu.Unlock()
	c.post(func(h *Handlers) {
		if h.OnTrackUnpublished != nil {
			h.OnTrackUnpublished(sid)
		}
	})
}

// localTrack returns our published track with the server id sid, or nil.
func (c *Client) localTrack(sid string) *LocalTrack {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.localTracks {
		if t.SID() == sid {
			return t
		}
	}
	return nil
}

// LocalTracks returns the published tracks.
func (c *Client) LocalTracks() []*LocalTrack {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*LocalTrack, 0, len(c.localTracks))
	for _, t := range c.localTracks {
		out = append(out, t)
	}
	return out
}

// SetMuted sends a MuteTrackRequest for one of our tracks.
func (c *Client) SetMuted(trackSID string, muted bool) error {
	t := c.localTrack(trackSID)
	if t == nil {
		return fmt.Errorf("rtcclient: mute: no published track %s", trackSID)
	}
	t.mu.Lock()
	t.muted = muted
	t.mu.Unlock()
	return c.send(&livekit.SignalRequest{Message: &livekit.SignalRequest_Mute{
		Mute: &livekit.MuteTrackRequest{Sid: trackSID, Muted: muted},
	}})
}

// drainRTCP reads a sender's RTCP (receiver reports, NACKs, keyframe
// requests) so that its interceptors run; it returns when the sender stops.
func drainRTCP(s *webrtc.RTPSender) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := s.Read(buf); err != nil {
			return
		}
	}
}

// newID returns a random id in the form of a browser's track and stream
// ids.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(errors.Join(errors.New("rtcclient: random id"), err))
	}
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
