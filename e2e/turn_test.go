package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// candidatePair mirrors the candidatePair the publish and watch pages keep
// in their state: the selected ICE candidate pair from getStats.
type candidatePair struct {
	State         string `json:"state"`
	LocalType     string `json:"localType"`
	LocalProtocol string `json:"localProtocol"`
	RelayProtocol string `json:"relayProtocol"`
	RemoteType    string `json:"remoteType"`
	RemoteAddress string `json:"remoteAddress"`
}

func (p *candidatePair) String() string {
	if p == nil {
		return "no selected pair"
	}
	return fmt.Sprintf("%s local=%s/%s relay=%s remote=%s %s", p.State, p.LocalType, p.LocalProtocol,
		p.RelayProtocol, p.RemoteType, p.RemoteAddress)
}

// iceServer is an RTCIceServer as the pages parse it from a Link header.
type iceServer struct {
	URLs       string `json:"urls"`
	Username   string `json:"username"`
	Credential string `json:"credential"`
}

func selectedPair(t *testing.T, p *page, global string) *candidatePair {
	t.Helper()
	pair, err := eval[*candidatePair](p, "window."+global+".candidatePair")
	if err != nil {
		t.Fatalf("%s: read window.%s.candidatePair: %v", p.name, global, err)
	}
	return pair
}

// metric returns the value of the sample named series (with its labels, as
// /metrics prints them), or -1 when there is none.
func metric(t *testing.T, srv *server, series string) float64 {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("/metrics: %s: %v", series, err)
			}
			return f
		}
	}
	return -1
}

// startTURNServer starts a server whose TURN server listens on free ports,
// announces relays on loopback, and may relay to the SFU there: a relay
// refuses loopback peers unless told. startServer passes no TURN flags, so
// the settings go through the environment, which the server inherits.
func startTURNServer(t *testing.T) *server {
	t.Helper()
	t.Setenv("STARLING_TURN_UDP_PORT", strconv.Itoa(freePort(t, "udp")))
	t.Setenv("STARLING_TURN_TCP_PORT", strconv.Itoa(freePort(t, "tcp")))
	t.Setenv("STARLING_TURN_TLS_PORT", "0")
	t.Setenv("STARLING_TURN_PUBLIC_IP", "127.0.0.1")
	t.Setenv("STARLING_TURN_ALLOW_LOOPBACK", "true")
	return startServer(t)
}

// getICEServers asks GET /ice-servers with token (none when empty) and
// returns the status and the decoded body.
func getICEServers(t *testing.T, srv *server, query, token string) (int, iceServersBody) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/ice-servers"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET /ice-servers%s: %v", query, err)
	}
	defer resp.Body.Close()
	var body iceServersBody
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET /ice-servers%s: status %d, body not JSON: %v", query, resp.StatusCode, err)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("GET /ice-servers%s: Cache-Control %q, want no-store (credentials)", query, cc)
	}
	return resp.StatusCode, body
}

type iceServersBody struct {
	ICEServers []struct {
		URLs       []string `json:"urls"`
		Username   string   `json:"username"`
		Credential string   `json:"credential"`
	} `json:"iceServers"`
	Error string `json:"error"`
}

func TestTurnICEServersEndpointFollowsTheRoomTokenRules(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	srv := startTURNServer(t)
	pubToken := srv.token(t, "turn", "camera", true)

	status, body := getICEServers(t, srv, "?room=turn", pubToken)
	if status != http.StatusOK || len(body.ICEServers) != 1 {
		t.Fatalf("with a publish token: %d %+v, want 200 and one server", status, body)
	}
	ice := body.ICEServers[0]
	if !strings.HasSuffix(ice.Username, ":camera") || ice.Credential == "" || len(ice.URLs) != 2 ||
		!strings.HasPrefix(ice.URLs[0], "turn:127.0.0.1:") || !strings.HasSuffix(ice.URLs[0], "?transport=udp") ||
		!strings.HasSuffix(ice.URLs[1], "?transport=tcp") {
		t.Errorf("with a publish token: %+v, want UDP and TCP turn: URLs with credentials for camera", ice)
	}
	expiry, err := strconv.ParseInt(strings.Split(ice.Username, ":")[0], 10, 64)
	if ttl := time.Until(time.Unix(expiry, 0)); err != nil || ttl < 11*time.Hour || ttl > 12*time.Hour+time.Minute {
		t.Errorf("username %q expires in %v (%v), want the 12h default TTL", ice.Username, ttl, err)
	}

	// Public playback: no token gets credentials for a fresh viewer identity.
	status, body = getICEServers(t, srv, "?room=turn", "")
	if status != http.StatusOK || len(body.ICEServers) != 1 || !strings.Contains(body.ICEServers[0].Username, ":viewer-") {
		t.Errorf("without a token: %d %+v, want 200 and a viewer- identity", status, body)
	}

	for _, tc := range []struct {
		name, query, token string
		status             int
	}{
		{"token for another room", "?room=other", pubToken, http.StatusForbidden},
		{"forged token", "?room=turn", pubToken + "x", http.StatusUnauthorized},
		{"no room", "", pubToken, http.StatusBadRequest},
		{"bad room name", "?room=a/b", pubToken, http.StatusBadRequest},
	} {
		if status, body := getICEServers(t, srv, tc.query, tc.token); status != tc.status || body.Error == "" || len(body.ICEServers) != 0 {
			t.Errorf("%s: %d %+v, want %d and a JSON error", tc.name, status, body, tc.status)
		}
	}
}

func TestTurnICEServersNeedATokenWhenPlaybackIsNotPublic(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	t.Setenv("STARLING_WHEP_PUBLIC", "false")
	srv := startTURNServer(t)
	if status, body := getICEServers(t, srv, "?room=turn", ""); status != http.StatusUnauthorized || len(body.ICEServers) != 0 {
		t.Errorf("without a token: %d %+v, want 401", status, body)
	}
	viewerToken := srv.token(t, "turn", "alice", false)
	if status, body := getICEServers(t, srv, "?room=turn", viewerToken); status != http.StatusOK ||
		len(body.ICEServers) != 1 || !strings.HasSuffix(body.ICEServers[0].Username, ":alice") {
		t.Errorf("with a viewer token: %d %+v, want 200 and credentials for alice", status, body)
	}
}

func TestTurnRelayOnlyBrowsersPublishAndWatchThroughTheEmbeddedServer(t *testing.T) {
	requireBrowser(t)
	srv := startTURNServer(t)
	const room = "turn"

	// Both pages create their peer connections with the servers of
	// GET /ice-servers and iceTransportPolicy "relay" (?relay=1): without the
	// TURN server they could not connect at all.
	tok := srv.token(t, room, "camera", true)
	pub := newPage(t, "publisher")
	pub.open(t, srv.URL+"/publish?relay=1&room="+room+"&token="+url.QueryEscape(tok), "starlingPublish")
	pub.click(t, "start")
	eventually(t, 20*time.Second, "relay-only publisher connected", func() (bool, string) {
		s := publisherState(t, pub)
		if s.State == "failed" {
			t.Fatalf("publisher failed: %s", s)
		}
		return s.State == "live" && s.ConnectionState == "connected", s.String()
	})
	viewer := openViewer(t, srv, url.Values{"room": {room}, "relay": {"1"}})
	framesKeepGrowing(t, viewer, 30, 10*time.Second)

	for _, p := range []struct {
		page   *page
		global string
	}{{pub, "starlingPublish"}, {viewer, "starlingStats"}} {
		eventually(t, 10*time.Second, p.page.name+"'s selected candidate pair is a relay pair", func() (bool, string) {
			pair := selectedPair(t, p.page, p.global)
			return pair != nil && pair.LocalType == "relay" && pair.State == "succeeded", pair.String()
		})
	}

	// The WHIP 201 carried the same TURN server, with credentials for the
	// publisher's identity, in its Link headers.
	servers, err := eval[[]iceServer](pub, "window.starlingPublish.iceServers")
	if err != nil {
		t.Fatalf("read the publisher's Link ICE servers: %v", err)
	}
	if len(servers) == 0 || !strings.HasPrefix(servers[0].URLs, "turn:127.0.0.1:") ||
		!strings.HasSuffix(servers[0].Username, ":camera") || servers[0].Credential == "" {
		t.Errorf("Link ICE servers = %+v, want turn:127.0.0.1 with credentials for camera", servers)
	}

	// The server saw it: allocations for both browsers, and media relayed
	// both ways (to the SFU for the publisher, from it for the viewer).
	eventually(t, 10*time.Second, "TURN metrics show relayed media", func() (bool, string) {
		allocs := metric(t, srv, "starling_turn_allocations")
		to := metric(t, srv, `starling_turn_relayed_bytes_total{direction="to_peer"}`)
		from := metric(t, srv, `starling_turn_relayed_bytes_total{direction="from_peer"}`)
		return allocs >= 2 && to > 100_000 && from > 100_000,
			fmt.Sprintf("allocations=%v to_peer=%v from_peer=%v", allocs, to, from)
	})

	// When the sessions end, the browsers release their allocations.
	viewer.click(t, "stop")
	pub.click(t, "stop")
	eventually(t, 15*time.Second, "TURN allocations released", func() (bool, string) {
		allocs := metric(t, srv, "starling_turn_allocations")
		return allocs == 0, fmt.Sprintf("allocations=%v", allocs)
	})
}
