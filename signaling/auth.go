package signaling

import (
	"net/http"
	"strings"

	"github.com/starling-sfu/starling/access"
)

// verify checks token, as a 401 when it is refused.
func verify(v *access.Verifier, token string) (access.Grant, error) {
	g, err := v.Verify(token)
	if err != nil {
		return access.Grant{}, errorf(http.StatusUnauthorized, err.Error())
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
func authorize(v *access.Verifier, r *http.Request, room string, publish, optional bool) (access.Grant, error) {
	tok, ok := bearer(r)
	if !ok {
		if optional {
			return access.Grant{}, nil
		}
		return access.Grant{}, errorf(http.StatusUnauthorized, "missing bearer token")
	}
	g, err := verify(v, tok)
	if err != nil {
		return access.Grant{}, err
	}
	// Grants, roomAdmin included, hold in the token's own room only, as in
	// LiveKit.
	if g.Room != room {
		return access.Grant{}, errorf(http.StatusForbidden, "token is not valid for room "+room)
	}
	if publish && !g.CanPublish {
		return access.Grant{}, errorf(http.StatusForbidden, "token does not allow publishing")
	}
	if !publish && !g.CanSubscribe {
		return access.Grant{}, errorf(http.StatusForbidden, "token does not allow subscribing")
	}
	return g, nil
}
