package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// The <starling-player> widget: one classic script that any page, on any
// origin, loads with a <script> tag. It loads hls.js only when it falls back
// to LL-HLS, from /player/hls.min.mjs: the same pinned build as
// /static/vendor/, served with CORS, which a cross-origin import() needs.

//go:embed player/*.js
var playerFiles embed.FS

// includeLine, alone on a line of player.js, is replaced by the named file
// of web/player, indented as the line is: the widget is written in several
// files and served as one script, so one <script> tag loads it all.
const includeLine = "// @include "

// playerScript returns player.js with its includes in place.
func playerScript() []byte {
	top, err := playerFiles.ReadFile("player/player.js")
	if err != nil {
		panic("web: read embedded player.js: " + err.Error())
	}
	var out bytes.Buffer
	for line := range strings.Lines(string(top)) {
		name, ok := strings.CutPrefix(strings.TrimSpace(line), includeLine)
		if !ok {
			out.WriteString(line)
			continue
		}
		part, err := playerFiles.ReadFile("player/" + name)
		if err != nil {
			panic("web: player.js includes " + name + ": " + err.Error())
		}
		indent := line[:len(line)-len(strings.TrimLeft(line, " "))]
		for l := range strings.Lines(string(part)) {
			if strings.TrimSpace(l) != "" {
				out.WriteString(indent)
			}
			out.WriteString(l)
		}
	}
	return out.Bytes()
}

// embedPage is /embed/{room}: the widget alone, filling the page, for an
// <iframe>. html/template escapes the room and the query values.
var embedPage = template.Must(template.New("embed").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Room}} · Starling</title>
<style>html,body{margin:0;height:100%;background:#000}starling-player{width:100%;height:100%;aspect-ratio:auto}</style>
<script src="/player.js"></script>
</head>
<body>
<starling-player room="{{.Room}}"{{if .Token}} token="{{.Token}}"{{end}}{{if .Mode}} mode="{{.Mode}}"{{end}} autoplay muted controls{{if .Chat}} chat{{end}}></starling-player>
</body>
</html>
`))

// PlayerHandler serves GET /player.js (the widget), GET /player/hls.min.mjs
// (hls.js for its LL-HLS fallback) and GET /embed/{room} (a page that embeds
// the widget; ?token=, ?mode=auto|webrtc|hls and ?chat=0 are passed on).
func PlayerHandler() http.Handler {
	mux := http.NewServeMux()
	player := newScript("player.js", playerScript())
	hls := mustAsset(static, "static/vendor/hls.js/hls.min.mjs")
	mux.Handle("GET /player.js", player)
	mux.Handle("GET /player/hls.min.mjs", hls)
	mux.HandleFunc("GET /embed/{room}", serveEmbed)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not found")
	})
	return mux
}

// script is an embedded JavaScript file, served to pages of any origin.
type script struct {
	name string
	body []byte
	etag string
}

// mustAsset reads an embedded script; a missing one is a build defect.
func mustAsset(files embed.FS, name string) *script {
	body, err := files.ReadFile(name)
	if err != nil {
		panic("web: read embedded " + name + ": " + err.Error())
	}
	return newScript(name[strings.LastIndexByte(name, '/')+1:], body)
}

func newScript(name string, body []byte) *script {
	sum := sha256.Sum256(body)
	return &script{name: name, body: body, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}

// ServeHTTP serves a script to pages of any origin: CORS for import() and
// type="module", Cross-Origin-Resource-Policy for pages that isolate
// themselves, revalidation by ETag so a new build is picked up at once.
func (a *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/javascript; charset=utf-8")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("ETag", a.etag)
	hdr.Set("Access-Control-Allow-Origin", "*")
	hdr.Set("Cross-Origin-Resource-Policy", "cross-origin")
	hdr.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
}

func serveEmbed(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if room == "" {
		writeError(w, http.StatusNotFound, "no room in the address: /embed/{room}")
		return
	}
	q := r.URL.Query()
	mode := q.Get("mode")
	if mode != "webrtc" && mode != "hls" {
		mode = ""
	}
	var buf bytes.Buffer
	err := embedPage.Execute(&buf, struct {
		Room, Token, Mode string
		Chat              bool
	}{room, q.Get("token"), mode, q.Get("chat") != "0"})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "render embed page: "+err.Error())
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Content-Type-Options", "nosniff")
	// The address may carry ?token=; keep it out of Referer headers. No
	// X-Frame-Options: this page is made to be framed.
	hdr.Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(buf.Bytes())
}
