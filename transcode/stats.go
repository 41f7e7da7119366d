package transcode

import (
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a Session's counters, ready to export as metrics.
// Counters only grow.
type Stats struct {
	Backend Backend
	// VideoFramesIn and AudioFramesIn count frames passed to WriteVideo and
	// WriteAudio.
	VideoFramesIn uint64
	AudioFramesIn uint64
	// VideoFramesDropped and AudioFramesDropped count frames that never
	// reached ffmpeg: the queue was full, video waited for a keyframe
	// (after a drop, at start, after a restart), or a timestamp was out of
	// order.
	VideoFramesDropped uint64
	AudioFramesDropped uint64
	// KeyframeRequests counts calls to Input.RequestKeyframe.
	KeyframeRequests uint64
	// SamplesOut counts video access units per rendition, in the order of
	// Renditions(); AudioSamplesOut counts AAC access units.
	SamplesOut      []uint64
	AudioSamplesOut uint64
	// Restarts counts ffmpeg processes started after the first.
	Restarts uint64
	// CPU is the user+system CPU time of this session's ffmpeg processes.
	CPU time.Duration
	// LastError is ffmpeg's last error line or exit status; empty if none.
	LastError string
}

// counters are the live values behind Stats.
type counters struct {
	videoIn, audioIn, keyRequests atomic.Uint64
	videoDropped, audioDropped    atomic.Uint64
	samplesOut                    []atomic.Uint64
	audioOut, restarts            atomic.Uint64
	cpuDone                       atomic.Int64 // ns, exited processes
	lastError                     atomic.Pointer[string]
}

func (c *counters) setError(msg string) { c.lastError.Store(&msg) }

// drop counts a frame that will not reach ffmpeg.
func (c *counters) drop(audio bool) {
	if audio {
		c.audioDropped.Add(1)
	} else {
		c.videoDropped.Add(1)
	}
}

func (c *counters) snapshot(b Backend, pid int) Stats {
	st := Stats{
		Backend:            b,
		VideoFramesIn:      c.videoIn.Load(),
		AudioFramesIn:      c.audioIn.Load(),
		VideoFramesDropped: c.videoDropped.Load(),
		AudioFramesDropped: c.audioDropped.Load(),
		KeyframeRequests:   c.keyRequests.Load(),
		SamplesOut:         make([]uint64, len(c.samplesOut)),
		AudioSamplesOut:    c.audioOut.Load(),
		Restarts:           c.restarts.Load(),
		CPU:                time.Duration(c.cpuDone.Load()),
	}
	for i := range c.samplesOut {
		st.SamplesOut[i] = c.samplesOut[i].Load()
	}
	if pid > 0 {
		st.CPU += processCPU(pid)
	}
	if e := c.lastError.Load(); e != nil {
		st.LastError = *e
	}
	return st
}
