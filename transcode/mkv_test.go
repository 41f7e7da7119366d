package transcode

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestAppendSizeUsesShortestEncoding(t *testing.T) {
	tests := []struct {
		v    uint64
		want string
	}{
		{0, "80"},
		{126, "fe"},
		{127, "407f"}, // 0xff would mean "unknown"
		{16382, "7ffe"},
		{16383, "203fff"},
		{1 << 30, "0840000000"},
	}
	for _, tt := range tests {
		if got := hex.EncodeToString(appendSize(nil, tt.v)); got != tt.want {
			t.Errorf("appendSize(%d) = %s, want %s", tt.v, got, tt.want)
		}
	}
}

func TestAppendUint(t *testing.T) {
	if got := hex.EncodeToString(appendUint(nil, idTimestampScale, 1_000_000)); got != "2ad7b1830f4240" {
		t.Errorf("TimestampScale 1 ms: %s", got)
	}
	if got := hex.EncodeToString(appendUint(nil, idTrackNumber, 0)); got != "d78100" {
		t.Errorf("zero: %s", got)
	}
}

func TestMKVWriterStartsClusters(t *testing.T) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	m := newMKVWriter(bw)
	cluster := func() int { _ = bw.Flush(); return bytes.Count(buf.Bytes(), []byte{0x1F, 0x43, 0xB6, 0x75}) }
	steps := []struct {
		ts           int64
		key, newClus bool
		clusters     int
	}{
		{0, true, true, 1},
		{33, false, false, 1},
		{20, false, false, 1},    // earlier audio: a negative offset in the same cluster
		{2000, true, true, 2},    // video keyframe
		{34767, false, false, 2}, // offset 32767: still fits
		{34768, false, false, 3}, // 32768 does not
		{34768 + 40000, false, false, 4},
	}
	for _, s := range steps {
		if err := m.writeBlock(1, s.ts, s.key, s.newClus, []byte{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		if got := cluster(); got != s.clusters {
			t.Errorf("after block at %d ms: %d clusters, want %d", s.ts, got, s.clusters)
		}
	}
	if err := m.writeBlock(1, -1, false, false, nil); err == nil {
		t.Error("negative timestamp accepted")
	}
}

// TestMKVStreamReadsBackInFFprobe writes VP8 and Opus with the writer and
// lets ffprobe read the timestamps and keyframe flags back, across a
// Cluster split by a long gap.
func TestMKVStreamReadsBackInFFprobe(t *testing.T) {
	ffprobe, err := exec.LookPath("ffprobe")
	if err != nil {
		t.Skip("ffprobe not installed")
	}
	video := makeVP8(t, 320, 240, 30, 0.2, 3)
	audio := makeOpus(t, 0.1)
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	m := newMKVWriter(bw)
	err = m.writeHeader([]mkvTrack{
		{codecID: "V_VP8", video: true, width: 320, height: 240},
		{codecID: "A_OPUS", codecPrivate: opusHead(), sampleRate: 48000, channels: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	write := func(track int, ts int64, key bool, data []byte) {
		if err := m.writeBlock(track, ts, key, track == 1 && key, data); err != nil {
			t.Fatal(err)
		}
	}
	write(1, 1000, true, video[0].Data)
	write(2, 990, true, audio[0].Data) // before the cluster's start
	write(1, 1033, false, video[1].Data)
	write(2, 1010, true, audio[1].Data)
	write(1, 1067, false, video[2].Data)
	write(1, 41000, true, video[3].Data) // 40 s later, a keyframe
	write(1, 41033, false, video[4].Data)
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "out.mkv")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(ffprobe, "-v", "error", "-show_entries", "packet=stream_index,pts,flags",
		"-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	want := "0,1000,K_\n1,990,K_\n0,1033,__\n1,1010,K_\n0,1067,__\n0,41000,K_\n0,41033,__"
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("ffprobe packets:\n%s\nwant:\n%s", got, want)
	}
}
