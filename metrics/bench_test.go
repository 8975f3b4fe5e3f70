package metrics

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// realisticPass is one example of the reference model: 6 layers × 8 heads
// of each attention kind, 30 source and 30 target tokens.
func realisticPass() PassInput { return randomPass(rand.New(rand.NewPCG(1, 1)), 30) }

// randomPass is a pass of the reference model's shape over n source and n
// target tokens.
func randomPass(rng *rand.Rand, n int) PassInput {
	const layers, heads = 6, 8
	kind := func() [][]Matrix {
		out := make([][]Matrix, layers)
		for l := range out {
			for range heads {
				out[l] = append(out[l], randomAttention(rng, n, n))
			}
		}
		return out
	}
	in := PassInput{Target: "a b c d e f g h i j k l m n o p q r s t u v w x y z a b c", Reference: "a b c d e f g h i j k l m n o p q r s t u v w x y z", HasReference: true,
		EncoderSelf: kind(), DecoderSelf: kind(), Cross: kind()}
	for range n {
		in.SrcPieces = append(in.SrcPieces, "▁x")
		in.TgtPieces = append(in.TgtPieces, "▁y")
		in.TgtIDs = append(in.TgtIDs, int32(rng.IntN(20)))
		in.Logprobs = append(in.Logprobs, -rng.Float32())
	}
	in.Gold = &Alignment{Sure: []Link{{Src: 0, Tgt: 0}, {Src: 3, Tgt: 2}}}
	in.Pass = PassForced // AER applies to the forced pass only
	return in
}

// BenchmarkScorePass measures every per-example metric of one pass over
// realistic sizes (6 layers × 8 heads × 3 kinds, 30 × 30 tokens), AER and
// chrF/BLEU included; ns/op is ns per example and pass.
func BenchmarkScorePass(b *testing.B) {
	in := realisticPass()
	cfg := DefaultConfig()
	b.ReportAllocs()
	for b.Loop() {
		ScorePass(in, cfg)
	}
}

// BenchmarkWassToData measures one Wass-to-Data query against a pool of
// 5,000 examples of lengths 5…60.
func BenchmarkWassToData(b *testing.B) {
	rng := rand.New(rand.NewPCG(2, 2))
	var entries []PoolEntry
	for i := range 5000 {
		n := 5 + rng.IntN(56)
		pi := make([]float64, n)
		var s float64
		for j := range pi {
			pi[j] = rng.Float64()
			s += pi[j]
		}
		for j := range pi {
			pi[j] /= s
		}
		entries = append(entries, PoolEntry{ID: int32(i), Len: n, Pi: pi})
	}
	pool := NewPool(entries)
	q := entries[0]
	for b.Loop() {
		pool.WassToData(q.ID, 30, q.Pi, DefaultWassK, DefaultLengthTolerance)
	}
}

// A Scorer reused over passes of different shapes scores each exactly as a
// fresh one does: no scratch space leaks from one pass into the next.
func TestScorerReuse(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	cfg := DefaultConfig()
	var s Scorer
	for _, n := range []int{30, 7, 12, 30, 2, 45, 7} {
		in := randomPass(rng, n)
		if n == 12 {
			in.Gold = nil
		}
		got, want := s.ScorePass(in, cfg), ScorePass(in, cfg)
		if g, w := fmt.Sprintf("%v", got), fmt.Sprintf("%v", want); g != w {
			t.Fatalf("n = %d: reused Scorer gives\n%s\nfresh one\n%s", n, g, w)
		}
	}
}

// BenchmarkScorer is BenchmarkScorePass with one Scorer reused from pass to
// pass, as each worker of the metrics stage does.
func BenchmarkScorer(b *testing.B) {
	in := realisticPass()
	cfg := DefaultConfig()
	var s Scorer
	b.ReportAllocs()
	for b.Loop() {
		s.ScorePass(in, cfg)
	}
}

// TestAEROnlyOnTheForcedPass: gold links index the reference, so the same
// attention and gold give an AER on the forced pass and none on the free
// or detached pass.
func TestAEROnlyOnTheForcedPass(t *testing.T) {
	in := realisticPass()
	// Value-vector norms 1, 2, … per source position: norm-based AER too.
	in.CrossNorms = make([][][]float32, len(in.Cross))
	for l, heads := range in.Cross {
		for _, m := range heads {
			norms := make([]float32, m.Cols)
			for j := range norms {
				norms[j] = float32(j + 1)
			}
			in.CrossNorms[l] = append(in.CrossNorms[l], norms)
		}
	}
	for _, pass := range []string{PassForced, PassFree, PassDetached} {
		in.Pass = pass
		sc := ScorePass(in, DefaultConfig())
		want := pass == PassForced
		if got := !math.IsNaN(sc.Sentence.AER); got != want {
			t.Errorf("%s pass: sentence AER %v", pass, sc.Sentence.AER)
		}
		if got := !math.IsNaN(sc.Sentence.AERNorm); got != want {
			t.Errorf("%s pass: sentence norm-based AER %v", pass, sc.Sentence.AERNorm)
		}
		if got := !math.IsNaN(sc.Cross[0][0][HeadAER]); got != want {
			t.Errorf("%s pass: head AER %v", pass, sc.Cross[0][0][HeadAER])
		}
		if got := !math.IsNaN(sc.Cross[0][0][HeadAERNorm]); got != want {
			t.Errorf("%s pass: head norm-based AER %v", pass, sc.Cross[0][0][HeadAERNorm])
		}
	}
}
