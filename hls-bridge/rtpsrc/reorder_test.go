package rtpsrc

import (
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"
)

const testDelay = int64(100 * time.Millisecond)

// popAll releases everything the buffer gives at now: each packet's sequence
// number, followed by −lost when packets were given up on before it.
func popAll(r *reorder, now int64) []int {
	var out []int
	for {
		p, lost, ok := r.pop(now)
		if !ok {
			return out
		}
		out = append(out, int(p.seq))
		if lost > 0 {
			out = append(out, -lost)
		}
	}
}

func pushSeq(r *reorder, seq uint16, at int64) pushResult {
	return r.push(&rtp.Packet{Header: rtp.Header{SequenceNumber: seq}, Payload: []byte{byte(seq)}}, at)
}

// pushPop pushes seqs at time at, popping after each, and returns what came out.
func pushPop(r *reorder, at int64, seqs ...uint16) []int {
	var out []int
	for _, s := range seqs {
		pushSeq(r, s, at)
		out = append(out, popAll(r, at)...)
	}
	return out
}

func TestReorderHoldsTheFirstPacketsForPacketsThatOvertookThem(t *testing.T) {
	r := &reorder{maxDelay: testDelay}
	if got := pushPop(r, 0, 12, 10, 11); len(got) != 0 {
		t.Fatalf("released %v while warming up", got)
	}
	if got := popAll(r, testDelay); !slices.Equal(got, []int{10, 11, 12}) {
		t.Fatalf("released %v, want [10 11 12]", got)
	}
	if res := pushSeq(r, 9, testDelay); res != pushDiscarded {
		t.Fatalf("packet before the released ones: %v, want discarded", res)
	}
}

func TestReorderPutsPacketsBackInOrder(t *testing.T) {
	r := &reorder{maxDelay: testDelay}
	pushPop(r, 0, 9)
	popAll(r, testDelay)
	got := pushPop(r, testDelay, 10, 12, 11, 14, 13, 15)
	if want := []int{10, 11, 12, 13, 14, 15}; !slices.Equal(got, want) {
		t.Fatalf("released %v, want %v", got, want)
	}
}

func TestReorderGivesUpOnAGapAfterMaxDelay(t *testing.T) {
	ms := int64(time.Millisecond)
	r := &reorder{maxDelay: testDelay}
	pushSeq(r, 1, 0)
	pushSeq(r, 3, 10*ms)
	pushSeq(r, 4, 20*ms)
	if got := popAll(r, testDelay); !slices.Equal(got, []int{1}) {
		t.Fatalf("released %v before the deadline, want [1]", got)
	}
	if got := popAll(r, 109*ms); len(got) != 0 {
		t.Fatalf("released %v 99 ms after packet 3 arrived, want nothing yet", got)
	}
	if got := popAll(r, 110*ms); !slices.Equal(got, []int{3, -1, 4}) {
		t.Fatalf("released %v, want [3 (1 lost) 4]", got)
	}
	if res := pushSeq(r, 2, 120*ms); res != pushDiscarded {
		t.Fatalf("late packet 2: %v, want discarded", res)
	}
}

func TestReorderDiscardsDuplicates(t *testing.T) {
	r := &reorder{maxDelay: testDelay}
	pushSeq(r, 5, 0)
	pushSeq(r, 7, testDelay/2)
	if res := pushSeq(r, 7, testDelay/2); res != pushDiscarded {
		t.Fatalf("held duplicate: %v", res)
	}
	popAll(r, testDelay)
	if res := pushSeq(r, 5, testDelay); res != pushDiscarded {
		t.Fatalf("released duplicate: %v", res)
	}
	if got := pushPop(r, testDelay, 6); !slices.Equal(got, []int{6, 7}) {
		t.Fatalf("released %v, want [6 7]", got)
	}
}

func TestReorderCrossesSequenceWraparound(t *testing.T) {
	r := &reorder{maxDelay: testDelay}
	got := pushPop(r, 0, 65533, 65535, 65534, 1, 0, 2)
	got = append(got, popAll(r, testDelay)...)
	if want := []int{65533, 65534, 65535, 0, 1, 2}; !slices.Equal(got, want) {
		t.Fatalf("released %v, want %v", got, want)
	}
}

func TestReorderStartsOverOnAJump(t *testing.T) {
	r := &reorder{maxDelay: testDelay}
	pushSeq(r, 100, 0)
	popAll(r, testDelay)
	pushSeq(r, 102, testDelay) // held behind 101
	if res := pushSeq(r, 30000, testDelay); res != pushReset {
		t.Fatalf("jump: %v, want reset", res)
	}
	if got := popAll(r, 2*testDelay); !slices.Equal(got, []int{30000, -2}) {
		t.Fatalf("released %v, want [30000 (2 lost)]", got)
	}
}
