// Package rtpsrc turns one sender's live WebRTC stream, a video and an audio
// track, into whole timestamped frames for the HLS bridge
// (transcode.Frame).
//
// For each track, a reorder buffer puts RTP packets back in sequence order,
// holding a packet that follows a gap for at most Options.ReorderDelay while
// the missing ones may still come (late, or retransmitted after a NACK);
// after that they count as lost. A depacketizer rebuilds whole frames: VP8,
// VP9 (base spatial layer), H.264 (single NAL, STAP-A and FU-A, packetization
// modes 0 and 1) as Annex-B access units, and Opus packets. A loss that
// breaks a video frame drops video until the next keyframe, which is asked
// for (Options.RequestKeyframe). Keyframes give the picture size.
//
// # Timeline and A/V sync
//
// Each track's RTP timestamps are unwrapped to 64 bits and mapped to local
// wall-clock time, local = rtp/clockRate + offset, in one of two ways:
//
//   - By arrival (always available): a track's offset is the least
//     (arrival − rtp/clockRate) seen on it, the mapping given by its
//     least-delayed packet. It starts at the first packet's arrival and only
//     moves earlier, so jitter on the first packets does not stick.
//   - By RTCP Sender Reports, once both tracks have a trusted SR mapping:
//     each SR pairs an RTP timestamp with the sender's NTP clock, which
//     aligns the two tracks as the sender captured them; the arrival mapping
//     of the least-delayed track then sets the absolute level, so the
//     sender's clock offset does not matter. A track's SR mapping is trusted
//     once two successive SRs agree within 50 ms; later SRs are smoothed in
//     (a quarter of each change), and one that moves the mapping by more
//     than 200 ms counts only when the next one agrees with it.
//
// PTS 0 is the first frame delivered; Source.Origin is its local wall-clock
// time. So that the timeline does not jump when Sender Reports appear, frames
// completed at the start are held until both tracks have a trusted SR
// mapping or Options.SyncWait has passed, then delivered in PTS order. Each track's PTS
// only increases: a frame that would go back in time is moved just after the
// previous one (counted in TrackStats.Clamped).
//
// Source is the core and knows no peer connection: whoever reads the
// packets pushes them in (Track.WriteRTP, Track.WriteRTCP) and calls
// Source.Tick a few times a second. DialWHEP plays a WHEP endpoint into a
// Source.
package rtpsrc
