package rtpsrc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// Test media, made by ffmpeg: 320×240 VP8 at 25 fps with a keyframe only at
// the start, the same pictures coded as keyframes only (sent in answer to a
// PLI), and 48 kHz stereo Opus in 20 ms packets, pink noise so that every
// packet differs.
const (
	mediaW, mediaH = 320, 240
	mediaFPS       = 25
	mediaSeconds   = 14
)

type testMedia struct {
	video, intra, audio [][]byte
}

func makeMedia(t *testing.T) *testMedia {
	t.Helper()
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg not in PATH")
	}
	dir := t.TempDir()
	src := []string{"-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
		"testsrc2=size=320x240:rate=25:duration=14"}
	vp8 := []string{"-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "400k",
		"-lag-in-frames", "0", "-auto-alt-ref", "0", "-threads", "1"}
	run := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, ffmpeg, args...).CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
		}
	}
	run(append(append(src, vp8...), "-g", "1000", "-keyint_min", "1000", "-f", "ivf", filepath.Join(dir, "video.ivf"))...)
	run(append(append(src, vp8...), "-g", "1", "-f", "ivf", filepath.Join(dir, "intra.ivf"))...)
	run("-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "anoisesrc=d=14:c=pink:r=48000:a=0.2",
		"-ac", "2", "-c:a", "libopus", "-b:a", "64k", "-vbr", "off", "-frame_duration", "20",
		"-page_duration", "20000", "-f", "ogg", filepath.Join(dir, "audio.ogg"))
	m := &testMedia{
		video: readIVF(t, filepath.Join(dir, "video.ivf")),
		intra: readIVF(t, filepath.Join(dir, "intra.ivf")),
		audio: readOgg(t, filepath.Join(dir, "audio.ogg")),
	}
	if len(m.video) != len(m.intra) || len(m.video) < mediaFPS*mediaSeconds-1 || len(m.audio) < 50*mediaSeconds-5 {
		t.Fatalf("ffmpeg made %d, %d video and %d audio frames", len(m.video), len(m.intra), len(m.audio))
	}
	return m
}

func readIVF(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := ivfreader.NewWith(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		f, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
}

// readOgg returns the Opus packets of a file with one packet per page.
func readOgg(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := oggreader.NewWith(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		p, page, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, header := page.HeaderType(p); header || len(p) == 0 {
			continue
		}
		out = append(out, p)
	}
}

func fingerprint(b []byte) uint64 {
	h := fnv.New64a()
	_, _ = h.Write(b)
	return h.Sum64()
}

// publisher is a WHIP client sending testMedia in real time, video frame i
// and audio packet 2i from the same instant. It answers a PLI with the next
// picture coded as a keyframe.
type publisher struct {
	pc       *webrtc.PeerConnection
	location string
	video    *webrtc.TrackLocalStaticSample
	audio    *webrtc.TrackLocalStaticSample
	m        *testMedia
	wantKey  atomic.Bool
	plis     atomic.Int64
	stop     chan struct{}
	wg       sync.WaitGroup

	mu        sync.Mutex
	videoSent map[uint64]int // fingerprint → frame index (the first one sent)
	audioSent map[uint64]int
	keyIndex  map[uint64]bool // fingerprints sent as keyframes
}

func publish(t *testing.T, url, token string, m *testMedia) *publisher {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p := &publisher{pc: pc, m: m, stop: make(chan struct{}),
		videoSent: map[uint64]int{}, audioSent: map[uint64]int{}, keyIndex: map[uint64]bool{}}
	t.Cleanup(p.close)
	p.video, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "pub")
	if err != nil {
		t.Fatal(err)
	}
	p.audio, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "pub")
	if err != nil {
		t.Fatal(err)
	}
	vs, err := pc.AddTrack(p.video)
	if err != nil {
		t.Fatal(err)
	}
	as, err := pc.AddTrack(p.audio)
	if err != nil {
		t.Fatal(err)
	}
	p.wg.Add(2)
	go p.readRTCP(vs)
	go p.readRTCP(as)
	connected := make(chan struct{})
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answer, loc, err := whipPost(ctx, url, token, pc.LocalDescription().SDP)
	if err != nil {
		t.Fatalf("whip: %v", err)
	}
	p.location = loc
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		t.Fatal("publisher not connected after 10 s")
	}
	p.wg.Add(1)
	go p.send()
	return p
}

func (p *publisher) readRTCP(s *webrtc.RTPSender) {
	defer p.wg.Done()
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			switch pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				p.plis.Add(1)
				p.wantKey.Store(true)
			}
		}
	}
}

// send paces the media on the wall clock until stopped, looping at the end.
func (p *publisher) send() {
	defer p.wg.Done()
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for vi, ai := 0, 0; ; {
		nextV := start.Add(time.Duration(vi) * time.Second / mediaFPS)
		nextA := start.Add(time.Duration(ai) * 20 * time.Millisecond)
		next := nextV
		if nextA.Before(next) {
			next = nextA
		}
		timer.Reset(time.Until(next))
		select {
		case <-p.stop:
			return
		case <-timer.C:
		}
		if !nextV.After(next) {
			frame, key := p.m.video[vi%len(p.m.video)], vi%len(p.m.video) == 0
			if p.wantKey.Swap(false) {
				frame, key = p.m.intra[vi%len(p.m.intra)], true
			}
			p.note(p.videoSent, frame, vi, key)
			_ = p.video.WriteSample(media.Sample{Data: frame, Duration: time.Second / mediaFPS})
			vi++
		}
		if !nextA.After(next) {
			packet := p.m.audio[ai%len(p.m.audio)]
			p.note(p.audioSent, packet, ai, false)
			_ = p.audio.WriteSample(media.Sample{Data: packet, Duration: 20 * time.Millisecond})
			ai++
		}
	}
}

func (p *publisher) note(sent map[uint64]int, data []byte, i int, key bool) {
	f := fingerprint(data)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := sent[f]; !ok {
		sent[f] = i
	}
	if key {
		p.keyIndex[f] = true
	}
}

// index returns the send index of a received frame, -1 when it was never sent.
func (p *publisher) index(sent map[uint64]int, data []byte) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i, ok := sent[fingerprint(data)]; ok {
		return i
	}
	return -1
}

// leave deletes the WHIP session and stops sending.
func (p *publisher) leave(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := whipDelete(ctx, p.location); err != nil {
		t.Errorf("whip delete: %v", err)
	}
	p.close()
}

func (p *publisher) close() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	_ = p.pc.Close()
	p.wg.Wait()
}

// whipPost offers a WHIP session and returns the answer and the session URL.
func whipPost(ctx context.Context, url, token, offer string) (answer, location string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(offer))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := httpClient.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", "", fmt.Errorf("%s: %s", resp.Status, body)
	}
	loc, err := resp.Location()
	if err != nil {
		return "", "", err
	}
	return string(body), loc.String(), nil
}

func whipDelete(ctx context.Context, location string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, location, nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("delete: %s", resp.Status)
	}
	return nil
}
