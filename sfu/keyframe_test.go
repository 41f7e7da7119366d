package sfu

import "testing"

func TestKeyframeStartDetection(t *testing.T) {
	tests := []struct {
		name    string
		codec   Codec
		payload []byte
		want    bool
	}{
		{"vp8 keyframe, no extensions", CodecVP8, []byte{0x10, 0x00, 0x9d, 0x01, 0x2a}, true},
		{"vp8 interframe", CodecVP8, []byte{0x10, 0x01}, false},
		{"vp8 keyframe continuation (S=0)", CodecVP8, []byte{0x00, 0x00}, false},
		{"vp8 keyframe, 15-bit picture id", CodecVP8, []byte{0x90, 0x80, 0x81, 0x23, 0x00}, true},
		{"vp8 keyframe, 7-bit picture id, tl0picidx, tid", CodecVP8, []byte{0x90, 0xe0, 0x05, 0x07, 0x40, 0x00}, true},
		{"vp8 interframe, 15-bit picture id", CodecVP8, []byte{0x90, 0x80, 0x81, 0x23, 0x01}, false},
		{"vp8 truncated", CodecVP8, []byte{0x90, 0x80}, false},
		{"vp8 partition 1 start", CodecVP8, []byte{0x11, 0x00}, false},
		{"h264 STAP-A with SPS", CodecH264, []byte{0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce}, true},
		{"h264 STAP-A without SPS/IDR", CodecH264, []byte{0x18, 0x00, 0x02, 0x06, 0x05, 0x00, 0x02, 0x68, 0xce}, false},
		{"h264 IDR single NAL", CodecH264, []byte{0x65, 0x88}, true},
		{"h264 non-IDR slice", CodecH264, []byte{0x41, 0x9a}, false},
		{"h264 FU-A start of IDR", CodecH264, []byte{0x7c, 0x85, 0x88}, true},
		{"h264 FU-A middle of IDR", CodecH264, []byte{0x7c, 0x05, 0x88}, false},
		{"h264 FU-A start of non-IDR", CodecH264, []byte{0x7c, 0x81, 0x9a}, false},
		{"h264 STAP-A truncated size", CodecH264, []byte{0x18, 0x00}, false},
		{"vp9 begin of non-inter frame, picture id 0", CodecVP9, []byte{0x88, 0x00}, true},
		{"vp9 begin of non-inter frame, picture id", CodecVP9, []byte{0x88, 0x01}, true},
		{"vp9 inter frame", CodecVP9, []byte{0xc8, 0x01}, false},
		{"vp9 not beginning", CodecVP9, []byte{0x80, 0x01}, false},
		{"vp9 spatial layer 1", CodecVP9, []byte{0xa8, 0x01, 0x02, 0x00}, false},
		{"av1 new coded video sequence", CodecAV1, []byte{0x18}, true},
		{"av1 continuation", CodecAV1, []byte{0x98}, false},
		{"av1 delta", CodecAV1, []byte{0x10}, false},
		{"opus always", CodecOpus, []byte{0x01}, true},
		{"empty vp8", CodecVP8, nil, false},
		{"empty h264", CodecH264, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.codec.KeyframeStart(tc.payload); got != tc.want {
				t.Fatalf("KeyframeStart(% x) = %v, want %v", tc.payload, got, tc.want)
			}
		})
	}
}

func FuzzKeyframeStart(f *testing.F) {
	f.Add([]byte{0x90, 0x80, 0x81, 0x23, 0x00})
	f.Add([]byte{0x18, 0x00, 0x02, 0x67, 0x42})
	f.Add([]byte{0x88, 0x01})
	f.Fuzz(func(t *testing.T, p []byte) {
		for c := CodecUnknown; c <= CodecAV1; c++ {
			c.KeyframeStart(p)
		}
	})
}

func TestCodecFromMime(t *testing.T) {
	for mime, want := range map[string]Codec{"video/VP8": CodecVP8, "video/h264": CodecH264, "audio/opus": CodecOpus, "video/AV1": CodecAV1, "video/VP9": CodecVP9, "audio/PCMU": CodecUnknown} {
		if got := CodecFromMime(mime); got != want {
			t.Errorf("CodecFromMime(%q) = %v, want %v", mime, got, want)
		}
	}
}
