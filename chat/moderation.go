package chat

import (
	"maps"
	"sync"
	"time"
)

// sanctions is a room hub's copy of the room's moderation state: loaded from
// the store when the hub starts, then kept current from the moderation
// events of the room's feed, so bans and mutes issued on any node apply here.
type sanctions struct {
	mu     sync.RWMutex
	muted  map[string]int64 // identity → end (Unix ms, 0 never); guarded by mu
	banned map[string]int64 // guarded by mu
	slow   int              // slow-mode seconds; guarded by mu
	anon   *bool            // the room's anonymous-reading setting, nil for the default; guarded by mu
}

func newSanctions(m Moderation) *sanctions {
	s := &sanctions{muted: map[string]int64{}, banned: map[string]int64{}, slow: m.SlowMode, anon: m.AnonymousRead}
	maps.Copy(s.muted, m.Muted)
	maps.Copy(s.banned, m.Banned)
	return s
}

// apply records a sanction from the log.
func (s *sanctions) apply(sn *Sanction) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch sn.Kind {
	case Mute:
		s.muted[sn.Identity] = sn.Until
	case Unmute:
		delete(s.muted, sn.Identity)
	case Ban:
		s.banned[sn.Identity] = sn.Until
	case Unban:
		delete(s.banned, sn.Identity)
	case SlowMode:
		s.slow = sn.Seconds
	case AnonymousRead:
		if sn.Allow != nil {
			allow := *sn.Allow
			s.anon = &allow
		}
	}
}

// anonymousRead reports whether clients without a token may read the room:
// the room's own setting, else def (the server's).
func (s *sanctions) anonymousRead(def bool) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.anon != nil {
		return *s.anon
	}
	return def
}

func (s *sanctions) isMuted(identity string, now time.Time) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return active(s.muted, identity, now)
}

func (s *sanctions) isBanned(identity string, now time.Time) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return active(s.banned, identity, now)
}

// slowMode is the room's slow-mode interval; 0 is off.
func (s *sanctions) slowMode() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.slow
}

// active reports whether identity's sanction in m holds at now.
func active(m map[string]int64, identity string, now time.Time) bool {
	until, ok := m[identity]
	return ok && (until == 0 || now.UnixMilli() < until)
}
