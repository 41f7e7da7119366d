package transcode

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"strings"
	"time"
)

// logLine is one line of ffmpeg's stderr as printed with -loglevel
// level+…: "[h264 @ 0x55d1c0] [error] no frame!".
type logLine struct {
	component string // "h264"; empty for ffmpeg's own lines
	ffLevel   string // ffmpeg's name for the level: "fatal", "warning", …
	level     slog.Level
	msg       string
}

var ffmpegLevels = map[string]slog.Level{
	"panic":   slog.LevelError,
	"fatal":   slog.LevelError,
	"error":   slog.LevelError,
	"warning": slog.LevelWarn,
	"info":    slog.LevelInfo,
	"verbose": slog.LevelDebug,
	"debug":   slog.LevelDebug,
	"trace":   slog.LevelDebug,
}

// benign are warnings that every session prints and that mean nothing
// for us; they are logged at debug level.
var benign = []string{
	"Guessed Channel Layout", // Matroska has no Opus channel layout; stereo is right
	"frame size not set",     // mpegts muxer, AAC: frames are 1024 samples
}

func parseLogLine(s string) logLine {
	l := logLine{level: slog.LevelInfo}
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "[") {
		if end := strings.Index(s, "] "); end > 0 && strings.Contains(s[:end], " @ ") {
			l.component = s[1:strings.Index(s, " @ ")]
			s = s[end+2:]
		}
	}
	if strings.HasPrefix(s, "[") {
		if end := strings.Index(s, "]"); end > 0 {
			if lv, ok := ffmpegLevels[s[1:end]]; ok {
				l.ffLevel, l.level = s[1:end], lv
				s = strings.TrimSpace(s[end+1:])
			}
		}
	}
	l.msg = s
	if l.level == slog.LevelWarn {
		for _, b := range benign {
			if strings.HasPrefix(s, b) {
				l.level = slog.LevelDebug
			}
		}
	}
	return l
}

// String is the line without address or level: "h264: no frame!".
func (l logLine) String() string {
	if l.component == "" {
		return l.msg
	}
	return l.component + ": " + l.msg
}

// ffmpegLog turns ffmpeg's stderr into slog records, at most burst lines
// at once and perSecond lines a second after that; it reports how many it
// dropped when lines are let through again.
type ffmpegLog struct {
	log       *slog.Logger
	burst     float64
	perSecond float64
	// onError sees every error-level line, logged or not.
	onError func(string)

	tokens     float64
	last       time.Time
	suppressed int
}

func newFFmpegLog(log *slog.Logger, onError func(string)) *ffmpegLog {
	return &ffmpegLog{log: log, burst: 20, perSecond: 2, tokens: 20, onError: onError}
}

// consume logs every line of r until it ends. It keeps reading after an
// over-long line so that ffmpeg never blocks on a full stderr pipe.
func (f *ffmpegLog) consume(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		f.line(sc.Text(), time.Now())
	}
	_, _ = io.Copy(io.Discard, r)
	f.flush()
}

func (f *ffmpegLog) line(s string, now time.Time) {
	if strings.TrimSpace(s) == "" {
		return
	}
	l := parseLogLine(s)
	if l.level >= slog.LevelError && f.onError != nil {
		f.onError(l.String())
	}
	if !f.log.Enabled(context.Background(), l.level) {
		return
	}
	if !f.last.IsZero() {
		f.tokens = min(f.burst, f.tokens+now.Sub(f.last).Seconds()*f.perSecond)
	}
	f.last = now
	if f.tokens < 1 {
		f.suppressed++
		return
	}
	f.tokens--
	f.flush()
	attrs := []any{"ffmpeg_level", l.ffLevel}
	if l.component != "" {
		attrs = append(attrs, "ffmpeg_component", l.component)
	}
	f.log.Log(context.Background(), l.level, "ffmpeg: "+l.msg, attrs...)
}

// flush reports lines dropped by the rate limit.
func (f *ffmpegLog) flush() {
	if f.suppressed > 0 {
		f.log.Warn("ffmpeg: log lines suppressed", "lines", f.suppressed)
		f.suppressed = 0
	}
}
