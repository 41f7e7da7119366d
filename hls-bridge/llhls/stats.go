package llhls

import "sync/atomic"

// Stats is a snapshot of a stream's counters, for export as metrics.
type Stats struct {
	Segments        uint64 // complete segments packaged, all tracks
	Parts           uint64 // parts packaged, all tracks
	GapSegments     uint64 // EXT-X-GAP segments numbered to keep tracks aligned
	Discontinuities uint64 // EXT-X-DISCONTINUITY tags, all tracks
	DroppedSamples  uint64 // samples that could not be placed
	Blocked         int64  // requests waiting now (blocking reload, preload hints)
	Requests        uint64 // HTTP requests served
	BadRequests     uint64 // answered 400
	NotFound        uint64 // answered 404
	Unavailable     uint64 // answered 503: not satisfied within the hold limit
	BytesServed     uint64 // response body bytes
}

type counters struct {
	segments, parts, gaps, discontinuities, dropped atomic.Uint64
	blocked                                         atomic.Int64
	requests, badRequests, notFound, unavailable    atomic.Uint64
	bytes                                           atomic.Uint64
}

// Stats returns the stream's counters.
func (s *Stream) Stats() Stats {
	c := &s.stats
	return Stats{
		Segments:        c.segments.Load(),
		Parts:           c.parts.Load(),
		GapSegments:     c.gaps.Load(),
		Discontinuities: c.discontinuities.Load(),
		DroppedSamples:  c.dropped.Load(),
		Blocked:         c.blocked.Load(),
		Requests:        c.requests.Load(),
		BadRequests:     c.badRequests.Load(),
		NotFound:        c.notFound.Load(),
		Unavailable:     c.unavailable.Load(),
		BytesServed:     c.bytes.Load(),
	}
}
