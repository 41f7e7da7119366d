package sfu

import "testing"

func TestPublisherIsAskedOnlyForTheLayersSubscribersAreSent(t *testing.T) {
	tt := newTestTrack(t, 0)
	all := int(upstreamHeadroom * float64(nominalRates[0]+nominalRates[1]+nominalRates[2]))
	if got := tt.wantedBitrate(); got != all {
		t.Fatalf("no subscribers: wants %d bit/s, want every layer's %d", got, all)
	}
	a, _, _ := tt.subscribe(t, DownTrackOptions{}, false)
	b, _, _ := tt.subscribe(t, DownTrackOptions{}, false)
	if got := tt.wantedBitrate(); got != all {
		t.Fatalf("subscribers without an estimate: wants %d, want %d", got, all)
	}
	a.alloc.Store(0)
	b.alloc.Store(1)
	if got, want := tt.wantedBitrate(), int(upstreamHeadroom*float64(nominalRates[0]+nominalRates[1])); got != want {
		t.Fatalf("subscribers on q and h: wants %d, want %d", got, want)
	}
	a.alloc.Store(allocPause)
	b.alloc.Store(allocPause)
	if got, want := tt.wantedBitrate(), int(upstreamHeadroom*float64(nominalRates[0])); got != want {
		t.Fatalf("every subscriber paused: wants %d, want the lowest layer's %d", got, want)
	}
	if ssrcs := tt.ssrcs(); len(ssrcs) != 3 || ssrcs[0] != 10 || ssrcs[2] != 12 {
		t.Fatalf("ssrcs %v", ssrcs)
	}
}
