package sfu

import (
	"bytes"
	"testing"
)

func TestPacketCacheReturnsStoredPacketsAndForgetsOverwritten(t *testing.T) {
	c := newPacketCache()
	buf := make([]byte, maxPacketSize)
	base := uint16(65000)
	for i := range packetCacheSize + 10 {
		c.put(base+uint16(i), uint32(i)*3000, []byte{byte(i), 1, 2, 3}, i%100 == 0)
	}
	last := packetCacheSize + 9
	newest := base + uint16(last)
	if n := c.get(newest, buf); n != 4 || !bytes.Equal(buf[:4], []byte{byte(last), 1, 2, 3}) {
		t.Fatalf("newest packet: n=%d % x", n, buf[:n])
	}
	if n := c.get(base, buf); n != 0 {
		t.Fatalf("overwritten packet still returned (%d bytes)", n)
	}
	first, end, ok := c.keyframeRun()
	if wantFirst := base + 1000; !ok || end != newest || first != wantFirst {
		t.Fatalf("keyframeRun = %d..%d %v, want %d..%d", first, end, ok, wantFirst, newest)
	}
}

func TestPacketCacheIgnoresOversizedPackets(t *testing.T) {
	c := newPacketCache()
	c.put(1, 0, make([]byte, maxPacketSize+1), false)
	if n := c.get(1, make([]byte, maxPacketSize)); n != 0 {
		t.Fatalf("oversized packet cached")
	}
}

// H.264 starts a keyframe twice in one picture: the STAP-A with SPS and PPS,
// then the IDR's first fragment. A new viewer's run must begin at the first,
// or its decoder gets an IDR without parameter sets.
func TestKeyframeRunStartsAtThePicturesFirstKeyframePacket(t *testing.T) {
	c := newPacketCache()
	c.put(10, 1000, []byte{1}, false)
	c.put(11, 4000, []byte{2}, true) // STAP-A: SPS, PPS
	c.put(12, 4000, []byte{3}, true) // FU-A start of the IDR
	c.put(13, 4000, []byte{4}, false)
	c.put(14, 7000, []byte{5}, false)
	if first, last, ok := c.keyframeRun(); !ok || first != 11 || last != 14 {
		t.Fatalf("keyframeRun = %d..%d %v, want 11..14", first, last, ok)
	}
	// The next keyframe, another picture, moves the start.
	c.put(15, 10000, []byte{6}, true)
	c.put(16, 10000, []byte{7}, true)
	if first, _, ok := c.keyframeRun(); !ok || first != 15 {
		t.Fatalf("keyframeRun starts at %d %v, want 15", first, ok)
	}
}
