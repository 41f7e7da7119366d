package sfu

import "testing"

func TestRewriterKeepsNumberingContinuousAcrossSwitches(t *testing.T) {
	r := rewriter{clockRate: 90000}
	now := int64(1e9)
	// Layer A from seq 65530 (wraps), ts 1000, 3 packets per frame.
	r.switchTo(65530, 1000, now)
	var seqs []uint16
	var tss []uint32
	for i := range 9 {
		seq, ts, ok := r.rewrite(uint16(65530+i), 1000+uint32(i/3)*4500, now)
		if !ok {
			t.Fatalf("packet %d dropped", i)
		}
		seqs, tss = append(seqs, seq), append(tss, ts)
	}
	// 50 ms later, switch to layer B with unrelated numbering.
	now += 50e6
	r.switchTo(100, 7_000_000, now)
	for i := range 6 {
		seq, ts, ok := r.rewrite(uint16(100+i), 7_000_000+uint32(i/3)*4500, now)
		if !ok {
			t.Fatalf("layer B packet %d dropped", i)
		}
		seqs, tss = append(seqs, seq), append(tss, ts)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("sequence gap at %d: %d then %d", i, seqs[i-1], seqs[i])
		}
		if tss[i] < tss[i-1] {
			t.Fatalf("timestamp went back at %d: %d then %d", i, tss[i-1], tss[i])
		}
	}
	// The switch advanced the timestamp by the elapsed 50 ms (4500 ticks).
	if d := tss[9] - tss[8]; d != 4500 {
		t.Fatalf("timestamp step across switch = %d, want 4500", d)
	}
	// A late packet from before the switch point is dropped.
	if _, _, ok := r.rewrite(99, 7_000_000, now); ok {
		t.Fatal("packet older than the switch point was forwarded")
	}
}

func TestRewriterSkipRemovesPaddingFromNumbering(t *testing.T) {
	r := rewriter{clockRate: 90000}
	r.switchTo(10, 0, 0)
	a, _, _ := r.rewrite(10, 0, 0)
	r.skip(11) // padding-only
	b, _, _ := r.rewrite(12, 0, 0)
	if b != a+1 {
		t.Fatalf("after skipped padding got seq %d, want %d", b, a+1)
	}
}

func TestRewriterForwardsReorderedPacketsOfTheRun(t *testing.T) {
	r := rewriter{clockRate: 90000}
	r.switchTo(10, 0, 0)
	r.rewrite(10, 0, 0)
	r.rewrite(12, 0, 0)
	seq, _, ok := r.rewrite(11, 0, 0)
	if !ok || seq != 11 {
		t.Fatalf("reordered packet: seq %d ok %v, want 11 true", seq, ok)
	}
}
