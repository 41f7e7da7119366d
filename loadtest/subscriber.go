package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/starling-sfu/starling/whipclient"
)

// SubscriberOptions configure a WHEP viewer.
type SubscriberOptions struct {
	URL   string // WHEP endpoint, e.g. http://host:8080/whep/room
	Token string // optional
	Layer string // optional ?layer= pin
	API   *webrtc.API
	HTTP  *http.Client
	// OnRTP, when set, sees every received packet. It runs on the track's
	// read goroutine and must be quick.
	OnRTP func(kind webrtc.RTPCodecType, p *rtp.Packet, at time.Time)
}

// Subscriber is a WHEP viewer that reads everything it is sent.
type Subscriber struct {
	pc      *webrtc.PeerConnection
	session *Session
	opts    SubscriberOptions

	connected chan struct{}
	ended     chan struct{}
	endOnce   sync.Once
	readers   sync.WaitGroup

	Packets  [2]atomic.Uint64 // [audio, video]
	Bytes    [2]atomic.Uint64
	Lost     [2]atomic.Uint64 // sequence gaps seen (before retransmission)
	FirstRTP atomic.Int64     // unix nanoseconds of the first video packet
}

// Subscribe connects a WHEP viewer and returns once the server answered; use
// WaitConnected for the media path.
func Subscribe(ctx context.Context, o SubscriberOptions) (*Subscriber, error) {
	var err error
	if o.API, o.HTTP, err = withDefaults(o.API, o.HTTP); err != nil {
		return nil, err
	}
	endpoint := o.URL
	if o.Layer != "" {
		var err error
		if endpoint, err = withQuery(endpoint, url.Values{"layer": {o.Layer}}); err != nil {
			return nil, fmt.Errorf("whep: url: %w", err)
		}
	}
	pc, err := o.API.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("whep: %w", err)
	}
	s := &Subscriber{pc: pc, opts: o, connected: make(chan struct{}), ended: make(chan struct{})}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			pc.Close()
			return nil, fmt.Errorf("whep: %w", err)
		}
	}
	var once sync.Once
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			once.Do(func() { close(s.connected) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed, webrtc.PeerConnectionStateDisconnected:
			s.end()
		}
	})
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		s.readers.Add(1)
		go s.read(t)
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("whep: offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		pc.Close()
		return nil, fmt.Errorf("whep: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		pc.Close()
		return nil, ctx.Err()
	}
	sess, err := whipclient.Post(ctx, o.HTTP, endpoint, o.Token, pc.LocalDescription().SDP)
	if err != nil {
		pc.Close()
		return nil, err
	}
	s.session = sess
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sess.Answer}); err != nil {
		pc.Close()
		return nil, fmt.Errorf("whep: answer: %w", err)
	}
	return s, nil
}

func (s *Subscriber) end() { s.endOnce.Do(func() { close(s.ended) }) }

func (s *Subscriber) read(t *webrtc.TrackRemote) {
	defer s.readers.Done()
	kind := 1
	if t.Kind() == webrtc.RTPCodecTypeAudio {
		kind = 0
	}
	var last uint16
	started := false
	for {
		p, _, err := t.ReadRTP()
		if err != nil {
			s.end()
			return
		}
		now := time.Now()
		if kind == 1 {
			s.FirstRTP.CompareAndSwap(0, now.UnixNano())
		}
		if started {
			if gap := p.SequenceNumber - last - 1; gap > 0 && gap < 0x8000 {
				s.Lost[kind].Add(uint64(gap))
			}
		}
		if !started || p.SequenceNumber-last < 0x8000 {
			last, started = p.SequenceNumber, true
		}
		s.Packets[kind].Add(1)
		s.Bytes[kind].Add(uint64(len(p.Payload) + 12))
		if s.opts.OnRTP != nil {
			s.opts.OnRTP(t.Kind(), p, now)
		}
	}
}

// WaitConnected waits until the peer connection is up.
func (s *Subscriber) WaitConnected(ctx context.Context) error {
	select {
	case <-s.connected:
		return nil
	case <-s.ended:
		return errors.New("whep: connection ended before it was up")
	case <-ctx.Done():
		return fmt.Errorf("whep: not connected: %w", ctx.Err())
	}
}

// Ended is closed when the server ended the session or the connection failed.
func (s *Subscriber) Ended() <-chan struct{} { return s.ended }

// PeerConnection exposes the underlying connection (stats, state).
func (s *Subscriber) PeerConnection() *webrtc.PeerConnection { return s.pc }

// Session is the WHEP resource.
func (s *Subscriber) Session() *Session { return s.session }

// Close deletes the WHEP session and closes the connection.
func (s *Subscriber) Close(ctx context.Context) error {
	var err error
	if s.session != nil {
		err = s.session.Delete(ctx)
	}
	if cerr := s.pc.Close(); err == nil {
		err = cerr
	}
	s.readers.Wait()
	return err
}
