package transport

import (
	"strconv"

	"github.com/pion/webrtc/v4"
)

// videoFeedback is the RTCP feedback offered for every video codec; the
// transport-wide congestion control feedback is added by its interceptor.
var videoFeedback = []webrtc.RTCPFeedback{
	{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"},
}

// registerCodecs offers only the codecs the SFU can forward: Opus, and the
// video codecs whose keyframes it can find (VP8, VP9, H.264, AV1), each with
// RTX. pion's defaults also hold H.265, G.722 and G.711, which a publisher
// such as OBS would pick but the SFU could not switch layers on.
func registerCodecs(m *webrtc.MediaEngine) error {
	audio := webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType:        111,
	}
	if err := m.RegisterCodec(audio, webrtc.RTPCodecTypeAudio); err != nil {
		return err
	}
	video := []struct {
		mime, fmtp string
		pt, rtx    webrtc.PayloadType
	}{
		{webrtc.MimeTypeVP8, "", 96, 97},
		{webrtc.MimeTypeVP9, "profile-id=0", 98, 99},
		{webrtc.MimeTypeVP9, "profile-id=2", 100, 101},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", 102, 103},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", 106, 107},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f", 108, 109},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f", 112, 113},
		{webrtc.MimeTypeAV1, "", 45, 46},
	}
	for _, v := range video {
		c := webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: v.mime, ClockRate: 90000, SDPFmtpLine: v.fmtp, RTCPFeedback: videoFeedback},
			PayloadType:        v.pt,
		}
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			return err
		}
		rtx := webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=" + strconv.Itoa(int(v.pt))},
			PayloadType:        v.rtx,
		}
		if err := m.RegisterCodec(rtx, webrtc.RTPCodecTypeVideo); err != nil {
			return err
		}
	}
	return nil
}
