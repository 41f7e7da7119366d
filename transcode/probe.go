package transcode

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
)

// ProbeResult is one backend's probe outcome.
type ProbeResult struct {
	Backend Backend
	// Probed is false for candidates after the chosen one, and for all but
	// the configured backend when one is named.
	Probed bool
	// Err is nil when the backend works; otherwise it holds ffmpeg's first
	// error line.
	Err error
}

// Outcome is "ok", "not probed" or the error, for logs and status pages.
func (p ProbeResult) Outcome() string {
	switch {
	case !p.Probed:
		return "not probed"
	case p.Err != nil:
		return p.Err.Error()
	}
	return "ok"
}

// The probe clip: a few frames of H.264 made with libx264, decoded, scaled
// to two rungs and encoded by the backend under test, exactly as a session
// would.
const (
	probeFrames = 10
	probeFPS    = 25
)

var probeLadder = []Rendition{
	{Name: "360p", Width: 640, Height: 360, Bitrate: 500_000},
	{Name: "180p", Width: 320, Height: 180, Bitrate: 200_000},
}

// probe tries the configured backend, or every candidate in order until
// one works.
func probe(ctx context.Context, t *Transcoder) (Backend, []ProbeResult, error) {
	want := t.cfg.Backend
	clip, clipErr := probeClip(ctx, t)
	var results []ProbeResult
	chosen := Backend("")
	for _, b := range candidates {
		if chosen != "" || (want != BackendAuto && b != want) {
			results = append(results, ProbeResult{Backend: b})
			continue
		}
		err := clipErr
		if err == nil {
			err = probeBackend(ctx, t, b, clip)
		}
		results = append(results, ProbeResult{Backend: b, Probed: true, Err: err})
		if err == nil {
			chosen = b
		}
	}
	if chosen == "" {
		if want != BackendAuto {
			i := slices.Index(candidates, want)
			return "", results, fmt.Errorf("%w: %s: %w", ErrNoBackend, want, results[i].Err)
		}
		return "", results, ErrNoBackend
	}
	return chosen, results, nil
}

// probeClip encodes the probe clip with libx264 and returns its frames.
func probeClip(ctx context.Context, t *Transcoder) ([]Frame, error) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.ProbeTimeout)
	defer cancel()
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "level+error",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=640x360:rate=%d", probeFPS),
		"-frames:v", strconv.Itoa(probeFrames), "-c:v", "libx264", "-preset", "ultrafast",
		"-bf", "0", "-g", "5", "-pix_fmt", "yuv420p", "-f", "mpegts", "pipe:3"}
	p, err := startProcess(ctx, t.path, args, 1)
	if err != nil {
		return nil, err
	}
	_ = p.stdin.Close()
	var stderr []byte
	var wg sync.WaitGroup
	wg.Go(func() { stderr, _ = io.ReadAll(p.stderr) })
	frames, readErr := readClip(p.outputs[0])
	wg.Wait()
	waitErr := p.cmd.Wait()
	p.closeOutputs()
	if waitErr != nil || readErr != nil || len(frames) == 0 {
		return nil, fmt.Errorf("make probe clip with libx264: %s", firstError(stderr, errors.Join(waitErr, readErr)))
	}
	return frames, nil
}

// readClip reads H.264 access units from MPEG-TS, as Annex-B frames whose
// timestamps start at zero. It reads r to its end.
func readClip(r io.Reader) ([]Frame, error) {
	defer func() { _, _ = io.Copy(io.Discard, r) }()
	tr := &mpegts.Reader{R: r}
	if err := tr.Initialize(); err != nil {
		return nil, err
	}
	var frames []Frame
	var clock tsClock
	for _, tk := range tr.Tracks() {
		if _, ok := tk.Codec.(*tscodecs.H264); ok {
			tr.OnDataH264(tk, func(pts, _ int64, au [][]byte) error {
				b, err := h264.AnnexB(au).Marshal()
				if err != nil {
					return err
				}
				frames = append(frames, Frame{PTS: clock.decode(pts), Key: h264.IsRandomAccess(au), Data: b})
				return nil
			})
		}
	}
	for {
		if err := tr.Read(); err != nil {
			if isEOF(err) {
				break
			}
			return nil, err
		}
	}
	for i := len(frames) - 1; i >= 0; i-- {
		frames[i].PTS -= frames[0].PTS
	}
	return frames, nil
}

// probeBackend runs the session pipeline of backend b on the clip: ffmpeg
// must exit cleanly and write MPEG-TS on every output.
func probeBackend(ctx context.Context, t *Transcoder, b Backend, clip []Frame) error {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.ProbeTimeout)
	defer cancel()
	cmd := command{
		backend: b, codec: "H264", renditions: probeLadder,
		keyframeInterval: time.Second, vaapiDevice: t.cfg.VAAPIDevice,
	}
	input, err := probeInput(clip)
	if err != nil {
		return err
	}
	p, err := startProcess(ctx, t.path, cmd.args(clip[0].PTS), len(probeLadder))
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	var stderr []byte
	sizes := make([]int64, len(p.outputs))
	wg.Go(func() {
		_, _ = p.stdin.Write(input) // a failing ffmpeg may stop reading: its exit says why
		_ = p.stdin.Close()
	})
	wg.Go(func() { stderr, _ = io.ReadAll(p.stderr) })
	for i, out := range p.outputs {
		wg.Go(func() { sizes[i], _ = io.Copy(io.Discard, out) })
	}
	wg.Wait()
	waitErr := p.cmd.Wait()
	p.closeOutputs()
	if ctx.Err() != nil {
		return fmt.Errorf("timed out after %s", t.cfg.ProbeTimeout)
	}
	if waitErr != nil {
		return errors.New(firstError(stderr, waitErr))
	}
	for i, n := range sizes {
		if n < 188 {
			return fmt.Errorf("no output for %s", probeLadder[i].Name)
		}
	}
	return nil
}

// probeInput muxes the clip into Matroska the way a session's feeder does.
func probeInput(clip []Frame) ([]byte, error) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	m := newMKVWriter(bw)
	priv, err := avcDecoderConfig(clip[0].Data)
	if err != nil {
		return nil, fmt.Errorf("probe clip: %w", err)
	}
	err = m.writeHeader([]mkvTrack{{codecID: codecIDs["H264"], codecPrivate: priv, video: true, width: 640, height: 360}})
	for _, f := range clip {
		if err != nil {
			break
		}
		err = m.writeBlock(1, f.PTS.Milliseconds(), f.Key, f.Key, appendAVCC(nil, f.Data))
	}
	if err == nil {
		err = bw.Flush()
	}
	return buf.Bytes(), err
}

// firstError picks the line of ffmpeg's stderr that says what went wrong:
// the first error-level line, else the last line, else fallback.
func firstError(stderr []byte, fallback error) string {
	var last string
	for _, s := range strings.Split(string(stderr), "\n") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		l := parseLogLine(s)
		if l.level >= slog.LevelError {
			return l.String()
		}
		last = l.String()
	}
	if last != "" {
		return last
	}
	if fallback != nil {
		return fallback.Error()
	}
	return "failed"
}
