package e2e

import (
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

// edgeConfig is the reference LL-HLS edge configuration, relative to the
// repository root; docker-compose.yml mounts the same file.
const edgeConfig = "deploy/nginx/llhls-edge.conf"

// edge is a running nginx serving edgeConfig in front of a server.
type edge struct {
	URL    string // http://127.0.0.1:port
	cmd    *exec.Cmd
	log    *syncBuffer // nginx's stderr (error log) and stdout (access log)
	exited chan struct{}
	err    error // the result of Wait, once exited is closed
}

// requireEdgeTools skips the edge test under -short and returns the nginx
// binary. When nginx or ffmpeg (the server transcodes with it) is missing
// the test fails under CI, which installs both, and is skipped elsewhere.
func requireEdgeTools(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end edge test; skipped with -short")
	}
	var nginx string
	for _, tool := range []string{"nginx", "ffmpeg"} {
		path, err := exec.LookPath(tool)
		if err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not found: %v", tool, err)
			}
			t.Skipf("%s is not installed (the edge test runs a real nginx in front of a server that transcodes with ffmpeg): %v", tool, err)
		}
		if tool == "nginx" {
			nginx = path
		}
	}
	return nginx
}

// startEdge starts nginx in the foreground with edgeConfig proxying to
// origin (host:port), everything it writes kept in a temporary directory,
// and returns once it accepts connections. It is stopped when the test
// ends, and its log printed if the test failed.
func startEdge(t *testing.T, nginx, origin string) *edge {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile(filepath.Join(root, edgeConfig))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t, "tcp")))
	conf := strings.NewReplacer(
		"${LLHLS_ORIGIN}", origin,
		"${LLHLS_LISTEN}", listen,
		"${LLHLS_CACHE}", filepath.Join(dir, "cache"),
	).Replace(string(tmpl))
	if strings.Contains(conf, "${") {
		t.Fatalf("%s: a placeholder is left after substitution", edgeConfig)
	}
	for name, content := range map[string]string{"llhls-edge.conf": conf, "nginx.conf": edgeMainConfig()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	e := &edge{URL: "http://" + listen, log: &syncBuffer{}, exited: make(chan struct{})}
	// -p: relative paths (pid, temporary files) are in dir; -e: the error
	// log before the configuration is read.
	e.cmd = exec.Command(nginx, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", "stderr", "-g", "daemon off;")
	e.cmd.Stdout, e.cmd.Stderr = e.log, e.log
	if err := e.cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	go func() {
		e.err = e.cmd.Wait()
		close(e.exited)
	}()
	t.Cleanup(func() {
		e.stop(t)
		if t.Failed() {
			t.Logf("nginx log:\n%s", e.log)
		}
	})
	e.waitListening(t, listen, 10*time.Second)
	return e
}

// edgeMainConfig is the nginx.conf around edgeConfig: one worker, every
// path relative to the prefix, the access log on stdout with the cache
// status.
func edgeMainConfig() string {
	user := ""
	if os.Geteuid() == 0 {
		// The workers would run as nobody, who may not enter the test's
		// temporary directory.
		user = "user root;\n"
	}
	return user + `worker_processes 1;
pid nginx.pid;
error_log stderr notice;
events {
    worker_connections 1024;
}
http {
    log_format edge '$remote_addr "$request" $status $body_bytes_sent cache=$upstream_cache_status '
                    'request_time=$request_time upstream_time=$upstream_response_time';
    access_log /dev/stdout edge;
    client_body_temp_path client_body_temp;
    proxy_temp_path proxy_temp;
    fastcgi_temp_path fastcgi_temp;
    uwsgi_temp_path uwsgi_temp;
    scgi_temp_path scgi_temp;
    include llhls-edge.conf;
}
`
}

func (e *edge) waitListening(t *testing.T, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not listening on %s after %v: %v\n%s", addr, timeout, err, e.log)
		}
		select {
		case <-e.exited:
			t.Fatalf("nginx exited before it listened: %v\n%s", e.err, e.log)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop asks nginx to quit at once (SIGTERM: the master stops its workers)
// and kills the master if it has not within five seconds. An early exit
// fails the test.
func (e *edge) stop(t *testing.T) {
	select {
	case <-e.exited:
		t.Errorf("nginx exited during the test: %v", e.err)
		return
	default:
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(5 * time.Second):
		t.Errorf("nginx did not exit within 5s of SIGTERM; killing it")
		_ = e.cmd.Process.Kill()
		<-e.exited
	}
}
