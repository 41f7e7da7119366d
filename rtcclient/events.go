package rtcclient

import (
	"context"
	"sync"
	"sync/atomic"
)

// dispatcher runs the user's callbacks one at a time, in the order they were
// posted, on its own goroutine, so that no callback runs under one of the
// client's locks or blocks the signal read loop.
type dispatcher struct {
	mu      sync.Mutex
	queue   []func()
	stopped bool // guarded by mu; nothing posted after stop runs
	wake    chan struct{}
	done    chan struct{}
	// running counts callbacks in progress, so that a Close called from
	// inside one does not wait for the dispatcher that is running it.
	running atomic.Int32
}

func newDispatcher() *dispatcher {
	d := &dispatcher{wake: make(chan struct{}, 1), done: make(chan struct{})}
	go d.run()
	return d
}

// post queues f; it is dropped once the dispatcher is stopped.
func (d *dispatcher) post(f func()) {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	d.queue = append(d.queue, f)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *dispatcher) run() {
	defer close(d.done)
	for range d.wake {
		for {
			d.mu.Lock()
			if d.stopped || len(d.queue) == 0 {
				stopped := d.stopped
				d.mu.Unlock()
				if stopped {
					return
				}
				break
			}
			f := d.queue[0]
			d.queue[0] = nil
			d.queue = d.queue[1:]
			d.mu.Unlock()
			d.running.Add(1)
			f()
			d.running.Add(-1)
		}
	}
}

// stop drops what is still queued and ends the goroutine after the callback
// in progress, if any. It waits for that unless called from a callback.
func (d *dispatcher) stop() {
	d.mu.Lock()
	d.stopped = true
	d.queue = nil
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
	if d.running.Load() == 0 {
		<-d.done
	}
}

// notifier wakes everyone waiting for some state to change; waiters re-check
// their condition after each wake-up.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

// changed returns a channel that is closed at the next notify.
func (n *notifier) changed() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
	n.mu.Unlock()
}

// waitFor blocks until cond holds, re-checking it whenever n notifies, or
// until ctx is done.
func (n *notifier) waitFor(ctx context.Context, cond func() bool) error {
	for {
		ch := n.changed()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
