// Package redistest runs a private redis-server for tests that need a real
// Redis: one process per call, on a free local port, with no persistence,
// stopped when the test ends.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a server may take to answer its first PING.
const startTimeout = 10 * time.Second

// Start runs a private redis-server on a free port in t.TempDir() (no
// persistence), waits until it answers PING, stops it in t.Cleanup, and
// returns its redis:// URL. It fails the test when redis-server is not
// installed: CI installs it, so a missing binary is a broken setup, not a
// reason to skip.
func Start(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redistest: redis-server is not installed (apt-get install redis-server): %v", err)
	}
	dir := t.TempDir()
	// The port is free when chosen but another process may take it before
	// redis binds it; a server that exits early is retried on a new port.
	var lastErr error
	for range 3 {
		addr, err := start(t, bin, dir)
		if err == nil {
			return "redis://" + addr + "/0"
		}
		lastErr = err
	}
	t.Fatalf("redistest: %v", lastErr)
	return ""
}

// start launches one server and waits for it to answer; on success it has
// registered the server's shutdown with t.Cleanup.
func start(t testing.TB, bin, dir string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	logFile := filepath.Join(dir, "redis-"+strconv.Itoa(port)+".log")
	cmd := exec.Command(bin,
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--dir", dir,
		"--save", "",
		"--appendonly", "no",
		"--logfile", logFile,
	)
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := awaitPing(addr, exited); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return "", fmt.Errorf("redis-server on %s: %w\n%s", addr, err, tail(logFile))
	}
	t.Cleanup(func() { stop(t, cmd, exited) })
	return addr, nil
}

// freePort asks the kernel for a free TCP port on the loopback address.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// awaitPing polls addr with PING until it answers PONG, the server exits or
// startTimeout passes.
func awaitPing(addr string, exited <-chan error) error {
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ping(addr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING within %v: %w", startTimeout, err)
		}
		select {
		case werr := <-exited:
			return fmt.Errorf("exited before answering PING: %v", werr)
		case <-tick.C:
		}
	}
}

// ping sends one inline PING and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// stop asks the server to shut down and kills it if it has not within a
// few seconds.
func stop(t testing.TB, cmd *exec.Cmd, exited <-chan error) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Logf("redistest: redis-server (pid %d) ignored SIGTERM; killing it", cmd.Process.Pid)
		_ = cmd.Process.Kill()
		<-exited
	}
}

// tail returns the end of the server's log for a failure message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const max = 2000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}
