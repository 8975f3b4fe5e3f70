package store

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

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
	fmt.Println("| precision | attention Parquet | bytes/example | vs float32 | max abs error/weight | max entropy error/head | max head diversity error/layer | write MB/s |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|")
	var f32 int64
	for _, prec := range []string{PrecisionFloat32, PrecisionCompact, PrecisionFixed, PrecisionFloat16} {
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
		var stored []metrics.Matrix
		i := 0
		if err := ScanAttention(dir, func(a Attention) error {
			o := rows[i]
			i++
			for j, v := range a.Weights.Data {
				maxErr = math.Max(maxErr, math.Abs(float64(v-o.Weights.Data[j])))
			}
			maxEnt = math.Max(maxEnt, math.Abs(metrics.Entropy(a.Weights)-metrics.Entropy(o.Weights)))
			stored = append(stored, a.Weights)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("| %s | %.1f MB | %.0f | %.2fx | %.1e | %.1e | %.1e | %.0f |\n", prec, float64(size)/1e6,
			float64(size)/float64(len(examples)), float64(f32)/float64(size), maxErr, maxEnt, maxDiversityError(rows, stored), float64(raw)/1e6/secs)
	}
}

// maxDiversityError is the largest change of head diversity (metrics.
// HeadDiversity) over the layers of rows (an example's pass, kind and layer:
// rows in file order), stored holding each row's weights as stored.
func maxDiversityError(rows []Attention, stored []metrics.Matrix) float64 {
	var worst float64
	for s := 0; s < len(rows); {
		e := s + 1
		for e < len(rows) && rows[e].ExampleID == rows[s].ExampleID && rows[e].Pass == rows[s].Pass &&
			rows[e].Kind == rows[s].Kind && rows[e].Layer == rows[s].Layer {
			e++
		}
		if e-s > 1 {
			heads := make([]metrics.Matrix, 0, e-s)
			for _, r := range rows[s:e] {
				heads = append(heads, r.Weights)
			}
			worst = math.Max(worst, math.Abs(metrics.HeadDiversity(stored[s:e])-metrics.HeadDiversity(heads)))
		}
		s = e
	}
	return worst
}

// TestStorageCandidates measures layouts that are not precisions (make
// bench-storage prints it after TestStorageTable): for each grid of
// weights (rounded with quantizeRows: each within 1e-4, row sums and
// entropy balanced where the grid leaves a choice, weights below one step
// kept to step/fine) and each way to lay the weights out in Parquet, the
// size of the weights column alone against float32 byte-split at zstd 3,
// the largest error per weight, per head entropy and diagonality and per
// layer head diversity, and the write speed. Grids are rounded by
// quantizeWithin, as the precisions are (a matrix whose entropy would move
// by more than 9e-5 goes to a finer grid). "w" is the probability as float32
// (fixed); "1+w" is 1 + the probability as float32 (compact), a constant
// exponent, so byte-split streams hold the grid index.
func TestStorageCandidates(t *testing.T) {
	run := os.Getenv("ATTNAUDIT_STORAGE_RUN")
	if run == "" {
		t.Skip("set ATTNAUDIT_STORAGE_RUN to a float32 run folder (make bench-storage)")
	}
	var rows []Attention
	if err := ScanAttention(run, func(a Attention) error {
		rows = append(rows, a)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var raw int64
	for _, r := range rows {
		raw += 4 * int64(len(r.Weights.Data))
	}
	type grid struct {
		name       string
		step, fine float64
	}
	type layout struct {
		name   string
		offset float32
		levels []int
	}
	sc := arrow.NewSchema([]arrow.Field{{Name: "c0", Type: arrow.ListOfNonNullable(arrow.PrimitiveTypes.Float32)}}, nil)
	var ref int64
	fmt.Println()
	fmt.Println("| grid (max error 1e-4) | layout | zstd | weights column | vs float32 | max abs error/weight | max entropy error/head | max diagonality error/head | max head diversity error/layer | write MB/s |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, g := range []grid{
		{"float32", 0, 0},
		{"2^-14, tiny weights to 2^-14 too", FixedStep, 1},
		{"2^-14, tiny weights to 2^-18 (fixed)", FixedStep, FixedFine},
		{"2^-13, tiny weights to 2^-17 (compact)", CompactStep, CompactFine},
	} {
		for _, l := range []layout{{"w, byte-split", 0, []int{3}}, {"1+w, byte-split", 1, []int{3, 9}}} {
			if g.fine == 1 && l.offset == 0 {
				continue // as fixed before the fine tail: in the table of 2026-12-02 14:00
			}
			if g.step == 0 && l.offset != 0 {
				continue
			}
			for _, level := range l.levels {
				props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithCompressionLevel(level),
					parquet.WithDictionaryDefault(false), parquet.WithStats(false), parquet.WithEncodingFor("c0.list.element", parquet.Encodings.ByteStreamSplit))
				var file bytes.Buffer
				start := time.Now()
				w, err := pqarrow.NewFileWriter(sc, &file, props, pqarrow.DefaultWriterProps())
				if err != nil {
					t.Fatal(err)
				}
				stored := make([]metrics.Matrix, len(rows))
				for s := 0; s < len(rows); s += 4096 {
					b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
					lb := b.Field(0).(*array.ListBuilder)
					vb := lb.ValueBuilder().(*array.Float32Builder)
					for i := s; i < min(s+4096, len(rows)); i++ {
						r := rows[i].Weights
						q := append([]float32(nil), r.Data...)
						if g.step > 0 {
							quantizeWithin(r.Data, q, r.Cols, g.step, FixedMaxError, g.fine)
						}
						stored[i] = metrics.Matrix{Rows: r.Rows, Cols: r.Cols, Data: q}
						lb.Append(true)
						for _, v := range q {
							vb.Append(l.offset + v)
						}
					}
					rec := b.NewRecordBatch()
					if err := w.WriteBuffered(rec); err != nil {
						t.Fatal(err)
					}
					rec.Release()
					b.Release()
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				secs := time.Since(start).Seconds()
				size := int64(file.Len())
				if ref == 0 {
					ref = size
				}
				var maxErr, maxEnt, maxDiag float64
				for i, r := range rows {
					for j, v := range stored[i].Data {
						maxErr = math.Max(maxErr, math.Abs(float64(v-r.Weights.Data[j])))
					}
					maxEnt = math.Max(maxEnt, math.Abs(metrics.Entropy(stored[i])-metrics.Entropy(r.Weights)))
					maxDiag = math.Max(maxDiag, math.Abs(metrics.Diagonality(stored[i])-metrics.Diagonality(r.Weights)))
				}
				fmt.Printf("| %s | %s | %d | %.1f MB | %.2fx | %.1e | %.1e | %.1e | %.1e | %.0f |\n", g.name, l.name, level, float64(size)/1e6,
					float64(ref)/float64(size), maxErr, maxEnt, maxDiag, maxDiversityError(rows, stored), float64(raw)/1e6/secs)
			}
		}
	}
}
