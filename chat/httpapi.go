package chat

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// The HTTP side of the chat: poll results as JSON, the websocket's Origin
// check, and CORS for the JSON endpoints.

func (s *Server) servePolls(w http.ResponseWriter, r *http.Request) {
	room, ok := s.authorizeHTTP(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	polls, err := s.opts.Store.Polls(ctx, room)
	if err != nil {
		s.log.Warn("chat polls failed", "room", room, "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "chat store unavailable"})
		return
	}
	if polls == nil {
		polls = []Poll{}
	}
	writeJSON(w, http.StatusOK, map[string][]Poll{"polls": polls})
}

func (s *Server) servePoll(w http.ResponseWriter, r *http.Request) {
	room, ok := s.authorizeHTTP(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	p, err := s.opts.Store.Poll(ctx, room, r.PathValue("id"))
	switch {
	case errors.Is(err, ErrNoPoll):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such poll"})
	case err != nil:
		s.log.Warn("chat poll failed", "room", room, "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "chat store unavailable"})
	default:
		writeJSON(w, http.StatusOK, p)
	}
}

// authorizeHTTP checks the request's Bearer token against its room (none
// needed when the room allows anonymous reading), answers the failures, and
// returns the room.
func (s *Server) authorizeHTTP(w http.ResponseWriter, r *http.Request) (string, bool) {
	s.cors(w, r)
	room := r.PathValue("room")
	if !validRoom(room) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid room name"})
		return "", false
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		allowed, err := s.anonymousReadable(r.Context(), room)
		switch {
		case err != nil:
			s.log.Warn("chat moderation failed", "room", room, "err", err)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "chat store unavailable"})
			return "", false
		case !allowed:
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "a Bearer token is required"})
			return "", false
		}
		return room, true
	}
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "Authorization must be a Bearer token"})
		return "", false
	}
	g, err := s.verify(token)
	if err != nil {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": err.Error()})
		return "", false
	}
	if g.Room != room {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "the token is for another room"})
		return "", false
	}
	return room, true
}

func (s *Server) serveOptions(w http.ResponseWriter, r *http.Request) {
	s.cors(w, r)
	w.WriteHeader(http.StatusNoContent)
}

// cors allows the JSON endpoints to pages of AllowOrigins.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	h := w.Header()
	switch {
	case slices.Contains(s.opts.AllowOrigins, "*"):
		h.Set("Access-Control-Allow-Origin", "*")
	case slices.Contains(s.opts.AllowOrigins, origin):
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
	default:
		return
	}
	h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization")
	h.Set("Access-Control-Max-Age", "86400")
}

// checkOrigin lets a websocket in from a page of AllowOrigins, from the
// server's own origin, or from a non-browser client (no Origin).
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || slices.Contains(s.opts.AllowOrigins, "*") || slices.Contains(s.opts.AllowOrigins, origin) {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// anonymousReadable reports whether clients without a token may read room:
// the room's own setting from the store, else the server's default. The
// store, not a hub's copy, answers, as this node may serve no hub for room.
func (s *Server) anonymousReadable(ctx context.Context, room string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	m, err := s.opts.Store.Moderation(ctx, room)
	if err != nil {
		return false, err
	}
	if m.AnonymousRead != nil {
		return *m.AnonymousRead, nil
	}
	return s.opts.AnonymousRead, nil
}
