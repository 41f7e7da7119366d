package transcode

import (
	"bufio"
	"fmt"
	"time"
)

// runOrigin is the input PTS at ffmpeg's timestamp zero for a run that
// starts at keyframe PTS first: one keyframe interval before the multiple
// of the interval at or below it. Keyframes forced at multiples of the
// interval of ffmpeg's timeline then land at multiples on the input
// timeline, across restarts too; the lead keeps audio that precedes the
// first keyframe, and the AAC encoder's priming, at positive timestamps.
// An audio-only run takes its origin the same way from its first audio
// frame, for the same lead.
func runOrigin(first, interval time.Duration) time.Duration {
	return floorMultiple(first, interval) - interval
}

// floorMultiple is the largest multiple of m at or below d.
func floorMultiple(d, m time.Duration) time.Duration {
	q := d / m
	if d%m < 0 {
		q--
	}
	return q * m
}

// assumedFPS is the frame rate ffmpeg is told when Input.FPS is unknown,
// WebRTC's usual rate (ffmpeg itself would assume 25).
const assumedFPS = 30

// toMS rounds a non-negative duration to Matroska's milliseconds.
func toMS(d time.Duration) int64 { return int64((d + time.Millisecond/2) / time.Millisecond) }

// feeder writes frames to one ffmpeg's stdin as Matroska, starting with
// the stream header and the frame the run starts at.
type feeder struct {
	s          *Session
	r          *run
	bw         *bufio.Writer
	mkv        *mkvWriter
	audioTrack int    // the audio's Matroska track number: 2 after video, else 1
	lastMS     int64  // last video block's timestamp
	avcc       []byte // reused H.264 conversion buffer
}

// feed writes the header and first, then queued frames, until the run's
// process exits or, once the session stops, the queue is empty; then it
// closes stdin so that ffmpeg finishes.
func (s *Session) feed(r *run, first queued) {
	defer func() { _ = r.proc.stdin.Close() }()
	bw := bufio.NewWriterSize(r.proc.stdin, 64<<10)
	f := &feeder{s: s, r: r, bw: bw, mkv: newMKVWriter(bw), lastMS: -1}
	if err := f.start(first); err != nil {
		if !s.stopping.Load() {
			s.log.Warn("transcode: write to ffmpeg", "err", err)
		}
		return
	}
	for {
		select {
		case q := <-s.queue:
			if err := f.write(q); err != nil {
				s.log.Debug("transcode: ffmpeg input closed", "err", err)
				return
			}
		case <-r.exited:
			return
		case <-s.stop:
			for {
				select {
				case q := <-s.queue:
					if f.write(q) != nil {
						return
					}
				default:
					return
				}
			}
		}
	}
}

// start writes the stream header and the first frame: a video keyframe,
// or, audio only, an audio frame.
func (f *feeder) start(first queued) error {
	var tracks []mkvTrack
	if f.s.cmd.video() {
		video, err := f.videoTrack(first.Frame)
		if err != nil {
			return err
		}
		tracks = append(tracks, video)
	}
	if f.s.in.HasAudio {
		tracks = append(tracks, mkvTrack{codecID: "A_OPUS", codecPrivate: opusHead(), sampleRate: 48000, channels: 2})
		f.audioTrack = len(tracks)
	}
	if err := f.mkv.writeHeader(tracks); err != nil {
		return fmt.Errorf("write header: %w", err)
	}
	f.r.lastOut.Store(time.Now().UnixNano())
	return f.write(first)
}

// videoTrack describes the video for a stream that starts at keyframe
// first.
func (f *feeder) videoTrack(first Frame) (mkvTrack, error) {
	in := f.s.in
	// The frame duration only informs ffmpeg's frame rate guess, which
	// sizes the encoders' rate control; timestamps stay as they come.
	fps := in.FPS
	if fps <= 0 {
		fps = assumedFPS
	}
	video := mkvTrack{codecID: codecIDs[f.s.cmd.codec], video: true, width: in.Width, height: in.Height,
		defaultDuration: time.Duration(float64(time.Second) / fps)}
	if f.s.cmd.codec == "H264" {
		priv, err := avcDecoderConfig(first.Data)
		if err != nil {
			return mkvTrack{}, err
		}
		video.codecPrivate = priv
	}
	return video, nil
}

func (f *feeder) write(q queued) error {
	d := q.PTS - f.r.origin
	if d < 0 {
		f.s.stats.drop(q.audio)
		return nil
	}
	ms := toMS(d)
	track, key, data := 1, q.Key, q.Data
	if q.audio {
		track, key = f.audioTrack, true
	} else {
		if ms < f.lastMS {
			f.s.stats.drop(q.audio)
			return nil
		}
		f.lastMS = ms
		if f.s.cmd.codec == "H264" {
			f.avcc = appendAVCC(f.avcc[:0], q.Data)
			data = f.avcc
		}
	}
	if err := f.mkv.writeBlock(track, ms, key, !q.audio && q.Key, data); err != nil {
		return err
	}
	if err := f.bw.Flush(); err != nil {
		return err
	}
	f.r.lastIn.Store(time.Now().UnixNano())
	return nil
}
