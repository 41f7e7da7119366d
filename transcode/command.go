package transcode

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// firstOutputFD is the file descriptor of the first output pipe in ffmpeg
// (exec.Cmd.ExtraFiles start at 3): rendition i writes to pipe:3+i and the
// audio to the one after the last rendition.
const firstOutputFD = 3

// command is everything that shapes one ffmpeg command line.
type command struct {
	backend          Backend
	codec            string // "VP8", "VP9" or "H264"; "" for audio only
	renditions       []Rendition
	audio            bool
	audioOnly        bool // no video: codec and renditions are empty
	audioBitrate     int
	keyframeInterval time.Duration
	vaapiDevice      string
	// fps, when set, makes the output a constant frame rate on the grid of
	// multiples of 1/fps: frames a WebRTC source sends with jittered
	// timestamps, or drops, land on the grid, so LL-HLS parts cut there
	// last exactly what the playlist says.
	fps float64
}

// video says whether the session transcodes video.
func (c command) video() bool { return !c.audioOnly }

// gpuDecode says whether frames stay on the GPU from decoder to scaler.
// NVDEC does H.264 and VP9 on every NVIDIA GPU of interest; VP8 is missing
// from data-centre parts, and a software fallback would hand CPU frames to
// scale_cuda, so VP8 takes the CPU path.
func (c command) gpuDecode() bool {
	return c.backend == BackendNVDEC && c.video() && c.codec != "VP8"
}

// args is ffmpeg's argument list: Matroska on stdin, one MPEG-TS per
// rendition and one for audio on pipes 3, 4, …. firstTS is the Matroska
// timestamp of the frame the run starts at: the first video frame, which
// keyframe placement needs, or, audio only, the first audio frame. An
// audio-only command has no device, filter graph or video encoder: its
// one output, the AAC, is pipe 3.
func (c command) args(firstTS time.Duration) []string {
	a := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+warning"}
	if c.video() {
		a = append(a, c.deviceArgs()...)
	}
	// Probing would read frames before decoding starts; the Matroska
	// header already says everything, so skip it and start at once.
	a = append(a, "-fflags", "nobuffer", "-nofind_stream_info", "-flags", "low_delay",
		"-f", "matroska", "-i", "pipe:0", "-copyts")
	if c.video() {
		a = append(a, "-filter_complex", c.filterGraph())
	}
	for i, r := range c.renditions {
		a = append(a, "-map", fmt.Sprintf("[v%d]", i))
		a = append(a, c.videoEncoderArgs(r)...)
		a = append(a,
			"-enc_time_base:v", c.encoderTimeBase(),
			"-g", "600",
			"-force_key_frames:v", keyframeExpr(c.keyframeInterval, firstTS))
		a = append(a, tsOutputArgs(firstOutputFD+i)...)
	}
	if c.audio {
		a = append(a, "-map", "0:a",
			// Fill gaps (lost packets, DTX) with silence so AAC stays in
			// step with the timestamps, and start exactly with the first
			// video frame (padding or trimming), so the first segment's
			// audio covers what its video does; audio only, with the
			// first audio frame.
			"-af", fmt.Sprintf("aresample=async=1:first_pts=%d", firstTS*48000/time.Second),
			"-c:a", "aac", "-b:a", strconv.Itoa(c.audioBitrate), "-ar", "48000", "-ac", "2")
		a = append(a, tsOutputArgs(firstOutputFD+len(c.renditions))...)
	}
	return a
}

// encoderTimeBase is 1/fps for a whole frame rate, so frame times are
// exact (33.3 ms at 30 fps, not 33 and 34); else milliseconds, as the
// Matroska input has them.
func (c command) encoderTimeBase() string {
	if c.fps > 0 && c.fps == float64(int(c.fps)) {
		return "1:" + strconv.Itoa(int(c.fps))
	}
	return "1:1000"
}

func (c command) deviceArgs() []string {
	switch c.backend {
	case BackendNVENC:
		// Decoded frames come back to system memory; decoders NVDEC lacks
		// fall back to software on their own.
		return []string{"-hwaccel", "cuda"}
	case BackendNVDEC:
		if c.gpuDecode() {
			return []string{"-hwaccel", "cuda", "-hwaccel_output_format", "cuda"}
		}
	case BackendVAAPI:
		return []string{"-init_hw_device", "vaapi=va:" + c.vaapiDevice, "-filter_hw_device", "va"}
	case BackendQSV:
		return []string{"-init_hw_device", "qsv=qs:hw_any", "-filter_hw_device", "qs"}
	}
	return nil
}

// filterGraph splits the decoded video once and scales it to every rung:
// [v0], [v1], ….
func (c command) filterGraph() string {
	var pre string
	scale := func(r Rendition) string {
		return fmt.Sprintf("scale=%d:%d:flags=bilinear,format=yuv420p", r.Width, r.Height)
	}
	switch {
	case c.gpuDecode():
		scale = func(r Rendition) string {
			return fmt.Sprintf("scale_cuda=%d:%d,hwdownload,format=nv12", r.Width, r.Height)
		}
	case c.backend == BackendVAAPI:
		pre = "format=nv12,hwupload,"
		scale = func(r Rendition) string { return fmt.Sprintf("scale_vaapi=w=%d:h=%d", r.Width, r.Height) }
	case c.backend == BackendQSV:
		pre = "format=nv12,hwupload=extra_hw_frames=64,"
		scale = func(r Rendition) string { return fmt.Sprintf("scale_qsv=w=%d:h=%d", r.Width, r.Height) }
	}
	if c.fps > 0 {
		pre = "fps=" + strconv.FormatFloat(c.fps, 'f', -1, 64) + ":round=near," + pre
	}
	n := len(c.renditions)
	var g strings.Builder
	if n == 1 {
		fmt.Fprintf(&g, "[0:v]%s%s[v0]", pre, scale(c.renditions[0]))
		return g.String()
	}
	fmt.Fprintf(&g, "[0:v]%ssplit=%d", pre, n)
	for i := range n {
		fmt.Fprintf(&g, "[s%d]", i)
	}
	for i, r := range c.renditions {
		fmt.Fprintf(&g, ";[s%d]%s[v%d]", i, scale(r), i)
	}
	return g.String()
}

// videoEncoderArgs selects a low-latency H.264 encoder without B-frames
// whose forced keyframes are IDRs, at the rung's bitrate.
func (c command) videoEncoderArgs(r Rendition) []string {
	rate := strconv.Itoa(r.Bitrate)
	var a []string
	switch c.backend {
	case BackendNVENC:
		a = []string{"-c:v", "h264_nvenc", "-preset", "p1", "-tune", "ull", "-zerolatency", "1",
			"-rc", "cbr", "-delay", "0", "-no-scenecut", "1"}
	case BackendVAAPI:
		a = []string{"-c:v", "h264_vaapi", "-rc_mode", "CBR"}
	case BackendQSV:
		a = []string{"-c:v", "h264_qsv", "-preset", "veryfast", "-look_ahead", "0", "-async_depth", "1"}
	default: // libx264, and NVDEC's encoder
		a = []string{"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-sc_threshold", "0"}
	}
	if c.backend != BackendVAAPI {
		a = append(a, forcedIDRFlag(c.backend), "1")
	}
	return append(a, "-bf", "0", "-b:v", rate, "-maxrate", rate, "-bufsize", rate)
}

func forcedIDRFlag(b Backend) string {
	if b == BackendQSV {
		return "-forced_idr"
	}
	return "-forced-idr"
}

// keyframeExpr forces a keyframe on the first frame and then on the first
// frame at or after each multiple of interval of the Matroska timeline;
// after a gap it forces one, not one per missed multiple. ffmpeg's t and
// prev_forced_t count from the first frame, hence firstTS. Half a
// millisecond of slack absorbs float rounding of millisecond timestamps.
func keyframeExpr(interval, firstTS time.Duration) string {
	i := strconv.FormatFloat(interval.Seconds(), 'f', -1, 64)
	t0 := strconv.FormatFloat(firstTS.Seconds()+0.0005, 'f', -1, 64)
	return fmt.Sprintf("expr:if(isnan(prev_forced_t),1,gte(t+%[2]s,(floor((prev_forced_t+%[2]s)/%[1]s)+1)*%[1]s))", i, t0)
}

// tsOutputArgs writes MPEG-TS to a pipe with no mux delay, the input's
// timestamps kept, one PES per frame with its length set and a flush per
// packet, so that each access unit can be read as soon as it is encoded.
func tsOutputArgs(fd int) []string {
	return []string{"-f", "mpegts", "-muxdelay", "0", "-muxpreload", "0",
		"-avoid_negative_ts", "disabled", "-flush_packets", "1",
		"-pes_payload_size", "0", "-omit_video_pes_length", "0",
		"pipe:" + strconv.Itoa(fd)}
}
