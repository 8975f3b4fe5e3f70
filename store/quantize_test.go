package store

import (
	"math"
	"math/rand/v2"
	"testing"

	"attnaudit/metrics"
)

// TestQuantizeRowsKeepsBounds rounds peaked and flat softmax matrices, long
// rows of tiny weights included, and checks the fixed precision's promises:
// every weight within FixedMaxError, on the 2^-14 grid (2^-18 below
// 2^-14), row sums within FixedStep/2 of float32's, and entropy within
// 1e-4.
func TestQuantizeRowsKeepsBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for trial := range 300 {
		rows, cols := 1+rng.IntN(40), 1+rng.IntN(120)
		temp := []float64{0.1, 1, 4, 12}[trial%4] // flat to very peaked
		m := metrics.Matrix{Rows: rows, Cols: cols, Data: make([]float32, rows*cols)}
		for r := range rows {
			row := m.Data[r*cols : (r+1)*cols]
			var sum float64
			for c := range row {
				v := math.Exp(temp * rng.NormFloat64())
				row[c] = float32(v)
				sum += v
			}
			for c := range row {
				row[c] = float32(float64(row[c]) / sum)
			}
		}
		q := metrics.Matrix{Rows: rows, Cols: cols, Data: make([]float32, rows*cols)}
		quantizeRows(m.Data, q.Data, cols, fixedGrid)
		for i, v := range m.Data {
			if d := math.Abs(float64(q.Data[i] - v)); d > FixedMaxError {
				t.Fatalf("trial %d: weight %d moved %g > %g", trial, i, d, FixedMaxError)
			}
			step := FixedStep
			if v < FixedStep {
				step /= FixedFine
			}
			if n := float64(q.Data[i]) / step; n != math.Trunc(n) {
				t.Fatalf("trial %d: weight %d = %g → %g is not a multiple of %g", trial, i, v, q.Data[i], step)
			}
		}
		for r := range rows {
			var a, b float64
			for c := range cols {
				a += float64(m.Data[r*cols+c])
				b += float64(q.Data[r*cols+c])
			}
			if math.Abs(a-b) > FixedStep/2+1e-6 {
				t.Fatalf("trial %d (%dx%d, temperature %g): row %d sums to %g, float32 %g", trial, rows, cols, temp, r, b, a)
			}
		}
		if d := math.Abs(metrics.Entropy(q) - metrics.Entropy(m)); d > 1e-4 {
			t.Errorf("trial %d (%dx%d, temperature %g): entropy moved %g", trial, rows, cols, temp, d)
		}
	}
}

// TestQuantizeRowsKeepsHeadDiversity rounds the heads of layers whose
// heads look at different keys, each peaked with long tails of tiny
// weights (a repetition loop's decoder self-attention), and checks that
// head diversity, the mean JS divergence between heads, moves by less
// than 1e-4. Rounding tiny weights each to the nearer multiple (nearly all
// to 0) moves it by more on these layers.
func TestQuantizeRowsKeepsHeadDiversity(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	var worst float64
	for trial := range 20 {
		n := 60 + rng.IntN(60)
		heads, quant := make([]metrics.Matrix, 8), make([]metrics.Matrix, 8)
		for h := range heads {
			sigma := 1 + float64(h%4) // log-normal weights: from flat to long tails of tiny ones
			m := metrics.Matrix{Rows: n, Cols: n, Data: make([]float32, n*n)}
			for r := range n {
				row := m.Data[r*n : (r+1)*n]
				var sum float64
				for c := 0; c <= r; c++ { // causal: keys after the query stay 0
					v := math.Exp(rng.NormFloat64())
					if (c+h)%4 != 0 { // off the head's own keys: tiny, a tail of ~1e-5
						v = math.Exp(sigma*rng.NormFloat64() - 7)
					}
					row[c] = float32(v)
					sum += v
				}
				for c := 0; c <= r; c++ {
					row[c] = float32(float64(row[c]) / sum)
				}
			}
			heads[h] = m
			quant[h] = metrics.Matrix{Rows: n, Cols: n, Data: make([]float32, n*n)}
			quantizeRows(m.Data, quant[h].Data, n, fixedGrid)
		}
		d := math.Abs(metrics.HeadDiversity(quant) - metrics.HeadDiversity(heads))
		worst = math.Max(worst, d)
		if d > 1e-4 {
			t.Errorf("trial %d (%d×%d): head diversity moved %g", trial, n, n, d)
		}
	}
	t.Logf("head diversity moved by at most %.2g", worst)
}

// TestQuantizeWithinBoundsEntropy rounds small peaked matrices (short rows
// leave the balancing few choices) on a coarse grid, where quantizeRows
// alone moves some matrices' entropy by more than 9e-5, and checks that
// quantizeWithin keeps every one within entropyBound (9e-5; 9e-5·ln 2 for
// two columns, so entropy_norm stays within it too) and every weight
// within FixedMaxError.
func TestQuantizeWithinBoundsEntropy(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 19))
	const step = 2 * FixedStep
	over := 0
	for trial := range 3000 {
		n := 2 + rng.IntN(6)
		m := metrics.Matrix{Rows: n, Cols: n, Data: make([]float32, n*n)}
		for r := range n {
			row := m.Data[r*n : (r+1)*n]
			var sum float64
			for c := 0; c <= r; c++ {
				v := math.Exp(4 * rng.NormFloat64())
				row[c] = float32(v)
				sum += v
			}
			for c := 0; c <= r; c++ {
				row[c] = float32(float64(row[c]) / sum)
			}
		}
		q := metrics.Matrix{Rows: n, Cols: n, Data: make([]float32, n*n)}
		if e := quantizeRows(m.Data, q.Data, n, grid{step: step, maxErr: FixedMaxError, fine: FixedFine}); math.Abs(e) > entropyBound(n) {
			over++
		}
		quantizeWithin(m.Data, q.Data, n, grid{step: step, maxErr: FixedMaxError, fine: FixedFine})
		if d := math.Abs(metrics.Entropy(q) - metrics.Entropy(m)); d > entropyBound(n)+1e-12 {
			t.Fatalf("trial %d (%d×%d): entropy moved %g > %g", trial, n, n, d, entropyBound(n))
		}
		for i, v := range m.Data {
			if d := math.Abs(float64(q.Data[i] - v)); d > FixedMaxError {
				t.Fatalf("trial %d: weight %d moved %g", trial, i, d)
			}
		}
	}
	if over == 0 {
		t.Fatal("no matrix needed a finer grid: the test checks nothing")
	}
	t.Logf("%d of 3000 matrices went to a finer grid", over)
}

// TestDiagonalityChangeMatchesPrior checks diagonalityChange's recurrence
// for the guided prior against the prior computed for each weight, on
// shapes from 1×1 to 3×500 (a long source: the recurrence's error grows
// with the columns).
func TestDiagonalityChangeMatchesPrior(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, shape := range [][2]int{{1, 1}, {4, 3}, {17, 29}, {3, 500}, {60, 230}} {
		rows, cols := shape[0], shape[1]
		in, out := make([]float32, rows*cols), make([]float32, rows*cols)
		for i := range in {
			in[i] = r.Float32()
			out[i] = in[i] + float32(r.NormFloat64()*1e-4)
		}
		const g = metrics.DefaultGuidedSigma
		var want float64
		for tt := range rows {
			u := (float64(tt) + 0.5) / float64(rows)
			for j := range cols {
				v := u - (float64(j)+0.5)/float64(cols)
				want += (float64(out[tt*cols+j]) - float64(in[tt*cols+j])) * (1 - math.Exp(-v*v/(2*g*g)))
			}
		}
		want = -want / float64(rows)
		if got := diagonalityChange(in, out, cols); math.Abs(got-want) > 1e-12*max(1, math.Abs(want)) {
			t.Errorf("%d×%d: diagonalityChange %.17g, the prior weight by weight %.17g", rows, cols, got, want)
		}
	}
}
