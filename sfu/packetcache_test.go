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
		c.put(base+uint16(i), []byte{byte(i), 1, 2, 3}, i%100 == 0)
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
	c.put(1, make([]byte, maxPacketSize+1), false)
	if n := c.get(1, make([]byte, maxPacketSize)); n != 0 {
		t.Fatalf("oversized packet cached")
	}
}
