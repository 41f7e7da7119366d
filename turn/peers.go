package turn

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// PeerPolicy decides which peer addresses an allocation may relay to. A TURN
// server on a public address is otherwise a proxy into the network it sits
// in: by default it refuses loopback, link-local, private, shared (CGNAT),
// multicast and other special-purpose ranges, and relays to public addresses
// only.
type PeerPolicy struct {
	// AllowLoopback lets allocations reach 127.0.0.0/8 and ::1 (tests, a TURN
	// server and SFU on one development machine).
	AllowLoopback bool
	// Allowed are networks relayed to even where a default rule refuses them,
	// e.g. the private address of the SFU in a VPC.
	Allowed []netip.Prefix
	// Only, when set, limits relaying to these addresses (and Allowed): an
	// SFU's own media addresses, which is all its clients relay to. Loopback
	// among them still needs AllowLoopback.
	Only []netip.Addr
}

// specialIPv4 are IPv4 ranges that are not public unicast beyond what
// netip.Addr's predicates cover (RFC 6890 and friends).
var specialIPv4 = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),  // shared address space (CGNAT)
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, and the broadcast address
	netip.MustParsePrefix("192.88.99.0/24"), // 6to4 relay anycast (deprecated)
	netip.MustParsePrefix("255.255.255.255/32"),
}

// specialIPv6 are IPv6 ranges that can reach IPv4 or local networks through a
// translator.
var specialIPv6 = []netip.Prefix{
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64 well-known prefix
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("2002::/16"),      // 6to4, embeds any IPv4 address
	netip.MustParsePrefix("100::/64"),       // discard-only
}

// Permits reports whether ip may be relayed to.
func (p *PeerPolicy) Permits(ip net.IP) bool {
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	addr = addr.Unmap()
	for _, n := range p.Allowed {
		if n.Contains(addr) {
			return true
		}
	}
	if addr.IsLoopback() && !p.AllowLoopback {
		return false
	}
	if len(p.Only) > 0 {
		for _, a := range p.Only {
			if a.Unmap() == addr {
				return true
			}
		}
		return false
	}
	if addr.IsLoopback() {
		return true
	}
	return publicUnicast(addr)
}

func publicUnicast(addr netip.Addr) bool {
	if addr.IsUnspecified() || addr.IsPrivate() || addr.IsLinkLocalUnicast() || addr.IsMulticast() ||
		addr.IsLinkLocalMulticast() || addr.IsInterfaceLocalMulticast() || addr.IsLoopback() {
		return false
	}
	special := specialIPv6
	if addr.Is4() {
		special = specialIPv4
	}
	for _, n := range special {
		if n.Contains(addr) {
			return false
		}
	}
	return true
}

// ParseNetworks parses CIDR prefixes ("10.0.0.0/8") and bare addresses
// ("10.0.0.5", taken as a single host).
func ParseNetworks(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("turn: peer network %q: %w", s, err)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("turn: peer network %q: %w", s, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
