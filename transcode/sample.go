package transcode

import "time"

// Rendition is one rung of the ladder: what ffmpeg encodes and what the
// LL-HLS origin advertises in the multivariant playlist.
type Rendition struct {
	Name    string // "720p"; unique within a ladder, used in URLs
	Width   int    // pixels; even
	Height  int    // pixels; even
	Bitrate int    // target video bitrate, bits per second
	FPS     float64
}

// Sample is one encoded access unit leaving the transcoder, on the input's
// timeline: a PTS of zero is the first input frame's timestamp, so the
// bridge can turn it into wall-clock time for PROGRAM-DATE-TIME.
type Sample struct {
	// Rendition indexes the ladder for video; it is AudioRendition for audio.
	Rendition int
	PTS       time.Duration
	DTS       time.Duration // equals PTS for audio and for video without B-frames
	// Key marks an H.264 IDR access unit (always false for audio).
	Key bool
	// AU holds the H.264 NAL units of one access unit (no start codes, no
	// AUD), or, for audio, exactly one AAC access unit (raw, no ADTS).
	AU [][]byte
}

// AudioRendition is Sample.Rendition for the AAC audio track.
const AudioRendition = -1

// Frame is one encoded frame entering the transcoder.
type Frame struct {
	// PTS on the source's timeline; frames of one track must not go back in
	// time. Audio and video share the timeline (A/V sync is the caller's job).
	PTS time.Duration
	// Key marks a video keyframe.
	Key bool
	// Data is a whole frame in the codec's native form: a VP8/VP9 frame,
	// an H.264 access unit in Annex-B form, or one Opus packet.
	Data []byte
}

// AudioFormat describes the AAC-LC audio the transcoder produces, enough for
// the packager's init segment.
type AudioFormat struct {
	SampleRate int // Hz, e.g. 48000
	Channels   int
	Bitrate    int // bits per second
}
