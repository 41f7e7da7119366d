package netpath

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/starling-sfu/starling/loadtest"
)

// The viewer runs in its own process inside a namespace: the test binary
// started again under `ip netns exec`, with viewerEnv naming the WHEP URL.
// It is a pion WHEP client with NACK, receiver reports and transport-wide
// feedback, as a browser has, and it prints a report line of JSON every
// reportEvery.
const (
	viewerEnv      = "STARLING_NETPATH_VIEWER"
	viewerTokenEnv = "STARLING_NETPATH_TOKEN"
	reportEvery    = 100 * time.Millisecond
	// freezeGap is the pause between decoded frames counted as a freeze:
	// WebRTC's max(3 frame intervals, interval + 150 ms) at 20 fps.
	freezeGap = 200 * time.Millisecond
)

// report is one line of a viewer's output; counters are totals so far.
type report struct {
	At       int64 `json:"at"`       // unix milliseconds
	Frames   int   `json:"frames"`   // frames decodable: complete, in order, their references decoded
	Width    int   `json:"width"`    // of the newest decoded keyframe
	Height   int   `json:"height"`   //
	FrozenMs int64 `json:"frozenMs"` // total of gaps between decoded frames longer than freezeGap
	Freezes  int   `json:"freezes"`
	SinceMs  int64 `json:"sinceMs"` // since the newest decoded frame
	Audio    int   `json:"audio"`   // audio packets received
	Video    int   `json:"video"`   // video packets received, duplicates included
	PLIs     int   `json:"plis"`
}

func (r report) time() time.Time { return time.UnixMilli(r.At) }

// frozenAt is the frozen time by r.At, counting a freeze still going on.
func (r report) frozenAt() time.Duration {
	d := time.Duration(r.FrozenMs) * time.Millisecond
	if since := time.Duration(r.SinceMs) * time.Millisecond; since > freezeGap {
		d += since
	}
	return d
}

// viewerMain is the viewer process: it plays url until killed.
func viewerMain(url, token string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	api, err := loadtest.NewAPI(false) // default interceptors: NACK, reports, TWCC
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	d := newDecoder()
	connectCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	sub, err := loadtest.Subscribe(connectCtx, loadtest.SubscriberOptions{
		URL: url, Token: token, API: api,
		OnRTP: func(kind webrtc.RTPCodecType, p *rtp.Packet, at time.Time) {
			if kind == webrtc.RTPCodecTypeAudio {
				d.audio()
			} else {
				d.video(p, at)
			}
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "subscribe:", err)
		return 1
	}
	defer sub.Close(context.Background())
	d.pli = func(ssrc uint32) {
		_ = sub.PeerConnection().WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
	}
	if err := sub.WaitConnected(connectCtx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	enc := json.NewEncoder(os.Stdout)
	tick := time.NewTicker(reportEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return 0
		case <-sub.Ended():
			fmt.Fprintln(os.Stderr, "session ended")
			return 1
		case now := <-tick.C:
			if err := enc.Encode(d.report(now)); err != nil {
				return 1
			}
		}
	}
}

// decoder follows VP8 frames as a decoder would: a frame is decoded once
// all its packets are in and the frame before it was decoded, or at any
// complete keyframe. It asks for a keyframe (PLI) when stuck, as browsers do.
type decoder struct {
	mu       sync.Mutex
	pli      func(ssrc uint32)
	seen     [4096]int64 // extended sequence numbers received, for duplicates
	highest  int64
	started  bool
	frames   map[uint32]*frame
	padding  map[int64]bool // padding-only packets after the newest decoded frame
	lastEnd  int64          // extended sequence number ending the newest decoded frame
	decoded  bool
	lastAt   time.Time
	lastPLI  time.Time
	out      report
	ssrc     uint32
	firstPkt time.Time
}

type frame struct {
	start, end int64 // extended sequence numbers, -1 until seen
	count      int
	key        bool
	w, h       int
}

func newDecoder() *decoder {
	d := &decoder{frames: map[uint32]*frame{}, padding: map[int64]bool{}}
	for i := range d.seen {
		d.seen[i] = -1
	}
	return d
}

func (d *decoder) audio() {
	d.mu.Lock()
	d.out.Audio++
	d.mu.Unlock()
}

func (d *decoder) video(p *rtp.Packet, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.out.Video++
	d.ssrc = p.SSRC
	if d.firstPkt.IsZero() {
		d.firstPkt = at
	}
	ext := d.extend(p.SequenceNumber)
	if d.seen[ext%4096] == ext || (d.decoded && ext <= d.lastEnd) {
		return // duplicate (a retransmission) or too late
	}
	d.seen[ext%4096] = ext
	if len(p.Payload) == 0 {
		// Padding (the SFU's probes) between frames: numbered, empty.
		d.padding[ext] = true
		for d.decodeNext(at) {
		}
		return
	}
	f := d.frames[p.Timestamp]
	if f == nil {
		f = &frame{start: -1, end: -1}
		d.frames[p.Timestamp] = f
	}
	f.count++
	if i, ok := vp8Start(p.Payload); ok {
		f.start = ext
		if len(p.Payload) >= i+10 && p.Payload[i]&1 == 0 {
			f.key = true
			f.w = int(p.Payload[i+6]) | int(p.Payload[i+7]&0x3f)<<8
			f.h = int(p.Payload[i+8]) | int(p.Payload[i+9]&0x3f)<<8
		}
	}
	if p.Marker {
		f.end = ext
	}
	for d.decodeNext(at) {
	}
	if d.decoded && at.Sub(d.lastAt) > 300*time.Millisecond && at.Sub(d.lastPLI) > 500*time.Millisecond && d.pli != nil {
		d.lastPLI = at
		d.out.PLIs++
		if os.Getenv("STARLING_TEST_LOG") != "" {
			var pend []string
			for _, f := range d.frames {
				pend = append(pend, fmt.Sprintf("[%d-%d %d key=%v]", f.start, f.end, f.count, f.key))
			}
			fmt.Fprintf(os.Stderr, "%s PLI: last decoded ends %d; pending %v\n", at.Format("15:04:05.000"), d.lastEnd, pend)
		}
		go d.pli(p.SSRC)
	}
}

func (d *decoder) extend(seq uint16) int64 {
	if !d.started {
		d.started, d.highest = true, int64(seq)+1<<16
		return d.highest
	}
	ext := d.highest&^0xffff | int64(seq)
	switch {
	case ext < d.highest-0x8000:
		ext += 1 << 16
	case ext > d.highest+0x8000:
		ext -= 1 << 16
	}
	d.highest = max(d.highest, ext)
	return ext
}

// decodeNext decodes the frame that follows the newest decoded one, or else
// the first complete keyframe after it; it reports whether it decoded one.
func (d *decoder) decodeNext(at time.Time) bool {
	var next *frame
	var nextTS uint32
	for ts, f := range d.frames {
		complete := f.start >= 0 && f.end >= f.start && int64(f.count) == f.end-f.start+1
		if !complete {
			continue
		}
		if d.decoded && d.follows(f.start) {
			next, nextTS = f, ts
			break
		}
		if f.key && (!d.decoded || f.start > d.lastEnd) && (next == nil || f.start < next.start) {
			next, nextTS = f, ts
		}
	}
	if next == nil {
		return false
	}
	delete(d.frames, nextTS)
	if d.decoded {
		if gap := at.Sub(d.lastAt); gap > freezeGap {
			d.out.FrozenMs += gap.Milliseconds()
			d.out.Freezes++
			fmt.Fprintf(os.Stderr, "%s frozen %v (then a %dx%d key=%v frame at %d, %d frames pending)\n", at.Format("15:04:05.000"),
				gap.Round(time.Millisecond), next.w, next.h, next.key, next.start, len(d.frames))
		}
	}
	d.decoded, d.lastEnd, d.lastAt = true, next.end, at
	d.out.Frames++
	if next.key {
		d.out.Width, d.out.Height = next.w, next.h
	}
	for ts, f := range d.frames {
		if (f.end >= 0 && f.end <= d.lastEnd) || (f.start >= 0 && f.start <= d.lastEnd) {
			delete(d.frames, ts)
		}
	}
	for s := range d.padding {
		if s <= d.lastEnd {
			delete(d.padding, s)
		}
	}
	return true
}

// follows reports whether a frame starting at start comes right after the
// newest decoded one, with nothing but padding between.
func (d *decoder) follows(start int64) bool {
	for s := d.lastEnd + 1; s < start; s++ {
		if !d.padding[s] {
			return false
		}
	}
	return start > d.lastEnd
}

func (d *decoder) report(now time.Time) report {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.out
	r.At = now.UnixMilli()
	if d.decoded {
		r.SinceMs = now.Sub(d.lastAt).Milliseconds()
	} else if !d.firstPkt.IsZero() {
		r.SinceMs = now.Sub(d.firstPkt).Milliseconds()
	}
	return r
}

// vp8Start returns where the VP8 frame starts in a packet that begins a
// frame (RFC 7741 payload descriptor with S set and partition 0).
func vp8Start(p []byte) (int, bool) {
	if len(p) < 1 || p[0]&0x10 == 0 || p[0]&0x07 != 0 {
		return 0, false
	}
	i := 1
	if p[0]&0x80 != 0 {
		if len(p) < 2 {
			return 0, false
		}
		x := p[1]
		i = 2
		if x&0x80 != 0 {
			if len(p) > i && p[i]&0x80 != 0 {
				i++
			}
			i++
		}
		if x&0x40 != 0 {
			i++
		}
		if x&0x30 != 0 {
			i++
		}
	}
	return i, len(p) > i
}

// viewer is a viewer process seen from the test.
type viewer struct {
	name string
	cmd  *exec.Cmd

	mu      sync.Mutex
	reports []report
	stderr  []byte
	exited  chan struct{}
}

// startViewer runs a viewer of url inside p's namespace; it is killed when
// the test ends.
func startViewer(t *testing.T, name string, p *path, url, token string) *viewer {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	v := &viewer{name: name, exited: make(chan struct{})}
	v.cmd = exec.Command("ip", "netns", "exec", p.ns, exe, "-test.run=^$")
	v.cmd.Env = append(os.Environ(), viewerEnv+"="+url, viewerTokenEnv+"="+token)
	stdout, err := v.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := v.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("start viewer %s: %v", name, err)
	}
	go func() {
		b, _ := io.ReadAll(stderr)
		v.mu.Lock()
		v.stderr = b
		v.mu.Unlock()
	}()
	go func() {
		defer close(v.exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var r report
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				v.mu.Lock()
				v.reports = append(v.reports, r)
				v.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		_ = v.cmd.Process.Kill()
		<-v.exited
		_ = v.cmd.Wait()
		if t.Failed() || os.Getenv("STARLING_TEST_LOG") != "" {
			v.mu.Lock()
			t.Logf("viewer %s stderr:\n%s", name, v.stderr)
			v.mu.Unlock()
		}
	})
	return v
}

// last returns the newest report, failing the test if the viewer died.
func (v *viewer) last(t *testing.T) report {
	t.Helper()
	select {
	case <-v.exited:
		v.mu.Lock()
		defer v.mu.Unlock()
		t.Fatalf("viewer %s exited: %s", v.name, v.stderr)
	default:
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.reports) == 0 {
		return report{}
	}
	return v.reports[len(v.reports)-1]
}

// since returns the reports from at on.
func (v *viewer) since(at time.Time) []report {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []report
	for _, r := range v.reports {
		if !r.time().Before(at) {
			out = append(out, r)
		}
	}
	return out
}
