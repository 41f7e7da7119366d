// Package web serves Starling's embedded static pages: an index, a browser
// publish page (WHIP), a watch page (WHEP), an HLS watch page (hls.js) and a
// room page (livekit-client over /rtc), with the ES modules they load.
// Everything the pages need is compiled into the binary; nothing is fetched
// from elsewhere at run time.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// pages maps the page routes to their files; every other file in static/ is
// served under /static/.
var pages = map[string]string{
	"/":          "index.html",
	"/publish":   "publish.html",
	"/watch":     "watch.html",
	"/watch-hls": "watch-hls.html",
	"/room":      "room.html",
}

// contentTypes is fixed here rather than taken from package mime, whose table
// can be overridden by the host's /etc/mime.types (a module served as
// text/plain does not load).
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".mjs":  "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// asset is one embedded file, ready to serve.
type asset struct {
	name  string
	body  []byte
	ctype string
	etag  string
}

// Handler serves the pages at /, /publish, /watch, /watch-hls and /room and the
// files they load under /static/. Anything else is a 404 with a JSON body, so
// the handler can be mounted at "/" beneath the API routes.
func Handler() http.Handler {
	h := handler{routes: make(map[string]*asset)}
	files := make(map[string]*asset)
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ctype, ok := contentTypes[path.Ext(p)]
		if !ok {
			ctype = "application/octet-stream"
		}
		name := strings.TrimPrefix(p, "static/") // "watch.js", "vendor/hls.js/hls.min.mjs"
		a := &asset{name: path.Base(name), body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		files[name] = a
		h.routes["/static/"+name] = a
		return nil
	})
	if err != nil {
		// The files are compiled in; failing to read them is a build defect.
		panic("web: read embedded files: " + err.Error())
	}
	for route, name := range pages {
		a, ok := files[name]
		if !ok {
			panic("web: page " + name + " is not embedded")
		}
		h.routes[route] = a
	}
	return h
}

type handler struct {
	routes map[string]*asset
}

func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a, ok := h.routes[r.URL.Path]
	if !ok {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", a.ctype)
	// The modules are not fingerprinted, so every file is revalidated (cheap,
	// by ETag) to keep pages and modules from different builds apart.
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("ETag", a.etag)
	hdr.Set("X-Content-Type-Options", "nosniff")
	// Page URLs may carry ?token=; keep them out of Referer headers.
	hdr.Set("Referrer-Policy", "no-referrer")
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
