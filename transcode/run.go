package transcode

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Restart policy: the delay after an unexpected exit starts at minBackoff
// and doubles up to maxBackoff; a process that ran stableRun resets it.
const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 8 * time.Second
	stableRun  = 30 * time.Second
	// stallTimeout kills an ffmpeg that takes input but has emitted
	// nothing for this long.
	stallTimeout = 10 * time.Second
)

// run is one ffmpeg process and the goroutines that serve it: the feeder
// on stdin, one reader per output and the stderr logger. The supervisor
// owns it.
type run struct {
	proc    *process
	started time.Time
	origin  time.Duration // the input PTS at ffmpeg's timestamp zero
	// lastIn and lastOut are the unix ns of the last frame written and the
	// last sample read, for the stall watchdog.
	lastIn, lastOut atomic.Int64
	exited          chan struct{} // closed when the process has been waited for
	waitErr         error         // set before exited is closed
	wg              sync.WaitGroup
}

// startRun starts ffmpeg for a stream that begins at first: a video
// keyframe, or, audio only, an audio frame.
func (s *Session) startRun(first queued) (*run, error) {
	nOut := len(s.cmd.renditions)
	if s.cmd.audio {
		nOut++
	}
	origin := runOrigin(first.PTS, s.cmd.keyframeInterval)
	args := s.cmd.args(time.Duration(toMS(first.PTS-origin)) * time.Millisecond)
	p, err := startProcess(context.Background(), s.t.path, args, nOut)
	if err != nil {
		return nil, err
	}
	r := &run{proc: p, started: time.Now(), origin: origin, exited: make(chan struct{})}
	s.pid.Store(int64(p.cmd.Process.Pid))
	s.log.Info("transcode: ffmpeg started", "pid", p.cmd.Process.Pid)
	s.log.Debug("transcode: ffmpeg command", "cmd", commandLine(s.t.path, args))

	r.wg.Add(2 + nOut)
	go func() {
		defer r.wg.Done()
		s.feed(r, first)
	}()
	go func() {
		defer r.wg.Done()
		newFFmpegLog(s.log, s.stats.setError).consume(p.stderr)
	}()
	for i, out := range p.outputs {
		rendition := i
		if i == len(s.cmd.renditions) {
			rendition = AudioRendition
		}
		o := &outputReader{
			rendition: rendition,
			origin:    r.origin,
			deliver:   func(smp Sample) { s.deliver(r, smp) },
			onError: func(err error) {
				s.log.Debug("transcode: bad MPEG-TS from ffmpeg", "rendition", rendition, "err", err)
			},
		}
		go func() {
			defer r.wg.Done()
			if err := o.run(out); err != nil {
				s.log.Error("transcode: read ffmpeg output", "rendition", rendition, "err", err)
			}
		}()
	}
	go func() {
		r.waitErr = p.cmd.Wait()
		close(r.exited)
	}()
	return r, nil
}

func (s *Session) deliver(r *run, smp Sample) {
	r.lastOut.Store(time.Now().UnixNano())
	if smp.Rendition == AudioRendition {
		s.stats.audioOut.Add(1)
	} else {
		s.stats.samplesOut[smp.Rendition].Add(1)
	}
	s.samples <- smp
}

// supervise runs ffmpeg from keyframe (audio only, from audio frame) to
// exit, again and again with backoff, until the session stops; then it
// closes s.samples.
func (s *Session) supervise(ctx context.Context) {
	defer close(s.samples)
	backoff := minBackoff
	for n := 0; ; n++ {
		first, ok := s.awaitStart(ctx, n > 0)
		if !ok {
			return
		}
		r, err := s.startRun(first)
		if err != nil {
			s.stats.setError(err.Error())
			s.log.Error("transcode: start ffmpeg", "err", err, "backoff", backoff)
		} else {
			if n > 0 {
				s.stats.restarts.Add(1)
			}
			s.waitRun(ctx, r)
			if s.stopping.Load() {
				return
			}
			if time.Since(r.started) >= stableRun {
				backoff = minBackoff
			}
			msg := "exit status 0"
			if r.waitErr != nil {
				msg = r.waitErr.Error()
			}
			s.stats.setError("ffmpeg: " + msg)
			s.log.Warn("transcode: ffmpeg exited unexpectedly; restarting", "err", msg,
				"ran", time.Since(r.started).Round(time.Millisecond), "backoff", backoff)
		}
		if !s.pause(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// awaitStart takes frames off the queue until one that can start a stream,
// dropping the rest. With video that is a video keyframe, and the source is
// asked for one, at once if ask is set; audio only, any audio frame. It
// returns false when the session stops.
func (s *Session) awaitStart(ctx context.Context, ask bool) (queued, bool) {
	video := s.cmd.video()
	if ask && video {
		s.lastKeyRequest.Store(0)
		s.requestKeyframe()
	}
	for {
		select {
		case q := <-s.queue:
			if !video || s.canStart(q) {
				return q, true
			}
			s.stats.drop(q.audio)
			if !q.audio {
				s.requestKeyframe()
			}
		case <-ctx.Done():
			s.initiateStop()
			return queued{}, false
		case <-s.stop:
			return queued{}, false
		}
	}
}

// canStart says whether q is a video keyframe that can start a stream.
func (s *Session) canStart(q queued) bool {
	return !q.audio && q.Key && (s.cmd.codec != "H264" || hasParameterSets(q.Data))
}

// pause waits d, discarding queued frames: the next run starts at a fresh
// keyframe, or audio frame. It returns false if the session stops meanwhile.
func (s *Session) pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case q := <-s.queue:
			s.stats.drop(q.audio)
		case <-t.C:
			return true
		case <-ctx.Done():
			s.initiateStop()
			return false
		case <-s.stop:
			return false
		}
	}
}

// waitRun returns when r's process has exited and its goroutines are done.
// On stop it gives ffmpeg StopGrace to finish before killing it; it also
// kills a process that stalls.
func (s *Session) waitRun(ctx context.Context, r *run) {
	ctxDone, stop := ctx.Done(), s.stop
	var grace <-chan time.Time
	watchdog := time.NewTicker(time.Second)
	defer watchdog.Stop()
	for {
		select {
		case <-r.exited:
			s.pid.Store(0)
			r.wg.Wait()
			r.proc.closeOutputs()
			if ps := r.proc.cmd.ProcessState; ps != nil {
				s.stats.cpuDone.Add(int64(ps.UserTime() + ps.SystemTime()))
			}
			return
		case <-ctxDone:
			ctxDone = nil
			s.initiateStop()
		case <-stop:
			stop = nil
			t := time.NewTimer(s.t.cfg.StopGrace)
			defer t.Stop()
			grace = t.C
		case <-grace:
			grace = nil
			s.log.Warn("transcode: ffmpeg did not stop in time; killing it")
			_ = r.proc.cmd.Process.Kill()
		case now := <-watchdog.C:
			if s.stalled(r, now) {
				s.stats.setError("ffmpeg stalled")
				s.log.Error("transcode: ffmpeg takes input but produces nothing; killing it", "for", stallTimeout)
				_ = r.proc.cmd.Process.Kill()
			}
		}
	}
}

func (s *Session) stalled(r *run, now time.Time) bool {
	// lastOut starts when the stream header is written.
	in, out := r.lastIn.Load(), r.lastOut.Load()
	if s.stopping.Load() || in == 0 || out == 0 {
		return false
	}
	return in-out > int64(stallTimeout) && now.UnixNano()-in < int64(time.Second)
}
