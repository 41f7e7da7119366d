package hlsbridge

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"

	"github.com/starling-sfu/starling/hls-bridge/llhls"
)

// launch is a ladder's stream on its way to serving: requests wait until
// it serves, or learn why it never will. A ladder embeds it and guards its
// own state with mu too.
type launch struct {
	mu     sync.Mutex
	stream *llhls.Stream
	ready  chan struct{} // closed once stream is set, or on failure
	err    error
	closed bool
}

func newLaunch() launch { return launch{ready: make(chan struct{})} }

// serving sets the stream. Caller holds mu.
func (l *launch) serving(st *llhls.Stream) {
	l.stream = st
	close(l.ready)
}

// fail records why the ladder cannot serve. Caller holds mu.
func (l *launch) fail(err error, log *slog.Logger) {
	if l.err != nil {
		return
	}
	l.err = err
	log.Error("hls ladder failed", "err", err)
	close(l.ready)
}

// end marks the ladder closed and returns its stream (nil if it never
// started), or false if it was closed already. Caller holds mu.
func (l *launch) end() (*llhls.Stream, bool) {
	if l.closed {
		return nil, false
	}
	l.closed = true
	if l.stream == nil && l.err == nil {
		l.err = errors.New("the stream ended before it started")
		close(l.ready)
	}
	return l.stream, true
}

// wait returns the stream once it serves, or why it never will.
func (l *launch) wait(ctx context.Context) (*llhls.Stream, error) {
	select {
	case <-l.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return nil, l.err
	}
	return l.stream, nil
}

func (l *launch) serve(w http.ResponseWriter, r *http.Request, ctx context.Context) {
	st, err := l.wait(ctx)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "the HLS stream is not available: "+err.Error())
		return
	}
	st.ServeHTTP(w, r)
}
