package access

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/livekit/protocol/auth"
)

const (
	key    = "APIkey"
	secret = "0123456789abcdef0123456789abcdef"
)

func mint(t *testing.T, secret string, g *auth.VideoGrant, valid time.Duration) string {
	t.Helper()
	tok, err := auth.NewAccessToken(key, secret).SetIdentity("alice").SetName("Alice").
		SetVideoGrant(g).SetValidFor(valid).ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestVerifyReadsEveryGrantTheServersEnforce(t *testing.T) {
	v := NewVerifier(map[string]string{key: secret})
	g := &auth.VideoGrant{RoomJoin: true, Room: "stage", RoomAdmin: true, Hidden: true, RoomList: true,
		CanPublishSources: []string{"camera", "microphone"}}
	g.SetCanPublish(false)
	g.SetCanPublishData(true)
	g.SetCanUpdateOwnMetadata(true)
	got, err := v.Verify(mint(t, secret, g, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := Grant{Identity: "alice", Name: "Alice", Room: "stage", CanSubscribe: true, CanPublishData: true, RoomAdmin: true, Hidden: true,
		RoomJoin: true, RoomList: true, CanPublishSources: []string{"camera", "microphone"}, CanUpdateOwnMetadata: true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("grant %+v, want %+v", got, want)
	}

	noJoin := &auth.VideoGrant{Room: "stage"}
	got, err = v.Verify(mint(t, secret, noJoin, time.Hour))
	if err != nil || got.CanPublish || got.CanSubscribe || got.CanPublishData {
		t.Errorf("a grant without roomJoin allows something: %+v, %v", got, err)
	}
}

func TestVerifyRefusesBadTokens(t *testing.T) {
	v := NewVerifier(map[string]string{key: secret})
	g := &auth.VideoGrant{RoomJoin: true, Room: "stage"}
	for name, tok := range map[string]string{
		"garbage":       "not-a-jwt",
		"bad signature": mint(t, "ffffffffffffffffffffffffffffffff", g, time.Hour),
		"expired":       expired(t),
		"unknown key":   func() string { tok, _ := auth.NewAccessToken("other", secret).SetVideoGrant(g).ToJWT(); return tok }(),
	} {
		if _, err := v.Verify(tok); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
}

// expired signs a token that expired an hour ago (the auth package's builder
// only makes tokens valid from now).
func expired(t *testing.T) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": key, "sub": "alice", "nbf": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix(),
		"video": map[string]any{"room": "stage", "roomJoin": true},
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestValidNameAcceptsOnlyURLSafeNames(t *testing.T) {
	for name, want := range map[string]bool{
		"stage": true, "Room_1.a-b": true, "": false, "a/b": false, "a}:b": false, "ünï": false,
		"x y": false, "%2e": false, string(make([]byte, 129)): false,
	} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}
