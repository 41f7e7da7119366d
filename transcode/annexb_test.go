package transcode

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func TestEachNALUSplitsStartCodes(t *testing.T) {
	au := []byte{
		0, 0, 0, 1, 0x09, 0xF0, // AUD after a 4-byte start code
		0, 0, 1, 0x67, 1, 2, 0, 0, // SPS with trailing zeros
		0, 0, 0, 1, 0x68, 3,
		0, 0, 1, 0x65, 4, 5, 6,
	}
	var got [][]byte
	eachNALU(au, func(n []byte) { got = append(got, n) })
	want := [][]byte{{0x09, 0xF0}, {0x67, 1, 2}, {0x68, 3}, {0x65, 4, 5, 6}}
	if len(got) != len(want) {
		t.Fatalf("got %x", got)
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("NALU %d: %x, want %x", i, got[i], want[i])
		}
	}
	var single [][]byte
	eachNALU([]byte{0x41, 7}, func(n []byte) { single = append(single, n) })
	if len(single) != 1 || !bytes.Equal(single[0], []byte{0x41, 7}) {
		t.Errorf("no start code: %x", single)
	}
}

func TestAppendAVCCPrefixesLengths(t *testing.T) {
	got := appendAVCC(nil, []byte{0, 0, 1, 0x65, 0xAA, 0, 0, 1, 0x65, 0xBB, 0xCC})
	if want := "0000000265aa0000000365bbcc"; hex.EncodeToString(got) != want {
		t.Errorf("got %x, want %s", got, want)
	}
}

func TestAVCDecoderConfigFromKeyframe(t *testing.T) {
	sps := []byte{0x67, 0x42, 0xC0, 0x1E, 0xD9}
	pps := []byte{0x68, 0xCE, 0x3C, 0x80}
	var au []byte
	for _, n := range [][]byte{sps, pps, {0x65, 0x88}} {
		au = append(append(au, 0, 0, 0, 1), n...)
	}
	got, err := avcDecoderConfig(au)
	if err != nil {
		t.Fatal(err)
	}
	// version 1, profile 66, compat C0, level 30, 4-byte lengths, 1 SPS, 1 PPS
	want := "0142c01effe1" + "0005" + "6742c01ed9" + "01" + "0004" + "68ce3c80"
	if hex.EncodeToString(got) != want {
		t.Errorf("avcC %x, want %s", got, want)
	}
	if _, err := avcDecoderConfig([]byte{0, 0, 1, 0x65, 0x88}); err != errNoParameterSets {
		t.Errorf("IDR alone: %v", err)
	}
}
