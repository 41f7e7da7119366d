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
	l       *layer
	next    uint16 // next source sequence number to send
	last    uint16 // last packet of the snapshot whose timestamps are packed
	frames  int    // frames in the snapshot
	frame   int    // index of the current frame within the snapshot
	prevTs  uint32
	lastTs  uint32 // source timestamp of the snapshot's last frame
	perTick int    // packets sent per millisecond
}

// replayRate is how much faster than the layer's own rate a replay runs.
const replayRate = 3

// prepareReplay makes the cached run current and returns the replay to run,
// or nil when no whole run is cached. Caller holds mu.
func (d *DownTrack) prepareReplay(idx int, now int64) *replay {
	if idx < 0 || d.rw.started {
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
	r := &replay{l: l, next: first, last: last, frame: -1}
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
	r.perTick = packets
	if span > 0 {
		r.perTick = max(1, int(replayRate*float64(packets)/span/1000+0.999))
	}
	d.rw.switchTo(first, firstTs, now)
	d.current = int8(idx)
	d.layerNow.Store(int32(idx))
	d.replaying = true
	d.track.stats.CachedStarts.Add(1)
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

// replayTick sends up to perTick packets; it reports true once the replay
// has handed over to the live path or the DownTrack stopped.
func (d *DownTrack) replayTick(r *replay) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.running || !d.replaying {
		d.replaying = false
		return true
	}
	now := time.Now().UnixNano()
	var src rtp.Header
	for range r.perTick {
		n := r.l.cache.get(r.next, d.scratch[:])
		if n == 0 {
			if newest, ok := r.l.cache.newestSeq(); ok && seqNewer(newest, r.next) {
				r.next++ // lost upstream; the receiver's NACK goes unanswered
				continue
			}
			// Caught up: from here the live path forwards.
			d.replaying = false
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
		d.sent.record(seq, int8(r.l.index), r.next, ts-src.Timestamp)
		if end > hl {
			d.send(&src, d.scratch[hl:end], seq, ts)
			d.packets.Add(1)
		}
		r.next++
	}
	return false
}
