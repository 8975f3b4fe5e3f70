package store

import (
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"attnaudit/metrics"
)

// TestStorageTable is the storage benchmark behind bench/RESULTS.md's
// "Attention storage" table (make bench-storage): it reads the attention
// of a run stored as float32 (ATTNAUDIT_STORAGE_RUN), writes it again at
// every precision and prints, per precision, the file size, bytes per
// example, the ratio against float32, the largest error per weight and per
// head entropy, and the write speed in MB/s of float32 weights. Without
// the variable it is skipped.
func TestStorageTable(t *testing.T) {
	run := os.Getenv("ATTNAUDIT_STORAGE_RUN")
	if run == "" {
		t.Skip("set ATTNAUDIT_STORAGE_RUN to a float32 run folder (make bench-storage)")
	}
	var rows []Attention
	examples := map[int32]bool{}
	if err := ScanAttention(run, func(a Attention) error {
		rows = append(rows, a)
		examples[a.ExampleID] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var raw int64
	for _, r := range rows {
		raw += 4 * int64(len(r.Weights.Data))
	}
	fmt.Printf("%d attention rows of %d examples, %.1f MB of float32 weights\n\n", len(rows), len(examples), float64(raw)/1e6)
	fmt.Println("| precision | attention Parquet | bytes/example | vs float32 | max abs error/weight | max entropy error/head | write MB/s |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	var f32 int64
	for _, prec := range []string{PrecisionFloat32, PrecisionFixed, PrecisionFloat16} {
		dir := t.TempDir()
		w, err := NewAttentionWriter(dir, AttentionOptions{Precision: prec})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := w.Write(rows...); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		secs := time.Since(start).Seconds()
		var size int64
		for _, p := range w.PartInfos() {
			size += p.Bytes
		}
		if prec == PrecisionFloat32 {
			f32 = size
		}
		var maxErr, maxEnt float64
		i := 0
		if err := ScanAttention(dir, func(a Attention) error {
			o := rows[i]
			i++
			for j, v := range a.Weights.Data {
				maxErr = math.Max(maxErr, math.Abs(float64(v-o.Weights.Data[j])))
			}
			maxEnt = math.Max(maxEnt, math.Abs(metrics.Entropy(a.Weights)-metrics.Entropy(o.Weights)))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("| %s | %.1f MB | %.0f | %.2fx | %.1e | %.1e | %.0f |\n", prec, float64(size)/1e6,
			float64(size)/float64(len(examples)), float64(f32)/float64(size), maxErr, maxEnt, float64(raw)/1e6/secs)
	}
}
