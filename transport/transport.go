// Package transport builds the WebRTC stack that Starling's peer connections
// share: codecs and header extensions, the interceptors for each direction,
// and ICE on one UDP port plus an ICE-TCP listener.
package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"

	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/starling-sfu/starling/bwe"
)

// Config describes the ICE and media settings.
type Config struct {
	// UDPPort is the one UDP port all ICE traffic uses; 0 picks a free one.
	UDPPort int
	// TCPPort is the ICE-TCP port; 0 disables ICE-TCP, -1 picks a free one.
	TCPPort int
	// PublicIPs replace the host candidates' addresses (1:1 NAT).
	PublicIPs []string
	// Interfaces restricts gathering to these interface names when set.
	Interfaces []string
	// IncludeLoopback also offers loopback candidates.
	IncludeLoopback bool
	// Bandwidth tunes the estimators of subscriber connections.
	Bandwidth bwe.Options
	Logger    *slog.Logger
}

// Engine holds the two pion APIs: Publisher for peer connections that receive
// media into the SFU and Subscriber for those that send it out.
type Engine struct {
	Publisher  *webrtc.API
	Subscriber *webrtc.API

	udpMux *ice.MultiUDPMuxDefault
	tcpLn  net.Listener
	tcpMux *ice.TCPMuxDefault
}

// udpSocketBuffer sizes the shared UDP socket's kernel buffers: every
// subscriber's packets pass through it.
const udpSocketBuffer = 8 << 20

// tcpWriteBuffer is the per-connection ICE-TCP send buffer; when a slow
// subscriber fills it, packets are dropped rather than blocking the SFU.
const tcpWriteBuffer = 512 << 10

// New opens the UDP and TCP sockets and builds both APIs.
func New(cfg Config) (*Engine, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	e := &Engine{}
	keepIface := func(name string) bool {
		return len(cfg.Interfaces) == 0 || slices.Contains(cfg.Interfaces, name)
	}
	opts := []ice.UDPMuxFromPortOption{
		ice.UDPMuxFromPortWithInterfaceFilter(keepIface),
		ice.UDPMuxFromPortWithReadBufferSize(udpSocketBuffer),
		ice.UDPMuxFromPortWithWriteBufferSize(udpSocketBuffer),
		ice.UDPMuxFromPortWithNetworks(ice.NetworkTypeUDP4, ice.NetworkTypeUDP6),
	}
	if cfg.IncludeLoopback {
		opts = append(opts, ice.UDPMuxFromPortWithLoopback())
	}
	udpMux, err := ice.NewMultiUDPMuxFromPort(cfg.UDPPort, opts...)
	if err != nil {
		return nil, fmt.Errorf("transport: udp port %d: %w", cfg.UDPPort, err)
	}
	e.udpMux = udpMux

	se := webrtc.SettingEngine{}
	se.SetICEUDPMux(udpMux)
	networks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if cfg.TCPPort != 0 {
		port := max(cfg.TCPPort, 0)
		ln, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			_ = udpMux.Close()
			return nil, fmt.Errorf("transport: ice-tcp port %d: %w", port, err)
		}
		e.tcpLn = ln
		e.tcpMux = ice.NewTCPMuxDefault(ice.TCPMuxParams{
			Listener:        ln,
			ReadBufferSize:  64,
			WriteBufferSize: tcpWriteBuffer,
		})
		se.SetICETCPMux(e.tcpMux)
		networks = append(networks, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	se.SetNetworkTypes(networks)
	se.SetIncludeLoopbackCandidate(cfg.IncludeLoopback)
	if len(cfg.Interfaces) > 0 {
		se.SetInterfaceFilter(keepIface)
	}
	if len(cfg.PublicIPs) > 0 {
		// 1:1 NAT: host candidates carry the public addresses instead.
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External: cfg.PublicIPs, AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			_ = udpMux.Close()
			return nil, fmt.Errorf("transport: public ips: %w", err)
		}
	}
	// AES-GCM is cheaper per packet than AES-CM with HMAC-SHA1 on CPUs with
	// AES-NI; keep the mandatory profile for peers without GCM.
	se.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80)

	if e.Publisher, err = newAPI(se, configurePublisher); err != nil {
		e.Close()
		return nil, err
	}
	if cfg.Bandwidth.Logger == nil {
		cfg.Bandwidth.Logger = cfg.Logger
	}
	estimators := bwe.NewFactory(cfg.Bandwidth)
	subscriber := func(m *webrtc.MediaEngine, ir *interceptor.Registry) error {
		return configureSubscriber(m, ir, estimators)
	}
	if e.Subscriber, err = newAPI(se, subscriber); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

func newAPI(se webrtc.SettingEngine, configure func(*webrtc.MediaEngine, *interceptor.Registry) error) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := registerCodecs(m); err != nil {
		return nil, fmt.Errorf("transport: codecs: %w", err)
	}
	ir := &interceptor.Registry{}
	if err := configure(m, ir); err != nil {
		return nil, fmt.Errorf("transport: interceptors: %w", err)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// configurePublisher: the SFU receives. It asks for lost packets (NACK),
// reports reception, and sends transport-wide feedback so the publisher's
// bandwidth estimate grows enough to send every simulcast layer.
func configurePublisher(m *webrtc.MediaEngine, ir *interceptor.Registry) error {
	if err := webrtc.ConfigureNack(m, ir); err != nil {
		return err
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return err
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		return err
	}
	for _, uri := range []string{"urn:ietf:params:rtp-hdrext:ssrc-audio-level"} {
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: uri}, webrtc.RTPCodecTypeAudio); err != nil {
			return err
		}
	}
	return webrtc.ConfigureTWCCSender(m, ir)
}

// configureSubscriber: the SFU sends. Sender reports come from the report
// interceptor; NACKs and keyframe requests are handled by sfu.DownTrack from
// the shared packet cache, so no per-subscriber retransmission buffer exists.
// Transport-wide sequence numbers and feedback (and REMB, for peers that
// only send that) give each connection a bandwidth estimate (package bwe),
// from which the SFU chooses the subscriber's layers.
func configureSubscriber(m *webrtc.MediaEngine, ir *interceptor.Registry, estimators *bwe.Factory) error {
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return err
	}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		m.RegisterFeedback(webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC}, kind)
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}, kind); err != nil {
			return err
		}
	}
	ir.Add(estimators)
	return nil
}

// UDPAddrs lists the local addresses the UDP mux listens on.
func (e *Engine) UDPAddrs() []net.Addr { return e.udpMux.GetListenAddresses() }

// TCPAddr is the ICE-TCP listener's address, or nil when disabled.
func (e *Engine) TCPAddr() net.Addr {
	if e.tcpLn == nil {
		return nil
	}
	return e.tcpLn.Addr()
}

// Close releases the sockets.
func (e *Engine) Close() error {
	var errs []error
	if e.tcpMux != nil {
		errs = append(errs, e.tcpMux.Close())
	}
	if e.udpMux != nil {
		errs = append(errs, e.udpMux.Close())
	}
	return errors.Join(errs...)
}
