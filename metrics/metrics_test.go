package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/starling-sfu/starling/sfu"
)

func TestMetricsAggregateSubscribersWithoutALabelPerSubscriber(t *testing.T) {
	s := sfu.New(sfu.Settings{})
	for _, id := range []string{"a", "b", "c"} {
		defer s.NewSubscriber(id).Close()
	}
	rec := httptest.NewRecorder()
	Handler(&Collector{SFU: s}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	out := string(body)
	for _, want := range []string{
		`starling_subscriber_connections{source="none"} 3`,
		`starling_subscriber_connections{source="twcc"} 0`,
		`starling_subscriber_estimate_bits_count 0`,
		`starling_subscriber_video_tracks{layer="paused"} 0`,
		`starling_layer_switches_total{direction="down"} 0`,
		`starling_video_paused_seconds_total 0`,
		`starling_bandwidth_probes_total{result="failed"} 0`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(out, `subscriber="`) {
		t.Error("a series is labelled by subscriber")
	}
}
