// Package rtcclient is a client of LiveKit's signal protocol as Starling's
// /rtc speaks it: the v0 path with two peer connections (the client offers on
// the publisher, the server offers on the subscriber), protocol 16.
//
// It behaves as livekit-client does in that mode: it joins over a websocket
// of binary protobuf frames, trickles candidates both ways, publishes tracks
// with AddTrackRequest and a renegotiation (simulcast included), subscribes
// automatically, exchanges DataPackets on the _reliable and _lossy channels,
// pings, and resumes a lost signal connection with an ICE restart and a
// sync_state. It is meant for tests of the server and for load generation,
// so it keeps counters for every track it receives and lets a test break the
// signal connection on purpose.
package rtcclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livekit/protocol/livekit"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// ErrClosed is what a closed client's calls return.
var ErrClosed = errors.New("rtcclient: client closed")

// errSignalDown is a request made while there is no signal connection.
var errSignalDown = errors.New("rtcclient: signal connection is down")

// Options configure Join.
type Options struct {
	// URL is the server, http(s)://host:port; ws(s):// works too. The
	// client dials its /rtc.
	URL   string
	Token string
	// DisableAutoSubscribe joins with auto_subscribe=0; by default the
	// server subscribes the client to every track.
	DisableAutoSubscribe bool
	AdaptiveStream       bool
	// AutoResume resumes the session when the signal connection is lost
	// (read error, ping timeout, a leave with action RESUME), as
	// livekit-client does. Without it the client reports the loss through
	// OnSignalLost and waits for Resume.
	AutoResume bool
	// StrictResume makes a resume wait for the server's ICE-restart offer
	// on the subscriber, which livekit-server sends on every resume, and
	// fail without it. livekit-client does not wait for it.
	StrictResume bool
	// Protocol is the announced protocol version; 0 means Protocol.
	Protocol int
	// PublishTimeout bounds the wait for track_published; 0 means 10 s, as
	// in livekit-client.
	PublishTimeout time.Duration
	API            *webrtc.API // nil: NewAPI()
	Logger         *slog.Logger
	Dialer         *websocket.Dialer
	Handlers
}

// Handlers are the client's callbacks. Every one but OnRTP runs on one
// goroutine of the client's, in the order of the events, with no lock of
// the client's held: a handler may call the client's methods, Close
// included. A slow handler delays the ones after it, nothing else.
type Handlers struct {
	OnTrack             func(*RemoteTrack)
	OnData              func(*livekit.DataPacket)
	OnParticipantUpdate func([]*livekit.ParticipantInfo)
	OnSpeakersChanged   func([]*livekit.SpeakerInfo)
	OnSubscribedQuality func(*livekit.SubscribedQualityUpdate)
	// OnMute reports the server muting or unmuting one of our tracks.
	OnMute              func(trackSID string, muted bool)
	OnConnectionQuality func([]*livekit.ConnectionQualityInfo)
	OnRoomUpdate        func(*livekit.Room)
	// OnTrackUnpublished reports the server unpublishing one of our tracks.
	OnTrackUnpublished func(trackSID string)
	OnLeave            func(*livekit.LeaveRequest)
	// OnSignal sees every response after the client has handled it.
	OnSignal     func(*livekit.SignalResponse)
	OnSignalLost func(error)
	OnResumed    func()
	// OnDisconnected reports the end of the session by the server, or by a
	// resume that failed; not a Close.
	OnDisconnected func(error)
	// OnRTP sees every packet received. It runs on the track's read
	// goroutine and must be quick and must not keep the packet.
	OnRTP func(t *RemoteTrack, p *rtp.Packet, at time.Time)
}

// Client is one participant's session.
type Client struct {
	opts   Options
	log    *slog.Logger
	api    *webrtc.API
	events *dispatcher

	// lifetime ends at Close; every goroutine of the client's watches it or
	// ends with a connection Close closes.
	lifetime context.Context
	cancel   context.CancelFunc
	done     chan struct{}

	lifeMu sync.Mutex
	closed bool
	err    error
	wg     sync.WaitGroup

	pub, sub *transport
	data     dataChannels

	// sigMu guards the signal connection and the requests held back while
	// resuming; resumeMu serialises resumes.
	sigMu    sync.Mutex
	sig      *signalConn
	resuming bool
	held     []*livekit.SignalRequest
	resumeMu sync.Mutex

	hmu      sync.Mutex
	handlers Handlers

	mu           sync.Mutex
	join         *livekit.JoinResponse
	local        *livekit.ParticipantInfo
	token        string
	room         *livekit.Room
	participants map[string]*livekit.ParticipantInfo // remote ones, by SID
	speakers     map[string]*livekit.SpeakerInfo     // active ones, by participant SID
	qualities    map[string]*livekit.SubscribedQualityUpdate
	connQuality  map[string]*livekit.ConnectionQualityInfo
	rtt          time.Duration
	pending      map[string]chan publishResult // AddTrackRequests by cid
	lastRefusal  *livekit.RequestResponse      // newest refusal no request was waiting for
	localTracks  map[string]*LocalTrack        // by cid
	remoteTracks map[string]*RemoteTrack       // by track SID
	midToTrack   map[string]string
	desired      map[string]bool // subscriptions asked for, by track SID
	disabled     map[string]bool // tracks disabled by UpdateTrackSettings
}

// Join dials the server's /rtc, waits for the join response, sets up both
// peer connections, and returns once the primary one (the subscriber when
// the server says subscriber_primary, else the publisher) is connected, as
// livekit-client's Room.connect does. A refused upgrade is a
// *HandshakeError with the HTTP status and body; a leave instead of the join
// response is a *LeaveError.
func Join(ctx context.Context, o Options) (*Client, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Protocol == 0 {
		o.Protocol = Protocol
	}
	if o.PublishTimeout == 0 {
		o.PublishTimeout = 10 * time.Second
	}
	if o.API == nil {
		api, err := NewAPI()
		if err != nil {
			return nil, err
		}
		o.API = api
	}
	c := &Client{
		opts:         o,
		log:          o.Logger,
		api:          o.API,
		done:         make(chan struct{}),
		handlers:     o.Handlers,
		token:        o.Token,
		participants: map[string]*livekit.ParticipantInfo{},
		speakers:     map[string]*livekit.SpeakerInfo{},
		qualities:    map[string]*livekit.SubscribedQualityUpdate{},
		connQuality:  map[string]*livekit.ConnectionQualityInfo{},
		pending:      map[string]chan publishResult{},
		localTracks:  map[string]*LocalTrack{},
		remoteTracks: map[string]*RemoteTrack{},
		midToTrack:   map[string]string{},
		desired:      map[string]bool{},
		disabled:     map[string]bool{},
	}
	u, err := RTCURL(o.URL, c.connectParams().query())
	if err != nil {
		return nil, err
	}
	conn, _, err := dial(ctx, o.Dialer, u)
	if err != nil {
		return nil, err
	}
	sig := newSignalConn(conn)
	res, err := sig.readFirst(ctx, false)
	if err != nil {
		sig.close()
		return nil, fmt.Errorf("rtcclient: join: %w", err)
	}
	join := res.GetJoin()
	c.lifetime, c.cancel = context.WithCancel(context.Background())
	c.events = newDispatcher()
	c.applyJoin(join)
	c.log = c.log.With("participant", join.GetParticipant().GetIdentity(), "room", join.GetRoom().GetName())
	if err := c.setupTransports(join); err != nil {
		sig.close()
		_ = c.Close()
		return nil, err
	}
	c.installSignal(sig, join.GetPingInterval(), join.GetPingTimeout())
	c.goOwned(func() { c.pub.runNegotiator(c.lifetime) })
	if !join.GetSubscriberPrimary() || join.GetFastPublish() {
		c.pub.requestOffer()
	}
	primary := c.pub
	if join.GetSubscriberPrimary() {
		primary = c.sub
	}
	if err := c.waitConnected(ctx, primary); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("rtcclient: join: %w", err)
	}
	return c, nil
}

func (c *Client) connectParams() connectParams {
	return connectParams{
		token:          c.opts.Token,
		autoSubscribe:  !c.opts.DisableAutoSubscribe,
		adaptiveStream: c.opts.AdaptiveStream,
		protocol:       c.opts.Protocol,
	}
}

func (c *Client) applyJoin(join *livekit.JoinResponse) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.join = join
	c.local = join.GetParticipant()
	c.room = join.GetRoom()
	for _, p := range join.GetOtherParticipants() {
		c.participants[p.GetSid()] = p
	}
}

// rtcConfiguration turns the server's ICE servers and client configuration
// into a peer connection configuration, as RTCEngine.makeRTCConfiguration.
func rtcConfiguration(servers []*livekit.ICEServer, cc *livekit.ClientConfiguration) webrtc.Configuration {
	cfg := webrtc.Configuration{}
	for _, s := range servers {
		ice := webrtc.ICEServer{URLs: s.GetUrls(), Username: s.GetUsername()}
		if s.GetCredential() != "" {
			ice.Credential = s.GetCredential()
		}
		cfg.ICEServers = append(cfg.ICEServers, ice)
	}
	if cc.GetForceRelay() == livekit.ClientConfigSetting_ENABLED {
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	return cfg
}

func (c *Client) setupTransports(join *livekit.JoinResponse) error {
	cfg := rtcConfiguration(join.GetIceServers(), join.GetClientConfiguration())
	pubPC, err := c.api.NewPeerConnection(cfg)
	if err != nil {
		return fmt.Errorf("rtcclient: publisher: %w", err)
	}
	subPC, err := c.api.NewPeerConnection(cfg)
	if err != nil {
		_ = pubPC.Close()
		return fmt.Errorf("rtcclient: subscriber: %w", err)
	}
	c.pub = newTransport(livekit.SignalTarget_PUBLISHER, pubPC, c.log, c.send)
	c.sub = newTransport(livekit.SignalTarget_SUBSCRIBER, subPC, c.log, c.send)
	for _, t := range []*transport{c.pub, c.sub} {
		t := t
		t.pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
			t.log.Debug("rtcclient: connection state", "state", st)
			t.changed.notify()
		})
	}
	subPC.OnTrack(c.onRemoteTrack)
	subPC.OnDataChannel(c.adoptDataChannel)
	// livekit-client creates its channels before the first offer, so that
	// the offer carries an application section even with no track.
	return c.createDataChannels(pubPC)
}

// installSignal makes s the signal connection and starts reading it and,
// when the server asked for it, pinging.
func (c *Client) installSignal(s *signalConn, interval, timeout int32) {
	c.sigMu.Lock()
	c.sig = s
	c.sigMu.Unlock()
	if !c.goOwned(func() { c.readLoop(s) }) {
		s.close()
		return
	}
	if interval > 0 {
		c.goOwned(func() {
			c.pingLoop(s, time.Duration(interval)*time.Second, time.Duration(timeout)*time.Second)
		})
	}
}

// goOwned runs f on a goroutine Close waits for, unless the client is
// closed already.
func (c *Client) goOwned(f func()) bool {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
	return true
}

// post queues a handler call, if the handler is set.
func (c *Client) post(f func(h *Handlers)) {
	c.events.post(func() {
		h := c.handler()
		f(&h)
	})
}

// OnTrack sets the track handler and calls it at once, on the handler
// goroutine, for every track already received, so none is missed between
// Join and the call.
func (c *Client) OnTrack(f func(*RemoteTrack)) {
	// Under mu, as onRemoteTrack adds a track and posts its call, so that
	// each track is handed to f exactly once.
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hmu.Lock()
	c.handlers.OnTrack = f
	c.hmu.Unlock()
	tracks := c.remoteTracksLocked()
	if f != nil {
		c.events.post(func() {
			for _, t := range tracks {
				f(t)
			}
		})
	}
}

// handler returns a copy of the handlers.
func (c *Client) handler() Handlers {
	c.hmu.Lock()
	defer c.hmu.Unlock()
	return c.handlers
}

// OnData sets the data handler.
func (c *Client) OnData(f func(*livekit.DataPacket)) {
	c.hmu.Lock()
	c.handlers.OnData = f
	c.hmu.Unlock()
}

// send sends a request on the signal connection. While resuming, requests
// other than those livekit-client lets through (sync_state, trickle, offer,
// answer, simulate, leave) are held back and sent once resumed.
func (c *Client) send(req *livekit.SignalRequest) error {
	c.sigMu.Lock()
	if c.resuming && !passesResume(req) {
		c.held = append(c.held, req)
		c.sigMu.Unlock()
		return nil
	}
	s := c.sig
	c.sigMu.Unlock()
	if s == nil {
		if c.isClosed() {
			return ErrClosed
		}
		return errSignalDown
	}
	return s.write(req)
}

func passesResume(req *livekit.SignalRequest) bool {
	switch req.Message.(type) {
	case *livekit.SignalRequest_SyncState, *livekit.SignalRequest_Trickle, *livekit.SignalRequest_Offer,
		*livekit.SignalRequest_Answer, *livekit.SignalRequest_Simulate, *livekit.SignalRequest_Leave:
		return true
	}
	return false
}

// waitConnected waits for t's peer connection to be connected.
func (c *Client) waitConnected(ctx context.Context, t *transport) error {
	err := t.changed.waitFor(ctx, func() bool {
		return t.connected() || c.isClosed()
	})
	if err == nil && c.isClosed() {
		err = c.Err()
	}
	if err != nil {
		return fmt.Errorf("%s peer connection not connected (%s): %w", targetName(t.target), t.pc.ConnectionState(), err)
	}
	return nil
}

// WaitConnected waits until both peer connections are connected; one that
// was never negotiated (a publisher with nothing published on a
// subscriber-primary server) does not count.
func (c *Client) WaitConnected(ctx context.Context) error {
	if c.pub.wasNegotiated() {
		if err := c.waitConnected(ctx, c.pub); err != nil {
			return fmt.Errorf("rtcclient: %w", err)
		}
	}
	if c.sub.offersAnswered() > 0 || c.join.GetSubscriberPrimary() {
		if err := c.waitConnected(ctx, c.sub); err != nil {
			return fmt.Errorf("rtcclient: %w", err)
		}
	}
	return nil
}

// shutdown ends the session without waiting for the goroutines: the lifetime
// is cancelled and both connections closed. err says why (nil for Close).
func (c *Client) shutdown(err error) {
	c.lifeMu.Lock()
	if c.closed {
		c.lifeMu.Unlock()
		return
	}
	c.closed = true
	if err == nil {
		err = ErrClosed
	}
	c.err = err
	c.lifeMu.Unlock()

	c.cancel()
	c.sigMu.Lock()
	s := c.sig
	c.sig = nil
	c.held = nil
	c.sigMu.Unlock()
	if s != nil {
		s.close()
	}
	if c.pub != nil {
		_ = c.pub.pc.Close()
		c.pub.changed.notify()
	}
	if c.sub != nil {
		_ = c.sub.pc.Close()
		c.sub.changed.notify()
	}
	close(c.done)
}

func (c *Client) isClosed() bool {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	return c.closed
}

// Close ends the session without a leave, as a crashed client would, and
// waits for the client's goroutines. A handler that is running when Close is
// called from elsewhere may still be finishing when Close returns.
func (c *Client) Close() error {
	c.shutdown(nil)
	c.wg.Wait()
	c.events.stop()
	return nil
}

// Leave tells the server the participant leaves (CLIENT_INITIATED,
// DISCONNECT), closes the websocket cleanly and closes the client.
func (c *Client) Leave() error {
	c.sigMu.Lock()
	s := c.sig
	c.sigMu.Unlock()
	var err error
	if s != nil {
		err = s.write(&livekit.SignalRequest{Message: &livekit.SignalRequest_Leave{Leave: &livekit.LeaveRequest{
			Reason: livekit.DisconnectReason_CLIENT_INITIATED,
			Action: livekit.LeaveRequest_DISCONNECT,
		}}})
		s.closeGracefully()
	}
	_ = c.Close()
	return err
}

// Done is closed when the session ends: Close, Leave, a leave from the
// server, or a resume that failed.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err says why the session ended: nil while it runs, ErrClosed after Close,
// a *LeaveError after the server's leave.
func (c *Client) Err() error {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	return c.err
}
