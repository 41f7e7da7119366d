package e2e

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// publishState mirrors window.starlingPublish on the publish page.
type publishState struct {
	State           string     `json:"state"`
	ConnectionState string     `json:"connectionState"`
	Error           string     `json:"error"`
	Encodings       []encoding `json:"encodings"`
}

type encoding struct {
	Rid                     string  `json:"rid"`
	FrameWidth              int     `json:"frameWidth"`
	FrameHeight             int     `json:"frameHeight"`
	FramesPerSecond         float64 `json:"framesPerSecond"`
	FramesEncoded           int     `json:"framesEncoded"`
	BytesSent               int64   `json:"bytesSent"`
	Bitrate                 float64 `json:"bitrate"`
	QualityLimitationReason string  `json:"qualityLimitationReason"`
}

func (s publishState) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "state=%s pc=%s", s.State, s.ConnectionState)
	if s.Error != "" {
		fmt.Fprintf(&b, " error=%q", s.Error)
	}
	for _, e := range s.Encodings {
		fmt.Fprintf(&b, " [%s %dx%d %.0ffps %d frames %.0fkbps limit=%s]", e.Rid, e.FrameWidth, e.FrameHeight,
			e.FramesPerSecond, e.FramesEncoded, e.Bitrate/1000, e.QualityLimitationReason)
	}
	return b.String()
}

// watchState mirrors window.starlingStats on the watch page.
type watchState struct {
	State           string  `json:"state"`
	ConnectionState string  `json:"connectionState"`
	Error           string  `json:"error"`
	FramesDecoded   int     `json:"framesDecoded"`
	FrameWidth      int     `json:"frameWidth"`
	FrameHeight     int     `json:"frameHeight"`
	FramesPerSecond float64 `json:"framesPerSecond"`
	PacketsLost     int     `json:"packetsLost"`
	// What the server says it sends this viewer (GET on the WHEP session).
	Estimate      int    `json:"estimate"`
	ServerLayer   string `json:"serverLayer"`
	LayerSwitches int    `json:"layerSwitches"`
}

func (s watchState) String() string {
	str := fmt.Sprintf("state=%s pc=%s frames=%d %dx%d %.0ffps lost=%d server: estimate=%d layer=%q switches=%d",
		s.State, s.ConnectionState, s.FramesDecoded, s.FrameWidth, s.FrameHeight, s.FramesPerSecond, s.PacketsLost,
		s.Estimate, s.ServerLayer, s.LayerSwitches)
	if s.Error != "" {
		str += fmt.Sprintf(" error=%q", s.Error)
	}
	return str
}

func publisherState(t *testing.T, p *page) publishState {
	t.Helper()
	s, err := eval[publishState](p, "window.starlingPublish")
	if err != nil {
		t.Fatalf("%s: read window.starlingPublish: %v", p.name, err)
	}
	return s
}

func viewerState(t *testing.T, p *page) watchState {
	t.Helper()
	s, err := eval[watchState](p, "window.starlingStats")
	if err != nil {
		t.Fatalf("%s: read window.starlingStats: %v", p.name, err)
	}
	return s
}

// startPublisher opens the publish page for room with a publish token,
// presses Start and waits until the browser is connected and sending.
func startPublisher(t *testing.T, srv *server, room string) *page {
	t.Helper()
	return startPublisherWith(t, srv, room, "")
}

// startPublisherWith is startPublisher with more of the publish page's
// query parameters, such as "codec=h264".
func startPublisherWith(t *testing.T, srv *server, room, query string) *page {
	t.Helper()
	tok := srv.token(t, room, "camera", true)
	pub := newPage(t, "publisher")
	pub.open(t, srv.URL+"/publish?"+query+"&room="+url.QueryEscape(room)+"&token="+url.QueryEscape(tok), "starlingPublish")
	pub.click(t, "start")
	eventually(t, 15*time.Second, "publisher connected", func() (bool, string) {
		s := publisherState(t, pub)
		if s.State == "failed" {
			t.Fatalf("publisher failed: %s", s)
		}
		return s.State == "live" && s.ConnectionState == "connected", s.String()
	})
	return pub
}

// openViewer opens the watch page with the given query and waits until it
// plays decoded video.
func openViewer(t *testing.T, srv *server, query url.Values) *page {
	t.Helper()
	viewer := newPage(t, "viewer")
	viewer.open(t, srv.URL+"/watch?"+query.Encode(), "starlingStats")
	eventually(t, 15*time.Second, "viewer decodes video", func() (bool, string) {
		s := viewerState(t, viewer)
		if s.State == "failed" {
			t.Fatalf("viewer failed: %s", s)
		}
		return s.State == "playing" && s.FramesDecoded > 0, s.String()
	})
	return viewer
}

// framesKeepGrowing checks that the viewer decodes at least n more frames
// within timeout.
func framesKeepGrowing(t *testing.T, viewer *page, n int, timeout time.Duration) {
	t.Helper()
	first := viewerState(t, viewer).FramesDecoded
	eventually(t, timeout, fmt.Sprintf("viewer decodes %d more frames", n), func() (bool, string) {
		s := viewerState(t, viewer)
		return s.FramesDecoded >= first+n, s.String()
	})
}

func TestBrowserPublishesSimulcastAndBrowserWatches(t *testing.T) {
	requireBrowser(t)
	srv := startServer(t)
	pub := startPublisher(t, srv, "e2e")

	viewer := openViewer(t, srv, url.Values{"room": {"e2e"}})
	framesKeepGrowing(t, viewer, 20, 10*time.Second)

	// Chromium starts the layers as its bandwidth estimate grows; the full
	// one last, after several seconds with the fake camera.
	eventually(t, 30*time.Second, "publisher sends q, h and f", func() (bool, string) {
		s := publisherState(t, pub)
		var sending []string
		for _, e := range s.Encodings {
			if e.FramesEncoded > 0 && e.Bitrate > 0 {
				sending = append(sending, e.Rid)
			}
		}
		return slices.Equal(sending, []string{"q", "h", "f"}), s.String()
	})
	eventually(t, 30*time.Second, "viewer gets the full layer, 1280x720", func() (bool, string) {
		s := viewerState(t, viewer)
		return s.FrameWidth == 1280 && s.FrameHeight == 720, s.String()
	})
	// The page shows what the server sends it: its bandwidth estimate for
	// this viewer and the layer it forwards.
	eventually(t, 5*time.Second, "watch page shows the server's estimate and the f layer", func() (bool, string) {
		s := viewerState(t, viewer)
		return s.Estimate > 0 && s.ServerLayer == "f", s.String()
	})
	framesKeepGrowing(t, viewer, 20, 10*time.Second)

	// When the publisher stops, the viewer says it waits for the stream, and
	// plays again by itself when the publisher starts again.
	pub.click(t, "stop")
	eventually(t, 5*time.Second, "publisher stopped", func() (bool, string) {
		s := publisherState(t, pub)
		return s.State == "stopped", s.String()
	})
	eventually(t, 10*time.Second, "viewer waits for the stream again", func() (bool, string) {
		s := viewerState(t, viewer)
		return s.State == "waiting", s.String()
	})
	pub.click(t, "start")
	eventually(t, 20*time.Second, "viewer plays the restarted stream", func() (bool, string) {
		s := viewerState(t, viewer)
		return s.State == "playing" && s.FramesDecoded > 0, s.String()
	})
	framesKeepGrowing(t, viewer, 20, 10*time.Second)
}

func TestViewerWaitsForPublisherThenPlaysPinnedQuarterLayer(t *testing.T) {
	requireBrowser(t)
	srv := startServer(t)

	// The viewer comes first: WHEP answers 404 and the page keeps asking.
	viewer := newPage(t, "viewer")
	viewer.open(t, srv.URL+"/watch?room=e2e&layer=q", "starlingStats")
	eventually(t, 10*time.Second, "viewer waits for the stream", func() (bool, string) {
		s := viewerState(t, viewer)
		return s.State == "waiting", s.String()
	})
	status, err := eval[string](viewer, "document.getElementById('status').textContent")
	if err != nil || !strings.Contains(status, "Waiting for the stream") {
		t.Errorf("viewer status line = %q (%v), want it to say it is waiting for the stream", status, err)
	}

	startPublisher(t, srv, "e2e")
	eventually(t, 30*time.Second, "pinned viewer gets the q layer, 320x180", func() (bool, string) {
		s := viewerState(t, viewer)
		return s.State == "playing" && s.FrameWidth == 320 && s.FrameHeight == 180, s.String()
	})
	// It stays there while frames keep coming, though the publisher sends more.
	first := viewerState(t, viewer).FramesDecoded
	eventually(t, 10*time.Second, "pinned viewer decodes 40 more frames at 320x180", func() (bool, string) {
		s := viewerState(t, viewer)
		if s.FrameWidth != 320 || s.FrameHeight != 180 {
			t.Fatalf("pinned viewer left the q layer: %s", s)
		}
		return s.FramesDecoded >= first+40, s.String()
	})
}

func TestPublishWithoutTokenShowsTheServerError(t *testing.T) {
	requireBrowser(t)
	srv := startServer(t)
	pub := newPage(t, "publisher")
	pub.open(t, srv.URL+"/publish?room=e2e", "starlingPublish")
	pub.click(t, "start")
	eventually(t, 10*time.Second, "publish without a token fails with 401", func() (bool, string) {
		s := publisherState(t, pub)
		return s.State == "failed" && strings.Contains(s.Error, "401"), s.String()
	})
	status, err := eval[string](pub, "document.getElementById('status').textContent")
	if err != nil || !strings.Contains(status, "401") {
		t.Errorf("status line = %q (%v), want the server's 401 error", status, err)
	}
}
