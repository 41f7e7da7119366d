package sfu

import (
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

func TestRoomEventsTellEveryStartAndEndInOrder(t *testing.T) {
	var mu sync.Mutex
	var got []string
	s := New(Settings{Logger: slog.New(slog.DiscardHandler), OnEvent: func(ev Event) {
		mu.Lock()
		defer mu.Unlock()
		name := ev.Kind.String() + " " + ev.Room.Name()
		if ev.Participant != nil {
			name += " " + ev.Participant.Identity()
		}
		if ev.Track != nil {
			name += " " + ev.Track.Info().ID
		}
		got = append(got, name)
	}})
	r := s.Room("stage")
	alice := r.Join("alice", nil)
	if !strings.HasPrefix(alice.SID(), "PA_") || !strings.HasPrefix(r.SID(), "RM_") {
		t.Errorf("sids %q %q lack LiveKit's prefixes", alice.SID(), r.SID())
	}
	src := make(idleReader)
	defer close(src)
	tr, err := alice.AddLayer(TrackInfo{ID: "cam", Kind: webrtc.RTPCodecTypeVideo, Codec: vp8Codec}, "", 1, src)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tr.SID(), "TR_") {
		t.Errorf("track sid %q", tr.SID())
	}
	// A second join of the same identity replaces the first.
	alice2 := r.Join("alice", nil)
	if alice2.SID() == alice.SID() {
		t.Error("a new join kept the old participant sid")
	}
	alice2.Close()
	want := []string{
		"room_started stage",
		"participant_joined stage alice",
		"track_published stage alice cam",
		"track_unpublished stage alice cam",
		"participant_left stage alice",
		"participant_joined stage alice",
		"participant_left stage alice",
		"room_finished stage",
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// idleReader is a layer source that yields no packet until it is closed.
type idleReader chan struct{}

func (r idleReader) Read([]byte) (int, interceptor.Attributes, error) {
	<-r
	return 0, nil, io.EOF
}

var opusCodec = webrtc.RTPCodecParameters{
	RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
	PayloadType:        111,
}

func TestAudioLevelsTellSpeechFromSilence(t *testing.T) {
	tr := newTrack(TrackInfo{ID: "mic", Kind: webrtc.RTPCodecTypeAudio, Codec: opusCodec, AudioLevelExt: 1},
		&Settings{}, &Stats{}, nil, slog.New(slog.DiscardHandler))
	defer tr.close()
	l := &layer{index: 0, cache: newPacketCache()}
	var wg sync.WaitGroup
	send := func(dBov byte) {
		h := rtp.Header{Version: 2, PayloadType: 111, SSRC: 5}
		if err := h.SetExtension(1, []byte{dBov}); err != nil {
			t.Fatal(err)
		}
		raw, _ := (&rtp.Packet{Header: h, Payload: []byte{1, 2, 3}}).Marshal()
		tr.ingest(l, &h, raw, []byte{1, 2, 3}, &wg)
	}
	for range 20 {
		send(127) // digital silence
	}
	if level, speaking := tr.TakeAudioLevel(); speaking || level != 0 {
		t.Errorf("silence: level %v speaking %v", level, speaking)
	}
	for i := range 20 {
		if i%2 == 0 {
			send(10) // -10 dBov
		} else {
			send(100)
		}
	}
	level, speaking := tr.TakeAudioLevel()
	if !speaking || level < 0.3 || level > 0.33 {
		t.Errorf("half the packets at -10 dBov: level %v (want 10^(-10/20) = 0.316), speaking %v", level, speaking)
	}
	if _, speaking := tr.TakeAudioLevel(); speaking {
		t.Error("the window was not reset by taking it")
	}
}

func TestWantedLayerIsTheHighestSubscribersCapAndDisabledOnesWantNothing(t *testing.T) {
	tt := newTestTrack(t, 0)
	if got := tt.WantedLayer(); got != -1 {
		t.Fatalf("no subscribers: wanted %d, want -1", got)
	}
	a, _, _ := tt.subscribe(t, DownTrackOptions{}, false)
	b, _, _ := tt.subscribe(t, DownTrackOptions{}, false)
	a.SetMaxLayer(0)
	b.SetMaxLayer(1)
	if got := tt.WantedLayer(); got != 1 {
		t.Fatalf("caps q and h: wanted %d, want 1", got)
	}
	b.SetDisabled(true)
	if got := tt.WantedLayer(); got != 0 {
		t.Fatalf("h's subscriber disabled: wanted %d, want 0", got)
	}
	for k := range 3 {
		tt.frame(0, k, true)
	}
	if st := b.Stats(); !st.Paused || !st.Disabled {
		t.Errorf("disabled subscriber stats %+v: want paused and disabled", st)
	}
	before := b.Stats().Packets
	tt.frame(0, 4, true)
	tt.frame(1, 4, true)
	if got := b.Stats().Packets; got != before {
		t.Errorf("a disabled subscriber was sent %d packets", got-before)
	}
	a.SetDisabled(true)
	if got := tt.WantedLayer(); got != -1 {
		t.Fatalf("every subscriber disabled: wanted %d, want -1", got)
	}
}

func TestANewStreamForARidReplacesTheOldOne(t *testing.T) {
	tr := newTrack(TrackInfo{ID: "cam", Kind: webrtc.RTPCodecTypeVideo, Codec: vp8Codec, Layers: 3},
		&Settings{}, &Stats{}, nil, slog.New(slog.DiscardHandler))
	defer tr.close()
	old, fresh := make(idleReader), make(idleReader)
	defer close(fresh)
	if idx, err := tr.AddLayer("q", 1, old); err != nil || idx != 0 {
		t.Fatalf("first q: %d, %v", idx, err)
	}
	idx, err := tr.AddLayer("q", 2, fresh)
	if err != nil || idx != 0 {
		t.Fatalf("second stream for q: %d, %v; want it to replace layer 0", idx, err)
	}
	if got := tr.layers[0].Load().ssrc.Load(); got != 2 {
		t.Errorf("layer q has ssrc %d, want the new stream's 2", got)
	}
	close(old)
	if _, err := tr.AddLayer("x", 3, make(idleReader)); err != nil {
		t.Errorf("an unknown rid after a replacement: %v", err)
	}
}
