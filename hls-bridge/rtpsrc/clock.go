package rtpsrc

import "time"

// unwrapper extends 32-bit RTP timestamps to 64 bits against the newest one
// seen, so that wraparound and reordered packets both come out right.
type unwrapper struct {
	started bool
	newest  int64
}

// extend unwraps ts and remembers it if it is the newest.
func (u *unwrapper) extend(ts uint32) int64 {
	v := u.value(ts)
	if !u.started || v > u.newest {
		u.started, u.newest = true, v
	}
	return v
}

// value unwraps ts without remembering it.
func (u *unwrapper) value(ts uint32) int64 {
	if !u.started {
		return int64(ts)
	}
	return u.newest + int64(int32(ts-uint32(u.newest)))
}

// rtpNanos converts an unwrapped RTP timestamp to nanoseconds of the track's
// clock, without overflowing for any timestamp a stream reaches.
func rtpNanos(ext, rate int64) int64 {
	return ext/rate*1e9 + ext%rate*1e9/rate
}

// Thresholds of trackClock.
const (
	// discontinuity is how far timestamps may go back, or packets arrive
	// early, before the track's mapping starts over: a sender restart.
	discontinuity = int64(time.Second)
	// srAgree is how close two successive Sender Reports must be for their
	// mapping to be trusted.
	srAgree = int64(50 * time.Millisecond)
	// srRebase is how far a Sender Report may move the trusted mapping and
	// still be smoothed in; one further off counts only if the next agrees.
	srRebase = int64(200 * time.Millisecond)
)

// trackClock maps one track's RTP timestamps to local wall-clock time, by
// arrival and, once the sender reports it, by the sender's NTP clock.
type trackClock struct {
	rate int64
	ts   unwrapper
	// arrOff is the least (arrival − RTP time) seen, in ns: local time =
	// rtpNanos + arrOff is the mapping of the least-delayed packet.
	arrOff int64
	arrSet bool
	// srOff is the trusted (sender NTP time − RTP time) from the Sender
	// Reports, in ns, smoothed; srLast is that of the last report.
	srOff   int64
	srSet   bool
	srLast  int64
	hasLast bool
}

// synced reports whether both mappings are known.
func (c *trackClock) synced() bool { return c.arrSet && c.srSet }

// restart forgets everything: a new stream.
func (c *trackClock) restart() { *c = trackClock{rate: c.rate} }

// observe learns from a packet with RTP timestamp ts that arrived at unix
// ns at.
func (c *trackClock) observe(ts uint32, at int64) {
	if c.ts.started && c.ts.value(ts) < c.ts.newest-c.rate*discontinuity/int64(time.Second) {
		// Timestamps went back by more than reordering explains.
		c.restart()
	}
	off := at - rtpNanos(c.ts.extend(ts), c.rate)
	switch {
	case !c.arrSet:
		c.arrOff, c.arrSet = off, true
	case off < c.arrOff-discontinuity:
		// Timestamps jumped ahead of the wall clock: the Sender Report
		// mapping, if any, is stale until reports agree again.
		c.arrOff, c.srSet, c.hasLast = off, false, false
	case off < c.arrOff:
		c.arrOff = off
	}
}

// senderReport learns from an SR pairing RTP timestamp rtpTime with the
// sender's clock at ntp (unix ns). A mapping is trusted once two successive
// reports agree: an SFU that builds its reports from send times gives one
// wild report while it replays cached frames to a new viewer. A report near
// the trusted mapping is smoothed in (a quarter of the difference). It
// reports whether the trusted mapping was set anew.
func (c *trackClock) senderReport(rtpTime uint32, ntp int64) (rebased bool) {
	off := ntp - rtpNanos(c.ts.value(rtpTime), c.rate)
	last, hasLast := c.srLast, c.hasLast
	c.srLast, c.hasLast = off, true
	switch {
	case c.srSet && abs(off-c.srOff) <= srRebase:
		c.srOff += (off - c.srOff) / 4
	case hasLast && abs(off-last) <= srAgree:
		c.srOff, c.srSet = off, true
		return true
	}
	return false
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// ntpEpochOffset is the number of seconds from 1900 (NTP) to 1970 (Unix).
const ntpEpochOffset = 2208988800

// ntpToUnixNano converts a 64-bit NTP timestamp to unix ns. Seconds below
// the 1970 offset are taken to be in NTP era 1 (from 2036).
func ntpToUnixNano(ntp uint64) int64 {
	sec := int64(ntp >> 32)
	if sec < ntpEpochOffset {
		sec += 1 << 32
	}
	frac := int64((ntp & 0xffffffff) * 1e9 >> 32)
	return (sec-ntpEpochOffset)*1e9 + frac
}
