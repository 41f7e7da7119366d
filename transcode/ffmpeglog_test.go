package transcode

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestParseLogLine(t *testing.T) {
	tests := []struct {
		in        string
		component string
		level     slog.Level
		msg       string
	}{
		{"[h264 @ 0x55d1c0] [error] no frame!", "h264", slog.LevelError, "no frame!"},
		{"[fatal] Conversion failed!", "", slog.LevelError, "Conversion failed!"},
		{"[mpegts @ 0x1] [warning] frame size not set", "mpegts", slog.LevelDebug, "frame size not set"},
		{"[vp8 @ 0x2] [warning] Discarding interframe", "vp8", slog.LevelWarn, "Discarding interframe"},
		{"[info] Stream mapping:", "", slog.LevelInfo, "Stream mapping:"},
		{"[verbose] x", "", slog.LevelDebug, "x"},
		{"plain line", "", slog.LevelInfo, "plain line"},
		{"[Parsed_split_0 @ 0x3] [debug] [1] x", "Parsed_split_0", slog.LevelDebug, "[1] x"},
	}
	for _, tt := range tests {
		l := parseLogLine(tt.in)
		if l.component != tt.component || l.level != tt.level || l.msg != tt.msg {
			t.Errorf("%q: %+v, want %s %v %q", tt.in, l, tt.component, tt.level, tt.msg)
		}
	}
}

func TestFFmpegLogRateLimitsFloods(t *testing.T) {
	var buf bytes.Buffer
	var errs int
	f := newFFmpegLog(slog.New(slog.NewTextHandler(&buf, nil)), func(string) { errs++ })
	now := time.Unix(1000, 0)
	for range 100 {
		f.line("[h264 @ 0x1] [error] concealing errors", now)
	}
	if got := strings.Count(buf.String(), "concealing"); got != 20 {
		t.Errorf("%d lines logged in a burst, want 20", got)
	}
	f.line("[h264 @ 0x1] [error] later", now.Add(time.Second)) // 2 tokens back
	out := buf.String()
	if !strings.Contains(out, "lines=80") || !strings.Contains(out, "later") || errs != 101 {
		t.Errorf("after the flood (%d errors seen):\n%s", errs, out[strings.LastIndex(out, "concealing"):])
	}
	if !strings.Contains(out, "ffmpeg_component=h264") || !strings.Contains(out, "level=ERROR") {
		t.Errorf("attributes missing: %s", out[:200])
	}
}

func TestFirstErrorPicksMeaningfulLine(t *testing.T) {
	stderr := "[warning] something odd\n[h264_nvenc @ 0x5] [error] No capable devices found\n[fatal] Conversion failed!\n"
	if got := firstError([]byte(stderr), nil); got != "h264_nvenc: No capable devices found" {
		t.Errorf("got %q", got)
	}
	if got := firstError([]byte("[warning] a\n[info] b\n"), nil); got != "b" {
		t.Errorf("got %q", got)
	}
}

func TestTSClockUnwraps(t *testing.T) {
	var c tsClock
	steps := []struct {
		raw  int64
		want time.Duration
	}{
		{tsWrap - 1920, -21333333}, // AAC priming before zero: -1920/90000 s
		{0, 0},
		{90000, time.Second},
		{45000, time.Second / 2}, // going back a little is not a wrap
	}
	for _, s := range steps {
		if got := c.decode(s.raw); got != s.want {
			t.Errorf("decode(%d) = %v, want %v", s.raw, got, s.want)
		}
	}
	var w tsClock
	start := w.decode(tsWrap/2 - 1) // 13 h: positive
	w.decode(tsWrap - 90000)
	if got, want := w.decode(90000), ticksToDuration(tsWrap+90000); got != want || start != ticksToDuration(tsWrap/2-1) {
		t.Errorf("across the wrap: %v, want %v", got, want)
	}
}
