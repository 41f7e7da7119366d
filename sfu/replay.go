package sfu

import (
	"time"

	"github.com/pion/rtp"
)

// A new subscriber starts on the newest keyframe cached for its layer, so it
// shows a picture at once instead of waiting for the publisher's next
// keyframe (OBS and ffmpeg may ignore keyframe requests, with GOPs of
// seconds). The frames between that keyframe and now are sent with
// timestamps packed just before the live edge, so the receiver decodes
// through them at once rather than playing them late. The run is paced, a
// few times faster than the layer's own rate, so a join does not burst a
// whole GOP into the viewer's path; the replay reads on from the cache until
// it meets the live edge, then hands over to the live path.
type replay struct {
	l      *layer
	next   uint16 // next source sequence number to send
	last   uint16 // last packet of the snapshot whose timestamps are packed
	frames int    // frames in the snapshot
	frame  int    // index of the current frame within the snapshot
	prevTs uint32
	lastTs uint32  // source timestamp of the snapshot's last frame
	rate   float64 // packets per millisecond
	credit float64 // packets due
	lastAt int64
	// deadline is when the replay must have met the live edge: from then
	// on, what the cache holds is sent at once.
	deadline int64
}

// replayPace is how fast a replay runs, relative to the layer's own rate.
// A replay meets the live edge within catchUp (a run spanning s seconds at
// speed v meets it after s/(v-1)), so a long run goes faster than speed; one
// that would need more than most is not replayed, and the subscriber waits
// for the keyframe it asks for. Otherwise it would see the layer late for as
// long as the catch-up took, and no probe padding could go out meanwhile:
// Chromium sends keyframes only when asked, so a lower layer's run can span
// most of the packet cache, a minute at 180p, which at 1.2× took five.
type replayPace struct {
	speed, most float64
	catchUp     time.Duration
}

var (
	// A join may burst: it runs at 3×, up to 6× to catch up within a
	// second, so runs of up to 5 s are replayed.
	joinPace = replayPace{speed: 3, most: 6, catchUp: time.Second}
	// A switch down happens because the path is congested: it runs little
	// faster than the layer, so the path's queue does not grow and drop
	// it, and only runs that catch up within 5 s at that (1 s) are replayed.
	switchPace = replayPace{speed: 1.2, most: 1.2, catchUp: 5 * time.Second}
)

// prepareReplay makes the cached run current and returns the replay to run,
// or nil when no whole run is cached or the run is too long to replay at
// pace. Caller holds mu.
//
// Mid-stream it is how a subscriber moves down at once, when its path no
// longer carries the layer it gets: waiting for the lower layer's next
// keyframe, up to a keyframe interval, would keep the path congested with
// the old layer and the picture frozen. Then the run's newest frame keeps
// the timing of the live stream, and the cached frames before it are
// packed just behind it, after everything already sent.
func (d *DownTrack) prepareReplay(idx int, now int64, pace replayPace) *replay {
	if idx < 0 || (d.replaying && !d.rw.started) {
		return nil
	}
	l := d.track.layers[idx].Load()
	if l == nil {
		return nil
	}
	first, last, ok := l.cache.keyframeRun()
	if !ok {
		return nil
	}
	r := &replay{l: l, next: first, last: last, frame: -1, credit: 1, lastAt: now}
	var firstTs uint32
	for s := first; ; s++ {
		n := l.cache.get(s, d.scratch[:])
		if n < 12 {
			return nil // evicted meanwhile
		}
		ts := uint32(d.scratch[4])<<24 | uint32(d.scratch[5])<<16 | uint32(d.scratch[6])<<8 | uint32(d.scratch[7])
		if r.frames == 0 {
			firstTs = ts
		}
		if r.frames == 0 || ts != r.lastTs {
			r.frames++
			r.lastTs = ts
		}
		if s == last {
			break
		}
	}
	packets := int(last-first) + 1
	span := float64(r.lastTs-firstTs) / float64(d.track.info.Codec.ClockRate)
	speed := max(pace.speed, 1+span/pace.catchUp.Seconds())
	if speed > pace.most+1e-9 {
		d.log.Debug("cached run too long to replay", "layer", LayerName(idx), "span", span, "frames", r.frames)
		return nil
	}
	r.rate = float64(packets) // all in the first millisecond when the run has no span
	r.deadline = now
	if span > 0 {
		r.rate = speed * float64(packets) / span / 1000
		r.deadline = now + int64(span/(speed-1)*float64(time.Second))
	}
	from := d.current
	if !d.rw.started {
		d.rw.switchTo(first, firstTs, now)
		d.track.stats.CachedStarts.Add(1)
	} else {
		prevTs := d.rw.lastTs
		d.rw.switchTo(first, r.lastTs, now)
		if gap := r.lastTs + d.rw.tsOffset - uint32(r.frames) - prevTs; gap == 0 || gap >= 0x80000000 {
			d.rw.tsOffset += uint32(r.frames) + 1 - gap // room to pack the run
		}
		if from >= 0 {
			d.switches.Add(1)
			d.track.stats.LayerDowns.Add(1)
		}
	}
	d.current, d.target = int8(idx), int8(idx)
	d.layerNow.Store(int32(idx))
	d.replaying, d.replayRun = true, r
	d.replayed = false
	return r
}

// replay sends the run, a tick at a time, until it reaches the live edge.
func (d *DownTrack) replay(r *replay) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		if done := d.replayTick(r); done {
			return
		}
		select {
		case <-tick.C:
		case <-d.track.done:
			return
		}
	}
}

// replayTick sends the packets due; it reports true once the replay has
// handed over to the live path or the DownTrack stopped.
func (d *DownTrack) replayTick(r *replay) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.replayRun != r {
		return true // replaced by a newer replay
	}
	if !d.running || !d.replaying {
		d.replaying, d.replayRun = false, nil
		return true
	}
	now := time.Now().UnixNano()
	r.credit += r.rate * float64(now-r.lastAt) / 1e6
	r.credit = max(r.credit, r.behind(now))
	r.lastAt = now
	due := int(r.credit)
	r.credit -= float64(due)
	var src rtp.Header
	for range due {
		n := r.l.cache.get(r.next, d.scratch[:])
		if n == 0 {
			if newest, ok := r.l.cache.newestSeq(); ok && seqNewer(newest, r.next) {
				r.next++ // lost upstream; the receiver's NACK goes unanswered
				continue
			}
			// Caught up: from here the live path forwards.
			d.replaying, d.replayRun = false, nil
			d.replayEnd, d.replayed = r.next-1, true
			return true
		}
		hl, err := src.Unmarshal(d.scratch[:n])
		if err != nil {
			r.next++
			continue
		}
		end := n
		if src.Padding && n > hl {
			end -= int(d.scratch[n-1])
		}
		seq, ts, _ := d.rw.rewrite(r.next, src.Timestamp, now)
		if r.next == r.last || seqNewer(r.last, r.next) {
			if r.frame < 0 || src.Timestamp != r.prevTs {
				r.frame++
				r.prevTs = src.Timestamp
			}
			ts = r.lastTs + d.rw.tsOffset - uint32(r.frames-1-r.frame)
		}
		d.sent.record(seq, int8(r.l.index), r.next, ts-src.Timestamp, now)
		if end > hl {
			d.send(&src, d.scratch[hl:end], seq, ts)
			d.packets.Add(1)
		}
		r.next++
	}
	return false
}

// behind is how many packets must go now for the replay to meet the live
// edge by its deadline, when the layer's live rate outgrew the run's (as
// when a publisher's encoder ramps up after a keyframe).
func (r *replay) behind(now int64) float64 {
	newest, ok := r.l.cache.newestSeq()
	if !ok || seqNewer(r.next, newest) {
		return 0
	}
	left := float64(uint16(newest-r.next)) + 1
	if now >= r.deadline {
		return left
	}
	return left * float64(now-r.lastAt) / float64(r.deadline-r.lastAt)
}
