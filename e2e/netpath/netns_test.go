package netpath

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
)

// path is a network namespace joined to this one by a veth pair: a
// subscriber runs inside it, and the host side of the pair is the link whose
// egress (server to subscriber) the tests shape.
type path struct {
	ns       string // namespace name
	hostDev  string // the veth end in this namespace
	hostIP   string // its address, where the SFU gathers candidates
	guestIP  string // the address inside the namespace
	shaped   bool
	dropping bool
}

var pathSeq atomic.Uint32

// run runs a command and fails the test with its output when it fails.
func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// newPath creates a namespace with a veth pair on a /30 of its own, named so
// that parallel runs do not collide, and removes both when the test ends,
// failed or not. Where namespaces cannot be made (not root, no ip tool, a
// container without CAP_NET_ADMIN) the test is skipped, saying why.
func newPath(t testing.TB) *path {
	t.Helper()
	if testing.Short() {
		t.Skip("network-path test; skipped with -short")
	}
	n := pathSeq.Add(1)
	id := fmt.Sprintf("%d%d", os.Getpid()%100000, n)
	// The namespace names the test's pid in full, so that a later run can
	// remove those of a run that was killed before its cleanup.
	p := &path{ns: fmt.Sprintf("stnp-%d-%d", os.Getpid(), n), hostDev: "stnh" + id}
	guestDev := "stng" + id
	// A random /30 in 10.(64..127).x.y, away from the usual 10.0/10.1 nets.
	a, b, c := 64+rand.IntN(64), rand.IntN(256), rand.IntN(64)*4
	p.hostIP = fmt.Sprintf("10.%d.%d.%d", a, b, c+1)
	p.guestIP = fmt.Sprintf("10.%d.%d.%d", a, b, c+2)

	if out, err := exec.Command("ip", "netns", "add", p.ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace (needs root and the ip tool; CI runs as root): %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		// Deleting the namespace destroys the guest end, which takes the
		// host end (and its qdisc) with it; the link delete covers a pair
		// whose guest end never moved.
		_ = exec.Command("ip", "netns", "del", p.ns).Run()
		_ = exec.Command("ip", "link", "del", p.hostDev).Run()
	})
	run(t, "ip", "link", "add", p.hostDev, "type", "veth", "peer", "name", guestDev)
	// No IPv6 link-local addresses: the SFU would bind them while they are
	// still tentative, and the tests use IPv4.
	run(t, "ip", "link", "set", p.hostDev, "addrgenmode", "none")
	run(t, "ip", "link", "set", guestDev, "addrgenmode", "none")
	run(t, "ip", "link", "set", guestDev, "netns", p.ns)
	run(t, "ip", "addr", "add", p.hostIP+"/30", "dev", p.hostDev)
	run(t, "ip", "link", "set", p.hostDev, "up")
	run(t, "ip", "-n", p.ns, "addr", "add", p.guestIP+"/30", "dev", guestDev)
	run(t, "ip", "-n", p.ns, "link", "set", guestDev, "up")
	run(t, "ip", "-n", p.ns, "link", "set", "lo", "up")
	run(t, "ip", "-n", p.ns, "route", "add", "default", "via", p.hostIP)
	return p
}

// capRate limits what reaches the subscriber to rate (tc syntax, "400kbit")
// with a token bucket whose queue holds about 100 ms, as a bottleneck
// router's would.
func (p *path) capRate(t testing.TB, rate string) {
	t.Helper()
	run(t, "tc", "qdisc", "replace", "dev", p.hostDev, "root", "tbf", "rate", rate, "burst", "6kb", "latency", "100ms")
	p.shaped = true
}

// uncap removes the limit.
func (p *path) uncap(t testing.TB) {
	t.Helper()
	if p.shaped {
		run(t, "tc", "qdisc", "del", "dev", p.hostDev, "root")
		p.shaped = false
	}
}

// dropRandom makes the namespace drop pct percent of the UDP packets it
// receives, at random (nftables numgen; there is no netem here). The table
// lives in the namespace and goes with it.
func (p *path) dropRandom(t testing.TB, pct int) {
	t.Helper()
	rules := fmt.Sprintf(`table inet loss {
	chain input {
		type filter hook input priority 0; policy accept;
		meta l4proto udp numgen random mod 100 < %d drop
	}
}
`, pct)
	cmd := exec.Command("ip", "netns", "exec", p.ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v\n%s", p.ns, err, out)
	}
	p.dropping = true
}

// removeStalePaths deletes the namespaces of earlier runs whose process is
// gone (killed before its cleanup ran): their addresses would otherwise
// linger on this host's interfaces and be gathered as ICE candidates by
// other tests. Deleting a namespace takes its veth pair with it.
func removeStalePaths() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		var pid, n int
		if _, err := fmt.Sscanf(name, "stnp-%d-%d", &pid, &n); err != nil {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // its test is still running
		}
		_ = exec.Command("ip", "netns", "del", name).Run()
	}
}
