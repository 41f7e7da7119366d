package sfu

import "testing"

func TestPublisherIsAskedOnlyForTheLayersSubscribersWant(t *testing.T) {
	tt := newTestTrack(t, 0)
	all := int(upstreamHeadroom * float64(nominalRates[0]+nominalRates[1]+nominalRates[2]))
	if got := tt.wantedBitrate(); got != all {
		t.Fatalf("no subscribers: wants %d bit/s, want every layer's %d", got, all)
	}
	a, _, _ := tt.subscribe(t, DownTrackOptions{}, false)
	b, _, _ := tt.subscribe(t, DownTrackOptions{}, false)
	if got := tt.wantedBitrate(); got != all {
		t.Fatalf("subscribers without a cap: wants %d, want %d", got, all)
	}
	// What their bandwidth carries now does not matter: a layer the
	// publisher stopped could never be allocated again.
	a.alloc.Store(0)
	b.alloc.Store(allocPause)
	if got := tt.wantedBitrate(); got != all {
		t.Fatalf("subscribers held low by bandwidth: wants %d, want %d", got, all)
	}
	a.SetMaxLayer(0)
	b.SetMaxLayer(1)
	if got, want := tt.wantedBitrate(), int(upstreamHeadroom*float64(nominalRates[0]+nominalRates[1])); got != want {
		t.Fatalf("subscribers capped at q and h: wants %d, want %d", got, want)
	}
	a.SetDisabled(true)
	b.SetDisabled(true)
	if got, want := tt.wantedBitrate(), int(upstreamHeadroom*float64(nominalRates[0])); got != want {
		t.Fatalf("every subscriber's video hidden: wants %d, want the lowest layer's %d", got, want)
	}
	if ssrcs := tt.ssrcs(); len(ssrcs) != 3 || ssrcs[0] != 10 || ssrcs[2] != 12 {
		t.Fatalf("ssrcs %v", ssrcs)
	}
}
