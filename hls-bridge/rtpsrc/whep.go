package rtpsrc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/starling-sfu/starling/whipclient"
)

// WHEPOptions configure DialWHEP.
type WHEPOptions struct {
	// Handler receives the frames; required.
	Handler Handler
	// Source tunes the Source the session feeds. DialWHEP sets its
	// RequestKeyframe to send an RTCP PLI, after calling the one given.
	Source Options
	// API builds the peer connection. Nil: VP8, VP9, H.264 and Opus with
	// NACK, receiver reports and transport-wide feedback.
	API *webrtc.API
	// IncludeLoopback offers loopback candidates (a server on this host),
	// when API is nil.
	IncludeLoopback bool
	// ICEServers (STUN, TURN) for the connection. The offer is sent with
	// every candidate gathered, so the ICE servers a WHEP server names in
	// its answer's Link headers come too late and are not used.
	ICEServers []webrtc.ICEServer
	// HTTPClient posts the offer and deletes the session. Default
	// http.DefaultClient.
	HTTPClient *http.Client
	// ConnectTimeout ends the session when media is not flowing in time.
	// Default 15 s.
	ConnectTimeout time.Duration
	Logger         *slog.Logger
}

// ErrSessionEnded is WHEPSource.Err when the server ended the session (the
// publisher left, or the session was deleted).
var ErrSessionEnded = errors.New("whep: the server ended the session")

// tickInterval paces Source.Tick.
const tickInterval = 20 * time.Millisecond

// WHEPSource is a WHEP playback session feeding a Source.
type WHEPSource struct {
	src     *Source
	pc      *webrtc.PeerConnection
	client  *http.Client
	token   string
	session *whipclient.Session
	log     *slog.Logger

	mu        sync.Mutex // guards closing, err, and wg.Add against Close
	closing   bool
	err       error
	wg        sync.WaitGroup
	stop      chan struct{} // closed by Close
	done      chan struct{} // closed when the session ended
	connected chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// DialWHEP negotiates a WHEP session at url (POST /whep/{room}[/{participant}]),
// with a bearer token when token is not empty, and feeds what it plays into
// a new Source. ctx bounds the negotiation only; the session lasts until
// Close, or until Done is closed when the connection fails or the server
// ends it.
func DialWHEP(ctx context.Context, url, token string, o WHEPOptions) (*WHEPSource, error) {
	if o.Handler == nil {
		return nil, errors.New("whep: no handler")
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 15 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.API == nil {
		api, err := newWHEPAPI(o.IncludeLoopback)
		if err != nil {
			return nil, err
		}
		o.API = api
	}
	pc, err := o.API.NewPeerConnection(webrtc.Configuration{ICEServers: o.ICEServers})
	if err != nil {
		return nil, fmt.Errorf("whep: %w", err)
	}
	w := &WHEPSource{
		pc: pc, client: o.HTTPClient, token: token, log: o.Logger.With("whep", url),
		stop: make(chan struct{}), done: make(chan struct{}), connected: make(chan struct{}),
	}
	so := o.Source
	so.Logger = w.log
	userRequest := so.RequestKeyframe
	so.RequestKeyframe = func(ssrc uint32) {
		if userRequest != nil {
			userRequest(ssrc)
		}
		w.sendPLI(ssrc)
	}
	w.src = NewSource(o.Handler, so)

	answer, err := w.negotiate(ctx, url)
	if err != nil {
		_ = pc.Close()
		return nil, err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		w.Close()
		return nil, fmt.Errorf("whep: apply answer: %w", err)
	}
	w.wg.Add(1)
	go w.tick(o.ConnectTimeout)
	return w, nil
}

// negotiate offers to receive one video and one audio track, gathers every
// candidate (no trickle), and posts the offer.
func (w *WHEPSource) negotiate(ctx context.Context, url string) (string, error) {
	pc := w.pc
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return "", fmt.Errorf("whep: add %s transceiver: %w", k, err)
		}
	}
	pc.OnTrack(w.onTrack)
	pc.OnConnectionStateChange(w.onState)
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return "", fmt.Errorf("whep: create offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return "", fmt.Errorf("whep: set offer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", fmt.Errorf("whep: gathering candidates: %w", ctx.Err())
	}
	sess, err := whipclient.Post(ctx, w.client, url, w.token, pc.LocalDescription().SDP)
	if err != nil {
		return "", fmt.Errorf("whep: %w", err)
	}
	w.session = sess
	return sess.Answer, nil
}

// Source is the Source the session feeds: stats, Origin.
func (w *WHEPSource) Source() *Source { return w.src }

// Location is the URL of the WHEP session resource.
func (w *WHEPSource) Location() string {
	if w.session == nil {
		return ""
	}
	return w.session.Location
}

// RequestKeyframe sends the server a PLI for the video track now.
func (w *WHEPSource) RequestKeyframe() { w.src.RequestKeyframe() }

// Done is closed when the session has ended: connection failed, the server
// ended it, or Close.
func (w *WHEPSource) Done() <-chan struct{} { return w.done }

// Err says why the session ended: nil while it runs or when Close ended it.
func (w *WHEPSource) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close deletes the session on the server (DELETE on its Location), closes
// the connection and waits for the session's goroutines. It returns the
// DELETE's error, if any.
func (w *WHEPSource) Close() error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closing = true
		w.mu.Unlock()
		close(w.stop)
		if w.session != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			w.closeErr = w.session.Delete(ctx)
			cancel()
		}
		if err := w.pc.Close(); err != nil && w.closeErr == nil {
			w.closeErr = fmt.Errorf("whep: close: %w", err)
		}
		w.wg.Wait()
		w.end(nil)
	})
	return w.closeErr
}

// end records why the session ended, once, and closes Done.
func (w *WHEPSource) end(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-w.done:
		return
	default:
	}
	if !w.closing {
		w.err = err
		if err != nil {
			w.log.Warn("whep session ended", "err", err)
		}
	}
	close(w.done)
}

// ending reports whether Close has begun.
func (w *WHEPSource) ending() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closing
}

func (w *WHEPSource) onState(st webrtc.PeerConnectionState) {
	w.log.Debug("connection state", "state", st.String())
	switch st {
	case webrtc.PeerConnectionStateConnected:
		select {
		case <-w.connected:
		default:
			close(w.connected)
		}
	case webrtc.PeerConnectionStateFailed:
		w.end(errors.New("whep: connection failed"))
	case webrtc.PeerConnectionStateClosed:
		w.end(ErrSessionEnded)
	}
}

// onTrack feeds a track the server sends, and its RTCP, into the Source.
func (w *WHEPSource) onTrack(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		return
	}
	w.wg.Add(2)
	w.mu.Unlock()
	c := tr.Codec()
	t, err := w.src.AddTrack(TrackParams{MimeType: c.MimeType, ClockRate: c.ClockRate, SSRC: uint32(tr.SSRC())})
	if err != nil {
		w.log.Warn("track not played", "err", err)
		w.wg.Add(-2)
		return
	}
	go w.readRTP(tr, t)
	go w.readRTCP(recv, t)
}

func (w *WHEPSource) readRTP(tr *webrtc.TrackRemote, t *Track) {
	defer w.wg.Done()
	buf := make([]byte, 1600)
	var p rtp.Packet
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			if !w.ending() {
				w.end(fmt.Errorf("%w: %s track: %w", ErrSessionEnded, tr.Kind(), err))
			}
			return
		}
		if err := p.Unmarshal(buf[:n]); err != nil {
			continue
		}
		t.WriteRTP(&p, time.Now())
	}
}

func (w *WHEPSource) readRTCP(recv *webrtc.RTPReceiver, t *Track) {
	defer w.wg.Done()
	for {
		pkts, _, err := recv.ReadRTCP()
		if err != nil {
			return
		}
		t.WriteRTCP(pkts, time.Now())
	}
}

// tick drives the Source's timers and ends a session that never connects.
func (w *WHEPSource) tick(connectTimeout time.Duration) {
	defer w.wg.Done()
	t := time.NewTicker(tickInterval)
	defer t.Stop()
	deadline := time.NewTimer(connectTimeout)
	defer deadline.Stop()
	for {
		select {
		case <-w.stop:
			return
		case now := <-t.C:
			w.src.Tick(now)
		case <-deadline.C:
			select {
			case <-w.connected:
			default:
				w.end(fmt.Errorf("whep: not connected after %s", connectTimeout))
			}
		}
	}
}

func (w *WHEPSource) sendPLI(ssrc uint32) {
	if err := w.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
		w.log.Debug("send PLI", "err", err)
	}
}

// newWHEPAPI builds the default pion API: the codecs rtpsrc depacketizes,
// with RTX, NACK, receiver reports and transport-wide congestion feedback
// (so an SFU can estimate the path and send its best layer).
func newWHEPAPI(loopback bool) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	video := []webrtc.RTPCodecCapability{
		{MimeType: webrtc.MimeTypeVP8},
		{MimeType: webrtc.MimeTypeH264, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
		{MimeType: webrtc.MimeTypeH264, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"},
		{MimeType: webrtc.MimeTypeH264, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f"},
		{MimeType: webrtc.MimeTypeH264, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032"},
		{MimeType: webrtc.MimeTypeH264, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f"},
		{MimeType: webrtc.MimeTypeVP9, SDPFmtpLine: "profile-id=0"},
	}
	pt := webrtc.PayloadType(96)
	for _, c := range video {
		c.ClockRate, c.RTCPFeedback = 90000, fb
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: c, PayloadType: pt}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, fmt.Errorf("whep: codec %s: %w", c.MimeType, err)
		}
		rtx := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: fmt.Sprintf("apt=%d", pt)}
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: rtx, PayloadType: pt + 1}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, fmt.Errorf("whep: codec rtx: %w", err)
		}
		pt += 2
	}
	opus := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: opus, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("whep: codec opus: %w", err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureNack(m, ir); err != nil {
		return nil, fmt.Errorf("whep: nack: %w", err)
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, fmt.Errorf("whep: reports: %w", err)
	}
	if err := webrtc.ConfigureTWCCSender(m, ir); err != nil {
		return nil, fmt.Errorf("whep: twcc: %w", err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(loopback)
	se.SetICETimeouts(5*time.Second, 15*time.Second, 2*time.Second)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}
