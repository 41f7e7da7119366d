package rtc

import (
	"slices"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/proto"
)

// Data packets: clients send livekit.DataPacket protobufs on the data
// channels they open on their publisher connection ("_reliable", ordered,
// and "_lossy"); the server stamps the sender and forwards each to the
// other participants it names (all when it names none) on the channel of
// the same kind. livekit-client reads data on those channels too.
const (
	maxDataPacket = 64 << 10
	// maxBuffered is how much may wait in a receiver's channel before
	// packets to it are dropped rather than let a slow receiver hold
	// memory.
	maxBuffered = 2 << 20
)

func (s *session) onDataChannel(dc *webrtc.DataChannel) {
	idx := -1
	switch dc.Label() {
	case "_reliable":
		idx = int(livekit.DataPacket_RELIABLE)
	case "_lossy":
		idx = int(livekit.DataPacket_LOSSY)
	default:
		s.log.Debug("data channel ignored", "label", dc.Label())
		return
	}
	s.mu.Lock()
	s.dcs[idx] = dc
	s.mu.Unlock()
	kind := livekit.DataPacket_Kind(idx)
	dc.OnMessage(func(m webrtc.DataChannelMessage) { s.onData(kind, m.Data) })
}

// onData forwards one data packet from this participant.
func (s *session) onData(kind livekit.DataPacket_Kind, b []byte) {
	s.mu.Lock()
	may := s.perm.GetCanPublishData()
	s.mu.Unlock()
	if !may {
		s.srv.metrics.BadMessages.Add(1)
		s.log.Debug("data packet dropped: token does not allow publishing data")
		return
	}
	if len(b) > maxDataPacket {
		s.srv.metrics.BadMessages.Add(1)
		s.log.Warn("oversized data packet dropped", "bytes", len(b))
		return
	}
	dp := &livekit.DataPacket{}
	if err := proto.Unmarshal(b, dp); err != nil {
		s.srv.metrics.BadMessages.Add(1)
		s.log.Warn("undecodable data packet dropped", "bytes", len(b), "err", err)
		return
	}
	if _, ok := dp.Value.(*livekit.DataPacket_Speaker); ok {
		return // speakers are the server's to tell
	}
	dests := dp.GetDestinationIdentities()
	if u := dp.GetUser(); u != nil {
		if len(dests) == 0 {
			dests = u.GetDestinationIdentities()
		}
		u.ParticipantSid, u.ParticipantIdentity = s.sid, s.identity
	}
	dp.Kind = kind
	dp.ParticipantSid, dp.ParticipantIdentity = s.sid, s.identity
	s.room.sendData(dp, dests, s.sid)
}

// sendData forwards dp to the participants named in dests (all when none),
// except the one with sid from.
func (r *room) sendData(dp *livekit.DataPacket, dests []string, from string) {
	b, err := proto.Marshal(dp)
	if err != nil {
		return
	}
	for _, x := range r.sessionList() {
		if x.sid == from || (len(dests) > 0 && !slices.Contains(dests, x.identity)) {
			continue
		}
		x.sendDataBytes(dp.GetKind(), b)
	}
}

// sendDataBytes sends an encoded packet on the client's channel of its
// kind (the reliable one when it has no lossy one).
func (s *session) sendDataBytes(kind livekit.DataPacket_Kind, b []byte) {
	s.mu.Lock()
	dc := s.dcs[livekit.DataPacket_RELIABLE]
	if kind == livekit.DataPacket_LOSSY && s.dcs[livekit.DataPacket_LOSSY] != nil {
		dc = s.dcs[livekit.DataPacket_LOSSY]
	}
	s.mu.Unlock()
	if dc == nil || dc.ReadyState() != webrtc.DataChannelStateOpen {
		return
	}
	if dc.BufferedAmount() > maxBuffered {
		s.log.Debug("data packet dropped: receiver's channel is full", "kind", kind.String())
		return
	}
	if err := dc.Send(b); err != nil {
		s.log.Debug("data packet not sent", "err", err)
		return
	}
	s.srv.metrics.DataPackets.Add(1)
}
