package rtpsrc

import (
	"bytes"
	"errors"
	"testing"
)

// Small NAL units for building packets by hand. A slice's second byte has
// its top bit set when first_mb_in_slice is 0 (the slice starts the picture).
var (
	tSPS   = []byte{0x67, 0x42, 0xc0, 0x1f, 0xda}
	tPPS   = []byte{0x68, 0xce, 0x3c, 0x80}
	tIDR   = []byte{0x65, 0x88, 0x84, 0x00, 0x33, 0xff, 0x10, 0x20}
	tIDR2  = []byte{0x65, 0x40, 0x11, 0x22} // a second slice of the same picture
	tSlice = []byte{0x41, 0x9a, 0x02, 0x04, 0x06}
	tAUD   = []byte{0x09, 0xf0}
)

func annexB(nals ...[]byte) []byte {
	var b []byte
	for _, n := range nals {
		b = append(append(b, 0, 0, 0, 1), n...)
	}
	return b
}

func stapA(nals ...[]byte) []byte {
	b := []byte{0x78} // NRI 3, type 24
	for _, n := range nals {
		b = append(b, byte(len(n)>>8), byte(len(n)))
		b = append(b, n...)
	}
	return b
}

// fuA splits nal into FU-A fragments of at most size bytes of data.
func fuA(nal []byte, size int) [][]byte {
	ind := nal[0]&0xe0 | nalFUA
	data := nal[1:]
	var out [][]byte
	for i := 0; i < len(data); i += size {
		end := min(i+size, len(data))
		hdr := nal[0] & 0x1f
		if i == 0 {
			hdr |= 0x80
		}
		if end == len(data) {
			hdr |= 0x40
		}
		out = append(out, append([]byte{ind, hdr}, data[i:end]...))
	}
	return out
}

func cat(parts ...[][]byte) [][]byte {
	var out [][]byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestH264DepacketizerPacketizationModes(t *testing.T) {
	one := func(b []byte) [][]byte { return [][]byte{b} }
	cases := []struct {
		name    string
		packets [][]byte
		want    []byte // nil: an error, at push or frame
		key     bool
		pushErr error // when the error must be this one
	}{
		{name: "mode 0: single NAL unit packets", packets: [][]byte{tSPS, tPPS, tIDR}, want: annexB(tSPS, tPPS, tIDR), key: true},
		{name: "mode 0: non-IDR slice", packets: one(tSlice), want: annexB(tSlice)},
		{name: "mode 0: AUD first", packets: [][]byte{tAUD, tSlice}, want: annexB(tAUD, tSlice)},
		{name: "mode 1: STAP-A parameter sets, FU-A IDR", packets: cat(one(stapA(tSPS, tPPS)), fuA(tIDR, 3)), want: annexB(tSPS, tPPS, tIDR), key: true},
		{name: "mode 1: FU-A of one fragment", packets: fuA(tSlice, 100), want: annexB(tSlice)},
		{name: "mode 1: two slices, FU-A then single", packets: cat(one(stapA(tSPS, tPPS)), fuA(tIDR, 2), one(tIDR2)), want: annexB(tSPS, tPPS, tIDR, tIDR2), key: true},
		{name: "IDR with no parameter set ever seen", packets: one(tIDR), want: annexB(tIDR)},
		{name: "mode 1: STAP-A of everything", packets: one(stapA(tSPS, tPPS, tIDR, tIDR2)), want: annexB(tSPS, tPPS, tIDR, tIDR2), key: true},
		{name: "FU-A without its end", packets: fuA(tIDR, 3)[:2]},
		{name: "FU-A without its start", packets: fuA(tIDR, 3)[1:]},
		{name: "FU-A start twice", packets: cat(fuA(tIDR, 3)[:1], fuA(tIDR, 3))},
		{name: "single NAL inside an FU-A", packets: cat(fuA(tIDR, 3)[:1], one(tIDR2))},
		{name: "STAP-A size past the end", packets: one([]byte{0x78, 0x00, 0x09, 0x67, 0x42})},
		{name: "STAP-A with no units", packets: one([]byte{0x78})},
		{name: "AU starting at a later slice", packets: one(tIDR2), pushErr: errNotFrameHead},
		{name: "mode 2: STAP-B", packets: one([]byte{0x79, 0, 0, 0, 2, 0x65, 0x88}), pushErr: errH264Mode},
		{name: "mode 2: MTAP16", packets: one([]byte{0x7a, 0, 0}), pushErr: errH264Mode},
		{name: "mode 2: MTAP24", packets: one([]byte{0x7b, 0, 0}), pushErr: errH264Mode},
		{name: "mode 2: FU-B", packets: one([]byte{0x7d, 0x85, 0, 0, 0x88}), pushErr: errH264Mode},
		{name: "reserved type 30", packets: one([]byte{0x7e, 0})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := &h264Depacketizer{log: testLog()}
			d.reset()
			var err error
			for _, p := range c.packets {
				if err = d.push(p); err != nil {
					break
				}
			}
			if c.pushErr != nil && !errors.Is(err, c.pushErr) {
				t.Fatalf("push error %v, want %v", err, c.pushErr)
			}
			var got []byte
			var key bool
			if err == nil {
				got, key, err = d.frame()
			}
			if c.want == nil {
				if err == nil {
					t.Fatalf("rebuilt %x, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, c.want) || key != c.key {
				t.Fatalf("got %x key=%v, want %x key=%v", got, key, c.want, c.key)
			}
		})
	}
}

func TestH264IDRWithoutParameterSetsGetsTheLastOnes(t *testing.T) {
	d := &h264Depacketizer{log: testLog()}
	frame := func(packets ...[]byte) ([]byte, bool) {
		t.Helper()
		d.reset()
		for _, p := range packets {
			if err := d.push(p); err != nil {
				t.Fatal(err)
			}
		}
		b, key, err := d.frame()
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte(nil), b...), key
	}
	// Before any parameter set, an IDR is no usable keyframe.
	if _, key := frame(tIDR); key {
		t.Fatal("IDR without SPS/PPS, none seen yet, counted as a keyframe")
	}
	frame(stapA(tSPS, tPPS), tIDR)
	frame(tSlice)
	got, key := frame(tIDR)
	if want := annexB(tSPS, tPPS, tIDR); !key || !bytes.Equal(got, want) {
		t.Fatalf("bare IDR became %x key=%v, want %x", got, key, want)
	}
}
