package node

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	"github.com/starling-sfu/starling/config"
	"github.com/starling-sfu/starling/loadtest"
)

// TestViewerConnectsOverICETCP plays to a viewer that can only use TCP, as
// behind a firewall that blocks UDP.
func TestViewerConnectsOverICETCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	n := startNode(t, func(c *config.Config) { c.RTC.TCPPort = port })
	pub, err := loadtest.Publish(ctxTimeout(t, 10*time.Second), loadtest.PublisherOptions{
		URL: n.url("/whip/tcp"), Token: mintToken(t, "tcp", "pub", true), Audio: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(context.Background())
	n.videoTrack(t, "tcp", 1)

	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))

	sub, err := loadtest.Subscribe(ctxTimeout(t, 10*time.Second), loadtest.SubscriberOptions{URL: n.url("/whep/tcp"), API: api})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(context.Background())
	if !strings.Contains(sub.Session().Answer, " tcp ") {
		t.Fatalf("answer offers no ICE-TCP candidate:\n%s", sub.Session().Answer)
	}
	eventually(t, 15*time.Second, "video over ICE-TCP", func() bool { return sub.Packets[1].Load() > 50 })
	stats := sub.PeerConnection().GetStats()
	for _, s := range stats {
		if pair, ok := s.(webrtc.ICECandidatePairStats); ok && pair.Nominated {
			local, _ := stats[pair.LocalCandidateID].(webrtc.ICECandidateStats)
			if !strings.HasPrefix(local.Protocol, "tcp") {
				t.Fatalf("nominated pair uses %q, want tcp", local.Protocol)
			}
			return
		}
	}
	t.Fatal("no nominated candidate pair")
}

// TestPublicIPReplacesHostCandidates: with a 1:1 NAT address configured, the
// answer advertises it instead of the machine's own.
func TestPublicIPReplacesHostCandidates(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.RTC.PublicIPs = []string{"203.0.113.7"} })
	_, err := loadtest.Subscribe(ctxTimeout(t, 5*time.Second), loadtest.SubscriberOptions{URL: n.url("/whep/none")})
	if err == nil {
		t.Fatal("WHEP to an empty room succeeded")
	}
	pub, err := loadtest.Publish(ctxTimeout(t, 10*time.Second), loadtest.PublisherOptions{
		URL: n.url("/whip/nat"), Token: mintToken(t, "nat", "pub", true),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(context.Background())
	ans := pub.Session().Answer
	if !strings.Contains(ans, "203.0.113.7") || strings.Contains(ans, " 127.0.0.1 ") {
		t.Fatalf("answer candidates do not use the public IP:\n%s", ans)
	}
}
