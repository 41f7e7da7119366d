package llhls

import (
	"errors"
	"fmt"
	"time"
)

// Config tunes a Stream. Zero fields take their defaults.
type Config struct {
	// PartTarget is the nominal part duration; default 250 ms. A playlist's
	// PART-TARGET is this rounded up to whole frames of its track.
	PartTarget time.Duration
	// SegmentTarget is the segment duration, a multiple of the
	// transcoder's IDR cadence and a whole number of parts; default 2 s.
	SegmentTarget time.Duration
	// Passthrough says the video is a publisher's own encoding, not a
	// transcoder's: its frame times jitter, and its IDRs come when asked for
	// near the grid lines rather than on them. A video segment then starts
	// only at an IDR up to a part before its line or, after it, as late as
	// EXT-X-TARGETDURATION allows (150 ms for 2 s segments), and without
	// one after that; parts take frames while they fit in PART-TARGET,
	// which is at least eight nominal frames, so that a publisher's clock
	// jitter keeps them above 85% of it.
	Passthrough bool
	// PlaylistSegments is how many complete segments a media playlist
	// lists; default 10, which covers 3 target durations of hold-back plus
	// the 6 target durations that delta updates may skip.
	PlaylistSegments int
	// HoldLimit bounds how long a blocking request waits before it is
	// answered 503; default 3 target durations, as the spec asks.
	HoldLimit time.Duration
}

const (
	defaultPartTarget       = 250 * time.Millisecond
	defaultSegmentTarget    = 2 * time.Second
	defaultPlaylistSegments = 10
	minPlaylistSegments     = 3
)

func (c Config) withDefaults() (Config, error) {
	if c.PartTarget == 0 {
		c.PartTarget = defaultPartTarget
	}
	if c.SegmentTarget == 0 {
		c.SegmentTarget = defaultSegmentTarget
	}
	if c.PlaylistSegments == 0 {
		c.PlaylistSegments = defaultPlaylistSegments
	}
	if c.HoldLimit == 0 {
		c.HoldLimit = 3 * c.targetDuration()
	}
	switch {
	case c.PartTarget < 10*time.Millisecond:
		return c, fmt.Errorf("part target %v below 10ms", c.PartTarget)
	case c.SegmentTarget < c.PartTarget:
		return c, errors.New("segment target shorter than part target")
	case c.SegmentTarget%c.PartTarget != 0:
		return c, fmt.Errorf("segment target %v is not a whole number of parts of %v", c.SegmentTarget, c.PartTarget)
	case c.PlaylistSegments < minPlaylistSegments:
		return c, fmt.Errorf("playlist segments %d below %d", c.PlaylistSegments, minPlaylistSegments)
	case c.HoldLimit < 0:
		return c, errors.New("negative hold limit")
	}
	return c, nil
}

// targetDuration is EXT-X-TARGETDURATION: whole seconds, at least every
// segment's duration rounded to the nearest second (a segment may run a
// frame past the target).
func (c Config) targetDuration() time.Duration {
	return (c.SegmentTarget + time.Second - 1).Truncate(time.Second)
}

// skipUntil is CAN-SKIP-UNTIL: the spec's minimum, six target durations.
func (c Config) skipUntil() time.Duration { return 6 * c.targetDuration() }
