package metrics

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestSourceDistribution(t *testing.T) {
	// Column sums: head 1 [1 1 0], head 2 [0 0 2]; over 2 heads × 2 rows:
	// π = [¼ ¼ ½]; without EOS renormalised to [½ ½].
	h1 := mat([]float32{1, 0, 0}, []float32{0, 1, 0})
	h2 := mat([]float32{0, 0, 1}, []float32{0, 0, 1})
	if got := SourceDistribution([]Matrix{h1, h2}, false); !slices.Equal(got, []float64{.25, .25, .5}) {
		t.Errorf("π = %v", got)
	}
	if got := SourceDistribution([]Matrix{h1, h2}, true); !slices.Equal(got, []float64{.5, .5}) {
		t.Errorf("π without EOS = %v", got)
	}
	if got := SourceDistribution([]Matrix{h2}, true); got != nil {
		t.Errorf("π of an all-EOS head without EOS = %v, want nil", got)
	}
	if got := SourceDistribution([]Matrix{h1, identity}, false); got != nil {
		t.Errorf("π of mismatched heads = %v, want nil", got)
	}
}

func TestWassToUnif(t *testing.T) {
	near(t, "one-hot of 4", WassToUnif([]float64{1, 0, 0, 0}), 0.75, 1e-12)
	near(t, "uniform", WassToUnif([]float64{.25, .25, .25, .25}), 0, 1e-12)
	near(t, "[¼ ¼ ½]", WassToUnif([]float64{.25, .25, .5}), (1.0/12+1.0/12+1.0/6)/2, 1e-12)
	near(t, "empty", WassToUnif(nil), nan, 0)
}

func TestWasserstein1D(t *testing.T) {
	near(t, "[1]@½ vs [1 0]@¼", Wasserstein1D([]float64{1}, []float64{1, 0}), 0.25, 1e-12)
	// F_p − F_q is ½ on [¼, ¾).
	near(t, "[½ ½] vs [1]", Wasserstein1D([]float64{.5, .5}, []float64{1}), 0.25, 1e-12)
	near(t, "same", Wasserstein1D([]float64{.2, .8}, []float64{.2, .8}), 0, 1e-12)
	near(t, "ends", Wasserstein1D([]float64{1, 0, 0, 0}, []float64{0, 0, 0, 1}), 0.75, 1e-12)
	near(t, "symmetric", Wasserstein1D([]float64{.1, .6, .3}, []float64{.5, .5}), Wasserstein1D([]float64{.5, .5}, []float64{.1, .6, .3}), 1e-12)
	near(t, "empty", Wasserstein1D(nil, []float64{1}), nan, 0)
}

func TestWassToData(t *testing.T) {
	pool := NewPool([]PoolEntry{
		{ID: 0, Len: 10, Pi: []float64{1, 0}},  // the query itself: left out
		{ID: 1, Len: 10, Pi: []float64{1, 0}},  // distance 0
		{ID: 2, Len: 11, Pi: []float64{0, 1}},  // distance ½
		{ID: 3, Len: 12, Pi: []float64{1, 0}},  // beyond 10 + 10%
		{ID: 4, Len: 9, Pi: []float64{.5, .5}}, // distance ¼
		{ID: 5, Len: 10, Pi: nil},              // no π: not in the pool
	})
	if pool.Len() != 5 {
		t.Errorf("pool has %d entries, want 5", pool.Len())
	}
	near(t, "k=2", pool.WassToData(0, 10, []float64{1, 0}, 2, 0.1), 0.125, 1e-12)
	near(t, "k=4 (3 there)", pool.WassToData(0, 10, []float64{1, 0}, 4, 0.1), 0.25, 1e-12)
	near(t, "k=1", pool.WassToData(0, 10, []float64{1, 0}, 1, 0.1), 0, 1e-12)
	near(t, "wider window", pool.WassToData(0, 10, []float64{1, 0}, 4, 0.2), (0+0+0.25+0.5)/4, 1e-12)
	near(t, "nobody that long", pool.WassToData(9, 100, []float64{1, 0}, 4, 0.1), nan, 0)
}

func TestWassCombo(t *testing.T) {
	// τ = median of [.1 .2 .3 .9] = .25; .9 maps from [.1, .9] onto [1, 5].
	c := NewWassCombo([]float64{.1, .2, .3, .9, nan}, []float64{1, 2, 3, 5}, 50)
	near(t, "τ", c.Tau, 0.25, 1e-12)
	near(t, "above τ", c.Score(.9, 4), 5, 1e-12)
	near(t, "above τ, mid", c.Score(.5, 4), 3, 1e-12)
	near(t, "below τ", c.Score(.2, 2.5), 2.5, 1e-12)
	near(t, "NaN unif", c.Score(nan, 2.5), 2.5, 1e-12)
}

func TestQuantileAndDescribe(t *testing.T) {
	xs := []float64{4, nan, 2, 1, 3}
	near(t, "q.05", Quantile(xs, .05), 1.15, 1e-12)
	near(t, "q.95", Quantile(xs, .95), 3.85, 1e-12)
	near(t, "q0", Quantile(xs, 0), 1, 0)
	near(t, "q1", Quantile(xs, 1), 4, 0)
	near(t, "none", Quantile([]float64{nan}, .5), nan, 0)
	d, ok := Describe(xs)
	if !ok || d.N != 4 || d.Mean != 2.5 || d.P50 != 2.5 || d.P25 != 1.75 {
		t.Errorf("Describe = %+v, %v", d, ok)
	}
	if _, ok := Describe([]float64{nan}); ok {
		t.Error("Describe of NaNs is ok")
	}
}

func TestAUROCAndFPR(t *testing.T) {
	// Positives .9 and .7, negatives .8 and .6: 3 of 4 pairs ordered.
	scores := []float64{.9, .8, .7, .6}
	labels := []bool{true, false, true, false}
	near(t, "AUROC", AUROC(scores, labels), .75, 1e-12)
	near(t, "AUROC ties", AUROC([]float64{.5, .5}, []bool{true, false}), .5, 1e-12)
	near(t, "AUROC perfect", AUROC([]float64{3, 2, 1}, []bool{true, true, false}), 1, 0)
	near(t, "AUROC NaN left out", AUROC([]float64{3, nan, 1}, []bool{true, false, false}), 1, 0)
	near(t, "AUROC one class", AUROC([]float64{1, 2}, []bool{true, true}), nan, 0)
	// 90% of 2 positives is both: θ = .7, catching negative .8 too.
	near(t, "FPR@90", FPRAtTPR(scores, labels, .9), .5, 1e-12)
	// 10 positives 5…14: θ is the 9th highest, 6; negatives ≥ 6: 6.5 and 7.
	pos := []float64{5, 6, 7, 8, 9, 10, 11, 12, 13, 14}
	neg := []float64{1, 2, 3, 6.5, 7}
	var s []float64
	var l []bool
	for _, p := range pos {
		s, l = append(s, p), append(l, true)
	}
	for _, n := range neg {
		s, l = append(s, n), append(l, false)
	}
	near(t, "FPR@90 of 10", FPRAtTPR(s, l, .9), .4, 1e-12)
	near(t, "FPR@100 of 10", FPRAtTPR(s, l, 1), .4, 1e-12)
	near(t, "FPR@50 of 10", FPRAtTPR(s, l, .5), 0, 1e-12)
}

func TestSeqLogprobAndRepNgram(t *testing.T) {
	near(t, "SeqLogprob", SeqLogprob([]float32{-1, -2, -3}), -2, 1e-12)
	near(t, "SeqLogprob empty", SeqLogprob(nil), nan, 0)
	near(t, "loop", RepNgram("the the the the the"), 2.0/3, 1e-12)
	near(t, "abab", RepNgram("a b a b a b"), 0.5, 1e-12)
	near(t, "distinct", RepNgram("a b c d"), 0, 0)
	near(t, "short", RepNgram("a b"), 0, 0)
}

func TestPieceWords(t *testing.T) {
	tests := []struct {
		pieces []string
		want   []int
	}{
		{[]string{"나는", "▁학생", "입니다", "</s>"}, []int{0, 1, 1, 1}},
		{[]string{"I", "▁am", "▁a", "▁stu", "dent", "."}, []int{0, 1, 2, 3, 3, 3}},
		{[]string{"He", "▁", "▁said"}, []int{0, 1, 1}},
		{[]string{"▁Hi", "▁there"}, []int{0, 1}},
		{[]string{"<0xE3>", "<0x85>", "▁x"}, []int{0, 0, 1}},
	}
	for _, tc := range tests {
		if got := PieceWords(tc.pieces); !slices.Equal(got, tc.want) {
			t.Errorf("PieceWords(%q) = %v, want %v", tc.pieces, got, tc.want)
		}
	}
}

func TestHardLinksAndAER(t *testing.T) {
	src := []string{"나는", "▁학생", "입니다", "</s>"}               // words 0, 1, 1
	tgt := []string{"I", "▁am", "▁a", "▁stu", "dent", "</s>"} // words 0, 1, 2, 3, 3
	m := mat(
		[]float32{.7, .1, .1, .1}, // I: w0 .7, w1 .2
		[]float32{.1, .3, .3, .3}, // am: w1 .6
		[]float32{.4, .3, .2, .1}, // a: w0 .4 < w1 .5 (columns summed)
		[]float32{.5, .3, .1, .1}, // stu: w0 .5, w1 .4 ...
		[]float32{0, .4, .5, .1},  // dent: w0 0, w1 .9; averaged: w1 wins
		[]float32{0, 0, 0, 1},     // EOS row: left out
	)
	links := HardLinks(m, src, tgt)
	want := []Link{{0, 0}, {1, 1}, {1, 2}, {1, 3}}
	if !slices.Equal(links, want) {
		t.Fatalf("HardLinks = %v, want %v", links, want)
	}
	gold := Alignment{Sure: []Link{{0, 0}, {1, 1}, {1, 3}}, Possible: []Link{{1, 2}}}
	near(t, "AER perfect", AER(links, gold), 0, 1e-12)
	// A∩S = 1, A∩P = 2, |A| = 4, |S| = 2: 1 − 3/6.
	near(t, "AER half", AER(links, Alignment{Sure: []Link{{0, 0}, {0, 1}}, Possible: []Link{{1, 3}}}), .5, 1e-12)
	near(t, "AER nothing", AER(nil, Alignment{}), nan, 0)
	near(t, "AER all wrong", AER([]Link{{3, 3}}, Alignment{Sure: []Link{{0, 0}}}), 1, 0)
	if got := HardLinks(m, src[:3], tgt); got != nil {
		t.Errorf("HardLinks with too few pieces = %v, want nil", got)
	}
}

func TestHandBLEUAndChrF(t *testing.T) {
	// 13a: [I am student .] vs [I am a student .]; matches 4/4, 2/3, 0/2,
	// 0/1 → precisions 100, 66.7, 100/(2·2), 100/(4·1); BP = e^{1−5/4}.
	want := math.Exp(-0.25) * math.Pow(100*200.0/3*25*25, 0.25)
	near(t, "SentenceBLEU", SentenceBLEU("I am student.", "I am a student."), want, 1e-9)
	near(t, "SentenceBLEU exact", SentenceBLEU("The cat sat.", "The cat sat."), 100, 1e-9)
	near(t, "SentenceBLEU empty", SentenceBLEU("", "The cat sat."), 0, 0)
	// chrF of "ab" vs "ab": every order present matches.
	near(t, "SentenceChrF exact", SentenceChrF("a b", "ab"), 100, 1e-9)
	// "ab" vs "ac": unigrams P = R = ½, bigrams 0/1: avg P = avg R = ¼ → F = ¼.
	near(t, "SentenceChrF half", SentenceChrF("ab", "ac"), 25, 1e-9)
	if got := Tokenize13a(`He said: "No!" 3.5, 1-2 &amp; x.`); got != `He said : " No ! " 3.5 , 1 - 2 & x .` {
		t.Errorf("Tokenize13a = %q", got)
	}
	if got := strings.Join(pyFields("a\x1cb\u00a0c"), "|"); got != "a|b|c" {
		t.Errorf("pyFields = %q", got)
	}
}
