package turn

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"
)

// maxIdentityLen bounds the identity part of a username; STUN allows 513
// bytes, and a long one only costs bytes in every request.
const maxIdentityLen = 64

// Issuer mints short-lived TURN credentials in the TURN REST scheme
// (draft-uberti-behave-turn-rest): the username is "expiry:identity", with
// expiry in Unix seconds, and the password is
// base64(HMAC-SHA1(secret, username)). Any TURN server that knows the secret
// checks them without a call back: Starling's own, or coturn with
// use-auth-secret and static-auth-secret set to the same secret.
type Issuer struct {
	secret []byte
	ttl    time.Duration
	urls   []string
	now    func() time.Time
}

// NewIssuer returns an Issuer for the TURN servers at urls ("turn:host:3478?transport=udp", …),
// whose credentials are valid for ttl.
func NewIssuer(secret string, ttl time.Duration, urls []string) (*Issuer, error) {
	switch {
	case secret == "":
		return nil, errors.New("turn: empty shared secret")
	case ttl <= 0:
		return nil, errors.New("turn: credential TTL must be positive")
	case len(urls) == 0:
		return nil, errors.New("turn: no TURN URLs to issue credentials for")
	}
	return &Issuer{secret: []byte(secret), ttl: ttl, urls: urls, now: time.Now}, nil
}

// Credential returns a username and password for identity, valid until now+TTL.
func (i *Issuer) Credential(identity string) (username, password string) {
	expiry := i.now().Add(i.ttl).Unix()
	username = strconv.FormatInt(expiry, 10) + ":" + cleanIdentity(identity)
	return username, Password(string(i.secret), username)
}

// ICEServers returns the TURN servers with fresh credentials for identity, in
// the form the signaling server offers them (Link headers, JSON).
func (i *Issuer) ICEServers(identity string) []webrtc.ICEServer {
	user, pass := i.Credential(identity)
	return []webrtc.ICEServer{{
		URLs:           append([]string(nil), i.urls...),
		Username:       user,
		Credential:     pass,
		CredentialType: webrtc.ICECredentialTypePassword,
	}}
}

// URLs returns the TURN URLs the credentials are for.
func (i *Issuer) URLs() []string { return append([]string(nil), i.urls...) }

// Password is the TURN REST password of username: base64(HMAC-SHA1(secret, username)).
func Password(secret, username string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// parseUsername splits a TURN REST username into its expiry and identity.
func parseUsername(username string) (expiry time.Time, identity string, ok bool) {
	ts, identity, found := strings.Cut(username, ":")
	if !found || identity == "" {
		return time.Time{}, "", false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sec <= 0 {
		return time.Time{}, "", false
	}
	return time.Unix(sec, 0), identity, true
}

// cleanIdentity keeps an identity safe inside a STUN username and a quoted
// Link header parameter: letters, digits and ".-_@" pass, anything else
// becomes "_", and it is cut to maxIdentityLen bytes.
func cleanIdentity(identity string) string {
	if identity == "" {
		return "anonymous"
	}
	b := []byte(identity)
	if len(b) > maxIdentityLen {
		b = b[:maxIdentityLen]
	}
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_', c == '@':
		default:
			b[i] = '_'
		}
	}
	return string(b)
}

// RandomSecret returns a fresh 32-byte shared secret, base64-encoded, for a
// server started without one.
func RandomSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
