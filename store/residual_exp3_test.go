package store

import (
	"fmt"
	"math"
	"os"
	"testing"
)

func TestExpHist(t *testing.T) {
	run := os.Getenv("ATTNAUDIT_STORAGE_RUN")
	if run == "" {
		t.Skip()
	}
	var rows []Attention
	if err := ScanAttention(run, func(a Attention) error { rows = append(rows, a); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, c := range []int{0, 1, 3} {
		expCoarse = c
		hist := map[int64]int{}
		var n, odd, big, fineN int
		for _, r := range rows {
			q := make([]float32, len(r.Weights.Data))
			quantizeWithin(r.Weights.Data, q, r.Weights.Cols, CompactStep, FixedMaxError, CompactFine)
			for j, v := range q {
				if r.Kind == KindDecoderSelf && r.Weights.Rows == r.Weights.Cols && j%r.Weights.Cols > j/r.Weights.Cols {
					continue
				}
				k := int64(math.Round(float64(v) * (1 << 17)))
				hist[k]++
				n++
				if v >= CompactStep {
					big++
					if (k>>4)%2 == 1 {
						odd++
					}
				} else {
					fineN++
				}
			}
		}
		var h float64
		for _, c := range hist {
			p := float64(c) / float64(n)
			h -= p * math.Log2(p)
		}
		fmt.Printf("coarse %d: %d values, %.3f bits order-0 (%.2f MB), >=1 step %d, odd %.3f, fine %d\n", c, n, h, h*float64(n)/8e6, big, float64(odd)/float64(big), fineN)
	}
	expCoarse = 0
}
