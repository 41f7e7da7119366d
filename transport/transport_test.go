package transport

import (
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
)

// TestOffersOnlyCodecsTheSFUCanForward: the SFU finds keyframes in VP8, VP9,
// H.264 and AV1 only, so H.265 (which OBS would pick) and the G.7xx audio
// codecs must never be negotiated.
func TestOffersOnlyCodecsTheSFUCanForward(t *testing.T) {
	e, err := New(Config{UDPPort: 0, IncludeLoopback: true, Interfaces: []string{"lo"}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for name, api := range map[string]*webrtc.API{"publisher": e.Publisher, "subscriber": e.Subscriber} {
		pc, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
			if _, err := pc.AddTransceiverFromKind(k); err != nil {
				t.Fatal(err)
			}
		}
		offer, err := pc.CreateOffer(nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = pc.Close()
		for _, want := range []string{"opus/48000/2", "VP8/90000", "VP9/90000", "H264/90000", "AV1/90000", "rtx/90000", "nack pli"} {
			if !strings.Contains(offer.SDP, want) {
				t.Errorf("%s offer lacks %s", name, want)
			}
		}
		for _, bad := range []string{"H265", "G722", "PCMU", "PCMA"} {
			if strings.Contains(offer.SDP, bad) {
				t.Errorf("%s offer includes %s", name, bad)
			}
		}
	}
}
