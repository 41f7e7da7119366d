package rtcclient

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/proto"
)

// The data channel labels of LiveKit's protocol.
const (
	ReliableLabel = "_reliable"
	LossyLabel    = "_lossy"
)

// dataOpenTimeout bounds how long SendData waits for the publisher's
// channel to open, as RTCEngine's peerConnectionTimeout does.
const dataOpenTimeout = 15 * time.Second

// dataChannels are the publisher's channels, which this client sends on,
// and the subscriber's the server may open, which it reads as well.
type dataChannels struct {
	opened notifier // on every channel opening

	mu          sync.Mutex
	pubReliable *webrtc.DataChannel
	pubLossy    *webrtc.DataChannel
	subReliable *webrtc.DataChannel
	subLossy    *webrtc.DataChannel
	seq         uint32            // last reliable sequence number sent
	received    map[string]uint32 // last reliable sequence received, by sender SID
}

// createDataChannels opens _lossy (unordered, no retransmission) and
// _reliable (ordered) on the publisher, as DataChannelManager does.
func (c *Client) createDataChannels(pc *webrtc.PeerConnection) error {
	unordered, noRetransmits := false, uint16(0)
	lossy, err := pc.CreateDataChannel(LossyLabel, &webrtc.DataChannelInit{Ordered: &unordered, MaxRetransmits: &noRetransmits})
	if err != nil {
		return fmt.Errorf("rtcclient: %s channel: %w", LossyLabel, err)
	}
	ordered := true
	reliable, err := pc.CreateDataChannel(ReliableLabel, &webrtc.DataChannelInit{Ordered: &ordered})
	if err != nil {
		return fmt.Errorf("rtcclient: %s channel: %w", ReliableLabel, err)
	}
	c.data.mu.Lock()
	c.data.pubLossy, c.data.pubReliable = lossy, reliable
	c.data.mu.Unlock()
	for _, dc := range []*webrtc.DataChannel{lossy, reliable} {
		c.wireDataChannel(dc)
	}
	return nil
}

// adoptDataChannel takes a channel the server opened on the subscriber.
func (c *Client) adoptDataChannel(dc *webrtc.DataChannel) {
	c.data.mu.Lock()
	switch dc.Label() {
	case ReliableLabel:
		c.data.subReliable = dc
	case LossyLabel:
		c.data.subLossy = dc
	default:
		c.data.mu.Unlock()
		c.log.Debug("rtcclient: data channel not read", "label", dc.Label())
		return
	}
	c.data.mu.Unlock()
	c.wireDataChannel(dc)
}

func (c *Client) wireDataChannel(dc *webrtc.DataChannel) {
	dc.OnOpen(c.data.opened.notify)
	dc.OnMessage(func(m webrtc.DataChannelMessage) { c.onDataMessage(dc.Label(), m.Data) })
}

// onDataMessage decodes a DataPacket and hands it to OnData, dropping
// repeats of reliable packets and filling the identity fields of user
// packets both ways, as RTCEngine.handleDataMessage does.
func (c *Client) onDataMessage(label string, b []byte) {
	dp := &livekit.DataPacket{}
	if err := proto.Unmarshal(b, dp); err != nil {
		c.log.Warn("rtcclient: bad data packet", "label", label, "err", err)
		return
	}
	if dp.GetSequence() > 0 && dp.GetParticipantSid() != "" {
		c.data.mu.Lock()
		if c.data.received == nil {
			c.data.received = map[string]uint32{}
		}
		last, seen := c.data.received[dp.GetParticipantSid()]
		if seen && dp.GetSequence() <= last {
			c.data.mu.Unlock()
			return
		}
		c.data.received[dp.GetParticipantSid()] = dp.GetSequence()
		c.data.mu.Unlock()
	}
	if u := dp.GetUser(); u != nil {
		if dp.ParticipantIdentity == "" {
			dp.ParticipantIdentity = u.GetParticipantIdentity()
		}
		u.ParticipantIdentity = dp.ParticipantIdentity
		if len(dp.DestinationIdentities) == 0 {
			dp.DestinationIdentities = u.GetDestinationIdentities()
		}
		u.DestinationIdentities = dp.DestinationIdentities
	}
	c.post(func(h *Handlers) {
		if h.OnData != nil {
			h.OnData(dp)
		}
	})
}

// SendData sends a user packet over _reliable or _lossy as
// LocalParticipant.publishData does, destinationIdentities set both in the
// packet and in the user packet. It waits, within bounds, for the channel
// to open, negotiating the publisher first if nothing did yet.
func (c *Client) SendData(kind livekit.DataPacket_Kind, payload []byte, topic string, destinationIdentities ...string) error {
	c.data.mu.Lock()
	dc := c.data.pubLossy
	if kind == livekit.DataPacket_RELIABLE {
		dc = c.data.pubReliable
	}
	c.data.mu.Unlock()
	if dc.ReadyState() != webrtc.DataChannelStateOpen {
		if !c.pub.wasNegotiated() {
			c.pub.requestOffer()
		}
		ctx, cancel := context.WithTimeout(c.lifetime, dataOpenTimeout)
		err := c.data.opened.waitFor(ctx, func() bool { return dc.ReadyState() == webrtc.DataChannelStateOpen })
		cancel()
		if err != nil {
			if c.isClosed() {
				return ErrClosed
			}
			return fmt.Errorf("rtcclient: send data: %s channel not open (%s): %w", dc.Label(), dc.ReadyState(), err)
		}
	}
	user := &livekit.UserPacket{
		ParticipantIdentity:   c.Identity(),
		Payload:               payload,
		DestinationIdentities: destinationIdentities,
	}
	if topic != "" {
		user.Topic = &topic
	}
	dp := &livekit.DataPacket{
		Kind:                  kind,
		DestinationIdentities: destinationIdentities,
		Value:                 &livekit.DataPacket_User{User: user},
	}
	// The sequence is taken and the packet sent under one lock, so that
	// reliable packets leave in sequence order.
	c.data.mu.Lock()
	defer c.data.mu.Unlock()
	if kind == livekit.DataPacket_RELIABLE {
		c.data.seq++
		dp.Sequence = c.data.seq
	}
	b, err := proto.Marshal(dp)
	if err != nil {
		return fmt.Errorf("rtcclient: send data: %w", err)
	}
	if err := dc.Send(b); err != nil {
		return fmt.Errorf("rtcclient: send data on %s: %w", dc.Label(), err)
	}
	return nil
}

// dataChannelInfos lists the open channels for sync_state, in
// RTCEngine.dataChannelsInfo's order.
func (c *Client) dataChannelInfos() []*livekit.DataChannelInfo {
	c.data.mu.Lock()
	defer c.data.mu.Unlock()
	var out []*livekit.DataChannelInfo
	add := func(dc *webrtc.DataChannel, target livekit.SignalTarget) {
		if dc == nil || dc.ID() == nil {
			return
		}
		out = append(out, &livekit.DataChannelInfo{Label: dc.Label(), Id: uint32(*dc.ID()), Target: target})
	}
	add(c.data.pubLossy, livekit.SignalTarget_PUBLISHER)
	add(c.data.pubReliable, livekit.SignalTarget_PUBLISHER)
	add(c.data.subLossy, livekit.SignalTarget_SUBSCRIBER)
	add(c.data.subReliable, livekit.SignalTarget_SUBSCRIBER)
	return out
}

// receiveStates lists the newest reliable sequence received per sender,
// for sync_state.
func (c *Client) receiveStates() []*livekit.DataChannelReceiveState {
	c.data.mu.Lock()
	defer c.data.mu.Unlock()
	var out []*livekit.DataChannelReceiveState
	for sid, seq := range c.data.received {
		out = append(out, &livekit.DataChannelReceiveState{PublisherSid: sid, LastSeq: seq})
	}
	return out
}
