package sfu

import "time"

// lossSelector decides the highest simulcast layer a subscriber should get
// from the loss it reports: start at the top, step down when loss is high,
// step back up after a clean period that doubles each time an attempt fails.
// It is the policy; DownTrack is the mechanism that applies it.
type lossSelector struct {
	level      int
	init       bool
	lastChange int64
	lastUp     int64
	cleanSince int64
	upWait     time.Duration
}

const (
	lossStepDown   = 26 // fraction lost (of 256) above which to step down: ~10%
	lossClean      = 5  // at or below this (~2%) the path is clean
	settleTime     = 2 * time.Second
	firstUpWait    = 8 * time.Second
	maxUpWait      = 60 * time.Second
	failedUpWindow = 10 * time.Second
)

func (s *lossSelector) start(now int64) {
	if !s.init {
		s.init, s.level, s.upWait, s.lastChange = true, MaxLayers-1, firstUpWait, now
	}
}

// onReport takes one receiver report's fraction lost.
func (s *lossSelector) onReport(fractionLost uint8, now int64) {
	s.start(now)
	switch {
	case fractionLost > lossStepDown:
		s.cleanSince = 0
		if s.level > 0 && now-s.lastChange > int64(settleTime) {
			if now-s.lastUp < int64(failedUpWindow) {
				s.upWait = min(2*s.upWait, maxUpWait)
			}
			s.level--
			s.lastChange = now
		}
	case fractionLost <= lossClean:
		if s.cleanSince == 0 {
			s.cleanSince = now
		}
	default:
		s.cleanSince = 0
	}
}

// desired returns the highest layer allowed now, stepping up once the path
// has been clean long enough.
func (s *lossSelector) desired(now int64) int {
	s.start(now)
	if s.level < MaxLayers-1 && s.cleanSince != 0 &&
		now-s.cleanSince > int64(s.upWait) && now-s.lastChange > int64(s.upWait) {
		s.level++
		s.lastChange, s.lastUp, s.cleanSince = now, now, now
	}
	return s.level
}
