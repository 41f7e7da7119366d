// Package sfu forwards published media to subscribers: rooms, participants,
// published tracks with their simulcast layers, and per-subscriber DownTracks
// that choose a layer, rewrite sequence numbers and timestamps so switches are
// seamless, answer NACKs from a packet cache and throttle keyframe requests.
//
// Data flows one way: a publisher's RTP enters a Track through AddLayer, and
// leaves through the DownTracks attached with Track.Subscribe. The package
// knows nothing of HTTP, websockets or how sessions are signalled.
package sfu

import (
	"log/slog"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// Settings tune the SFU.
type Settings struct {
	// PLIInterval is the least time between keyframe requests to a
	// publisher for one layer.
	PLIInterval time.Duration
	// MaxSubscribersPerTrack caps a track's subscribers; 0 means no cap.
	MaxSubscribersPerTrack int
	// FanoutWorkers is how many extra goroutines help each track write to
	// many subscribers; -1 picks GOMAXPROCS-1.
	FanoutWorkers int
	Logger        *slog.Logger
	// OnEvent, when set, is told of every room, participant and track that
	// starts or ends. It is called synchronously, without the SFU's locks
	// held, and must not block.
	OnEvent func(Event)
}

// Stats are process-wide counters, indexed [kind][layer] where split; kind 0
// is audio and 1 video.
type Stats struct {
	PacketsIn, BytesIn   [2][MaxLayers]atomic.Uint64
	PacketsOut, BytesOut [2][MaxLayers]atomic.Uint64
	NACKs                atomic.Uint64
	Retransmits          atomic.Uint64
	PLIs                 atomic.Uint64
	KeyframeWaits        atomic.Uint64
	CachedStarts         atomic.Uint64
	Subscriptions        atomic.Int64
	// Layer switches made, by direction; video pauses for lack of
	// bandwidth and their total length (ended pauses); bandwidth probes
	// started and failed.
	LayerUps, LayerDowns atomic.Uint64
	Pauses               atomic.Uint64
	PausedNanos          atomic.Uint64
	Probes, ProbesFailed atomic.Uint64
}

func (s *Stats) kindIndex(k webrtc.RTPCodecType) int {
	if k == webrtc.RTPCodecTypeAudio {
		return 0
	}
	return 1
}

// SFU holds the rooms of one node.
type SFU struct {
	settings Settings
	stats    Stats
	log      *slog.Logger

	mu          sync.Mutex
	rooms       map[string]*Room
	subscribers map[*Subscriber]struct{}
}

// New returns an SFU with no rooms.
func New(s Settings) *SFU {
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.PLIInterval <= 0 {
		s.PLIInterval = 500 * time.Millisecond
	}
	if s.FanoutWorkers < 0 {
		s.FanoutWorkers = runtime.GOMAXPROCS(0) - 1
	}
	return &SFU{settings: s, log: s.Logger, rooms: map[string]*Room{}, subscribers: map[*Subscriber]struct{}{}}
}

// Stats returns the live counters.
func (s *SFU) Stats() *Stats { return &s.stats }

// Room returns the named room, creating it if needed.
func (s *SFU) Room(name string) *Room {
	s.mu.Lock()
	r, ok := s.rooms[name]
	if !ok {
		r = &Room{name: name, sid: newSID("RM_"), sfu: s, created: time.Now(), participants: map[string]*Participant{}}
		s.rooms[name] = r
		s.log.Info("room started", "room", name)
	}
	s.mu.Unlock()
	if !ok {
		s.emit(RoomStarted, r, nil, nil)
	}
	return r
}

// LookupRoom returns the named room if it exists.
func (s *SFU) LookupRoom(name string) (*Room, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.rooms[name]
	return r, ok
}

// Rooms lists the rooms, by name.
func (s *SFU) Rooms() []*Room {
	s.mu.Lock()
	rs := make([]*Room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rs = append(rs, r)
	}
	s.mu.Unlock()
	sort.Slice(rs, func(i, j int) bool { return rs[i].name < rs[j].name })
	return rs
}

// removeIfEmpty drops r once its last participant has left.
func (s *SFU) removeIfEmpty(r *Room) {
	s.mu.Lock()
	r.mu.Lock()
	empty := len(r.participants) == 0
	r.mu.Unlock()
	finished := empty && s.rooms[r.name] == r
	if finished {
		delete(s.rooms, r.name)
		s.log.Info("room finished", "room", r.name)
	}
	s.mu.Unlock()
	if finished {
		s.emit(RoomFinished, r, nil, nil)
	}
}
