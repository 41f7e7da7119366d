package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumFlags are the command-line switches of every browser the tests
// start, beyond the debugging pipe and the user data directory chromedp adds.
// The fake devices give a 1280x720 camera and a beeping microphone without a
// permission prompt; loopback candidates let it reach a server on 127.0.0.1.
var chromiumFlags = []string{
	"--headless",
	"--no-sandbox",
	"--disable-gpu",
	"--disable-quic",
	"--no-first-run",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
	"--use-fake-device-for-media-stream",
	"--use-fake-ui-for-media-stream",
	"--allow-loopback-in-peer-connection",
	"--autoplay-policy=no-user-gesture-required",
}

// chromiumPath returns the browser to run: $CHROMIUM or /usr/bin/chromium.
// When it is missing the test fails under CI and is skipped elsewhere.
func chromiumPath(t *testing.T) string {
	t.Helper()
	path := os.Getenv("CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium not found at %s (set CHROMIUM): %v", path, err)
		}
		t.Skipf("chromium not found at %s (set CHROMIUM to run the browser tests): %v", path, err)
	}
	return path
}

// requireBrowser skips a browser test under -short, and checks that
// Chromium is there before the test starts a server.
func requireBrowser(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end browser test; skipped with -short")
	}
	chromiumPath(t)
}

// page is one tab of its own browser process.
type page struct {
	name    string
	ctx     context.Context
	console *syncBuffer
}

// newPage starts a browser for the test and returns its first tab. When the
// test ends it takes a screenshot and closes the browser; if the test failed
// it prints the page's console first.
func newPage(t *testing.T, name string) *page {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(chromiumPath(t))}
	for _, f := range chromiumFlags {
		flag, value, hasValue := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		if hasValue {
			opts = append(opts, chromedp.Flag(flag, value))
		} else {
			opts = append(opts, chromedp.Flag(flag, true))
		}
	}
	// No UserDataDir option: chromedp then makes a fresh directory for each
	// browser and removes it (retrying while child processes still write)
	// when the browser exits.
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	p := &page{name: name, ctx: ctx, console: &syncBuffer{}}

	messages := chromedp.Console(ctx) // starts the browser
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			fmt.Fprintf(p.console, "%s %s\n", m.Time.Format("15:04:05.000"), m)
		}
	}()
	// A desktop-sized viewport, so pages and screenshots show the two-column layout.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("%s: start chromium: %v", name, err)
	}
	t.Cleanup(func() {
		p.screenshot(t)
		p.leave()
		if t.Failed() {
			t.Logf("%s console:\n%s", name, p.console)
		}
		closeCtx, done := context.WithTimeout(ctx, 5*time.Second)
		defer done()
		_ = chromedp.Cancel(closeCtx)
		cancel()
		cancelAlloc()
	})
	return p
}

// open navigates to url and waits until the page's module has set global.
func (p *page) open(t *testing.T, url, global string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("%s: open %s: %v", p.name, url, err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool]("window."+global+" !== undefined",
		chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		t.Fatalf("%s: window.%s never appeared: %v", p.name, global, err)
	}
}

// leave navigates away, as a user closing the tab: the pages end their
// sessions on pagehide, so the server is not left waiting for ICE to time out.
func (p *page) leave() {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	_ = chromedp.Do(ctx, chromedp.Navigate("about:blank"))
}

// click clicks the element with the given id.
func (p *page) click(t *testing.T, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID(id))); err != nil {
		t.Fatalf("%s: click #%s: %v", p.name, id, err)
	}
}

// eval evaluates expr in the page and returns its value as a T.
func eval[T any](p *page, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// screenshot saves a PNG of the page to $E2E_SCREENSHOT_DIR, or to a temporary
// directory that is kept only if the test failed.
func (p *page) screenshot(t *testing.T) {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("%s: screenshot: %v", p.name, err)
		return
	}
	dir := os.Getenv("E2E_SCREENSHOT_DIR")
	if dir == "" {
		if dir, err = os.MkdirTemp("", "starling-e2e-shots-"); err != nil {
			t.Logf("%s: screenshot: %v", p.name, err)
			return
		}
		if !t.Failed() {
			defer os.RemoveAll(dir)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("%s: screenshot: %v", p.name, err)
		return
	}
	file := filepath.Join(dir, unsafeName.ReplaceAllString(t.Name()+"-"+p.name, "_")+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Logf("%s: screenshot: %v", p.name, err)
		return
	}
	if t.Failed() || os.Getenv("E2E_SCREENSHOT_DIR") != "" {
		t.Logf("%s: screenshot %s", p.name, file)
	}
}

// eventually polls check every 200 ms until it reports done or timeout passes,
// then fails the test with what check last described.
func eventually(t *testing.T, timeout time.Duration, what string, check func() (done bool, state string)) {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		done, state := check()
		if done {
			t.Logf("%s: after %v (%s)", what, time.Since(start).Round(time.Millisecond), state)
			return
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %v; last: %s", what, timeout, state)
		}
		<-tick.C
	}
}
