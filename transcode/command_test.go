package transcode

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func testCommand(b Backend, codec string) command {
	return command{
		backend: b, codec: codec, renditions: Fit(DefaultLadder, 1280, 720), audio: true,
		audioBitrate: 128_000, keyframeInterval: 2 * time.Second, vaapiDevice: "/dev/dri/renderD128",
	}
}

// TestCommandPerBackend checks what each backend's command line must
// have; go test -run TestCommandPerBackend -v prints them whole.
func TestCommandPerBackend(t *testing.T) {
	tests := []struct {
		backend Backend
		codec   string
		has     []string
		hasNot  []string
	}{
		{BackendX264, "VP8", []string{"scale=1280:720:flags=bilinear,format=yuv420p[v0]", "-c:v libx264", "-tune zerolatency", "-sc_threshold 0", "-forced-idr 1"}, []string{"-hwaccel"}},
		{BackendNVENC, "VP8", []string{"-hwaccel cuda -fflags", "-c:v h264_nvenc", "-preset p1", "-tune ull", "-zerolatency 1", "-rc cbr", "-forced-idr 1"}, []string{"scale_cuda"}},
		{BackendNVDEC, "H264", []string{"-hwaccel cuda -hwaccel_output_format cuda", "scale_cuda=854:480,hwdownload,format=nv12[v1]", "-c:v libx264"}, []string{"h264_nvenc"}},
		{BackendNVDEC, "VP8", []string{"scale=854:480:flags=bilinear", "-c:v libx264"}, []string{"-hwaccel", "scale_cuda"}},
		{BackendVAAPI, "VP9", []string{"-init_hw_device vaapi=va:/dev/dri/renderD128 -filter_hw_device va", "format=nv12,hwupload,split=3", "scale_vaapi=w=640:h=360[v2]", "-c:v h264_vaapi"}, nil},
		{BackendQSV, "H264", []string{"-init_hw_device qsv=qs:hw_any", "scale_qsv=w=1280:h=720[v0]", "-c:v h264_qsv", "-forced_idr 1"}, nil},
	}
	common := []string{
		"-fflags nobuffer -nofind_stream_info -flags low_delay -f matroska -i pipe:0 -copyts",
		"-bf 0 -b:v 2800000 -maxrate 2800000 -bufsize 2800000",
		"-enc_time_base:v 1:1000",
		"-f mpegts -muxdelay 0 -muxpreload 0 -avoid_negative_ts disabled -flush_packets 1 -pes_payload_size 0 -omit_video_pes_length 0 pipe:3",
		"pipe:4", "pipe:5",
		"-map 0:a -af aresample=async=1:first_pts=120000 -c:a aac -b:a 128000 -ar 48000 -ac 2", "pipe:6",
	}
	for _, tt := range tests {
		args := testCommand(tt.backend, tt.codec).args(2500 * time.Millisecond)
		line := strings.Join(args, " ")
		t.Logf("%s, %s input:\n%s", tt.backend, tt.codec, commandLine("ffmpeg", args))
		for _, s := range append(tt.has, common...) {
			if !strings.Contains(line, s) {
				t.Errorf("%s/%s: missing %q", tt.backend, tt.codec, s)
			}
		}
		for _, s := range tt.hasNot {
			if strings.Contains(line, s) {
				t.Errorf("%s/%s: has %q", tt.backend, tt.codec, s)
			}
		}
		if n := strings.Count(line, "-force_key_frames:v"); n != 3 {
			t.Errorf("%s: %d renditions force keyframes, want 3", tt.backend, n)
		}
	}
}

func TestCommandSingleRenditionWithoutAudio(t *testing.T) {
	c := testCommand(BackendX264, "VP8")
	c.renditions, c.audio = c.renditions[2:], false
	args := c.args(0)
	g := args[slices.Index(args, "-filter_complex")+1]
	if g != "[0:v]scale=640:360:flags=bilinear,format=yuv420p[v0]" {
		t.Errorf("filter graph %q", g)
	}
	if slices.Contains(args, "0:a") || slices.Contains(args, "pipe:4") {
		t.Errorf("audio output without audio: %v", args)
	}
}

func TestKeyframeExprCountsFromFirstFrame(t *testing.T) {
	got := keyframeExpr(2*time.Second, 3234*time.Millisecond)
	want := "expr:if(isnan(prev_forced_t),1,gte(t+3.2345,(floor((prev_forced_t+3.2345)/2)+1)*2))"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestCommandAudioOnlyHasOnlyAAC: without video there is no device, filter
// graph or video encoder, whatever the backend; the AAC goes to pipe 3 and
// starts at the first audio frame.
func TestCommandAudioOnlyHasOnlyAAC(t *testing.T) {
	want := "-hide_banner -nostdin -nostats -loglevel level+warning" +
		" -fflags nobuffer -nofind_stream_info -flags low_delay -f matroska -i pipe:0 -copyts" +
		" -map 0:a -af aresample=async=1:first_pts=120000 -c:a aac -b:a 128000 -ar 48000 -ac 2" +
		" -f mpegts -muxdelay 0 -muxpreload 0 -avoid_negative_ts disabled -flush_packets 1" +
		" -pes_payload_size 0 -omit_video_pes_length 0 pipe:3"
	for _, b := range candidates {
		c := testCommand(b, "")
		c.renditions, c.audioOnly = nil, true
		if c.gpuDecode() {
			t.Errorf("%s: audio-only command decodes video on the GPU", b)
		}
		if got := strings.Join(c.args(2500*time.Millisecond), " "); got != want {
			t.Errorf("%s:\ngot  %s\nwant %s", b, got, want)
		}
	}
}
