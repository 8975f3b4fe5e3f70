package metrics

import (
	"math"
	"math/rand/v2"
	"testing"
)

func mat(rows ...[]float32) Matrix {
	m := Matrix{Rows: len(rows)}
	if len(rows) > 0 {
		m.Cols = len(rows[0])
	}
	for _, r := range rows {
		m.Data = append(m.Data, r...)
	}
	return m
}

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.IsNaN(want) {
		if !math.IsNaN(got) {
			t.Errorf("%s = %v, want NaN", what, got)
		}
		return
	}
	if math.IsNaN(got) || math.Abs(got-want) > tol {
		t.Errorf("%s = %.9g, want %.9g", what, got, want)
	}
}

var (
	nan = math.NaN()
	// uniform: every row 1/4.
	uniform = mat([]float32{.25, .25, .25, .25}, []float32{.25, .25, .25, .25})
	// identity: each query on its own key; the last row on EOS.
	identity = mat([]float32{1, 0, 0}, []float32{0, 1, 0}, []float32{0, 0, 1})
	// sink: everything on the last key (EOS).
	sink = mat([]float32{0, 0, 1}, []float32{0, 0, 1})
	// padded: a fully masked query row.
	padded = mat([]float32{0, 0}, []float32{.5, .5})
	// overfull: a row summing to 1.1.
	overfull = mat([]float32{.6, .5})
	empty    = Matrix{}
	oneCol   = mat([]float32{1}, []float32{1})
)

func TestHeadMetrics(t *testing.T) {
	// Hand computations, g = 0.2:
	// uniform 2×4: u = ¼, ¾; v = ⅛, ⅜, ⅝, ⅞; each row's Σ_j ¼·W_tj =
	// ¼(2(1−e^{−0.1953125}) + (1−e^{−1.7578125}) + (1−e^{−4.8828125})) = 0.5437119
	// → diagonality 0.4562881.
	// sink 2×3: u = ¼, ¾; v_2 = ⅚; W = 1−e^{−(7/12)²/0.08} = 0.985770 and
	// 1−e^{−(1/12)²/0.08} = 0.083140 → 1 − 0.534455 = 0.465545.
	// padded 2×2: only row 1 (u = ¾) has mass, ½ of it at v = ¼, W = 1−e^{−¼/0.08}.
	// one column: v = ½, W = 1−e^{−(¼)²/0.08} on both rows.
	tests := []struct {
		name                                    string
		m                                       Matrix
		entropy, entNorm, conf, confNoEOS, diag float64
		first, last, rowErr                     float64
		zero                                    int
	}{
		{"uniform", uniform, math.Log(4), 1, .25, .25, 0.4562881065, .25, .25, 0, 0},
		{"identity", identity, 0, 0, 1, 2.0 / 3, 1, 1.0 / 3, 1.0 / 3, 0, 0},
		{"sink", sink, 0, 0, 1, 0, 0.4655350735, 0, 1, 0, 0},
		{"padded", padded, math.Log(2) / 2, 0.5, 0.25, 0.25, 1 - 0.5*(1-math.Exp(-0.25/0.08))/2, 0.25, 0.25, 1, 1},
		{"overfull", overfull, -(.6*math.Log(.6) + .5*math.Log(.5)), -(.6*math.Log(.6) + .5*math.Log(.5)) / math.Log(2), .6, .6, nan, .6, .5, .1, 0},
		{"empty", empty, nan, nan, nan, nan, nan, nan, nan, nan, 0},
		{"one column", oneCol, 0, nan, 1, nan, math.Exp(-0.0625 / 0.08), 1, 1, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			near(t, "Entropy", Entropy(tc.m), tc.entropy, 1e-6)
			near(t, "EntropyNorm", EntropyNorm(tc.m), tc.entNorm, 1e-6)
			near(t, "Confidence", Confidence(tc.m), tc.conf, 1e-6)
			near(t, "ConfidenceNoEOS", ConfidenceNoEOS(tc.m), tc.confNoEOS, 1e-6)
			if !math.IsNaN(tc.diag) || tc.m.Rows == 0 {
				near(t, "Diagonality", Diagonality(tc.m), tc.diag, 1e-6)
			}
			near(t, "FirstMass", FirstMass(tc.m), tc.first, 1e-6)
			near(t, "LastMass", LastMass(tc.m), tc.last, 1e-6)
			near(t, "RowSumErr", RowSumErr(tc.m), tc.rowErr, 1e-6)
			if got := ZeroRows(tc.m); got != tc.zero {
				t.Errorf("ZeroRows = %d, want %d", got, tc.zero)
			}
		})
	}
}

func TestDiagonalityOverfull(t *testing.T) {
	// 1×2: u = ½, v = ¼, ¾: both W = 1−e^{−(¼)²/0.08} = 0.5420; Σ A·W = 1.1·0.5420.
	w := 1 - math.Exp(-0.0625/0.08)
	near(t, "Diagonality", Diagonality(overfull), 1-1.1*w, 1e-6)
}

func TestIgnSrc(t *testing.T) {
	// Incoming mass: column 0 gets 1.0, column 1 gets 0.15 < 0.2; EOS excluded.
	m := mat([]float32{.9, .05, .05}, []float32{.1, .1, .8})
	near(t, "IgnSrc", IgnSrc(m, 0.2), 0.5, 1e-9)
	near(t, "IgnSrc λ=0.1", IgnSrc(m, 0.1), 0, 1e-9)
	near(t, "IgnSrc EOS only", IgnSrc(mat([]float32{1}), 0.2), nan, 0)
}

func TestRepeatMass(t *testing.T) {
	// Inputs BOS, 5, 7, 5: only row 3 has an earlier copy (column 1).
	m := mat(
		[]float32{1, 0, 0, 0},
		[]float32{.5, .5, 0, 0},
		[]float32{.2, .3, .5, 0},
		[]float32{.1, .6, .2, .1},
	)
	near(t, "RepeatMass", RepeatMass(m, []int32{-1, 5, 7, 5}), 0.6/4, 1e-7)
	near(t, "no repeats", RepeatMass(m, []int32{-1, 5, 7, 8}), 0, 0)
	near(t, "shape mismatch", RepeatMass(m, []int32{-1, 5}), nan, 0)
}

func TestHeadDiversity(t *testing.T) {
	a := mat([]float32{1, 0})
	b := mat([]float32{0, 1})
	u := mat([]float32{.5, .5})
	near(t, "disjoint", HeadDiversity([]Matrix{a, b}), math.Log(2), 1e-9)
	near(t, "identical", HeadDiversity([]Matrix{u, u, u}), 0, 1e-12)
	near(t, "three heads", HeadDiversity([]Matrix{a, b, a}), 2*math.Log(2)/3, 1e-9)
	// M = (¾, ¼): KL(u‖M) = ½ln(⅔) + ½ln 2, KL(a‖M) = ln(4/3).
	near(t, "half", HeadDiversity([]Matrix{u, a}), 0.2157615543, 1e-9)
	near(t, "one head", HeadDiversity([]Matrix{a}), nan, 0)
	near(t, "shapes differ", HeadDiversity([]Matrix{a, identity}), nan, 0)
}

func TestMeanHeads(t *testing.T) {
	got := MeanHeads(mat([]float32{1, 0}), mat([]float32{0, 1}), mat([]float32{.5, .5}))
	if got.Rows != 1 || got.Cols != 2 || got.Data[0] != .5 || got.Data[1] != .5 {
		t.Errorf("MeanHeads = %+v", got)
	}
	if got := MeanHeads(uniform, identity); got.Rows != 0 {
		t.Errorf("MeanHeads of mismatched shapes = %+v, want empty", got)
	}
}

// scoreHead must equal the one-metric functions.
func TestScoreHeadMatchesFunctions(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, m := range []Matrix{uniform, identity, sink, padded, overfull, oneCol, randomAttention(rng, 7, 5), randomAttention(rng, 30, 31)} {
		sc, plogp := scoreHead(m, GuidedPrior(m.Rows, m.Cols, DefaultGuidedSigma))
		near(t, "Entropy", sc[HeadEntropy], Entropy(m), 1e-9)
		near(t, "EntropyNorm", sc[HeadEntropyNorm], EntropyNorm(m), 1e-9)
		near(t, "Confidence", sc[HeadConfidence], Confidence(m), 1e-9)
		near(t, "ConfidenceNoEOS", sc[HeadConfidenceNoEOS], ConfidenceNoEOS(m), 1e-9)
		near(t, "Diagonality", sc[HeadDiagonality], Diagonality(m), 1e-9)
		near(t, "FirstMass", sc[HeadFirstMass], FirstMass(m), 1e-9)
		near(t, "LastMass", sc[HeadLastMass], LastMass(m), 1e-9)
		near(t, "RowSumErr", sc[HeadRowSumErr], RowSumErr(m), 1e-9)
		if int(sc[HeadZeroRows]) != ZeroRows(m) {
			t.Errorf("ZeroRows %g, want %d", sc[HeadZeroRows], ZeroRows(m))
		}
		near(t, "Σ p ln p", plogp, sumPLogP(m.Data), 0)
	}
}

// randomAttention is a rows × cols matrix of softmax rows.
func randomAttention(rng *rand.Rand, rows, cols int) Matrix {
	m := NewMatrix(rows, cols)
	for t := range rows {
		var s float64
		row := make([]float64, cols)
		for j := range row {
			row[j] = math.Exp(3 * rng.NormFloat64())
			s += row[j]
		}
		for j := range row {
			m.Data[t*cols+j] = float32(row[j] / s)
		}
	}
	return m
}

func TestFastLog(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for _, x := range []float64{1, 2, math.Sqrt2, 0.5, 1e-300, 5e-324, 1e-8, 0.999999, 1.000001, 123456.789} {
		near(t, "fastLog", fastLog(x), math.Log(x), 1e-9*math.Max(1, math.Abs(math.Log(x))))
	}
	for range 10000 {
		x := math.Exp(rng.Float64()*80 - 60)
		if d := math.Abs(fastLog(x) - math.Log(x)); d > 1e-9*math.Max(1, math.Abs(math.Log(x))) {
			t.Fatalf("fastLog(%g) off by %g", x, d)
		}
	}
	if !math.IsInf(fastLog(0), -1) || !math.IsNaN(fastLog(-1)) {
		t.Error("fastLog of 0 or −1")
	}
	if !math.IsInf(fastLog(math.Inf(1)), 1) || !math.IsNaN(fastLog(math.NaN())) {
		t.Error("fastLog of +Inf or NaN")
	}
}

// TestFastLogBound checks the bound fastLog's doc promises: 2e-13 absolute
// error over float32 attention weights' range and beyond, exact at powers
// of two (so a one-hot row has entropy exactly 0).
func TestFastLogBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for range 1_000_000 {
		x := math.Exp(rng.Float64()*120 - 110)
		if d := math.Abs(fastLog(x) - math.Log(x)); d > 2e-13 {
			t.Fatalf("fastLog(%g) off by %g", x, d)
		}
	}
	// Every table cell, at both ends.
	for i := range 1 << logTableBits {
		c := 1 + float64(i)/(1<<logTableBits)
		for _, x := range []float64{c, math.Nextafter(c+1.0/(1<<logTableBits), 0), c / 3, c * 1e-7} {
			if d := math.Abs(fastLog(x) - math.Log(x)); d > 2e-13 {
				t.Fatalf("fastLog(%g) off by %g", x, d)
			}
		}
	}
	for e := -1074; e <= 1023; e++ {
		if x := math.Ldexp(1, e); fastLog(x) != float64(e)*math.Ln2 && fastLog(x) != math.Log(x) {
			t.Fatalf("fastLog(2^%d) = %v, want %v", e, fastLog(x), float64(e)*math.Ln2)
		}
	}
}
