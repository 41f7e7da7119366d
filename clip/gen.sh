#!/usr/bin/env bash
# Regenerates the embedded fixtures in media/ from synthetic ffmpeg sources.
#
# Every clip is 4 s long. Video is 20 fps with a keyframe exactly every 20
# frames (1 s), no B-frames and no scene-cut keyframes, at three simulcast
# rungs: q 320x180, h 640x360, f 1280x720. Audio is 48 kHz stereo Opus in
# 20 ms frames. Settings are single-threaded and bitexact so a rerun with the
# same ffmpeg/libvpx/libx264/libopus versions reproduces the same bytes.
#
# Usage: ./gen.sh   (from anywhere; writes next to this script)
set -euo pipefail

cd "$(dirname "$0")"
out=media
mkdir -p "$out"

fps=20
gop=20
secs=4

# rid width height bitrate(kbit/s)
rungs=(
	"q 320 180 150"
	"h 640 360 500"
	"f 1280 720 1500"
)

font=$(fc-match -f '%{file}' 'DejaVu Sans Mono:bold' 2>/dev/null || true)

# video_filter RID WIDTH HEIGHT prints the filter graph for one rung: the
# testsrc2 pattern (with its own small timer) scaled to the rung, plus, when a
# font is available, a large label with the rid and a running timer so that a
# human looking at a received stream can tell the layer and the time apart.
video_filter() {
	local rid=$1 w=$2 h=$3
	local vf="scale=${w}:${h}:flags=bicubic,format=yuv420p"
	if [[ -n "$font" ]]; then
		local size=$((h / 8))
		vf+=",drawtext=fontfile=${font}:fontsize=${size}:fontcolor=white:box=1:boxcolor=black@0.6"
		vf+=":x=(w-text_w)/2:y=h-text_h-${size}/2:text='${rid} %{pts\\:hms}'"
	fi
	printf '%s' "$vf"
}

common_in=(-hide_banner -loglevel error -y
	-f lavfi -i "testsrc2=size=1280x720:rate=${fps}:duration=${secs}")
# Force a keyframe on every GOP boundary, on top of -g/-keyint_min, so the
# cadence does not depend on the encoder's own keyframe placement.
force_kf=(-force_key_frames "expr:eq(mod(n,${gop}),0)")
bitexact=(-fflags +bitexact -flags:v +bitexact -threads 1)

for rung in "${rungs[@]}"; do
	read -r rid w h kbps <<<"$rung"
	vf=$(video_filter "$rid" "$w" "$h")

	# VP8: libvpx one-pass realtime CBR, no alt-ref (lag 0), error resilient.
	# cpu-used is negative on purpose: in realtime mode a positive value lets
	# libvpx pick its speed from measured encode times, so output would vary
	# from run to run; -8 pins speed 8.
	ffmpeg "${common_in[@]}" -vf "$vf" "${bitexact[@]}" \
		-c:v libvpx -deadline realtime -cpu-used -8 -lag-in-frames 0 \
		-error-resilient 1 -auto-alt-ref 0 \
		-b:v "${kbps}k" -minrate "${kbps}k" -maxrate "${kbps}k" -bufsize "$((kbps / 2))k" \
		-g "$gop" -keyint_min "$gop" "${force_kf[@]}" \
		-f ivf "$out/vp8_${rid}.ivf"

	# H.264: constrained baseline 3.1 (fits profile-level-id=42e01f), no
	# B-frames, no scene cuts, SPS/PPS repeated before every IDR, and the x264
	# version SEI dropped (filter_units) so the bytes do not name the encoder.
	ffmpeg "${common_in[@]}" -vf "$vf" "${bitexact[@]}" \
		-c:v libx264 -preset veryfast -tune zerolatency \
		-profile:v baseline -level:v 3.1 -bf 0 \
		-b:v "${kbps}k" -maxrate "${kbps}k" -bufsize "$((kbps / 2))k" \
		-g "$gop" -keyint_min "$gop" -sc_threshold 0 "${force_kf[@]}" \
		-x264-params "repeat-headers=1:aud=0:scenecut=0:open-gop=0" \
		-bsf:v "filter_units=remove_types=6" \
		-f h264 "$out/h264_${rid}.h264"
done

# Opus: a 440 Hz tone on the left and 660 Hz on the right, CBR 64 kbit/s (VBR
# spends ~95 kbit/s on these pure tones), 20 ms frames, one packet per Ogg page
# (-page_duration 20000) because pion's oggreader returns whole pages.
ffmpeg -hide_banner -loglevel error -y \
	-f lavfi -i "aevalsrc=0.3*sin(2*PI*440*t)|0.3*sin(2*PI*660*t):s=48000:d=${secs}" \
	-fflags +bitexact -flags:a +bitexact \
	-c:a libopus -application audio -b:a 64k -vbr off -frame_duration 20 -ar 48000 -ac 2 \
	-page_duration 20000 -f ogg "$out/opus.ogg"

ls -l "$out"
