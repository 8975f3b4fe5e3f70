package report

import (
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"attnaudit/metrics"
)

var (
	update = flag.Bool("update", false, "rewrite the golden files in testdata/")
	keep   = flag.String("keep", "", "also write the test figures and pages into this folder, to look at")
)

// keepFile copies a test output into -keep's folder.
func keepFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if *keep == "" {
		return
	}
	if err := os.MkdirAll(*keep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(*keep, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// softRows builds a rows×cols attention matrix whose row t peaks at
// center(t) with the given sharpness; every row sums to 1.
func softRows(rows, cols int, sharp float64, center func(t int) float64, rng *rand.Rand) metrics.Matrix {
	m := metrics.NewMatrix(rows, cols)
	for t := range rows {
		row := m.Row(t)
		var sum float64
		for j := range cols {
			d := float64(j) - center(t)
			v := math.Exp(-sharp*d*d) + 0.02*rng.Float64()
			row[j] = float32(v)
			sum += v
		}
		for j := range row {
			row[j] = float32(float64(row[j]) / sum)
		}
	}
	return m
}

// causal zeroes the upper triangle and renormalises (decoder self-attention).
func causal(m metrics.Matrix) metrics.Matrix {
	for t := range m.Rows {
		row := m.Row(t)
		var sum float32
		for j := range row {
			if j > t {
				row[j] = 0
			}
			sum += row[j]
		}
		for j := range row {
			row[j] /= sum
		}
	}
	return m
}

// synthExample is a Korean→English example with diagonal-ish cross
// attention (diag = true) or attention stuck on the source EOS.
func synthExample(seed uint64, layers, heads int, diag bool) VisualizeExample {
	rng := rand.New(rand.NewPCG(seed, 7))
	ex := VisualizeExample{
		Source:     "나는 학교에 간다.",
		Hypothesis: "I go to school.",
		SrcPieces:  []string{"나는", "▁학교에", "▁간", "다", ".", "</s>"},
		TgtPieces:  []string{"I", "▁go", "▁to", "▁school", ".", "</s>"},
	}
	ns, nt := len(ex.SrcPieces), len(ex.TgtPieces)
	for l := range layers {
		var cross, dec, enc []metrics.Matrix
		for h := range heads {
			sharp := 0.3 + 0.4*float64(h%4) + 0.2*float64(l)
			center := func(t int) float64 { return float64(t) * float64(ns-1) / float64(nt-1) }
			if !diag {
				center = func(int) float64 { return float64(ns - 1) }
			} else if h%3 == 2 {
				center = func(t int) float64 { return float64(ns - 1 - t%ns) }
			}
			cross = append(cross, softRows(nt, ns, sharp, center, rng))
			dec = append(dec, causal(softRows(nt, nt, sharp, func(t int) float64 { return float64(t) - float64(h%2) }, rng)))
			enc = append(enc, softRows(ns, ns, sharp, func(t int) float64 { return float64(t + h%3 - 1) }, rng))
		}
		ex.Cross = append(ex.Cross, cross)
		ex.DecoderSelf = append(ex.DecoderSelf, dec)
		ex.EncoderSelf = append(ex.EncoderSelf, enc)
	}
	return ex
}
