package signaling

import (
	"net/http"
	"slices"
)

// cors adds the CORS headers WHIP/WHEP clients in browsers need. A wildcard
// does not cover Authorization, so the allowed headers are named.
func cors(allow []string, h http.Handler) http.Handler {
	any := slices.Contains(allow, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" && (any || slices.Contains(allow, origin)) {
			hd := w.Header()
			if any {
				hd.Set("Access-Control-Allow-Origin", "*")
			} else {
				hd.Set("Access-Control-Allow-Origin", origin)
				hd.Add("Vary", "Origin")
			}
			hd.Set("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE, OPTIONS")
			hd.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
			hd.Set("Access-Control-Expose-Headers", "Location, ETag, Link, Accept-Patch, Accept-Post")
			hd.Set("Access-Control-Max-Age", "86400")
		}
		h.ServeHTTP(w, r)
	})
}
