package rtpsrc

import (
	"bytes"
	"errors"
	"testing"
)

// A VP9 keyframe's uncompressed header (VP9 spec §6.2): frame marker,
// profile 0, key frame, shown; sync code; colour space; 320×240.
var vp9Key = []byte{0x82, 0x49, 0x83, 0x42, 0x00, 0x13, 0xf0, 0x0e, 0xf0, 0xaa, 0xbb}

// vp9Delta is the start of an inter frame: frame_type 1.
var vp9Delta = []byte{0x86, 0x11, 0x22, 0x33}

func TestVP9DepacketizerRebuildsFrames(t *testing.T) {
	const b, e, l = 0x08, 0x04, 0x20 // start of frame, end of frame, layer indices present
	cases := []struct {
		name    string
		packets [][]byte
		want    []byte
		key     bool
		err     error
	}{
		{name: "keyframe in two packets", packets: [][]byte{append([]byte{b}, vp9Key[:5]...), append([]byte{e}, vp9Key[5:]...)}, want: vp9Key, key: true},
		{name: "inter frame", packets: [][]byte{append([]byte{b | e}, vp9Delta...)}, want: vp9Delta},
		{
			name: "spatial layers: the base is kept",
			packets: [][]byte{
				append([]byte{b | e | l, 0x00, 0x07}, vp9Key...),   // SID 0, TL0PICIDX 7
				append([]byte{b | e | l, 0x02, 0x07}, vp9Delta...), // SID 1
			},
			want: vp9Key, key: true,
		},
		{name: "first packet does not start the frame", packets: [][]byte{append([]byte{e}, vp9Delta...)}, err: errNotFrameHead},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := &vp9Depacketizer{}
			d.reset()
			var err error
			for _, p := range c.packets {
				if err = d.push(p); err != nil {
					break
				}
			}
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("error %v, want %v", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, key, err := d.frame()
			if err != nil || !bytes.Equal(got, c.want) || key != c.key {
				t.Fatalf("got %x key=%v err=%v, want %x key=%v", got, key, err, c.want, c.key)
			}
			if w, h := d.size(); key && (w != 320 || h != 240) {
				t.Fatalf("size %dx%d, want 320x240", w, h)
			}
		})
	}
}

func TestVP8DescriptorLengths(t *testing.T) {
	cases := []struct {
		name  string
		p     []byte
		n     int
		start bool
	}{
		{"minimal, start", []byte{0x10, 0x9d}, 1, true},
		{"continuation", []byte{0x00, 0x9d}, 1, false},
		{"start of partition 1", []byte{0x11, 0x9d}, 1, false},
		{"7-bit picture id", []byte{0x90, 0x80, 0x05, 0x9d}, 3, true},
		{"15-bit picture id", []byte{0x90, 0x80, 0x85, 0x05, 0x9d}, 4, true},
		{"picture id, TL0PICIDX, TID", []byte{0x90, 0xe0, 0x85, 0x05, 0x01, 0x40, 0x9d}, 6, true},
	}
	for _, c := range cases {
		n, start, err := vp8Descriptor(c.p)
		if err != nil || n != c.n || start != c.start {
			t.Errorf("%s: n=%d start=%v err=%v, want n=%d start=%v", c.name, n, start, err, c.n, c.start)
		}
	}
	for _, p := range [][]byte{{}, {0x80}, {0x90, 0x80}, {0x90, 0x80, 0x85}, {0x90, 0x60}} {
		if _, _, err := vp8Descriptor(p); err == nil {
			t.Errorf("descriptor %x: no error", p)
		}
	}
}
