package transcode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestProbeAutoPicksFirstWorkingBackend runs the real probe. Without a
// GPU or DRM device (as on the CI machines) that is libx264.
func TestProbeAutoPicksFirstWorkingBackend(t *testing.T) {
	ffmpegPath(t)
	tr, err := New(t.Context(), Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range tr.Probes() {
		t.Logf("%-8s %s", p.Backend, p.Outcome())
	}
	chosen := slices.IndexFunc(tr.Probes(), func(p ProbeResult) bool { return p.Probed && p.Err == nil })
	if chosen < 0 || tr.Probes()[chosen].Backend != tr.Backend() {
		t.Fatalf("backend %s, probes %+v", tr.Backend(), tr.Probes())
	}
	for _, p := range tr.Probes()[:chosen] {
		if !p.Probed || p.Err == nil || p.Err.Error() == "" {
			t.Errorf("%s before the chosen %s: %s", p.Backend, tr.Backend(), p.Outcome())
		}
	}
	if !hasAccelerator() && tr.Backend() != BackendX264 {
		t.Errorf("no GPU here, yet %s was chosen", tr.Backend())
	}
}

func hasAccelerator() bool {
	for _, dev := range []string{"/dev/nvidia0", "/dev/dri/renderD128"} {
		if _, err := os.Stat(dev); err == nil {
			return true
		}
	}
	return false
}

// TestProbeFallsThroughToNVDEC: a GPU without NVENC (an H100) fails the
// NVENC probe and passes the NVDEC one.
func TestProbeFallsThroughToNVDEC(t *testing.T) {
	calls := fakeFFmpegOnPath(t, map[string]string{
		"nvenc": "fail:[h264_nvenc @ 0x55d0c8e2c0c0] [error] OpenEncodeSessionEx failed: unsupported device (2): (no details)",
		"nvdec": "ok",
	})
	tr, err := New(t.Context(), Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Backend() != BackendNVDEC {
		t.Fatalf("chose %s, want nvdec", tr.Backend())
	}
	want := []string{
		"h264_nvenc: OpenEncodeSessionEx failed: unsupported device (2): (no details)",
		"ok", "not probed", "not probed", "not probed",
	}
	for i, p := range tr.Probes() {
		if p.Backend != candidates[i] || p.Outcome() != want[i] {
			t.Errorf("probe %d: %s %q, want %s %q", i, p.Backend, p.Outcome(), candidates[i], want[i])
		}
	}
	if got := calls(); !slices.Equal(got, []string{"clip", "nvenc", "nvdec"}) {
		t.Errorf("ffmpeg runs %v", got)
	}
}

// TestProbeFallsThroughToLibx264 fails every GPU backend in its own way,
// one of them by hanging past the probe timeout; libx264 is real.
func TestProbeFallsThroughToLibx264(t *testing.T) {
	calls := fakeFFmpegOnPath(t, map[string]string{
		"nvenc":   "fail:[h264_nvenc @ 0x1] [error] Cannot load libnvidia-encode.so.1",
		"nvdec":   "fail:[AVHWDeviceContext @ 0x2] [error] Cannot load libcuda.so.1",
		"vaapi":   "hang",
		"qsv":     "fail:[AVHWDeviceContext @ 0x3] [error] Error initializing an MFX session: -9.",
		"libx264": "real",
	})
	tr, err := New(t.Context(), Config{Logger: testLogger(t), ProbeTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Backend() != BackendX264 {
		t.Fatalf("chose %s, want libx264", tr.Backend())
	}
	want := []string{
		"h264_nvenc: Cannot load libnvidia-encode.so.1",
		"AVHWDeviceContext: Cannot load libcuda.so.1",
		"timed out after 3s",
		"AVHWDeviceContext: Error initializing an MFX session: -9.",
		"ok",
	}
	for i, p := range tr.Probes() {
		if p.Outcome() != want[i] {
			t.Errorf("%s: %q, want %q", p.Backend, p.Outcome(), want[i])
		}
	}
	if got := calls(); !slices.Equal(got, []string{"clip", "nvenc", "nvdec", "vaapi", "qsv", "libx264"}) {
		t.Errorf("ffmpeg runs %v", got)
	}
}

func TestProbeForcedBackendThatFailsIsAnError(t *testing.T) {
	calls := fakeFFmpegOnPath(t, map[string]string{
		"nvdec":   "fail:[AVHWDeviceContext @ 0x2] [error] Cannot load libcuda.so.1",
		"libx264": "real",
	})
	_, err := New(t.Context(), Config{Backend: BackendNVDEC, Logger: testLogger(t)})
	if !errors.Is(err, ErrNoBackend) || errors.Is(err, ErrNoFFmpeg) || !strings.Contains(err.Error(), "nvdec: AVHWDeviceContext: Cannot load libcuda.so.1") {
		t.Errorf("error %v", err)
	}
	if got := calls(); !slices.Equal(got, []string{"clip", "nvdec"}) {
		t.Errorf("ffmpeg runs %v: only the forced backend should be probed", got)
	}
	if _, err := New(t.Context(), Config{Backend: "cuda", Logger: testLogger(t)}); err == nil {
		t.Error("an unknown backend was accepted")
	}
}

func TestProbeWithoutFFmpegIsErrNoFFmpeg(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for _, name := range []string{"", "ffmpeg", filepath.Join(t.TempDir(), "ffmpeg")} {
		_, err := New(t.Context(), Config{FFmpeg: name, Logger: testLogger(t)})
		if !errors.Is(err, ErrNoFFmpeg) {
			t.Errorf("FFmpeg %q: error %v, want ErrNoFFmpeg", name, err)
		}
	}
}

// fakeFFmpegOnPath puts a shell script named ffmpeg first on PATH. It
// tells the probe runs apart by their arguments and acts per backend:
// "real" runs the real ffmpeg, "ok" succeeds with a little output on both
// output pipes, "fail:LINE" prints LINE and exits 1, "hang" sleeps;
// unlisted backends fail. The probe clip is always made by the real
// ffmpeg. It returns a function listing the runs so far.
func fakeFFmpegOnPath(t *testing.T, actions map[string]string) (calls func() []string) {
	real := ffmpegPath(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	actions["clip"] = "real"
	var script strings.Builder
	fmt.Fprintf(&script, `#!/bin/sh
case "$*" in
*testsrc2*) tag=clip ;;
*h264_nvenc*) tag=nvenc ;;
*scale_cuda*) tag=nvdec ;;
*h264_vaapi*) tag=vaapi ;;
*h264_qsv*) tag=qsv ;;
*) tag=libx264 ;;
esac
echo $tag >> %q
case $tag in
`, log)
	for tag, action := range actions {
		fmt.Fprintf(&script, "%s)\n", tag)
		switch {
		case action == "real":
			fmt.Fprintf(&script, "  exec %q \"$@\" ;;\n", real)
		case action == "ok":
			script.WriteString("  cat >/dev/null\n  head -c 376 /dev/zero | tr '\\000' G >&3\n  head -c 376 /dev/zero | tr '\\000' G >&4\n  exit 0 ;;\n")
		case action == "hang":
			script.WriteString("  exec sleep 30 ;;\n")
		case strings.HasPrefix(action, "fail:"):
			fmt.Fprintf(&script, "  echo %q >&2\n  echo '[fatal] Conversion failed!' >&2\n  exit 1 ;;\n", strings.TrimPrefix(action, "fail:"))
		}
	}
	script.WriteString("*) echo \"[error] $tag not available\" >&2; exit 1 ;;\nesac\n")
	if err := os.WriteFile(filepath.Join(dir, "ffmpeg"), []byte(script.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return func() []string {
		b, _ := os.ReadFile(log)
		return strings.Fields(string(b))
	}
}
