package signaling

import (
	"net/http"
	"strings"

	"github.com/livekit/protocol/auth"
)

// Grant is what a verified access token allows.
type Grant struct {
	Identity     string
	Room         string
	CanPublish   bool
	CanSubscribe bool
	RoomAdmin    bool
}

// Verifier checks LiveKit-compatible JWT access tokens against known API keys.
type Verifier struct {
	keys map[string]string
}

// NewVerifier returns a Verifier for the given key → secret pairs.
func NewVerifier(keys map[string]string) *Verifier { return &Verifier{keys: keys} }

// Verify parses and checks token (signature, expiry, not-before).
func (v *Verifier) Verify(token string) (Grant, error) {
	p, err := auth.ParseAPIToken(token)
	if err != nil {
		return Grant{}, errorf(http.StatusUnauthorized, "invalid token: "+err.Error())
	}
	secret, ok := v.keys[p.APIKey()]
	if !ok {
		return Grant{}, errorf(http.StatusUnauthorized, "invalid token: unknown API key")
	}
	_, claims, err := p.Verify(secret)
	if err != nil {
		return Grant{}, errorf(http.StatusUnauthorized, "invalid token: "+err.Error())
	}
	g := Grant{Identity: claims.Identity}
	if vg := claims.Video; vg != nil {
		g.Room = vg.Room
		g.CanPublish = vg.RoomJoin && vg.GetCanPublish()
		g.CanSubscribe = vg.RoomJoin && vg.GetCanSubscribe()
		g.RoomAdmin = vg.RoomAdmin
	}
	return g, nil
}

// bearer returns the token of an "Authorization: Bearer" header, if any.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// authorize checks the request's token for room. publish asks for canPublish,
// otherwise canSubscribe; optional lets a request without a token through
// with an empty grant (public playback).
func (v *Verifier) authorize(r *http.Request, room string, publish, optional bool) (Grant, error) {
	tok, ok := bearer(r)
	if !ok {
		if optional {
			return Grant{}, nil
		}
		return Grant{}, errorf(http.StatusUnauthorized, "missing bearer token")
	}
	g, err := v.Verify(tok)
	if err != nil {
		return Grant{}, err
	}
	// Grants, roomAdmin included, hold in the token's own room only, as in
	// LiveKit.
	if g.Room != room {
		return Grant{}, errorf(http.StatusForbidden, "token is not valid for room "+room)
	}
	if publish && !g.CanPublish {
		return Grant{}, errorf(http.StatusForbidden, "token does not allow publishing")
	}
	if !publish && !g.CanSubscribe {
		return Grant{}, errorf(http.StatusForbidden, "token does not allow subscribing")
	}
	return g, nil
}
