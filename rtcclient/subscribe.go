package rtcclient

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// RemoteTrack is a track received on the subscriber connection, with the
// counters of what arrived. The client reads it; do not call Read on Track.
type RemoteTrack struct {
	Track               *webrtc.TrackRemote
	Receiver            *webrtc.RTPReceiver
	ParticipantSID      string
	ParticipantIdentity string
	TrackSID            string

	packets, bytes atomic.Uint64
	last           atomic.Int64 // unix nanoseconds of the newest packet
	ended          chan struct{}
}

// TrackStats are a remote track's counters.
type TrackStats struct {
	Packets, Bytes uint64 // Bytes counts whole RTP packets
	LastPacket     time.Time
}

// Stats returns the track's counters.
func (t *RemoteTrack) Stats() TrackStats {
	s := TrackStats{Packets: t.packets.Load(), Bytes: t.bytes.Load()}
	if ns := t.last.Load(); ns != 0 {
		s.LastPacket = time.Unix(0, ns)
	}
	return s
}

// Kind returns audio or video.
func (t *RemoteTrack) Kind() webrtc.RTPCodecType { return t.Track.Kind() }

// Ended is closed when the track stops: unsubscribed, or the connection
// closed.
func (t *RemoteTrack) Ended() <-chan struct{} { return t.ended }

// ParseStreamID splits a subscriber msid stream id, "PA_xxx|TR_xxx", into
// the publisher's participant SID and the rest, as livekit-client's
// unpackStreamId does; an id without "|" is all participant SID.
func ParseStreamID(id string) (participantSID, trackID string) {
	p, t, _ := strings.Cut(id, "|")
	return p, t
}

// trackSID finds a received track's SID as Room.onTrackAdded does: the
// stream id's second half or the track id when they start with "TR", else
// the mid_to_track_id the offer carried.
func (c *Client) trackSID(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver, fromStream string) string {
	if strings.HasPrefix(fromStream, "TR") {
		return fromStream
	}
	if strings.HasPrefix(tr.ID(), "TR") {
		return tr.ID()
	}
	for _, x := range c.sub.pc.GetTransceivers() {
		if x.Receiver() == recv {
			c.mu.Lock()
			sid := c.midToTrack[x.Mid()]
			c.mu.Unlock()
			if sid != "" {
				return sid
			}
		}
	}
	return tr.ID()
}

func (c *Client) onRemoteTrack(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	pSID, rest := ParseStreamID(tr.StreamID())
	rt := &RemoteTrack{
		Track:          tr,
		Receiver:       recv,
		ParticipantSID: pSID,
		TrackSID:       c.trackSID(tr, recv, rest),
		ended:          make(chan struct{}),
	}
	c.mu.Lock()
	if p, ok := c.participants[pSID]; ok {
		rt.ParticipantIdentity = p.GetIdentity()
	} else {
		// Fall back to the participant whose track list has the track.
		for _, p := range c.participants {
			for _, ti := range p.GetTracks() {
				if ti.GetSid() == rt.TrackSID {
					rt.ParticipantSID, rt.ParticipantIdentity = p.GetSid(), p.GetIdentity()
				}
			}
		}
	}
	c.remoteTracks[rt.TrackSID] = rt
	// Posted under mu: see OnTrack.
	if f := c.handler().OnTrack; f != nil {
		c.events.post(func() { f(rt) })
	}
	c.mu.Unlock()
	if !c.goOwned(func() { c.readTrack(rt) }) {
		c.endTrack(rt)
	}
}

// readTrack reads the track until it ends, into one buffer, counting.
func (c *Client) readTrack(rt *RemoteTrack) {
	defer c.endTrack(rt)
	onRTP := c.handler().OnRTP
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, _, err := rt.Track.Read(buf)
		if err != nil {
			return
		}
		now := time.Now()
		rt.packets.Add(1)
		rt.bytes.Add(uint64(n))
		rt.last.Store(now.UnixNano())
		if onRTP != nil && pkt.Unmarshal(buf[:n]) == nil {
			onRTP(rt, &pkt, now)
		}
	}
}

func (c *Client) endTrack(rt *RemoteTrack) {
	close(rt.ended)
	c.mu.Lock()
	if c.remoteTracks[rt.TrackSID] == rt {
		delete(c.remoteTracks, rt.TrackSID)
	}
	c.mu.Unlock()
}

// RemoteTracks returns the tracks being received.
func (c *Client) RemoteTracks() []*RemoteTrack {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.remoteTracksLocked()
}

func (c *Client) remoteTracksLocked() []*RemoteTrack {
	out := make([]*RemoteTrack, 0, len(c.remoteTracks))
	for _, t := range c.remoteTracks {
		out = append(out, t)
	}
	return out
}

// RemoteTrack returns the received track with the SID, if any.
func (c *Client) RemoteTrack(trackSID string) (*RemoteTrack, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.remoteTracks[trackSID]
	return t, ok
}

// UpdateSubscription subscribes to or unsubscribes from tracks, naming
// their participants as livekit-client does when it knows them.
func (c *Client) UpdateSubscription(trackSIDs []string, subscribe bool) error {
	c.mu.Lock()
	byParticipant := map[string][]string{}
	for _, sid := range trackSIDs {
		c.desired[sid] = subscribe
		for _, p := range c.participants {
			for _, ti := range p.GetTracks() {
				if ti.GetSid() == sid {
					byParticipant[p.GetSid()] = append(byParticipant[p.GetSid()], sid)
				}
			}
		}
	}
	c.mu.Unlock()
	u := &livekit.UpdateSubscription{TrackSids: trackSIDs, Subscribe: subscribe}
	for p, sids := range byParticipant {
		u.ParticipantTracks = append(u.ParticipantTracks, &livekit.ParticipantTracks{ParticipantSid: p, TrackSids: sids})
	}
	return c.send(&livekit.SignalRequest{Message: &livekit.SignalRequest_Subscription{Subscription: u}})
}

// UpdateTrackSettings sends a subscriber's settings for one track: disabled
// (paused), and the size or quality it wants.
func (c *Client) UpdateTrackSettings(trackSID string, disabled bool, width, height uint32, quality livekit.VideoQuality) error {
	c.mu.Lock()
	if disabled {
		c.disabled[trackSID] = true
	} else {
		delete(c.disabled, trackSID)
	}
	c.mu.Unlock()
	return c.send(&livekit.SignalRequest{Message: &livekit.SignalRequest_TrackSetting{TrackSetting: &livekit.UpdateTrackSettings{
		TrackSids: []string{trackSID},
		Disabled:  disabled,
		Width:     width,
		Height:    height,
		Quality:   quality,
	}}})
}
