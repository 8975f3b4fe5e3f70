package store

import (
	"math"
	"math/rand/v2"
	"testing"

	"attnaudit/metrics"
)

// TestQuantizeRowsKeepsBounds rounds peaked and flat softmax matrices, long
// rows of tiny weights included, and checks the fixed precision's promises:
// every weight within FixedMaxError, row sums within FixedStep/2 of
// float32's, and entropy within 1e-4.
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
		quantizeRows(m.Data, q.Data, cols, FixedStep, FixedMaxError)
		for i, v := range m.Data {
			if d := math.Abs(float64(q.Data[i] - v)); d > FixedMaxError {
				t.Fatalf("trial %d: weight %d moved %g > %g", trial, i, d, FixedMaxError)
			}
			if n := float64(q.Data[i]) / FixedStep; n != math.Trunc(n) {
				t.Fatalf("trial %d: weight %d = %g is not a multiple of 2^-14", trial, i, q.Data[i])
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

// TestRoundWeightsIsIdempotent: inference workers round their batches in
// place (RoundWeights) and the writer rounds again; the second rounding
// must change nothing, and rounding in place must equal rounding into
// another slice.
func TestRoundWeightsIsIdempotent(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for trial := range 200 {
		rows, cols := 1+rng.IntN(30), 1+rng.IntN(80)
		w := make([]float32, rows*cols)
		for r := range rows {
			row := w[r*cols : (r+1)*cols]
			var sum float64
			for c := range row {
				v := math.Exp(4 * rng.NormFloat64())
				row[c] = float32(v)
				sum += v
			}
			for c := range row {
				row[c] = float32(float64(row[c]) / sum)
			}
		}
		apart := make([]float32, len(w))
		quantizeRows(w, apart, cols, FixedStep, FixedMaxError)
		RoundWeights(PrecisionFixed, w, cols)
		for i := range w {
			if w[i] != apart[i] {
				t.Fatalf("trial %d: weight %d rounded in place to %g, into another slice to %g", trial, i, w[i], apart[i])
			}
		}
		again := append([]float32(nil), w...)
		RoundWeights(PrecisionFixed, again, cols)
		for i := range w {
			if again[i] != w[i] {
				t.Fatalf("trial %d: rounding twice moved weight %d from %g to %g", trial, i, w[i], again[i])
			}
		}
		f32 := append([]float32(nil), apart...)
		RoundWeights(PrecisionFloat32, f32, cols)
		if f32[0] != apart[0] {
			t.Fatal("RoundWeights changed float32 weights")
		}
	}
}
