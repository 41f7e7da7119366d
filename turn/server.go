// Package turn is Starling's embedded TURN server (RFC 8656, on pion/turn)
// and the short-lived credentials, in the TURN REST scheme, that it and an
// external coturn accept. It relays UDP for peers that cannot reach the SFU
// directly: behind symmetric NATs, or firewalls that let only TCP or TLS out.
//
// The server refuses what would make it an open proxy: credentials that are
// expired or not signed with the shared secret, peers on loopback, private or
// other non-public addresses (unless allowed), more than a quota of live
// allocations per identity, and TCP relays.
package turn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	pionturn "github.com/pion/turn/v4"
)

// Config configures a Server.
type Config struct {
	// UDPAddr, TCPAddr and TLSAddr are the listen addresses ("0.0.0.0:3478",
	// "127.0.0.1:0"); an empty one is not listened on. TLSAddr needs TLS.
	UDPAddr, TCPAddr, TLSAddr string
	// TLS holds the certificate for TLSAddr.
	TLS *tls.Config
	// RelayIP is the IPv4 address allocations are announced at: the one
	// peers reach the relay ports on (a public address behind 1:1 NAT). Nil
	// picks the address of the interface of the default route.
	RelayIP net.IP
	// RelayPortMin and RelayPortMax bound the relay ports, inclusive.
	RelayPortMin, RelayPortMax int
	// Realm is the TURN realm.
	Realm string
	// Secret is the TURN REST shared secret credentials are signed with.
	Secret string
	// MaxAllocationsPerIdentity caps one identity's live allocations.
	MaxAllocationsPerIdentity int
	// Peers says which peer addresses may be relayed to.
	Peers  PeerPolicy
	Logger *slog.Logger
}

// Server is a running TURN server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	relayIP net.IP
	quota   *quota
	stats   counters
	now     func() time.Time

	pion     *pionturn.Server
	udp      net.PacketConn
	tcp, tls *trackedListener
}

// Stats are the server's counters.
type Stats struct {
	// Allocations is the number of live allocations.
	Allocations int
	// BytesToPeers and BytesFromPeers count the payload relayed from clients
	// to peers and received from peers for clients.
	BytesToPeers, BytesFromPeers uint64
	// AuthFailures counts requests refused for expired, malformed or forged
	// credentials.
	AuthFailures uint64
	// QuotaRefusals counts allocations refused by the per-identity quota.
	QuotaRefusals uint64
	// PermissionRefusals counts peers refused by the peer policy.
	PermissionRefusals uint64
}

// New opens the listeners and starts serving.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Secret == "":
		return nil, errors.New("turn: empty shared secret")
	case cfg.UDPAddr == "" && cfg.TCPAddr == "" && cfg.TLSAddr == "":
		return nil, errors.New("turn: no listen address")
	case cfg.TLSAddr != "" && cfg.TLS == nil:
		return nil, errors.New("turn: a TLS listen address needs a certificate")
	case cfg.RelayPortMin <= 0 || cfg.RelayPortMax > 65535 || cfg.RelayPortMin > cfg.RelayPortMax:
		return nil, fmt.Errorf("turn: relay port range %d-%d is not valid", cfg.RelayPortMin, cfg.RelayPortMax)
	case cfg.MaxAllocationsPerIdentity <= 0:
		return nil, errors.New("turn: allocation quota must be positive")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Realm == "" {
		cfg.Realm = "starling"
	}
	relayIP := cfg.RelayIP.To4()
	if relayIP == nil {
		if cfg.RelayIP != nil {
			return nil, fmt.Errorf("turn: relay address %s is not IPv4", cfg.RelayIP)
		}
		relayIP = defaultIPv4()
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "turn"),
		relayIP: relayIP,
		quota:   newQuota(cfg.MaxAllocationsPerIdentity),
		now:     time.Now,
	}
	if err := s.listen(); err != nil {
		s.closeListeners()
		return nil, err
	}
	relay := &relaySockets{
		ports: &pionturn.RelayAddressGeneratorPortRange{
			RelayAddress: relayIP,
			Address:      "0.0.0.0",
			MinPort:      uint16(cfg.RelayPortMin),
			MaxPort:      uint16(cfg.RelayPortMax),
			MaxRetries:   30,
		},
		quota: s.quota,
		stats: &s.stats,
	}
	pc := pionturn.ServerConfig{
		LoggerFactory: slogFactory{s.log},
		Realm:         cfg.Realm,
		AuthHandler:   s.authenticate,
		QuotaHandler:  s.allowAllocation,
		EventHandler: pionturn.EventHandler{
			OnAuth:              s.onAuth,
			OnAllocationCreated: s.onAllocationCreated,
			OnAllocationDeleted: s.onAllocationDeleted,
		},
	}
	if s.udp != nil {
		pc.PacketConnConfigs = []pionturn.PacketConnConfig{{
			PacketConn: s.udp, RelayAddressGenerator: relay, PermissionHandler: s.permit,
		}}
	}
	for _, ln := range []*trackedListener{s.tcp, s.tls} {
		if ln != nil {
			pc.ListenerConfigs = append(pc.ListenerConfigs, pionturn.ListenerConfig{
				Listener: ln.outer, RelayAddressGenerator: relay, PermissionHandler: s.permit,
			})
		}
	}
	srv, err := pionturn.NewServer(pc)
	if err != nil {
		s.closeListeners()
		return nil, fmt.Errorf("turn: %w", err)
	}
	s.pion = srv
	s.log.Info("turn server listening", "udp", addrString(s.UDPAddr()), "tcp", addrString(s.TCPAddr()),
		"tls", addrString(s.TLSAddr()), "relay_ip", relayIP.String(),
		"relay_ports", fmt.Sprintf("%d-%d", cfg.RelayPortMin, cfg.RelayPortMax))
	return s, nil
}

// mediaSocketBuffer sizes the UDP socket's kernel buffers: every relayed
// packet of every UDP client passes through it twice.
const mediaSocketBuffer = 4 << 20

func (s *Server) listen() error {
	if a := s.cfg.UDPAddr; a != "" {
		c, err := net.ListenPacket("udp4", a)
		if err != nil {
			return fmt.Errorf("turn: udp %s: %w", a, err)
		}
		if u, ok := c.(*net.UDPConn); ok {
			_ = u.SetReadBuffer(mediaSocketBuffer)
			_ = u.SetWriteBuffer(mediaSocketBuffer)
		}
		s.udp = c
	}
	if a := s.cfg.TCPAddr; a != "" {
		ln, err := listenTracked(a, nil)
		if err != nil {
			return fmt.Errorf("turn: tcp %s: %w", a, err)
		}
		s.tcp = ln
	}
	if a := s.cfg.TLSAddr; a != "" {
		ln, err := listenTracked(a, s.cfg.TLS)
		if err != nil {
			return fmt.Errorf("turn: tls %s: %w", a, err)
		}
		s.tls = ln
	}
	return nil
}

// URLs returns the server's TURN URLs with host in them, or the relay
// address when host is empty. A turns: URL needs the host name the
// certificate is for.
func (s *Server) URLs(host string) []string {
	if host == "" {
		host = s.relayIP.String()
	}
	var urls []string
	add := func(scheme string, a net.Addr, transport string) {
		if a == nil {
			return
		}
		_, port, _ := net.SplitHostPort(a.String())
		urls = append(urls, scheme+":"+net.JoinHostPort(host, port)+"?transport="+transport)
	}
	add("turn", s.UDPAddr(), "udp")
	add("turn", s.TCPAddr(), "tcp")
	add("turns", s.TLSAddr(), "tcp")
	return urls
}

// UDPAddr returns the UDP listen address, nil when not listening on UDP.
func (s *Server) UDPAddr() net.Addr {
	if s.udp == nil {
		return nil
	}
	return s.udp.LocalAddr()
}

// TCPAddr returns the TCP listen address, nil when not listening on TCP.
func (s *Server) TCPAddr() net.Addr { return s.tcp.addr() }

// TLSAddr returns the TLS listen address, nil when not listening on TLS.
func (s *Server) TLSAddr() net.Addr { return s.tls.addr() }

// RelayIP returns the address allocations are announced at.
func (s *Server) RelayIP() net.IP { return s.relayIP }

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	return Stats{
		Allocations:        s.pion.AllocationCount(),
		BytesToPeers:       s.stats.toPeers.Load(),
		BytesFromPeers:     s.stats.fromPeers.Load(),
		AuthFailures:       s.stats.authFailures.Load(),
		QuotaRefusals:      s.stats.quotaRefusals.Load(),
		PermissionRefusals: s.stats.permissionRefusals.Load(),
	}
}

// Close stops the listeners and drops the TCP and TLS clients; the
// allocations close with them.
func (s *Server) Close() error {
	err := s.pion.Close()
	s.tcp.closeConns()
	s.tls.closeConns()
	return err
}

func (s *Server) closeListeners() {
	if s.udp != nil {
		_ = s.udp.Close()
	}
	for _, ln := range []*trackedListener{s.tcp, s.tls} {
		if ln != nil {
			_ = ln.outer.Close()
		}
	}
}

// authenticate returns the key of a TURN REST username, or refuses it when
// malformed or expired. A password not made with the secret then fails the
// message integrity check (see onAuth).
func (s *Server) authenticate(username, realm string, src net.Addr) ([]byte, bool) {
	expiry, _, ok := parseUsername(username)
	if !ok || !s.now().Before(expiry) {
		s.stats.authFailures.Add(1)
		s.log.Debug("turn credential refused", "username", username, "client", addrString(src), "expired", ok)
		return nil, false
	}
	return pionturn.GenerateAuthKey(username, realm, Password(s.cfg.Secret, username)), true
}

// identityOf is the identity part of a TURN REST username.
func identityOf(username string) string {
	_, identity, _ := parseUsername(username)
	return identity
}

func (s *Server) onAuth(src, _ net.Addr, _, username, _, method string, verdict bool) {
	if !verdict {
		s.stats.authFailures.Add(1)
		s.log.Debug("turn credential refused: bad message integrity", "username", username,
			"client", addrString(src), "method", method)
	}
}

// allowAllocation is the quota check pion makes before it allocates, so that
// the client gets 486 (Allocation Quota Reached).
func (s *Server) allowAllocation(username, _ string, src net.Addr) bool {
	identity := identityOf(username)
	if s.quota.allows(identity) {
		return true
	}
	s.stats.quotaRefusals.Add(1)
	s.log.Debug("turn allocation refused: quota reached", "identity", identity, "client", addrString(src),
		"max", s.cfg.MaxAllocationsPerIdentity)
	return false
}

func (s *Server) permit(client net.Addr, peer net.IP) bool {
	if s.cfg.Peers.Permits(peer) {
		return true
	}
	s.stats.permissionRefusals.Add(1)
	s.log.Debug("turn permission refused", "client", addrString(client), "peer", peer.String())
	return false
}

// pion reports every allocation's protocol as UDP (the relayed transport),
// whatever the client connected with; the client address says enough.
func (s *Server) onAllocationCreated(src, _ net.Addr, _, username, _ string, relay net.Addr, _ int) {
	identity := identityOf(username)
	s.quota.acquire(identity)
	s.log.Debug("turn allocation created", "identity", identity, "client", addrString(src), "relay", addrString(relay))
}

func (s *Server) onAllocationDeleted(src, _ net.Addr, _, username, _ string) {
	identity := identityOf(username)
	s.quota.release(identity)
	s.log.Debug("turn allocation deleted", "identity", identity, "client", addrString(src))
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// defaultIPv4 returns the IPv4 address this host sends from by default, else
// that of its first up, non-loopback interface, else loopback.
func defaultIPv4() net.IP {
	// Connecting a UDP socket only looks up the route; nothing is sent.
	if c, err := net.Dial("udp4", "192.0.2.1:9"); err == nil {
		a, _ := c.LocalAddr().(*net.UDPAddr)
		_ = c.Close()
		if a != nil && !a.IP.IsUnspecified() {
			return a.IP.To4()
		}
	}
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
				return n.IP.To4()
			}
		}
	}
	return net.IPv4(127, 0, 0, 1).To4()
}

// trackedListener is a TCP (or TLS) listener that remembers its open
// connections, so that Close can end them: pion/turn closes only the
// listener, and a client's connection would otherwise outlive the server.
type trackedListener struct {
	net.Listener // the TCP listener
	outer        net.Listener
	mu           sync.Mutex
	conns        map[*trackedConn]struct{} // guarded by mu
	closed       bool                      // guarded by mu
}

func listenTracked(addr string, cfg *tls.Config) (*trackedListener, error) {
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		return nil, err
	}
	t := &trackedListener{Listener: ln, conns: map[*trackedConn]struct{}{}}
	t.outer = t
	if cfg != nil {
		t.outer = tls.NewListener(t, cfg)
	}
	return t, nil
}

func (t *trackedListener) Accept() (net.Conn, error) {
	c, err := t.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, owner: t}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	t.conns[tc] = struct{}{}
	return tc, nil
}

func (t *trackedListener) addr() net.Addr {
	if t == nil {
		return nil
	}
	return t.Listener.Addr()
}

func (t *trackedListener) closeConns() {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.closed = true
	conns := make([]*trackedConn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

type trackedConn struct {
	net.Conn
	owner *trackedListener
	once  sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.owner.mu.Lock()
		delete(c.owner.conns, c)
		c.owner.mu.Unlock()
	})
	return c.Conn.Close()
}
