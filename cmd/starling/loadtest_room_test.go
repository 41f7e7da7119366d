package main

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starling-sfu/starling/config"
	"github.com/starling-sfu/starling/node"
)

const roomTestKeys = "lt:loadtest-secret-0123456789-0123456789"

func TestLoadtestUsageNamesTheRoomMode(t *testing.T) {
	var out, errs strings.Builder
	if err := loadtestCmd(nil, &out, &errs); err == nil || !strings.Contains(errs.String(), "room       N participants (--participants)") {
		t.Fatalf("%v\n%s", err, errs.String())
	}
}

func TestLoadtestRoomRefusesBadArguments(t *testing.T) {
	isolateEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"room", "--url", "http://127.0.0.1:1"}, "room needs --keys"},
		{[]string{"room", "--keys", roomTestKeys}, "room needs --url"},
		{[]string{"room", "--url", "http://127.0.0.1:1", "--keys", roomTestKeys, "--adaptive-size", "320"}, `size "320" is not WxH`},
		{[]string{"room", "--url", "http://127.0.0.1:1", "--keys", roomTestKeys, "--participants", "1"}, "at least two participants"},
		{[]string{"room", "--url", "http://127.0.0.1:1", "--keys", roomTestKeys, "8", "--adaptive-size", "320x180"}, `unexpected arguments ["8" "--adaptive-size" "320x180"]`},
	} {
		var out, errs strings.Builder
		if err := loadtestCmd(tc.args, &out, &errs); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one mentioning %q", tc.args, err, tc.want)
		}
	}
}

// TestLoadtestRoomEndsAtOnceOnARefusedToken checks that a server that
// answers /rtc with 401 ends the run within a second, quoting the answer.
func TestLoadtestRoomEndsAtOnceOnARefusedToken(t *testing.T) {
	isolateEnv(t)
	var asked atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Store(r.URL.Path)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid token: wrong key"}`))
	}))
	defer srv.Close()
	var out, errs strings.Builder
	t0 := time.Now()
	err := loadtestCmd([]string{"room", "--url", srv.URL, "--keys", roomTestKeys, "--participants", "3", "--quiet"}, &out, &errs)
	if err == nil || !strings.Contains(err.Error(), "401 Unauthorized") || !strings.Contains(err.Error(), "invalid token: wrong key") || asked.Load() != "/rtc" {
		t.Fatalf("error %v after asking for %v", err, asked.Load())
	}
	if took := time.Since(t0); took > 3*time.Second {
		t.Fatalf("took %v", took)
	}
}

// TestLoadtestRoomPrintsAndWritesItsReport runs three participants against
// an in-process node through the command.
func TestLoadtestRoomPrintsAndWritesItsReport(t *testing.T) {
	isolateEnv(t)
	cfg := config.Default()
	cfg.RTC.UDPPort, cfg.RTC.TCPPort, cfg.RTC.IncludeLoopback = 0, 0, true
	cfg.RTC.Interfaces = []string{"lo"}
	k, secret, _ := strings.Cut(roomTestKeys, ":")
	cfg.Keys = map[string]string{k: secret}
	cfg.TURN.Enabled = false
	cfg.DataDir = t.TempDir()
	n, err := node.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(n.Handler())
	defer func() { srv.Close(); _ = n.Close() }()

	path := filepath.Join(t.TempDir(), "room.json")
	var out, errs strings.Builder
	err = loadtestCmd([]string{"room", "--url", srv.URL, "--keys", roomTestKeys, "--room", "cmd-room", "--participants", "3",
		"--ramp", "10", "--settle", "2s", "--duration", "2s", "--adaptive-size", "320x180", "--max-loss", "0", "--json", path}, &out, &errs)
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, out.String(), errs.String())
	}
	for _, want := range []string{"3 connected, 0 failed, 0 dropped of 3", "12/12 established (video 6/6, audio 6/6)", "adaptive size 320x180", "q 6 ("} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errs.String(), "participants 3/3  subs video 6/6, audio 6/6") {
		t.Errorf("no progress line:\n%s", errs.String())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Mode          string `json:"mode"`
		Established   int    `json:"subscriptions_established"`
		Subscriptions []struct {
			Subscriber string `json:"subscriber"`
			Layer      string `json:"layer"`
		} `json:"subscriptions"`
	}
	if err := json.Unmarshal(b, &rep); err != nil || rep.Mode != "room" || rep.Established != 12 || len(rep.Subscriptions) != 12 {
		t.Fatalf("JSON report %s (%v)", b, err)
	}
}
