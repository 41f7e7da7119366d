package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// roomView mirrors what the room page (web/static/room.js) tells through
// window.starlingRoom: its state and the statistics of what it receives and
// sends.
type roomView struct {
	State         string `json:"state"`
	Error         string `json:"error"`
	SpeakerEvents struct {
		Count      int      `json:"count"`
		Identities []string `json:"identities"`
	} `json:"speakerEvents"`
	Timings struct {
		JoinedMs, CameraMs, MicrophoneMs float64 // since the page opened
	} `json:"timings"`
	Remote []remoteTrack   `json:"remote"`
	Local  []localEncoding `json:"local"`
	Tiles  []string        `json:"tiles"` // the names on the remote participants' tiles
}

// remoteTrack is one subscribed remote track: its receiver's inbound-rtp
// counters and the size of the video element it plays in.
type remoteTrack struct {
	Identity        string  `json:"identity"`
	Kind            string  `json:"kind"`
	Source          string  `json:"source"`
	Sid             string  `json:"sid"`
	FramesDecoded   int     `json:"framesDecoded"`
	FrameWidth      int     `json:"frameWidth"`
	FrameHeight     int     `json:"frameHeight"`
	PacketsReceived int     `json:"packetsReceived"`
	PacketsLost     int     `json:"packetsLost"`
	BytesReceived   int64   `json:"bytesReceived"`
	ElementWidth    int     `json:"elementWidth"`
	ElementHeight   int     `json:"elementHeight"`
	FirstFrameMs    float64 `json:"firstFrameMs"` // since the page opened
}

// localEncoding is one simulcast encoding of the page's camera.
type localEncoding struct {
	Source        string `json:"source"`
	Rid           string `json:"rid"`
	Active        bool   `json:"active"`
	BytesSent     int64  `json:"bytesSent"`
	FramesEncoded int    `json:"framesEncoded"`
	FrameWidth    int    `json:"frameWidth"`
	FrameHeight   int    `json:"frameHeight"`
	// Why the browser sends less than asked, and what it thinks the path
	// carries.
	QualityLimitationReason  string  `json:"qualityLimitationReason"`
	AvailableOutgoingBitrate float64 `json:"availableOutgoingBitrate"`
}

func (v roomView) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "state=%s", v.State)
	if v.Error != "" {
		fmt.Fprintf(&b, " error=%q", v.Error)
	}
	fmt.Fprintf(&b, " speaker-events=%d %v tiles=%q", v.SpeakerEvents.Count, v.SpeakerEvents.Identities, v.Tiles)
	for _, r := range v.Remote {
		if r.Kind == "video" {
			fmt.Fprintf(&b, " [%s video: %d frames %dx%d in %dx%d, %d pkts, %d lost]", r.Identity, r.FramesDecoded,
				r.FrameWidth, r.FrameHeight, r.ElementWidth, r.ElementHeight, r.PacketsReceived, r.PacketsLost)
		} else {
			fmt.Fprintf(&b, " [%s %s: %d pkts, %d lost]", r.Identity, r.Kind, r.PacketsReceived, r.PacketsLost)
		}
	}
	for i, e := range v.Local {
		if i == 0 {
			fmt.Fprintf(&b, " uplink=%.0fkbps", e.AvailableOutgoingBitrate/1000)
		}
		fmt.Fprintf(&b, " {%s active=%t %dx%d %d frames %d B limit=%s}", e.Rid, e.Active, e.FrameWidth, e.FrameHeight,
			e.FramesEncoded, e.BytesSent, e.QualityLimitationReason)
	}
	return b.String()
}

// track returns the remote track of identity of the given kind.
func (v roomView) track(identity, kind string) (remoteTrack, bool) {
	for _, r := range v.Remote {
		if r.Identity == identity && r.Kind == kind && r.Source != "screen_share" {
			return r, true
		}
	}
	return remoteTrack{}, false
}

// encoding returns the local camera encoding with the given rid.
func (v roomView) encoding(rid string) (localEncoding, bool) {
	for _, e := range v.Local {
		if e.Source == "camera" && e.Rid == rid {
			return e, true
		}
	}
	return localEncoding{}, false
}

const roomViewJS = `(async () => {
	const r = window.starlingRoom;
	return {
		state: r.state,
		error: r.error,
		speakerEvents: r.speakerEvents,
		timings: r.timings,
		remote: await r.remoteStats(),
		local: await r.localStats(),
		tiles: [...document.querySelectorAll('#tiles .tile .name')].map((e) => e.textContent),
	};
})()`

// roomState reads the room page's view; a page that failed fails the test.
func roomState(t *testing.T, p *page) roomView {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[roomView](roomViewJS, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: read window.starlingRoom: %v", p.name, err)
	}
	if v.State == "failed" {
		t.Fatalf("%s: the room page failed: %s", p.name, v)
	}
	return v
}

// joinRoom starts a browser for identity and joins room in it, as
// openRoom does.
func joinRoom(t *testing.T, srv *server, room, identity string, query url.Values) *page {
	t.Helper()
	p := newPage(t, identity)
	p.openRoom(t, srv, room, query)
	return p
}

// openRoom opens the room page of srv, joining room at once with a publish
// token for the page's name; query adds address parameters (camera=0, …).
func (p *page) openRoom(t *testing.T, srv *server, room string, query url.Values) {
	t.Helper()
	q := url.Values{"room": {room}, "token": {srv.token(t, room, p.name, true)}, "autojoin": {"1"}}
	for k, v := range query {
		q[k] = v
	}
	p.open(t, srv.URL+"/room?"+q.Encode(), "starlingRoom")
}

// steady polls value until it has not changed for window, and fails the
// test if that does not happen within timeout: the way to tell that a
// counter stopped.
func steady(t *testing.T, timeout, window time.Duration, what string, value func() (int64, string)) {
	t.Helper()
	start := time.Now()
	last, _ := value()
	since := start
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		<-tick.C
		v, state := value()
		now := time.Now()
		if v != last {
			last, since = v, now
		}
		if now.Sub(since) >= window {
			t.Logf("%s: unchanged for %v, %v after it was asked (%s)", what, window,
				since.Sub(start).Round(time.Millisecond), state)
			return
		}
		if now.Sub(start) > timeout {
			t.Fatalf("%s: still changing after %v; last: %s", what, timeout, state)
		}
	}
}

// badToken mints a token for room signed with a secret the server does not
// know.
func badToken(t *testing.T, srv *server, room, identity string) string {
	t.Helper()
	out, err := exec.Command(srv.bin, "token", "--keys", apiKey+":not-the-secret-the-server-knows-0123456789",
		"--room", room, "--identity", identity, "--publish").Output()
	if err != nil {
		t.Fatalf("starling token: %v", err)
	}
	return strings.TrimSpace(string(out))
}
