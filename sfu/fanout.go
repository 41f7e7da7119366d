package sfu

import (
	"sync"

	"github.com/pion/rtp"
)

// packet is one received RTP packet on its way to subscribers. hdr and
// payload belong to the reader and are valid only during forward.
type packet struct {
	layer    int8
	hdr      *rtp.Header
	payload  []byte
	keyStart bool
	at       int64
}

// parallelThreshold is the subscriber count above which a packet's writes are
// spread over worker goroutines instead of done inline by the reader.
const parallelThreshold = 24

// fanout delivers each packet to a track's subscribers, in parallel across a
// small fixed pool of workers when there are many. The reader waits for all
// writes of a packet before reading the next, so the packet needs no copy;
// writes themselves never block (UDP, or ICE-TCP with a dropping buffer).
type fanout struct {
	workers int
	jobs    chan fanJob
	stop    sync.WaitGroup // worker lifetimes
	once    sync.Once
}

type fanJob struct {
	subs []*DownTrack
	p    packet
	skip bool
	done *sync.WaitGroup // the dispatching reader's own
}

func newFanout(workers int) *fanout {
	f := &fanout{workers: workers}
	if workers > 0 {
		f.jobs = make(chan fanJob, workers)
		f.stop.Add(workers)
		for range workers {
			go f.work()
		}
	}
	return f
}

func (f *fanout) work() {
	defer f.stop.Done()
	for j := range f.jobs {
		j.run()
		j.done.Done()
	}
}

func (j *fanJob) run() {
	for _, d := range j.subs {
		if j.skip {
			d.skip(j.p.layer, j.p.hdr.SequenceNumber)
		} else {
			d.writeRTP(&j.p)
		}
	}
}

// forward writes p to subs. Each reader passes its own WaitGroup, since a
// track's layers are read concurrently.
func (f *fanout) forward(subs []*DownTrack, p packet, wg *sync.WaitGroup) {
	f.dispatch(fanJob{subs: subs, p: p, done: wg})
}

// skip tells subs that the packet p (padding only) will not be forwarded.
func (f *fanout) skip(subs []*DownTrack, p packet, wg *sync.WaitGroup) {
	f.dispatch(fanJob{subs: subs, p: p, skip: true, done: wg})
}

// dispatch splits subs into workers+1 chunks; the caller runs the last one.
func (f *fanout) dispatch(j fanJob) {
	n := len(j.subs)
	if f.workers == 0 || n < parallelThreshold {
		j.run()
		return
	}
	chunk := (n + f.workers) / (f.workers + 1)
	start := 0
	for w := 0; w < f.workers && start+chunk < n; w++ {
		part := j
		part.subs = j.subs[start : start+chunk]
		j.done.Add(1)
		f.jobs <- part
		start += chunk
	}
	own := j
	own.subs = j.subs[start:]
	own.run()
	j.done.Wait()
}

// close stops the workers; only after the track's readers have returned.
func (f *fanout) close() {
	f.once.Do(func() {
		if f.jobs != nil {
			close(f.jobs)
		}
		f.stop.Wait()
	})
}
