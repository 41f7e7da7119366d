package chat

import (
	"sync"
	"time"
)

// Rate limits per identity on this node: a token bucket (Options.Rate,
// Options.Burst), flood detection over the bucket's refusals, and the room's
// slow-mode interval.

const (
	// floodWindow and floodFactor: floodFactor×burst refusals within
	// floodWindow close the connection with 4029.
	floodWindow = 10 * time.Second
	floodFactor = 10
	// limiterIdle is how long an identity's limiter outlives its last use,
	// so that reconnecting does not refill the bucket.
	limiterIdle = time.Minute
)

// limiters holds one room's identities' limiters.
type limiters struct {
	rate  float64
	burst int

	mu   sync.Mutex
	byID map[string]*limiter // guarded by mu
}

func newLimiters(rate float64, burst int) *limiters {
	return &limiters{rate: rate, burst: burst, byID: make(map[string]*limiter)}
}

// get returns identity's limiter, making a full one if it has none.
func (ls *limiters) get(identity string, now time.Time) *limiter {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.byID[identity]
	if l == nil {
		l = &limiter{rate: ls.rate, burst: float64(ls.burst), tokens: float64(ls.burst), at: now, used: now}
		ls.byID[identity] = l
	}
	return l
}

// sweep forgets limiters unused since before now-limiterIdle.
func (ls *limiters) sweep(now time.Time) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for id, l := range ls.byID {
		l.mu.Lock()
		idle := now.Sub(l.used) > limiterIdle
		l.mu.Unlock()
		if idle {
			delete(ls.byID, id)
		}
	}
}

// limiter is one identity's token bucket, refusal history and slow-mode
// clock.
type limiter struct {
	rate, burst float64

	mu       sync.Mutex
	tokens   float64   // guarded by mu
	at       time.Time // when tokens was last brought up to date; guarded by mu
	used     time.Time // guarded by mu
	lastSent time.Time // the last message logged, for slow mode; guarded by mu
	refused  []int64   // ring of the latest refusals (Unix ns); guarded by mu
	next     int       // where refused is written next; guarded by mu
}

// take spends one token. When the bucket is empty it returns how long until
// a token is back, and whether the identity is flooding.
func (l *limiter) take(now time.Time) (wait time.Duration, flooding bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.used = now
	if dt := now.Sub(l.at).Seconds(); dt > 0 {
		l.tokens = min(l.burst, l.tokens+dt*l.rate)
		l.at = now
	}
	if l.tokens >= 1 {
		l.tokens--
		return 0, false
	}
	wait = time.Duration((1 - l.tokens) / l.rate * float64(time.Second))
	return max(wait, time.Millisecond), l.refuse(now)
}

// refuse records a refusal and reports whether floodFactor×burst of them
// fell within floodWindow.
func (l *limiter) refuse(now time.Time) bool {
	if l.refused == nil {
		l.refused = make([]int64, max(1, int(l.burst)*floodFactor))
	}
	l.refused[l.next] = now.UnixNano()
	l.next = (l.next + 1) % len(l.refused)
	oldest := l.refused[l.next] // the ring is full once this is set
	return oldest != 0 && now.UnixNano()-oldest <= int64(floodWindow)
}

// slowWait is how long the identity must still wait before its next message
// under a slow-mode interval; 0 when it may send.
func (l *limiter) slowWait(now time.Time, interval time.Duration) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if interval <= 0 || l.lastSent.IsZero() {
		return 0
	}
	if d := interval - now.Sub(l.lastSent); d > 0 {
		return d
	}
	return 0
}

// sent records that a message was logged at now.
func (l *limiter) sent(now time.Time) {
	l.mu.Lock()
	l.lastSent = now
	l.mu.Unlock()
}
