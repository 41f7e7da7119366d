package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// playerBudget is the widget's size budget, gzipped, without hls.js.
const playerBudget = 40 << 10

func getPlayer(t *testing.T, target string, header http.Header) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	PlayerHandler().ServeHTTP(rec, req)
	return rec.Result()
}

func TestPlayerScriptIsServedToAnyOriginWithinItsSizeBudget(t *testing.T) {
	for _, path := range []string{"/player.js", "/player/hls.min.mjs"} {
		t.Run(path, func(t *testing.T) {
			resp := getPlayer(t, path, http.Header{"Origin": {"https://elsewhere.example"}})
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || len(body) == 0 {
				t.Fatalf("GET %s: %d with %d bytes, want 200 with the script", path, resp.StatusCode, len(body))
			}
			for k, want := range map[string]string{
				"Content-Type":                 "text/javascript; charset=utf-8",
				"Access-Control-Allow-Origin":  "*",
				"Cross-Origin-Resource-Policy": "cross-origin",
				"Cache-Control":                "no-cache",
				"X-Content-Type-Options":       "nosniff",
			} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			etag := resp.Header.Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			again := getPlayer(t, path, http.Header{"If-None-Match": {etag}})
			if again.StatusCode != http.StatusNotModified {
				t.Errorf("GET with If-None-Match %s: %d, want 304", etag, again.StatusCode)
			}
		})
	}

	resp := getPlayer(t, "/player.js", nil)
	body, _ := io.ReadAll(resp.Body)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("player.js: %d bytes, %d gzipped (budget %d)", len(body), gz.Len(), playerBudget)
	if gz.Len() > playerBudget {
		t.Errorf("player.js is %d bytes gzipped, over its budget of %d", gz.Len(), playerBudget)
	}
	// hls.js must stay out of the widget: it is loaded only on fallback.
	if bytes.Contains(body, []byte("/static/vendor/hls.js")) || len(body) > 200<<10 {
		t.Error("player.js seems to bundle or name the /static/ hls.js build instead of /player/hls.min.mjs")
	}
}

// The widget is written in several files and served as one: the served
// script carries every included file, indented in place, and no include
// line is left.
func TestPlayerScriptCarriesItsIncludedFiles(t *testing.T) {
	resp := getPlayer(t, "/player.js", nil)
	body, _ := io.ReadAll(resp.Body)
	chat, err := playerFiles.ReadFile("player/chat.js")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(body, []byte(includeLine)) {
		t.Error("the served player.js still has an include line")
	}
	for line := range strings.Lines(string(chat)) {
		if strings.TrimSpace(line) != "" && !bytes.Contains(body, []byte("  "+line)) {
			t.Fatalf("the served player.js lacks chat.js's line %q", line)
		}
	}
	if !bytes.Contains(body, []byte("Object.assign(StarlingPlayer.prototype, chatMethods)")) {
		t.Error("the served player.js does not give StarlingPlayer the chat methods")
	}
}

func TestPlayerEmbedPageEscapesTheRoomAndQuery(t *testing.T) {
	resp := getPlayer(t, `/embed/%3Cscript%3Ealert(1)%3C%2Fscript%3E%22?token=%22%3E%3Cb%3E&mode=hls`, nil)
	body, _ := io.ReadAll(resp.Body)
	page := string(body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, page)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Error("the embed page may leak its ?token= in Referer headers")
	}
	if strings.Contains(page, "<script>alert") || strings.Contains(page, `"><b>`) {
		t.Errorf("room or token not escaped:\n%s", page)
	}
	for _, want := range []string{
		`<script src="/player.js"></script>`,
		`room="&lt;script&gt;alert(1)&lt;/script&gt;&#34;"`,
		`token="&#34;&gt;&lt;b&gt;"`,
		`mode="hls"`,
		" chat>",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("embed page lacks %s:\n%s", want, page)
		}
	}
	if n := strings.Count(page, "<script"); n != 1 {
		t.Errorf("%d <script elements, want only the widget's:\n%s", n, page)
	}
}

func TestPlayerEmbedPageWithoutChatOrRoom(t *testing.T) {
	resp := getPlayer(t, "/embed/demo?chat=0&mode=bogus", nil)
	body, _ := io.ReadAll(resp.Body)
	if page := string(body); strings.Contains(page, " chat>") || strings.Contains(page, "mode=") || !strings.Contains(page, `room="demo"`) {
		t.Errorf("?chat=0&mode=bogus: want room demo, no chat, no mode:\n%s", page)
	}
	for _, path := range []string{"/embed/", "/embed/a/b", "/player/other.js"} {
		if resp := getPlayer(t, path, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
}
