package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
)

const testSecret = "a-test-secret-of-at-least-32-characters"

// isolateEnv hides every STARLING_* variable of the developer's or CI's
// environment from the test; they come back when it ends.
func isolateEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "STARLING_") {
			t.Setenv(k, v) // restores it after the test
			os.Unsetenv(k)
		}
	}
}

// mint runs `starling token args...` and returns the printed token.
func mint(t *testing.T, args ...string) string {
	t.Helper()
	var out strings.Builder
	if err := token(args, &out); err != nil {
		t.Fatalf("token %q: %v", args, err)
	}
	s := out.String()
	if !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 {
		t.Fatalf("token printed %q, want one line", s)
	}
	return strings.TrimSuffix(s, "\n")
}

// verify checks jwt's signature with livekit's verifier, as a server does.
func verify(t *testing.T, jwt, key, secret string) *auth.ClaimGrants {
	t.Helper()
	v, err := auth.ParseAPIToken(jwt)
	if err != nil {
		t.Fatalf("parse token: %v", err)
	}
	if v.APIKey() != key {
		t.Fatalf("token signed with key %q, want %q", v.APIKey(), key)
	}
	_, claims, err := v.Verify(secret)
	if err != nil {
		t.Fatalf("verify token: %v", err)
	}
	if claims.Video == nil {
		t.Fatal("token has no video grant")
	}
	return claims
}

func TestTokenGrants(t *testing.T) {
	isolateEnv(t)
	keys := "-keys=k1:" + testSecret
	tests := []struct {
		name                           string
		args                           []string
		publish, subscribe, data, admn bool
	}{
		{"viewer by default", []string{"-room", "stage", "-identity", "ann"}, false, true, true, false},
		{"publisher", []string{"-room", "stage", "-identity", "ann", "-publish"}, true, true, true, false},
		{"publish only", []string{"-room", "stage", "-identity", "ann", "-publish", "-subscribe=false", "-data=false"}, true, false, false, false},
		{"admin", []string{"-room", "stage", "-identity", "ann", "-admin"}, false, true, true, true},
		{"double-dash flags", []string{"--room", "stage", "--identity", "ann", "--publish"}, true, true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := verify(t, mint(t, append([]string{keys}, tt.args...)...), "k1", testSecret)
			vg := c.Video
			if c.Identity != "ann" || vg.Room != "stage" || !vg.RoomJoin {
				t.Errorf("identity %q, room %q, roomJoin %v; want ann, stage, true", c.Identity, vg.Room, vg.RoomJoin)
			}
			// The grants are explicit: an unset canPublish means true to LiveKit.
			if vg.CanPublish == nil || vg.CanSubscribe == nil || vg.CanPublishData == nil {
				t.Fatalf("grant leaves a permission unset: %+v", vg)
			}
			got := [4]bool{vg.GetCanPublish(), vg.GetCanSubscribe(), vg.GetCanPublishData(), vg.RoomAdmin}
			want := [4]bool{tt.publish, tt.subscribe, tt.data, tt.admn}
			if got != want {
				t.Errorf("canPublish, canSubscribe, canPublishData, roomAdmin = %v, want %v", got, want)
			}
		})
	}
}

func TestTokenNameAndTTL(t *testing.T) {
	isolateEnv(t)
	before := time.Now()
	jwt := mint(t, "-keys", "k1:"+testSecret, "-room", "r", "-identity", "obs", "-name", "Studio A", "-ttl", "90s")
	v, err := auth.ParseAPIToken(jwt)
	if err != nil {
		t.Fatal(err)
	}
	reg, claims, err := v.Verify(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if claims.Name != "Studio A" {
		t.Errorf("name = %q", claims.Name)
	}
	if reg.ExpiresAt == nil {
		t.Fatal("token has no expiry")
	}
	if life := reg.ExpiresAt.Sub(before); life < 80*time.Second || life > 100*time.Second {
		t.Errorf("token valid for %v, want about 90s", life)
	}
}

func TestTokenDoesNotVerifyWithAnotherSecret(t *testing.T) {
	isolateEnv(t)
	jwt := mint(t, "-keys", "k1:"+testSecret, "-room", "r", "-identity", "obs", "-publish")
	v, err := auth.ParseAPIToken(jwt)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.Verify(testSecret + "-other"); err == nil {
		t.Fatal("token verified with the wrong secret")
	}
}

func TestTokenKeySources(t *testing.T) {
	other := "another-test-secret-of-32-characters-or-more"
	t.Run("STARLING_KEYS", func(t *testing.T) {
		isolateEnv(t)
		t.Setenv("STARLING_KEYS", "envkey:"+testSecret)
		verify(t, mint(t, "-room", "r", "-identity", "obs"), "envkey", testSecret)
	})
	t.Run("config file", func(t *testing.T) {
		isolateEnv(t)
		path := filepath.Join(t.TempDir(), "starling.yaml")
		if err := os.WriteFile(path, []byte("keys:\n  filekey: "+testSecret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		verify(t, mint(t, "-config", path, "-room", "r", "-identity", "obs"), "filekey", testSecret)
	})
	t.Run("first key in name order by default", func(t *testing.T) {
		isolateEnv(t)
		verify(t, mint(t, "-keys", "zed:"+other+",alpha:"+testSecret, "-room", "r", "-identity", "obs"), "alpha", testSecret)
	})
	t.Run("-key picks one", func(t *testing.T) {
		isolateEnv(t)
		verify(t, mint(t, "-keys", "zed:"+other+",alpha:"+testSecret, "-key", "zed", "-room", "r", "-identity", "obs"), "zed", other)
	})
}

func TestTokenErrors(t *testing.T) {
	keys := "-keys=k1:" + testSecret
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no room", []string{keys, "-identity", "obs"}, "-room and -identity are required"},
		{"no identity", []string{keys, "-room", "r"}, "-room and -identity are required"},
		{"no keys", []string{"-room", "r", "-identity", "obs"}, "no API keys"},
		{"unknown key", []string{keys, "-key", "nope", "-room", "r", "-identity", "obs"}, `unknown key "nope"`},
		{"short secret", []string{"-keys", "k1:short", "-room", "r", "-identity", "obs"}, "shorter than 32"},
		{"bad keys", []string{"-keys", "k1", "-room", "r", "-identity", "obs"}, "-keys"},
		{"unknown flag", []string{keys, "-room", "r", "-identity", "obs", "-publsh"}, "publsh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			var out strings.Builder
			err := token(tt.args, &out)
			if err == nil {
				t.Fatalf("token %q printed %q", tt.args, out.String())
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if out.Len() != 0 {
				t.Errorf("printed %q despite the error", out.String())
			}
		})
	}
}
