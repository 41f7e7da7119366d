// Package access verifies LiveKit-compatible JWT access tokens (API key +
// secret, VideoGrant) and says what a verified token allows. The WHIP/WHEP
// signaling server and the chat server both ask it.
package access

import (
	"errors"
	"fmt"
	"time"

	"github.com/livekit/protocol/auth"
)

// ErrInvalid wraps every reason a token is refused: malformed, unknown API
// key, bad signature, expired or not yet valid.
var ErrInvalid = errors.New("invalid token")

// Grant is what a verified access token allows. Grants hold in the token's
// own Room only, as in LiveKit.
type Grant struct {
	Identity       string
	Name           string
	Room           string
	CanPublish     bool
	CanSubscribe   bool
	CanPublishData bool
	RoomAdmin      bool
	Hidden         bool
	// RoomJoin lets the holder join Room at all; RoomCreate and RoomList
	// are the room service's grants for creating/deleting and listing rooms.
	RoomJoin, RoomCreate, RoomList bool
	// CanPublishSources, when not empty, limits publishing to these track
	// sources ("camera", "microphone", "screen_share", "screen_share_audio").
	CanPublishSources []string
	// CanUpdateOwnMetadata lets a participant change its own name,
	// metadata and attributes.
	CanUpdateOwnMetadata bool
	Metadata             string
	Attributes           map[string]string
	// Kind is the participant kind the token claims ("standard", "ingress",
	// "egress", "sip", "agent"); empty means standard.
	Kind string
}

// Verifier checks access tokens against known API keys.
type Verifier struct {
	keys map[string]string
}

// NewVerifier returns a Verifier for the given key → secret pairs.
func NewVerifier(keys map[string]string) *Verifier { return &Verifier{keys: keys} }

// Verify parses and checks token (signature, expiry, not-before). Its errors
// wrap ErrInvalid.
func (v *Verifier) Verify(token string) (Grant, error) {
	p, err := auth.ParseAPIToken(token)
	if err != nil {
		return Grant{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	secret, ok := v.keys[p.APIKey()]
	if !ok {
		return Grant{}, fmt.Errorf("%w: unknown API key", ErrInvalid)
	}
	_, claims, err := p.Verify(secret)
	if err != nil {
		return Grant{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	g := Grant{Identity: claims.Identity, Name: claims.Name, Metadata: claims.Metadata,
		Attributes: claims.Attributes, Kind: claims.Kind}
	if vg := claims.Video; vg != nil {
		g.RoomJoin, g.RoomCreate, g.RoomList = vg.RoomJoin, vg.RoomCreate, vg.RoomList
		g.CanPublishSources = vg.CanPublishSources
		g.CanUpdateOwnMetadata = vg.RoomJoin && vg.GetCanUpdateOwnMetadata()
		g.Room = vg.Room
		g.CanPublish = vg.RoomJoin && vg.GetCanPublish()
		g.CanSubscribe = vg.RoomJoin && vg.GetCanSubscribe()
		g.CanPublishData = vg.RoomJoin && vg.GetCanPublishData()
		g.RoomAdmin = vg.RoomAdmin
		g.Hidden = vg.Hidden
	}
	return g, nil
}

// ValidName reports whether s may name a room or a participant: 1 to 128
// letters, digits, '-', '_' or '.', safe in URLs, logs and store keys.
func ValidName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// Refresh re-signs a valid token with the same key and claims, valid for
// ttl from now: what the room server hands a connected participant so
// that its reconnects outlive the token it joined with.
func (v *Verifier) Refresh(token string, ttl time.Duration) (string, error) {
	p, err := auth.ParseAPIToken(token)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	secret, ok := v.keys[p.APIKey()]
	if !ok {
		return "", fmt.Errorf("%w: unknown API key", ErrInvalid)
	}
	_, claims, err := p.Verify(secret)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	at := auth.NewAccessToken(p.APIKey(), secret).SetIdentity(claims.Identity).SetName(claims.Name).
		SetMetadata(claims.Metadata).SetAttributes(claims.Attributes).SetValidFor(ttl)
	if claims.Video != nil {
		at.SetVideoGrant(claims.Video)
	}
	if claims.Kind != "" {
		at.SetKind(claims.GetParticipantKind())
	}
	tok, err := at.ToJWT()
	if err != nil {
		return "", fmt.Errorf("access: sign refreshed token: %w", err)
	}
	return tok, nil
}
