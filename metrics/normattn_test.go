package metrics

import (
	"math"
	"slices"
	"testing"
)

func TestNormWeighted(t *testing.T) {
	m := mat([]float32{.5, .5, 0}, []float32{1, 0, 0}, []float32{.2, .2, .6})
	got, ok := NormWeighted(m, []float32{1, 3, 2})
	if !ok {
		t.Fatal("NormWeighted refused matching norms")
	}
	// Row 0: .5·1, .5·3 over 2 → ¼, ¾; row 1 keeps its one key; row 2:
	// .2, .6, 1.2 over 2 → .1, .3, .6.
	want := []float64{.25, .75, 0, 1, 0, 0, .1, .3, .6}
	for i, w := range want {
		near(t, "NormWeighted", float64(got.Data[i]), w, 1e-6)
	}
	// Attention only on a zero-norm key reads nothing: the row stays zero.
	zero, _ := NormWeighted(mat([]float32{1, 0}), []float32{0, 5})
	if !slices.Equal(zero.Data, []float32{0, 0}) {
		t.Errorf("zero-norm row = %v", zero.Data)
	}
	if _, ok := NormWeighted(m, []float32{1, 2}); ok {
		t.Error("NormWeighted accepted too few norms")
	}
}

func TestSourceContribution(t *testing.T) {
	// Norms [1 3], mean 2: row [1 0] pulls 1 (½ of uniform), row [½ ½]
	// pulls 2 (as uniform): mean ¾.
	cross := [][]Matrix{{mat([]float32{1, 0}, []float32{.5, .5})}}
	near(t, "one head", SourceContribution(cross, [][][]float32{{{1, 3}}}), .75, 1e-12)
	// Two layers average their steps: the second attends to the long value only (3/2).
	cross = append(cross, []Matrix{mat([]float32{0, 1}, []float32{0, 1})})
	near(t, "two layers", SourceContribution(cross, [][][]float32{{{1, 3}}, {{1, 3}}}), (.5+1+1.5+1.5)/4, 1e-12)
	near(t, "no norms", SourceContribution(cross, nil), nan, 0)
	near(t, "wrong length", SourceContribution(cross, [][][]float32{{{1, 3}}, {{1}}}), nan, 0)
}

// TestScorePassNormBased: a head that parks on a short-valued token gets
// its alignment back once weighted by the value norms, and the norm-based
// scores are NaN without norms.
func TestScorePassNormBased(t *testing.T) {
	src := []string{"나는", "▁학생", "</s>"}
	tgt := []string{"I", "▁student", "</s>"}
	// Raw attention: "I" looks at 나는 (right), "student" mostly at 나는
	// (wrong: .6 against .4 on 학생). 나는's value is short (norm 1 against
	// 3), so weighted, "student" lands on 학생: .6·1 < .4·3.
	cross := mat([]float32{.8, .1, .1}, []float32{.6, .4, 0}, []float32{0, 0, 1})
	in := PassInput{Pass: PassForced, SrcPieces: src, TgtPieces: tgt, TgtIDs: []int32{10, 11, 3},
		Logprobs: []float32{-1, -1, -1}, Target: "I student",
		Cross: [][]Matrix{{cross}}, Gold: &Alignment{Sure: []Link{{0, 0}, {1, 1}}}}
	cfg := DefaultConfig()
	cfg.AERLayer = -1
	raw := ScorePass(in, cfg)
	if s := raw.Sentence; !math.IsNaN(s.AERNorm) || !math.IsNaN(s.IgnSrcNorm) || !math.IsNaN(s.WassToUnifNorm) || !math.IsNaN(s.SrcContribution) ||
		!math.IsNaN(raw.Cross[0][0][HeadAERNorm]) {
		t.Errorf("norm-based scores without norms: %+v", s)
	}
	// Raw links {(0,0), (0,1)}: A∩S = 1 of |A| 2 + |S| 2 → AER ½.
	near(t, "raw AER", raw.Sentence.AER, .5, 1e-12)

	in.CrossNorms = [][][]float32{{{1, 3, 0.5}}}
	got := ScorePass(in, cfg)
	near(t, "norm AER", got.Sentence.AERNorm, 0, 1e-12)
	near(t, "head norm AER", got.Cross[0][0][HeadAERNorm], 0, 1e-12)
	near(t, "raw AER unchanged", got.Sentence.AER, .5, 1e-12)
	// Source contribution: mean norm 1.5; rows pull .8+.3+.05 = 1.15,
	// .6+1.2 = 1.8 and .5: (1.15+1.8+.5)/3/1.5.
	near(t, "src_contribution", got.Sentence.SrcContribution, (1.15+1.8+.5)/3/1.5, 1e-6)
	// π of the weighted rows [.8/1.15, .3/1.15, .05/1.15], [1/3, 2/3, 0],
	// [0, 0, 1], averaged over the three rows.
	pi := []float64{(.8/1.15 + 1.0/3) / 3, (.3/1.15 + 2.0/3) / 3, (.05/1.15 + 1) / 3}
	near(t, "wass_to_unif_norm", got.Sentence.WassToUnifNorm, WassToUnif(pi), 1e-6)
	// Incoming mass per source token (EOS excluded): 나는 .8/1.15+1/3 ≈ 1.03,
	// 학생 ≈ .93: none below λ = .2.
	near(t, "ign_src_norm", got.Sentence.IgnSrcNorm, 0, 0)
}
