package store

import (
	"math/rand/v2"
	"os"
	"testing"
)

// BenchmarkWriteAttention writes the attention of one example of the
// reference model's shape (6 layers × 8 heads, two passes, three kinds,
// ~30 source and target tokens) per iteration and reports rows/s, the
// MB/s of float32 weights written and the file size relative to them.
func BenchmarkWriteAttention(b *testing.B) {
	for _, prec := range Precisions {
		b.Run(prec, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			var rows []Attention
			for _, pass := range []string{PassForced, PassFree} {
				for _, kind := range []string{KindCross, KindDecoderSelf, KindEncoderSelf} {
					for l := range 6 {
						for h := range 8 {
							rows = append(rows, Attention{Pass: pass, Kind: kind, Layer: int16(l), Head: int16(h), Weights: softmaxMatrix(rng, 30, 30)})
						}
					}
				}
			}
			var weightBytes int64
			for _, r := range rows {
				weightBytes += 4 * int64(len(r.Weights.Data))
			}
			w, err := NewAttentionWriter(b.TempDir(), AttentionOptions{Precision: prec, PartBytes: 256 << 20})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Abort()
			b.SetBytes(weightBytes)
			b.ResetTimer()
			for i := range b.N {
				for j := range rows {
					rows[j].ExampleID = int32(i)
				}
				if err := w.Write(rows...); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N*len(rows))/b.Elapsed().Seconds(), "rows/s")
			var disk int64
			for _, p := range w.Parts() {
				if info, err := os.Stat(p); err == nil {
					disk += info.Size()
				}
			}
			// File bytes per byte of float32 weights.
			b.ReportMetric(float64(disk)/float64(weightBytes*int64(b.N)), "disk/raw")
		})
	}
}
