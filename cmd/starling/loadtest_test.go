package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starling-sfu/starling/hls-bridge/llhls"
	"github.com/starling-sfu/starling/transcode"
)

func TestLoadtestUsageNamesTheHLSMode(t *testing.T) {
	var out, errs strings.Builder
	if err := loadtestCmd(nil, &out, &errs); err == nil || !strings.Contains(errs.String(), "hls        N LL-HLS viewers") {
		t.Fatalf("%v\n%s", err, errs.String())
	}
}

func TestLoadtestHLSEndsAtOnceWhenNobodyPublishes(t *testing.T) {
	isolateEnv(t)
	var asked atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Store(r.URL.Path)
		http.Error(w, `{"error":"nobody publishes in room lt"}`, http.StatusNotFound)
	}))
	defer srv.Close()
	var out, errs strings.Builder
	t0 := time.Now()
	err := loadtestCmd([]string{"hls", "--url", srv.URL, "--room", "lt", "--viewers", "3", "--quiet"}, &out, &errs)
	if err == nil || !strings.Contains(err.Error(), "nobody publishes in room lt") || asked.Load() != "/hls/lt/index.m3u8" {
		t.Fatalf("error %v after asking for %v", err, asked.Load())
	}
	if took := time.Since(t0); took > 3*time.Second {
		t.Fatalf("took %v", took)
	}
}

// TestLoadtestHLSPrintsAndWritesItsReport runs two viewers of a live
// llhls stream (synthetic H.264, no audio) through the command.
func TestLoadtestHLSPrintsAndWritesItsReport(t *testing.T) {
	isolateEnv(t)
	start := time.Now().Add(-4 * time.Second)
	ladder := []transcode.Rendition{{Name: "360p", Width: 640, Height: 360, Bitrate: 800_000, FPS: 25}}
	s, err := llhls.NewStream(llhls.Config{}, ladder, nil, start, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	sps := []byte{0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x6c, 0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x1e, 0x07, 0x8c, 0x18, 0xcb}
	pps := []byte{0x68, 0xee, 0x3c, 0x80}
	n := 0
	feed := func(until time.Duration) {
		for ; time.Duration(n)*40*time.Millisecond <= until; n++ {
			at := time.Duration(n) * 40 * time.Millisecond
			au := [][]byte{{0x41, 0x9a, byte(n), 0x55}}
			if n%50 == 0 { // an IDR every 2 s, the segment target
				au = [][]byte{sps, pps, {0x65, 0x88, byte(n), 0x55}}
			}
			s.Push(transcode.Sample{PTS: at, DTS: at, Key: n%50 == 0, AU: au})
		}
	}
	feed(4 * time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				feed(time.Since(start))
			}
		}
	}()
	srv := httptest.NewServer(http.StripPrefix("/live", s))
	defer func() { cancel(); wg.Wait(); s.Close(); srv.Close() }()

	path := filepath.Join(t.TempDir(), "hls.json")
	var out, errs strings.Builder
	err = loadtestCmd([]string{"hls", "--hls", srv.URL + "/live/index.m3u8", "--viewers", "2", "--duration", "2s",
		"--max-stalls", "0", "--json", path}, &out, &errs)
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, out.String(), errs.String())
	}
	for _, want := range []string{"playback latency", "2 started, 0 failed of 2", "360p 2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errs.String(), "viewers 2/2") {
		t.Errorf("no progress line:\n%s", errs.String())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Mode      string           `json:"mode"`
		Parts     int64            `json:"parts"`
		Errors    map[string]int64 `json:"http_errors"`
		PerViewer []struct {
			Parts int64 `json:"parts"`
		} `json:"per_viewer"`
	}
	if err := json.Unmarshal(b, &rep); err != nil || rep.Mode != "hls" || rep.Parts == 0 || len(rep.Errors) != 0 || len(rep.PerViewer) != 2 {
		t.Fatalf("JSON report %s (%v)", b, err)
	}
}
