package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The API key pair every test server trusts; tokens are minted with it.
const (
	apiKey    = "e2ekey"
	apiSecret = "e2e-secret-that-is-at-least-32-characters-long"
)

var (
	buildOnce sync.Once
	buildDir  string
	builtBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// starlingBinary returns $STARLING_BIN, or builds ./cmd/starling once per test
// run.
func starlingBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("STARLING_BIN"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			buildErr = err
			return
		}
		if buildDir, err = os.MkdirTemp("", "starling-e2e-bin-"); err != nil {
			buildErr = err
			return
		}
		bin := filepath.Join(buildDir, "starling")
		start := time.Now()
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/starling")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/starling: %v\n%s", err, out)
			return
		}
		builtBin = bin
		fmt.Fprintf(os.Stderr, "e2e: built %s in %v\n", bin, time.Since(start).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// repoRoot walks up from the working directory to the directory of go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("e2e: no go.mod above the working directory")
		}
		dir = parent
	}
}

// server is a running starling serve process.
type server struct {
	URL    string // http://127.0.0.1:port
	bin    string
	cmd    *exec.Cmd
	log    *syncBuffer
	exited chan struct{}
	err    error // the result of Wait, once exited is closed
}

// startServer starts starling serve on free ports with a fresh data directory
// and returns once /healthz answers 200. The server is stopped when the test
// ends, and its log is printed if the test failed.
func startServer(t *testing.T, extra ...string) *server {
	t.Helper()
	bin := starlingBinary(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t, "tcp")))
	s := &server{
		URL:    "http://" + addr,
		bin:    bin,
		log:    &syncBuffer{},
		exited: make(chan struct{}),
	}
	args := []string{"serve",
		"--http-addr", addr,
		"--udp-port", strconv.Itoa(freePort(t, "udp")),
		"--tcp-port", "0",
		"--include-loopback",
		"--keys", apiKey + ":" + apiSecret,
		"--data-dir", t.TempDir(),
	}
	// Free TURN ports, so servers never collide on 3478, unless a test set
	// its own through the environment.
	if os.Getenv("STARLING_TURN_UDP_PORT") == "" {
		args = append(args, "--turn-udp-port", strconv.Itoa(freePort(t, "udp")),
			"--turn-tcp-port", strconv.Itoa(freePort(t, "tcp")))
	}
	args = append(args, extra...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("server log:\n%s", s.log)
		}
	})
	s.waitHealthy(t, 20*time.Second)
	return s
}

func (s *server) waitHealthy(t *testing.T, timeout time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	start := time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		resp, err := client.Get(s.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Logf("server healthy after %v", time.Since(start).Round(time.Millisecond))
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if time.Since(start) > timeout {
			t.Fatalf("server not healthy after %v: %s", timeout, last)
		}
		select {
		case <-s.exited:
			t.Fatalf("server exited before it was healthy: %v", s.err)
		case <-tick.C:
		}
	}
}

// stopTimeout bounds a graceful shutdown: the server drains live sessions for
// up to its drain timeout (10 s by default), then closes HTTP (up to 5 s).
const stopTimeout = 20 * time.Second

// stop interrupts the server and waits for it to exit, killing it after
// stopTimeout. Both an early exit and a slow one fail the test.
func (s *server) stop(t *testing.T) {
	select {
	case <-s.exited:
		t.Errorf("server exited during the test: %v", s.err)
		return
	default:
	}
	start := time.Now()
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
		t.Logf("server stopped %v after SIGINT (%v)", time.Since(start).Round(time.Millisecond), s.err)
	case <-time.After(stopTimeout):
		t.Errorf("server did not exit within %v of SIGINT; killing it", stopTimeout)
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// token mints an access token for identity in room with starling token.
func (s *server) token(t *testing.T, room, identity string, publish bool) string {
	t.Helper()
	args := []string{"token", "--keys", apiKey + ":" + apiSecret, "--room", room, "--identity", identity}
	if publish {
		args = append(args, "--publish")
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("starling token: %v\n%s", err, stderr.String())
	}
	tok := strings.TrimSpace(stdout.String())
	if tok == "" || strings.ContainsAny(tok, " \n") {
		t.Fatalf("starling token printed %q, want one token", stdout.String())
	}
	return tok
}

// freePort returns a port that was free on loopback a moment ago.
func freePort(t *testing.T, network string) int {
	t.Helper()
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	default:
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers and readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
