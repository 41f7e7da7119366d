package rtcclient

import (
	"net/url"
	"testing"

	"github.com/livekit/protocol/livekit"
)

func TestRTCURL(t *testing.T) {
	q := url.Values{"access_token": {"tok"}}
	for _, tc := range []struct{ base, want string }{
		{"http://127.0.0.1:7880", "ws://127.0.0.1:7880/rtc?access_token=tok"},
		{"https://sfu.example.com/", "wss://sfu.example.com/rtc?access_token=tok"},
		{"https://sfu.example.com/base", "wss://sfu.example.com/base/rtc?access_token=tok"},
		{"ws://localhost:8080", "ws://localhost:8080/rtc?access_token=tok"},
		{"wss://h?old=1", "wss://h/rtc?access_token=tok"},
	} {
		got, err := RTCURL(tc.base, q)
		if err != nil || got != tc.want {
			t.Errorf("RTCURL(%q) = %q, %v; want %q", tc.base, got, err, tc.want)
		}
	}
	if _, err := RTCURL("ftp://h", q); err == nil {
		t.Error("ftp URL accepted")
	}
}

func TestConnectQueryForResume(t *testing.T) {
	p := connectParams{token: "t", autoSubscribe: false, protocol: 16, reconnect: true, sid: "PA_1",
		reconnectReason: livekit.ReconnectReason_RR_SIGNAL_DISCONNECTED}
	q := p.query()
	want := map[string]string{
		"access_token": "t", "reconnect": "1", "sid": "PA_1", "auto_subscribe": "0", "sdk": "go",
		"version": SDKVersion, "protocol": "16", "adaptive_stream": "0", "reconnect_reason": "1",
	}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, q.Get(k), v)
		}
	}
	if len(q) != len(want) {
		t.Errorf("query %v has extra parameters", q)
	}
	p.reconnect, p.reconnectReason = false, livekit.ReconnectReason_RR_UNKNOWN
	q = p.query()
	if q.Has("reconnect") || q.Has("sid") || q.Has("reconnect_reason") {
		t.Errorf("join query %v carries resume parameters", q)
	}
}

func TestParseStreamID(t *testing.T) {
	for _, tc := range []struct{ id, p, tr string }{
		{"PA_abc|TR_def", "PA_abc", "TR_def"},
		{"PA_abc|TR_def|x", "PA_abc", "TR_def|x"},
		{"PA_abc", "PA_abc", ""},
		{"", "", ""},
	} {
		p, tr := ParseStreamID(tc.id)
		if p != tc.p || tr != tc.tr {
			t.Errorf("ParseStreamID(%q) = %q, %q; want %q, %q", tc.id, p, tr, tc.p, tc.tr)
		}
	}
}

func TestLayerQualityFollowsRID(t *testing.T) {
	for rid, want := range map[string]livekit.VideoQuality{
		"q": livekit.VideoQuality_LOW, "h": livekit.VideoQuality_MEDIUM, "f": livekit.VideoQuality_HIGH, "": livekit.VideoQuality_HIGH,
	} {
		if got := (Layer{RID: rid}).Quality(); got != want {
			t.Errorf("rid %q: %s, want %s", rid, got, want)
		}
	}
}

func TestMessageName(t *testing.T) {
	res := &livekit.SignalResponse{Message: &livekit.SignalResponse_TrackPublished{}}
	if got := messageName(res); got != "trackPublished" {
		t.Errorf("messageName = %q", got)
	}
}
