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
