package rtcclient

import (
	"sort"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/proto"
)

// JoinResponse returns the server's join response.
func (c *Client) JoinResponse() *livekit.JoinResponse {
	c.mu.Lock()
	defer c.mu.Unlock()
	return proto.Clone(c.join).(*livekit.JoinResponse)
}

// LocalParticipant returns the latest info the server gave about this
// participant.
func (c *Client) LocalParticipant() *livekit.ParticipantInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return proto.Clone(c.local).(*livekit.ParticipantInfo)
}

// SID returns this participant's SID.
func (c *Client) SID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.local.GetSid()
}

// Identity returns this participant's identity.
func (c *Client) Identity() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.local.GetIdentity()
}

// Room returns the room as of the join response or the latest room_update.
func (c *Client) Room() *livekit.Room {
	c.mu.Lock()
	defer c.mu.Unlock()
	return proto.Clone(c.room).(*livekit.Room)
}

// Participants returns the other participants in the room, by SID.
func (c *Client) Participants() map[string]*livekit.ParticipantInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]*livekit.ParticipantInfo, len(c.participants))
	for sid, p := range c.participants {
		out[sid] = proto.Clone(p).(*livekit.ParticipantInfo)
	}
	return out
}

// Participant returns the other participant with identity, if present.
func (c *Client) Participant(identity string) (*livekit.ParticipantInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.participants {
		if p.GetIdentity() == identity {
			return proto.Clone(p).(*livekit.ParticipantInfo), true
		}
	}
	return nil, false
}

// Token returns the newest token: the one joined with or the latest
// refresh_token. Resume uses it.
func (c *Client) Token() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

// RTT returns the signal round trip measured by the latest pong_resp, or 0.
func (c *Client) RTT() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rtt
}

// PublisherPC returns the publisher peer connection, for stats.
func (c *Client) PublisherPC() *webrtc.PeerConnection { return c.pub.pc }

// SubscriberPC returns the subscriber peer connection, for stats.
func (c *Client) SubscriberPC() *webrtc.PeerConnection { return c.sub.pc }

// Speakers returns the active speakers, loudest first.
func (c *Client) Speakers() []*livekit.SpeakerInfo {
	c.mu.Lock()
	out := make([]*livekit.SpeakerInfo, 0, len(c.speakers))
	for _, s := range c.speakers {
		out = append(out, s)
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].GetLevel() > out[j].GetLevel() })
	return out
}

// SubscribedQuality returns the latest subscribed_quality_update for one of
// our tracks, or nil.
func (c *Client) SubscribedQuality(trackSID string) *livekit.SubscribedQualityUpdate {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.qualities[trackSID]
}

// ConnectionQuality returns the latest connection quality the server
// reported for a participant (this one included), or nil.
func (c *Client) ConnectionQuality(participantSID string) *livekit.ConnectionQualityInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connQuality[participantSID]
}
