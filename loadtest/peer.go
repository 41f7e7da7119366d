package loadtest

import (
	"fmt"
	"net/http"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// NewAPI builds the pion API the simulated peers use: default codecs and
// interceptors (NACK, reports, TWCC), simulcast header extensions, and
// loopback candidates when the target is on this machine.
func NewAPI(loopback bool) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("loadtest: codecs: %w", err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, fmt.Errorf("loadtest: interceptors: %w", err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(loopback)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// NewViewerAPI builds a lighter API for simulated viewers: default codecs,
// NACK and receiver reports only, so hundreds of them fit beside the server
// without the load generator becoming the bottleneck.
func NewViewerAPI(loopback bool) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("loadtest: codecs: %w", err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureNack(m, ir); err != nil {
		return nil, fmt.Errorf("loadtest: nack: %w", err)
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, fmt.Errorf("loadtest: reports: %w", err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(loopback)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// withDefaults fills in a peer's API (loopback candidates on, since a test
// target is most often on this machine) and HTTP client when not given.
func withDefaults(api *webrtc.API, client *http.Client) (*webrtc.API, *http.Client, error) {
	if client == nil {
		client = http.DefaultClient
	}
	if api == nil {
		var err error
		if api, err = NewAPI(true); err != nil {
			return nil, nil, err
		}
	}
	return api, client, nil
}
