package signaling

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/starling-sfu/starling/sfu"
)

// TestWHEPSessionResourceTellsWhatTheServerSends: GET on a WHEP session's
// resource answers the viewer's bandwidth estimate and, per track, the
// layer the server forwards, which the watch page shows.
func TestWHEPSessionResourceTellsWhatTheServerSends(t *testing.T) {
	n := newHandlerNode(t, nil)
	n.fakePublish(t, "live", "cam")
	offer := readTestdata(t, "chrome_whep_offer.sdp")
	w := n.serve("POST", "/whep/live?maxHeight=360", offer, "Content-Type", "application/sdp",
		"Authorization", "Bearer "+token(t, "live", "viewer", false, true))
	if w.Code != http.StatusCreated {
		t.Fatalf("POST: %d %s", w.Code, w.Body)
	}
	for _, want := range []string{"a=extmap:", "transport-wide-cc", "a=rtcp-fb:", "transport-cc", "goog-remb"} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("answer lacks %q: the viewer would send no bandwidth feedback", want)
		}
	}
	loc := w.Header().Get("Location")
	g := n.serve("GET", loc, "")
	if g.Code != http.StatusOK || !strings.HasPrefix(g.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("GET %s: %d %q", loc, g.Code, g.Body)
	}
	var st sfu.SubscriberStats
	if err := json.Unmarshal(g.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.ID != "viewer" || st.Source != "none" || len(st.Tracks) != 2 {
		t.Fatalf("stats %+v, want the viewer's two tracks and no estimate before the connection is up", st)
	}
	kinds := map[string]bool{}
	for _, tr := range st.Tracks {
		kinds[tr.Kind] = true
	}
	if !kinds["audio"] || !kinds["video"] {
		t.Fatalf("tracks %+v", st.Tracks)
	}
	n.serve("DELETE", loc, "")
	if g := n.serve("GET", loc, ""); g.Code != http.StatusNotFound {
		t.Fatalf("GET after DELETE: %d", g.Code)
	}
	if bad := n.serve("POST", "/whep/live?maxHeight=tall", offer, "Content-Type", "application/sdp",
		"Authorization", "Bearer "+token(t, "live", "viewer", false, true)); bad.Code != http.StatusBadRequest {
		t.Fatalf("maxHeight=tall: %d", bad.Code)
	}
}
