package web

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHandlerServesPagesAndAssetsWithTheirContentTypes(t *testing.T) {
	h := Handler()
	tests := []struct {
		path     string
		ctype    string
		contains string
	}{
		{"/", "text/html; charset=utf-8", `href="/publish"`},
		{"/publish", "text/html; charset=utf-8", `src="/static/publish.js"`},
		{"/watch", "text/html; charset=utf-8", `src="/static/watch.js"`},
		{"/watch-hls", "text/html; charset=utf-8", `src="/static/watch-hls.js"`},
		{"/static/whip.js", "text/javascript; charset=utf-8", "export async function publish"},
		{"/static/whep.js", "text/javascript; charset=utf-8", "export async function watch"},
		{"/static/style.css", "text/css; charset=utf-8", "video"},
		{"/static/favicon.svg", "image/svg+xml", "<svg"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			rec := get(t, h, http.MethodGet, tc.path, nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200", rec.Code)
			}
			if got := rec.Header().Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type = %q, want %q", got, tc.ctype)
			}
			if got := rec.Header().Get("Cache-Control"); got != "no-cache" {
				t.Errorf("Cache-Control = %q, want no-cache", got)
			}
			if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
			}
			if !strings.Contains(rec.Body.String(), tc.contains) {
				t.Errorf("body does not contain %q", tc.contains)
			}
		})
	}
}

func TestIndexLinksToPublishAndWatch(t *testing.T) {
	body := get(t, Handler(), http.MethodGet, "/", nil).Body.String()
	for _, link := range []string{`href="/publish"`, `href="/watch"`} {
		if !strings.Contains(body, link) {
			t.Errorf("index has no %s", link)
		}
	}
}

func TestHandlerAnswersUnknownPathsWithJSON404(t *testing.T) {
	h := Handler()
	for _, path := range []string{"/nope", "/publish/", "/publish.html", "/static/", "/static/missing.js", "/static/../web.go"} {
		t.Run(path, func(t *testing.T) {
			rec := get(t, h, http.MethodGet, path, nil)
			if rec.Code != http.StatusNotFound {
				t.Fatalf("status = %d, want 404", rec.Code)
			}
			if got := rec.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
			var body struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error == "" {
				t.Errorf("body = %q, want a JSON error", rec.Body.String())
			}
		})
	}
}

func TestHandlerRejectsOtherMethods(t *testing.T) {
	rec := get(t, Handler(), http.MethodPost, "/publish", nil)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("status = %d, want 405", rec.Code)
	}
	if got := rec.Header().Get("Allow"); got != "GET, HEAD" {
		t.Errorf("Allow = %q, want GET, HEAD", got)
	}
}

func TestHandlerAnswersHEADWithoutBody(t *testing.T) {
	rec := get(t, Handler(), http.MethodHead, "/watch", nil)
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Fatalf("HEAD: status %d, %d body bytes; want 200 and none", rec.Code, rec.Body.Len())
	}
	if rec.Header().Get("Content-Length") == "" {
		t.Error("HEAD has no Content-Length")
	}
}

func TestHandlerRevalidatesByETag(t *testing.T) {
	h := Handler()
	first := get(t, h, http.MethodGet, "/static/whip.js", nil)
	etag := first.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	again := get(t, h, http.MethodGet, "/static/whip.js", map[string]string{"If-None-Match": etag})
	if again.Code != http.StatusNotModified {
		t.Fatalf("status = %d, want 304", again.Code)
	}
}

// Every script, stylesheet, icon and module import the pages name must be
// served: a typo would otherwise only show in a browser.
func TestPagesReferenceOnlyServedFiles(t *testing.T) {
	h := Handler()
	attr := regexp.MustCompile(`(?:src|href)="(/[^"]*)"`)
	imp := regexp.MustCompile(`from '\./([^']+)'`)
	seen := map[string]bool{}
	queue := []string{"/", "/publish", "/watch", "/watch-hls", "/room"}
	for len(queue) > 0 {
		path := queue[0]
		queue = queue[1:]
		if seen[path] {
			continue
		}
		seen[path] = true
		rec := get(t, h, http.MethodGet, path, nil)
		if rec.Code != http.StatusOK {
			t.Errorf("%s: status %d", path, rec.Code)
			continue
		}
		body, _ := io.ReadAll(rec.Body)
		for _, m := range attr.FindAllStringSubmatch(string(body), -1) {
			queue = append(queue, m[1])
		}
		if strings.HasSuffix(path, ".js") {
			for _, m := range imp.FindAllStringSubmatch(string(body), -1) {
				queue = append(queue, "/static/"+m[1])
			}
		}
	}
	for _, want := range []string{"/static/whip.js", "/static/whep.js", "/static/sdp-exchange.js", "/static/stats.js",
		"/static/watch-hls.js", "/static/vendor/hls.js/hls.min.mjs"} {
		if !seen[want] {
			t.Errorf("%s is not reachable from the pages", want)
		}
	}
}

// The vendored browser builds must be exactly what npm installs from the
// lockfile (web/vendor/update.sh copies them): CI runs `npm ci` in
// web/vendor, so a hand-edited or stale copy fails here.
func TestVendoredBuildsMatchTheLockfile(t *testing.T) {
	files := map[string]string{
		"static/vendor/hls.js/hls.min.mjs":                    "vendor/node_modules/hls.js/dist/hls.min.mjs",
		"static/vendor/hls.js/LICENSE":                        "vendor/node_modules/hls.js/LICENSE",
		"static/vendor/livekit-client/livekit-client.esm.mjs": "vendor/node_modules/livekit-client/dist/livekit-client.esm.mjs",
		"static/vendor/livekit-client/LICENSE":                "vendor/node_modules/livekit-client/LICENSE",
	}
	if _, err := os.Stat("vendor/node_modules"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("web/vendor/node_modules is missing: CI must run npm ci in web/vendor (%v)", err)
		}
		t.Skip("web/vendor/node_modules is missing; run web/vendor/update.sh (or npm ci in web/vendor) to check the vendored builds")
	}
	for embedded, installed := range files {
		got, err := static.ReadFile(embedded)
		if err != nil {
			t.Fatalf("%s is not embedded: %v", embedded, err)
		}
		want, err := os.ReadFile(installed)
		if err != nil {
			t.Fatalf("read %s: %v", installed, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s; run web/vendor/update.sh", embedded, installed)
		}
	}
	for _, module := range []string{"/static/vendor/hls.js/hls.min.mjs", "/static/vendor/livekit-client/livekit-client.esm.mjs"} {
		rec := get(t, Handler(), http.MethodGet, module, nil)
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/javascript") {
			t.Errorf("%s is served with status %d, Content-Type %q; want 200 and a JavaScript type", module, rec.Code, rec.Header().Get("Content-Type"))
		}
	}
}
