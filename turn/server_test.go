package turn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	pionturn "github.com/pion/turn/v4"
)

const testSecret = "turn-test-secret-0123456789"

func testLogger() *slog.Logger {
	if os.Getenv("STARLING_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startServer runs a TURN server on loopback (UDP and TCP) that may relay to
// loopback peers unless tweak says otherwise.
func startServer(t *testing.T, tweak func(*Config)) *Server {
	t.Helper()
	cfg := Config{
		UDPAddr:                   "127.0.0.1:0",
		TCPAddr:                   "127.0.0.1:0",
		RelayIP:                   net.IPv4(127, 0, 0, 1),
		RelayPortMin:              50000,
		RelayPortMax:              50999,
		Realm:                     "test",
		Secret:                    testSecret,
		MaxAllocationsPerIdentity: 4,
		Peers:                     PeerPolicy{AllowLoopback: true},
		Logger:                    testLogger(),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// credential mints a username and password for identity expiring at expiry,
// signed with secret.
func credential(secret, identity string, expiry time.Time) (string, string) {
	user := fmt.Sprintf("%d:%s", expiry.Unix(), identity)
	return user, Password(secret, user)
}

func validCredential(identity string) (string, string) {
	return credential(testSecret, identity, time.Now().Add(time.Hour))
}

// client is a pion/turn client and its socket.
type client struct {
	*pionturn.Client
	conn net.PacketConn
}

// newClient connects a TURN client to the server's UDP port.
func newClient(t *testing.T, s *Server, user, pass string) *client {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startClient(t, conn, s.UDPAddr().String(), user, pass)
}

// newStreamClient connects a TURN client over TCP, or over TLS when cfg is set.
func newStreamClient(t *testing.T, addr net.Addr, cfg *tls.Config, user, pass string) *client {
	t.Helper()
	var conn net.Conn
	var err error
	if cfg != nil {
		conn, err = tls.Dial("tcp4", addr.String(), cfg)
	} else {
		conn, err = net.Dial("tcp4", addr.String())
	}
	if err != nil {
		t.Fatal(err)
	}
	return startClient(t, pionturn.NewSTUNConn(conn), addr.String(), user, pass)
}

func startClient(t *testing.T, conn net.PacketConn, server, user, pass string) *client {
	t.Helper()
	c, err := pionturn.NewClient(&pionturn.ClientConfig{
		STUNServerAddr: server,
		TURNServerAddr: server,
		Conn:           conn,
		Username:       user,
		Password:       pass,
		LoggerFactory:  slogFactory{testLogger()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		_ = conn.Close()
	})
	return &client{Client: c, conn: conn}
}

func (c *client) allocate(t *testing.T) net.PacketConn {
	t.Helper()
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	return relay
}

// echoPeer is a UDP peer on loopback that sends every datagram back.
func echoPeer(t *testing.T) net.Addr {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = conn.WriteTo(buf[:n], from)
		}
	}()
	return conn.LocalAddr()
}

// roundTrip relays msg to peer and waits for its echo.
func roundTrip(t *testing.T, relay net.PacketConn, peer net.Addr, msg string) {
	t.Helper()
	if _, err := relay.WriteTo([]byte(msg), peer); err != nil {
		t.Fatalf("relay to %s: %v", peer, err)
	}
	_ = relay.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, from, err := relay.ReadFrom(buf)
	if err != nil {
		t.Fatalf("read echo through the relay: %v", err)
	}
	if string(buf[:n]) != msg || from.String() != peer.String() {
		t.Fatalf("got %q from %s, want %q from %s", buf[:n], from, msg, peer)
	}
}

// waitAllocations waits until the server counts n live allocations.
func waitAllocations(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Allocations != n {
		if time.Now().After(deadline) {
			t.Fatalf("allocations = %d after 5s, want %d", s.Stats().Allocations, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitQuota waits until identity holds n quota slots: a slot comes back just
// after the allocation is gone from the count.
func waitQuota(t *testing.T, s *Server, identity string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.quota.mu.Lock()
		live := s.quota.live[identity]
		s.quota.mu.Unlock()
		if live == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d quota slots after 5s, want %d", identity, live, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wantTURNError fails unless err is an error response with one of codes, or
// any error response when codes is empty. pion/turn v4 answers a refused
// credential with 400 (Bad Request) where RFC 8489 suggests 401, and a
// refused permission with an error response that carries no code.
func wantTURNError(t *testing.T, err error, what string, codes ...int) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want an error response %v", what, codes)
	}
	if !strings.Contains(err.Error(), "error response") {
		t.Fatalf("%s: %v, want an error response", what, err)
	}
	for _, code := range codes {
		if strings.Contains(err.Error(), fmt.Sprintf("error %d", code)) {
			return
		}
	}
	if len(codes) > 0 {
		t.Fatalf("%s: %v, want error %v", what, err, codes)
	}
}

func TestIssuedCredentialsAllocateRelayAndCountBytes(t *testing.T) {
	s := startServer(t, nil)
	is, err := NewIssuer(testSecret, time.Hour, s.URLs(""))
	if err != nil {
		t.Fatal(err)
	}
	ice := is.ICEServers("alice")[0]
	c := newClient(t, s, ice.Username, ice.Credential.(string))
	relay := c.allocate(t)
	if got := relay.LocalAddr().(*net.UDPAddr); !got.IP.Equal(net.IPv4(127, 0, 0, 1)) || got.Port < 50000 || got.Port > 50999 {
		t.Errorf("relayed address %s, want 127.0.0.1 in ports 50000-50999", got)
	}
	waitAllocations(t, s, 1)

	const msg = "hello through the relay"
	roundTrip(t, relay, echoPeer(t), msg)
	// The echo can be back before the relay's write returns and is counted.
	deadline := time.Now().Add(5 * time.Second)
	for st := s.Stats(); st.BytesToPeers != uint64(len(msg)) || st.BytesFromPeers != uint64(len(msg)); st = s.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("bytes to peers %d, from peers %d; want %d each", st.BytesToPeers, st.BytesFromPeers, len(msg))
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Closing the relay sends a Refresh with lifetime 0: the allocation goes at once.
	if err := relay.Close(); err != nil {
		t.Fatal(err)
	}
	waitAllocations(t, s, 0)
}

func TestExpiredCredentialsAreRefused(t *testing.T) {
	s := startServer(t, nil)
	user, pass := credential(testSecret, "alice", time.Now().Add(-time.Second))
	_, err := newClient(t, s, user, pass).Allocate()
	wantTURNError(t, err, "allocate with an expired credential", 400, 401)
	if st := s.Stats(); st.Allocations != 0 || st.AuthFailures == 0 {
		t.Errorf("stats %+v, want no allocation and an auth failure", st)
	}
}

func TestForgedCredentialsAreRefused(t *testing.T) {
	s := startServer(t, nil)
	expiry := time.Now().Add(time.Hour)
	user, pass := credential(testSecret, "alice", expiry)
	later := fmt.Sprintf("%d:alice", expiry.Add(24*time.Hour).Unix())
	for _, tc := range []struct{ name, user, pass string }{
		{"signed with another secret", user, Password("not-the-secret", user)},
		{"identity changed", strings.Replace(user, "alice", "mallory", 1), pass},
		{"expiry pushed back", later, pass},
		{"no expiry", "alice", Password(testSecret, "alice")},
		{"garbage password", user, "cGFzc3dvcmQ="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newClient(t, s, tc.user, tc.pass).Allocate()
			wantTURNError(t, err, "allocate with a forged credential", 400, 401)
		})
	}
	if st := s.Stats(); st.Allocations != 0 || st.AuthFailures < 5 {
		t.Errorf("stats %+v, want no allocation and at least 5 auth failures", st)
	}
}

func TestRelayToLoopbackPrivateAndLinkLocalPeersIsRefused(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Peers = PeerPolicy{} })
	user, pass := validCredential("alice")
	relay := newClient(t, s, user, pass).allocate(t)
	peer := echoPeer(t) // on loopback: must not be reachable

	denied := []string{"127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0"}
	for _, ip := range denied {
		_, err := relay.WriteTo([]byte("x"), &net.UDPAddr{IP: net.ParseIP(ip), Port: 9})
		wantTURNError(t, err, "relay to "+ip)
	}
	_, err := relay.WriteTo([]byte("x"), peer)
	wantTURNError(t, err, "relay to the loopback echo peer")
	if st := s.Stats(); st.BytesToPeers != 0 || st.PermissionRefusals != uint64(len(denied)+1) {
		t.Errorf("stats %+v, want nothing relayed and %d permission refusals", st, len(denied)+1)
	}

	// A public address is fine (nothing listens there; the permission is what counts).
	if _, err := relay.WriteTo([]byte("x"), &net.UDPAddr{IP: net.ParseIP("203.0.113.9"), Port: 9}); err != nil {
		t.Errorf("relay to a public address: %v", err)
	}
}

func TestAllowedPeerNetworksAreRelayedTo(t *testing.T) {
	allowed, err := ParseNetworks([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, func(c *Config) { c.Peers = PeerPolicy{Allowed: allowed} })
	user, pass := validCredential("alice")
	c := newClient(t, s, user, pass)
	c.allocate(t)
	if err := c.CreatePermission(&net.UDPAddr{IP: net.ParseIP("10.1.2.3"), Port: 9}); err != nil {
		t.Errorf("permission for an allowed network: %v", err)
	}
	err = c.CreatePermission(&net.UDPAddr{IP: net.ParseIP("192.168.1.1"), Port: 9})
	wantTURNError(t, err, "permission for a private address outside the allowed networks")
}

func TestAllocationQuotaPerIdentity(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MaxAllocationsPerIdentity = 2 })
	alice, alicePass := validCredential("alice")
	first := newClient(t, s, alice, alicePass).allocate(t)
	newClient(t, s, alice, alicePass).allocate(t)

	_, err := newClient(t, s, alice, alicePass).Allocate()
	wantTURNError(t, err, "third allocation for alice", 486)
	if st := s.Stats(); st.Allocations != 2 || st.QuotaRefusals != 1 {
		t.Errorf("stats %+v, want 2 allocations and 1 quota refusal", st)
	}

	// The quota is per identity: bob is not affected.
	bob, bobPass := validCredential("bob")
	newClient(t, s, bob, bobPass).allocate(t)

	// A slot comes back when one of alice's allocations ends.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	waitAllocations(t, s, 2)
	waitQuota(t, s, "alice", 1)
	newClient(t, s, alice, alicePass).allocate(t)
	waitAllocations(t, s, 3)
}

func TestAllocationsAreReleasedWhenClientsLeave(t *testing.T) {
	s := startServer(t, nil)
	user, pass := validCredential("alice")

	// A client that deallocates (Refresh with lifetime 0).
	closing := newClient(t, s, user, pass).allocate(t)
	// A client over TCP whose connection drops.
	tcp := newStreamClient(t, s.TCPAddr(), nil, user, pass)
	tcp.allocate(t)
	waitAllocations(t, s, 2)

	if err := closing.Close(); err != nil {
		t.Fatal(err)
	}
	waitAllocations(t, s, 1)
	_ = tcp.conn.Close()
	waitAllocations(t, s, 0)

	waitQuota(t, s, "alice", 0)
}

func TestTURNOverTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	s := startServer(t, func(c *Config) {
		c.TLSAddr = "127.0.0.1:0"
		c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	})
	user, pass := validCredential("alice")
	c := newStreamClient(t, s.TLSAddr(), &tls.Config{RootCAs: pool, ServerName: "turn.test"}, user, pass)
	roundTrip(t, c.allocate(t), echoPeer(t), "over tls")

	urls := s.URLs("turn.test")
	if len(urls) != 3 || !strings.HasPrefix(urls[2], "turns:turn.test:") || !strings.HasSuffix(urls[2], "?transport=tcp") {
		t.Errorf("URLs = %v, want udp, tcp and a turns: URL for turn.test", urls)
	}
}

func TestURLsNameEachTransport(t *testing.T) {
	s := startServer(t, nil)
	_, udpPort, _ := net.SplitHostPort(s.UDPAddr().String())
	_, tcpPort, _ := net.SplitHostPort(s.TCPAddr().String())
	want := []string{
		"turn:127.0.0.1:" + udpPort + "?transport=udp",
		"turn:127.0.0.1:" + tcpPort + "?transport=tcp",
	}
	if got := s.URLs(""); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("URLs = %v, want %v", got, want)
	}
}

func TestNewRefusesUnsafeOrIncompleteConfig(t *testing.T) {
	base := Config{UDPAddr: "127.0.0.1:0", RelayPortMin: 50000, RelayPortMax: 50010, Secret: "s", MaxAllocationsPerIdentity: 1}
	for _, tc := range []struct {
		name  string
		tweak func(*Config)
	}{
		{"no secret", func(c *Config) { c.Secret = "" }},
		{"no listener", func(c *Config) { c.UDPAddr = "" }},
		{"TLS without a certificate", func(c *Config) { c.TLSAddr = "127.0.0.1:0" }},
		{"empty port range", func(c *Config) { c.RelayPortMin = 50011 }},
		{"no quota", func(c *Config) { c.MaxAllocationsPerIdentity = 0 }},
		{"IPv6 relay address", func(c *Config) { c.RelayIP = net.ParseIP("2001:db8::1") }},
	} {
		cfg := base
		tc.tweak(&cfg)
		if s, err := New(cfg); err == nil {
			_ = s.Close()
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

// selfSigned returns a certificate for turn.test and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "turn.test"},
		DNSNames:     []string{"turn.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
