package clip

import (
	"math/rand/v2"
	"sync/atomic"

	"github.com/pion/rtp"
)

// MTU is the size of the largest RTP packet a Stream produces, before any
// header extension the writer adds. It matches pion's outbound MTU, leaving
// room for SRTP and a few header extensions under common path MTUs.
const MTU = 1200

// maxPayload is the largest RTP payload a Stream sends: MTU less the fixed
// 12-byte RTP header.
const maxPayload = MTU - 12

// Stream turns a Clip into an endless RTP packet sequence for one SSRC. It
// loops the clip, restarting at frame 0 (a keyframe); sequence numbers,
// timestamps and VP8 PictureIDs carry on across the loop as if the clip were
// one long recording. The timestamp advances by the clip's TimestampStep per
// frame; the marker bit is set on the last packet of every video frame and on
// the very first audio packet (the start of a talkspurt, RFC 7587).
//
// A Stream reuses one packet and one payload buffer, so producing packets
// allocates nothing. It is not safe for concurrent use, except for
// RequestKeyframe.
type Stream struct {
	clip        *Clip
	frame       int // index of the next frame to send
	seq         uint16
	ts          uint32
	pictureID   uint16
	sent        bool // at least one packet went out
	ssrc        uint32
	payloadType uint8
	pkt         rtp.Packet
	buf         [maxPayload]byte
	keyWanted   atomic.Bool
}

// NewStream returns a Stream that sends c with the given SSRC and payload
// type, starting at frame 0 with a random sequence number and timestamp, as
// RFC 3550 asks. (pion's TrackLocalStaticRTP overwrites SSRC and payload type
// with the negotiated ones.)
func NewStream(c *Clip, ssrc uint32, payloadType uint8) *Stream {
	return &Stream{
		clip:        c,
		ssrc:        ssrc,
		payloadType: payloadType,
		seq:         uint16(rand.Uint32()),
		ts:          rand.Uint32(),
		pictureID:   uint16(rand.Uint32() & 0x7fff),
	}
}

// RequestKeyframe makes the next frame a keyframe, as an encoder answers a
// PLI: unless it already is one, the stream skips ahead to the clip's next
// keyframe (timestamps carry on by one frame). It is safe to call from any
// goroutine.
func (s *Stream) RequestKeyframe() { s.keyWanted.Store(true) }

// Clip returns the clip the stream plays.
func (s *Stream) Clip() *Clip { return s.clip }

// NextFrame packetizes the stream's next frame and calls emit with each of
// its RTP packets in order; keyframe reports whether the frame is one (always
// true for audio). The packet and its payload are reused by the next packet:
// emit may change the header (for instance to add an extension) but must not
// keep the packet or its payload after it returns.
//
// If emit returns an error, NextFrame abandons the rest of the frame and
// returns that error; the next call goes on with the following frame.
func (s *Stream) NextFrame(emit func(p *rtp.Packet, keyframe bool) error) error {
	c := s.clip
	if s.keyWanted.Swap(false) && c.Codec.isVideo() {
		for !c.Frames[s.frame].Keyframe {
			s.frame = (s.frame + 1) % len(c.Frames)
		}
	}
	frame := c.Frames[s.frame]
	payloads := c.payloads[s.frame]
	video := c.Codec.isVideo()
	defer s.advance()

	for i, payload := range payloads {
		n := copy(s.buf[:], payload)
		if c.Codec == VP8 {
			// Descriptor: X|S, I, M|PictureID high 7 bits, PictureID low 8.
			s.buf[2] = 0x80 | byte(s.pictureID>>8)
			s.buf[3] = byte(s.pictureID)
		}
		marker := i == len(payloads)-1
		if !video {
			marker = !s.sent
		}
		// Rebuild the header so nothing a previous emit changed survives,
		// keeping the extension slice's storage for reuse.
		s.pkt = rtp.Packet{
			Header: rtp.Header{
				Version:        2,
				Marker:         marker,
				PayloadType:    s.payloadType,
				SequenceNumber: s.seq,
				Timestamp:      s.ts,
				SSRC:           s.ssrc,
				Extensions:     s.pkt.Extensions[:0],
			},
			Payload: s.buf[:n],
		}
		s.seq++
		s.sent = true
		if err := emit(&s.pkt, frame.Keyframe); err != nil {
			return err
		}
	}
	return nil
}

// advance moves to the next frame, looping to frame 0 after the last.
func (s *Stream) advance() {
	s.ts += s.clip.TimestampStep()
	s.pictureID = (s.pictureID + 1) & 0x7fff
	s.frame++
	if s.frame == len(s.clip.Frames) {
		s.frame = 0
	}
}

// skipTime advances the RTP timestamp by n frame durations without sending
// anything, for a sender that stalled: the media carries on where it was, but
// its timestamps keep tracking the wall clock.
func (s *Stream) skipTime(n int) {
	s.ts += uint32(n) * s.clip.TimestampStep()
}
