package turn

import (
	"strings"
	"testing"
	"time"
)

// The expected password was computed with OpenSSL, as a coturn operator
// would check it:
//
//	echo -n 1700000000:alice | openssl dgst -sha1 -hmac coturn-shared-secret -binary | base64
func TestPasswordIsTheTURNRESTHMAC(t *testing.T) {
	if got, want := Password("coturn-shared-secret", "1700000000:alice"), "eaPAufPBtzKyTlFFj8/AobPZBvg="; got != want {
		t.Fatalf("Password = %q, want %q", got, want)
	}
}

func TestIssuerMintsExpiryColonIdentityValidForTheTTL(t *testing.T) {
	is, err := NewIssuer("secret-secret-secret", 12*time.Hour, []string{"turn:203.0.113.7:3478?transport=udp"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	is.now = func() time.Time { return now }
	user, pass := is.Credential("alice")
	if want := "1700043200:alice"; user != want {
		t.Errorf("username = %q, want %q", user, want)
	}
	if pass != Password("secret-secret-secret", user) {
		t.Errorf("password %q is not the HMAC of the username", pass)
	}
	expiry, identity, ok := parseUsername(user)
	if !ok || identity != "alice" || !expiry.Equal(now.Add(12*time.Hour)) {
		t.Errorf("parseUsername(%q) = %v, %q, %v", user, expiry, identity, ok)
	}

	servers := is.ICEServers("alice")
	if len(servers) != 1 || len(servers[0].URLs) != 1 || servers[0].Username != user || servers[0].Credential != pass {
		t.Errorf("ICEServers = %+v", servers)
	}
}

func TestIssuerKeepsIdentitiesSafeInUsernamesAndLinkHeaders(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice", "alice"},
		{"viewer-1a2b.c_d@example", "viewer-1a2b.c_d@example"},
		{"", "anonymous"},
		{`ev"il; rel=x`, "ev_il__rel_x"},
		{"a:b", "a_b"},
		{"é", "__"},
		{strings.Repeat("x", 100), strings.Repeat("x", maxIdentityLen)},
	} {
		if got := cleanIdentity(tc.in); got != tc.want {
			t.Errorf("cleanIdentity(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseUsernameRefusesMalformedNames(t *testing.T) {
	for _, u := range []string{"", "alice", "1700000000", "1700000000:", "x:alice", "-5:alice", "0:alice"} {
		if _, _, ok := parseUsername(u); ok {
			t.Errorf("parseUsername(%q) accepted", u)
		}
	}
}

func TestNewIssuerRefusesUnusableSettings(t *testing.T) {
	urls := []string{"turn:example.com:3478"}
	if _, err := NewIssuer("", time.Hour, urls); err == nil {
		t.Error("empty secret accepted")
	}
	if _, err := NewIssuer("s", 0, urls); err == nil {
		t.Error("zero TTL accepted")
	}
	if _, err := NewIssuer("s", time.Hour, nil); err == nil {
		t.Error("no URLs accepted")
	}
}
