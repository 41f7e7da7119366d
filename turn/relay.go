package turn

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"

	pionturn "github.com/pion/turn/v4"
)

var errOnlyUDPv4 = errors.New("turn: only IPv4 UDP relays are offered")

// relaySockets makes the relayed transport addresses of allocations: UDP
// sockets in the configured port range, counted against their identity's
// quota, and wrapped to count relayed bytes. TCP relays (RFC 6062) are
// refused: WebRTC relays UDP only, and a TCP relay would be a general
// purpose proxy.
type relaySockets struct {
	ports *pionturn.RelayAddressGeneratorPortRange
	quota *quota
	stats *counters
}

func (r *relaySockets) Validate() error { return r.ports.Validate() }

func (r *relaySockets) AllocatePacketConn(network string, requestedPort int) (net.PacketConn, net.Addr, error) {
	if network != "udp4" {
		return nil, nil, errOnlyUDPv4
	}
	conn, addr, err := r.ports.AllocatePacketConn(network, requestedPort)
	if err != nil {
		return nil, nil, err
	}
	return &relayConn{PacketConn: conn, stats: r.stats}, addr, nil
}

func (r *relaySockets) AllocateConn(string, int) (net.Conn, net.Addr, error) {
	return nil, nil, errOnlyUDPv4
}

// relayConn is an allocation's relay socket. It counts the bytes it relays.
type relayConn struct {
	net.PacketConn
	stats *counters
}

// ReadFrom reads a datagram from a peer, to be relayed to the client.
func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(p)
	if n > 0 {
		c.stats.fromPeers.Add(uint64(n))
	}
	return n, addr, err
}

// WriteTo relays a client's datagram to a peer.
func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	n, err := c.PacketConn.WriteTo(p, addr)
	if n > 0 {
		c.stats.toPeers.Add(uint64(n))
	}
	return n, err
}

// quota counts live allocations per identity.
type quota struct {
	max  int
	mu   sync.Mutex
	live map[string]int // identity → allocations; guarded by mu
}

func newQuota(max int) *quota { return &quota{max: max, live: map[string]int{}} }

// allows reports whether identity may make one more allocation.
func (q *quota) allows(identity string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.live[identity] < q.max
}

// acquire counts an allocation made for identity. pion asks allows before
// allocating; two concurrent requests may both pass it, so the cap can be
// exceeded by the requests in flight at that instant, no more.
func (q *quota) acquire(identity string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.live[identity]++
}

func (q *quota) release(identity string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.live[identity] <= 1 {
		delete(q.live, identity)
		return
	}
	q.live[identity]--
}

// counters are the server's statistics, updated with atomic adds.
type counters struct {
	toPeers, fromPeers atomic.Uint64
	authFailures       atomic.Uint64
	quotaRefusals      atomic.Uint64
	permissionRefusals atomic.Uint64
}
