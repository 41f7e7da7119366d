package turn

import (
	"net"
	"net/netip"
	"testing"
)

func TestPeerPolicyRelaysToPublicAddressesOnlyByDefault(t *testing.T) {
	var p PeerPolicy
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"8.8.8.8", true},
		{"203.0.113.9", true},
		{"2001:4860:4860::8888", true},
		{"127.0.0.1", false},
		{"127.8.9.10", false},
		{"::1", false},
		{"10.0.0.1", false},
		{"172.16.5.4", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false}, // cloud metadata service
		{"100.64.0.1", false},
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"224.0.0.1", false},
		{"255.255.255.255", false},
		{"240.0.0.1", false},
		{"198.18.0.1", false},
		{"fe80::1", false},
		{"fd00::1", false},
		{"ff02::1", false},
		{"::", false},
		{"::ffff:10.0.0.1", false},
		{"::ffff:8.8.8.8", true},
		{"64:ff9b::a00:1", false}, // NAT64 of 10.0.0.1
		{"2002:a00:1::1", false},  // 6to4 of 10.0.0.1
	} {
		if got := p.Permits(net.ParseIP(tc.ip)); got != tc.want {
			t.Errorf("Permits(%s) = %v, want %v", tc.ip, got, tc.want)
		}
	}
	if p.Permits(nil) {
		t.Error("Permits(nil) = true")
	}
}

func TestPeerPolicyAllowsLoopbackAndListedNetworksWhenConfigured(t *testing.T) {
	allowed, err := ParseNetworks([]string{"10.1.0.0/16", "192.168.7.7", " fd00::/8 "})
	if err != nil {
		t.Fatal(err)
	}
	p := PeerPolicy{AllowLoopback: true, Allowed: allowed}
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"127.0.0.1", true},
		{"::1", true},
		{"10.1.2.3", true},
		{"10.2.0.1", false},
		{"192.168.7.7", true},
		{"192.168.7.8", false},
		{"fd12::1", true},
		{"169.254.169.254", false},
		{"8.8.8.8", true},
	} {
		if got := p.Permits(net.ParseIP(tc.ip)); got != tc.want {
			t.Errorf("Permits(%s) = %v, want %v", tc.ip, got, tc.want)
		}
	}
}

func TestParseNetworksRefusesGarbage(t *testing.T) {
	for _, s := range []string{"10.0.0.0/33", "ten", "10.0.0/8", ""} {
		if _, err := ParseNetworks([]string{s}); err == nil {
			t.Errorf("ParseNetworks(%q) accepted", s)
		}
	}
}

func TestPeerPolicyWithOnlyRelaysToTheNodesOwnAddresses(t *testing.T) {
	p := PeerPolicy{
		Only:          []netip.Addr{netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("127.0.0.1")},
		Allowed:       []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
		AllowLoopback: false,
	}
	for ip, want := range map[string]bool{
		"203.0.113.7":     true,  // the node's public address
		"10.0.0.5":        true,  // its private one, behind 1:1 NAT
		"::ffff:10.0.0.5": true,  // the same, IPv4-mapped
		"198.51.100.9":    true,  // an explicitly allowed network
		"8.8.8.8":         false, // any other public address: no open relay
		"10.0.0.6":        false,
		"127.0.0.1":       false, // own, but loopback needs AllowLoopback
	} {
		if got := p.Permits(net.ParseIP(ip)); got != want {
			t.Errorf("Permits(%s) = %v, want %v", ip, got, want)
		}
	}
	p.AllowLoopback = true
	if !p.Permits(net.ParseIP("127.0.0.1")) || p.Permits(net.ParseIP("127.0.0.2")) {
		t.Error("with AllowLoopback, only the node's own loopback address may be relayed to")
	}
}
