package rtpsrc

import (
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/starling-sfu/starling/clip"
)

// splitRecords cuts fuzz input into records, each preceded by its length
// byte.
func splitRecords(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := min(int(b[0]), len(b)-1)
		out = append(out, b[1:1+n])
		b = b[1+n:]
	}
	return out
}

// joinRecords is the inverse of splitRecords, for seeds; records are cut to
// 255 bytes.
func joinRecords(recs [][]byte) []byte {
	var b []byte
	for _, r := range recs {
		r = r[:min(len(r), 255)]
		b = append(append(b, byte(len(r))), r...)
	}
	return b
}

// seedPayloads adds, as seeds, the payloads of a few real frames of codec,
// packetized small so that they fragment.
func seedPayloads(f *testing.F, codec clip.Codec) {
	c := mustClip(f, codec, "q")
	s := newStream(codec, 1, 1, 1, 4500)
	s.mtu = 200
	for _, i := range []int{0, 1, 2} {
		var recs [][]byte
		for _, p := range s.next(c.Frames[i].Data[:min(len(c.Frames[i].Data), 600)]) {
			recs = append(recs, p.Payload)
		}
		f.Add(joinRecords(recs))
	}
}

// fuzzDepacketizer pushes every record as a payload, starting a new frame
// at every empty one; it must never panic.
func fuzzDepacketizer(data []byte, d depacketizer) {
	d.reset()
	for _, p := range splitRecords(data) {
		if len(p) == 0 {
			_, _, _ = d.frame()
			_, _ = d.size()
			d.reset()
			continue
		}
		_ = d.push(p)
	}
	_, _, _ = d.frame()
}

func FuzzH264Depacketizer(f *testing.F) {
	seedPayloads(f, clip.H264)
	f.Add(joinRecords([][]byte{stapA(tSPS, tPPS), fuA(tIDR, 3)[0], {}, tIDR}))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDepacketizer(data, &h264Depacketizer{log: testLog()})
	})
}

func FuzzVP8Depacketizer(f *testing.F) {
	seedPayloads(f, clip.VP8)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDepacketizer(data, &vp8Depacketizer{})
	})
}

func FuzzVP9Depacketizer(f *testing.F) {
	f.Add(joinRecords([][]byte{{0x8c, 0x01, 0x82, 0x49, 0x83, 0x42, 0x00, 0x13, 0xf0}, {0x84, 0x01, 0x00}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDepacketizer(data, &vp9Depacketizer{})
	})
}

// FuzzSource feeds a Source arbitrary packets: each record is a sequence
// number delta, a timestamp delta, a flags byte (marker, audio track, time
// step) and the payload. Nothing may panic, and PTS never goes back.
func FuzzSource(f *testing.F) {
	f.Add(joinRecords([][]byte{
		append([]byte{1, 0, 0}, stapA(tSPS, tPPS)...),
		append([]byte{1, 0, 1}, tIDR...),
		{1, 10, 0x02, 0xfc, 0xff},
		append([]byte{0xff, 0xff, 1}, tSlice...),
	}))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec := &recorder{}
		src := NewSource(rec, Options{SyncWait: 50 * time.Millisecond, Logger: testLog()})
		video, _ := src.AddTrack(TrackParams{MimeType: "video/H264"})
		audio, _ := src.AddTrack(TrackParams{MimeType: "audio/opus"})
		var seq [2]uint16
		var ts [2]uint32
		now := time.Duration(0)
		for _, r := range splitRecords(data) {
			if len(r) < 3 {
				continue
			}
			k, tr := 0, video
			if r[2]&0x02 != 0 {
				k, tr = 1, audio
			}
			seq[k] += uint16(int8(r[0]))
			ts[k] += uint32(int8(r[1])) * 1000
			now += time.Duration(r[2]>>2) * 5 * time.Millisecond
			tr.WriteRTP(&rtp.Packet{Header: rtp.Header{SequenceNumber: seq[k], Timestamp: ts[k], SSRC: uint32(k + 1), Marker: r[2]&1 != 0}, Payload: r[3:]}, at(now))
			src.Tick(at(now))
		}
		src.Tick(at(now + time.Second))
		_, v, a := rec.snapshot()
		for i := 1; i < len(v); i++ {
			if v[i].PTS <= v[i-1].PTS {
				t.Fatalf("video PTS went from %v to %v", v[i-1].PTS, v[i].PTS)
			}
		}
		for i := 1; i < len(a); i++ {
			if a[i].PTS <= a[i-1].PTS {
				t.Fatalf("audio PTS went from %v to %v", a[i-1].PTS, a[i].PTS)
			}
		}
	})
}
