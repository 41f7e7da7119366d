package transcode

import (
	"fmt"
	"testing"
)

func TestFitKeepsAspectAndNeverUpscales(t *testing.T) {
	type rung struct {
		name string
		w, h int
	}
	tests := []struct {
		srcW, srcH int
		want       []rung
	}{
		{1920, 1080, []rung{{"1080p", 1920, 1080}, {"720p", 1280, 720}, {"480p", 854, 480}, {"360p", 640, 360}}},
		{1280, 720, []rung{{"720p", 1280, 720}, {"480p", 854, 480}, {"360p", 640, 360}}},
		{2560, 1440, []rung{{"1080p", 1920, 1080}, {"720p", 1280, 720}, {"480p", 854, 480}, {"360p", 640, 360}}},
		{1440, 1080, []rung{{"1080p", 1440, 1080}, {"720p", 960, 720}, {"480p", 640, 480}, {"360p", 480, 360}}}, // 4:3
		{1000, 700, []rung{{"480p", 686, 480}, {"360p", 514, 360}}},                                             // between rungs
		{853, 479, []rung{{"360p", 642, 360}}},
		{640, 360, []rung{{"360p", 640, 360}}},
		{720, 1280, []rung{{"720p", 720, 1280}, {"480p", 480, 854}, {"360p", 360, 640}}}, // portrait: short side
		{320, 240, []rung{{"240p", 320, 240}}},                                           // smaller than every rung
		{321, 181, []rung{{"180p", 320, 180}}},                                           // odd: rounded down to even
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%dx%d", tt.srcW, tt.srcH), func(t *testing.T) {
			got := Fit(DefaultLadder, tt.srcW, tt.srcH)
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i, r := range got {
				w := tt.want[i]
				if r.Name != w.name || r.Width != w.w || r.Height != w.h {
					t.Errorf("rung %d: %s %dx%d, want %s %dx%d", i, r.Name, r.Width, r.Height, w.name, w.w, w.h)
				}
				if r.Width%2 != 0 || r.Height%2 != 0 || r.Bitrate <= 0 {
					t.Errorf("rung %d: %+v", i, r)
				}
			}
		})
	}
}

func TestFitSourceBelowLadderScalesBitrateByArea(t *testing.T) {
	got := Fit(DefaultLadder, 320, 180)
	if len(got) != 1 || got[0].Bitrate != 700_000/4 {
		t.Errorf("got %+v, want one 320x180 rung at a quarter of 360p's bitrate", got)
	}
	for i, r := range Fit(DefaultLadder, 1920, 1080) {
		if r.Bitrate != DefaultLadder[i].Bitrate {
			t.Errorf("%s: bitrate %d, want the ladder's %d", r.Name, r.Bitrate, DefaultLadder[i].Bitrate)
		}
	}
}

func TestFitWithoutSizeOrLadder(t *testing.T) {
	if Fit(DefaultLadder, 0, 720) != nil || Fit(nil, 1280, 720) != nil {
		t.Error("want nil")
	}
}
