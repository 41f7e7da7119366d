package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/starling-sfu/starling/clip"
	"github.com/starling-sfu/starling/whipclient"
)

// PublisherOptions configure a WHIP publisher.
type PublisherOptions struct {
	URL   string // WHIP endpoint, e.g. http://host:8080/whip/room
	Token string
	Codec clip.Codec // clip.VP8 (default) or clip.H264
	// Simulcast sends the three rungs q, h, f; otherwise only the top rung.
	Simulcast bool
	Audio     bool
	// AudioFirst puts the audio section before the video one, as OBS does.
	AudioFirst bool
	API        *webrtc.API
	HTTP       *http.Client
	// KeyframeOnRequest answers keyframe requests (PLI, FIR) as an encoder
	// does: the layer asked skips to its clip's next keyframe at once.
	// Otherwise keyframes come every second, whatever is asked.
	KeyframeOnRequest bool
	// OnSend, when set, sees every packet just before it is sent, with its
	// layer ("q", "h", "f", or "audio"). It must not keep the packet.
	OnSend func(layer string, p *rtp.Packet, keyframe bool, at time.Time)
}

// Publisher is a WHIP publisher playing the embedded clips in real time.
type Publisher struct {
	pc      *webrtc.PeerConnection
	session *Session
	player  *clip.Player

	cancel    context.CancelFunc
	ready     chan struct{} // closed once the answer is applied
	simulcast []*ridWriter
	connected chan struct{}
	ended     chan struct{}
	endOnce   sync.Once
	done      chan error
	closed    atomic.Bool
}

// Publish negotiates a WHIP session and starts sending media as soon as the
// connection is up.
func Publish(ctx context.Context, o PublisherOptions) (*Publisher, error) {
	if o.Codec == "" {
		o.Codec = clip.VP8
	}
	var err error
	if o.API, o.HTTP, err = withDefaults(o.API, o.HTTP); err != nil {
		return nil, err
	}
	pc, err := o.API.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("whip: %w", err)
	}
	p := &Publisher{pc: pc, ready: make(chan struct{}), connected: make(chan struct{}), ended: make(chan struct{}), done: make(chan error, 1)}
	outputs, err := p.addTracks(o)
	if err != nil {
		pc.Close()
		return nil, err
	}
	if p.player, err = clip.NewPlayer(clip.PlayerConfig{Outputs: outputs, OnSend: o.OnSend}); err != nil {
		pc.Close()
		return nil, err
	}

	runCtx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	var once sync.Once
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			once.Do(func() {
				close(p.connected)
				go func() {
					select {
					case <-p.ready:
						p.done <- p.player.Run(runCtx)
					case <-runCtx.Done():
						p.done <- runCtx.Err()
					}
				}()
			})
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed, webrtc.PeerConnectionStateDisconnected:
			p.endOnce.Do(func() { close(p.ended) })
		}
	})

	offer, err := pc.CreateOffer(nil)
	if err == nil {
		gathered := webrtc.GatheringCompletePromise(pc)
		if err = pc.SetLocalDescription(offer); err == nil {
			select {
			case <-gathered:
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
	}
	if err == nil {
		p.session, err = whipclient.Post(ctx, o.HTTP, o.URL, o.Token, pc.LocalDescription().SDP)
	}
	if err == nil {
		err = pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: p.session.Answer})
	}
	if err != nil {
		cancel()
		pc.Close()
		return nil, err
	}
	for _, w := range p.simulcast {
		w.negotiated(pc)
	}
	close(p.ready)
	return p, nil
}

// addTracks adds the video (one track, three encodings when simulcast) and
// audio tracks, and returns the clip outputs feeding them.
func (p *Publisher) addTracks(o PublisherOptions) ([]clip.Output, error) {
	pc := p.pc
	var outputs []clip.Output
	if o.AudioFirst && o.Audio {
		out, err := addAudio(pc)
		if err != nil {
			return nil, err
		}
		outputs = append(outputs, out)
	}
	rids := []string{"f"}
	if o.Simulcast {
		rids = clip.RIDs()
	}
	var sender *webrtc.RTPSender
	streams := map[string]*clip.Stream{} // by rid
	for _, rid := range rids {
		c, err := clip.Video(o.Codec, rid)
		if err != nil {
			return nil, err
		}
		var opts []func(*webrtc.TrackLocalStaticRTP)
		if o.Simulcast {
			opts = append(opts, webrtc.WithRTPStreamID(rid))
		}
		track, err := webrtc.NewTrackLocalStaticRTP(o.Codec.Capability(), "video", "loadtest", opts...)
		if err != nil {
			return nil, fmt.Errorf("whip: video track: %w", err)
		}
		if sender == nil {
			if sender, err = pc.AddTrack(track); err != nil {
				return nil, fmt.Errorf("whip: add video: %w", err)
			}
		} else if err := sender.AddEncoding(track); err != nil {
			return nil, fmt.Errorf("whip: add encoding %s: %w", rid, err)
		}
		var w clip.Writer = track
		if o.Simulcast {
			rw := &ridWriter{track: track, sender: sender, rid: []byte(rid)}
			p.simulcast = append(p.simulcast, rw)
			w = rw
		}
		st := clip.NewStream(c, 0, 0)
		streams[rid] = st
		outputs = append(outputs, clip.Output{Layer: rid, Stream: st, Writer: w})
	}
	if o.KeyframeOnRequest {
		go answerKeyframeRequests(sender, streams)
	} else {
		go drainRTCP(sender)
	}
	if o.Audio && !o.AudioFirst {
		out, err := addAudio(pc)
		if err != nil {
			return nil, err
		}
		outputs = append(outputs, out)
	}
	return outputs, nil
}

func addAudio(pc *webrtc.PeerConnection) (clip.Output, error) {
	c, err := clip.Audio()
	if err != nil {
		return clip.Output{}, err
	}
	track, err := webrtc.NewTrackLocalStaticRTP(clip.Opus.Capability(), "audio", "loadtest")
	if err != nil {
		return clip.Output{}, fmt.Errorf("whip: audio track: %w", err)
	}
	s, err := pc.AddTrack(track)
	if err != nil {
		return clip.Output{}, fmt.Errorf("whip: add audio: %w", err)
	}
	go drainRTCP(s)
	return clip.Output{Layer: "audio", Stream: clip.NewStream(c, 0, 0), Writer: track}, nil
}

// answerKeyframeRequests reads the RTCP of each of the video sender's
// encodings and has the stream of an encoding that a PLI or FIR names send
// a keyframe next; it returns when the sender stops.
func answerKeyframeRequests(s *webrtc.RTPSender, byRID map[string]*clip.Stream) {
	var wg sync.WaitGroup
	for _, e := range s.GetParameters().Encodings {
		read := func() ([]rtcp.Packet, error) {
			pkts, _, err := s.ReadSimulcastRTCP(e.RID)
			return pkts, err
		}
		rid := e.RID
		if rid == "" { // not simulcast: the one encoding is the top rung
			rid = "f"
			read = func() ([]rtcp.Packet, error) {
				pkts, _, err := s.ReadRTCP()
				return pkts, err
			}
		}
		st := byRID[rid]
		if st == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				pkts, err := read()
				if err != nil {
					return
				}
				if asksKeyframe(pkts, uint32(e.SSRC)) {
					st.RequestKeyframe()
				}
			}
		}()
	}
	wg.Wait()
}

// asksKeyframe says whether pkts hold a PLI or FIR for ssrc.
func asksKeyframe(pkts []rtcp.Packet, ssrc uint32) bool {
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.PictureLossIndication:
			if p.MediaSSRC == ssrc {
				return true
			}
		case *rtcp.FullIntraRequest:
			for _, e := range p.FIR {
				if e.SSRC == ssrc {
					return true
				}
			}
		}
	}
	return false
}

// drainRTCP reads a sender's RTCP (keyframe requests, reports) so its
// interceptors work; it returns when the sender stops.
func drainRTCP(s *webrtc.RTPSender) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := s.Read(buf); err != nil {
			return
		}
	}
}

// WaitConnected waits until media is flowing.
func (p *Publisher) WaitConnected(ctx context.Context) error {
	select {
	case <-p.connected:
		return nil
	case <-p.ended:
		return errors.New("whip: connection ended before it was up")
	case <-ctx.Done():
		return fmt.Errorf("whip: not connected: %w", ctx.Err())
	}
}

// Session is the WHIP resource.
func (p *Publisher) Session() *Session { return p.session }

// PeerConnection exposes the underlying connection.
func (p *Publisher) PeerConnection() *webrtc.PeerConnection { return p.pc }

// Close stops the media, deletes the WHIP session and closes the connection.
// Calls after the first do nothing.
func (p *Publisher) Close(ctx context.Context) error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	p.cancel()
	var err error
	if p.session != nil {
		err = p.session.Delete(ctx)
	}
	if cerr := p.pc.Close(); err == nil {
		err = cerr
	}
	select {
	case <-p.connected:
		<-p.done
	default:
	}
	return err
}

// ridWriter tags a simulcast encoding's packets with the MID and RID header
// extensions (RFC 8852), which is how the receiver tells encodings apart;
// pion leaves that to the application.
type ridWriter struct {
	track        *webrtc.TrackLocalStaticRTP
	sender       *webrtc.RTPSender
	rid, mid     []byte
	midID, ridID uint8
}

// negotiated reads the extension IDs and the MID from the applied answer.
func (w *ridWriter) negotiated(pc *webrtc.PeerConnection) {
	for _, t := range pc.GetTransceivers() {
		if t.Sender() == w.sender {
			w.mid = []byte(t.Mid())
		}
	}
	for _, e := range w.sender.GetParameters().HeaderExtensions {
		switch e.URI {
		case sdp.SDESMidURI:
			w.midID = uint8(e.ID)
		case sdp.SDESRTPStreamIDURI:
			w.ridID = uint8(e.ID)
		}
	}
}

func (w *ridWriter) WriteRTP(p *rtp.Packet) error {
	if w.midID != 0 {
		_ = p.Header.SetExtension(w.midID, w.mid)
	}
	if w.ridID != 0 {
		_ = p.Header.SetExtension(w.ridID, w.rid)
	}
	return w.track.WriteRTP(p)
}
