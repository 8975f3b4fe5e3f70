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
	for _, prec := range []string{PrecisionFloat32, PrecisionPacked, PrecisionCompact, PrecisionFixed, PrecisionFloat16} {
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
// weights (rounded by quantizeWithin as the precisions are: each within
// 1e-4, row sums and entropy balanced where the grid leaves a choice,
// weights below one step kept to step/fine, a matrix whose entropy or
// diagonality would move by more than 9e-5 on a finer grid) and each way
// to lay the weights out in Parquet, the size of the weights column alone
// against float32 byte-split at zstd 3, the largest error per weight, per
// head entropy and diagonality and per layer head diversity, computed
// from the values a reader gets back, and the write speed (rounding
// included). Layouts: "w" is the probability as float32 (fixed); "1+w"
// is 1 + the probability (compact), a constant exponent, so byte-split
// streams hold the grid index; "1+w, row residual" stores at each row's
// last kept column r = w − (1 − the row's other weights), 0 for a row
// that sums to 1, so 1 + r is a constant; "packed" leaves out a causal
// matrix's zeros after the diagonal and each balanced row's last kept
// weight (packed.go). "plain" is PLAIN encoding instead of byte-split
// (brotli's context modelling sees the bytes of one value together).
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
	type codec struct {
		name  string
		c     compress.Compression
		level int
		plain bool
	}
	zstd := func(level int) codec { return codec{fmt.Sprintf("zstd %d", level), compress.Codecs.Zstd, level, false} }
	brotli := func(level int, plain bool) codec {
		return codec{fmt.Sprintf("brotli %d%s", level, map[bool]string{true: ", plain"}[plain]), compress.Codecs.Brotli, level, plain}
	}
	type layout struct {
		name   string
		codecs []codec
	}
	type candidate struct {
		name    string
		g       grid // step 0: float32 as it is
		layouts []layout
	}
	sc := arrow.NewSchema([]arrow.Field{{Name: "c0", Type: arrow.ListOfNonNullable(arrow.PrimitiveTypes.Float32)}}, nil)
	var ref int64
	fmt.Println()
	fmt.Println("| grid (max error 1e-4) | layout | codec | weights column | vs float32 | max abs error/weight | max entropy error/head | max diagonality error/head | max head diversity error/layer | write MB/s |")
	fmt.Println("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, cand := range []candidate{
		{"float32", grid{}, []layout{{"w", []codec{zstd(3)}}}},
		{"2^-13, tiny weights to 2^-17 (compact)", compactGrid, []layout{
			{"1+w", []codec{zstd(3), zstd(9), brotli(5, false), brotli(5, true)}},
			{"1+w, row residual", []codec{zstd(3), zstd(9)}},
			{"packed", []codec{zstd(3), zstd(9), zstd(19)}},
		}},
		{"2^-13, tiny weights to 2^-16", grid{step: CompactStep, maxErr: FixedMaxError, fine: PackedFine}, []layout{
			{"packed", []codec{zstd(3)}},
		}},
		{"2^-13 even where allowed, tiny weights to 2^-16, entropy goal 6e-5 (packed)", packedGrid, []layout{
			{"1+w", []codec{zstd(3)}},
			{"packed", []codec{zstd(3), zstd(9), zstd(19), brotli(5, false)}},
		}},
	} {
		// round once per grid
		start := time.Now()
		q := make([][]float32, len(rows))
		for i, r := range rows {
			q[i] = r.Weights.Data
			if cand.g.step > 0 {
				q[i] = make([]float32, len(r.Weights.Data))
				quantizeWithin(r.Weights.Data, q[i], r.Weights.Cols, cand.g)
			}
		}
		rounding := time.Since(start).Seconds()
		for _, l := range cand.layouts {
			// the values stored and what a reader gets back from them
			stored := make([][]float32, len(rows))
			back := make([]metrics.Matrix, len(rows))
			for i, r := range rows {
				m := r.Weights
				switch l.name {
				case "w":
					stored[i], back[i] = q[i], metrics.Matrix{Rows: m.Rows, Cols: m.Cols, Data: q[i]}
				case "1+w", "1+w, row residual", "packed":
					v := make([]float32, len(q[i]))
					for j, x := range q[i] {
						v[j] = 1 + x
					}
					var w []float32
					switch l.name {
					case "1+w":
						stored[i] = v
						w = make([]float32, len(v))
						for j, x := range v {
							w[j] = x - 1
						}
					case "1+w, row residual":
						stored[i], w = rowResidual(r.Kind, m.Rows, m.Cols, v)
					case "packed":
						b := array.NewFloat32Builder(memory.DefaultAllocator)
						appendPacked(b, r.Kind, m.Rows, m.Cols, v)
						a := b.NewFloat32Array()
						stored[i] = append([]float32(nil), a.Float32Values()...)
						a.Release()
						b.Release()
						var ok bool
						if w, ok = unpackWeights(r.Kind, m.Rows, m.Cols, stored[i]); !ok {
							t.Fatalf("row %d: packed values do not unpack", i)
						}
					}
					back[i] = metrics.Matrix{Rows: m.Rows, Cols: m.Cols, Data: w}
				}
			}
			var maxErr, maxEnt, maxDiag float64
			for i, r := range rows {
				for j, v := range back[i].Data {
					maxErr = math.Max(maxErr, math.Abs(float64(v-r.Weights.Data[j])))
				}
				maxEnt = math.Max(maxEnt, math.Abs(metrics.Entropy(back[i])-metrics.Entropy(r.Weights)))
				maxDiag = math.Max(maxDiag, math.Abs(metrics.Diagonality(back[i])-metrics.Diagonality(r.Weights)))
			}
			div := maxDiversityError(rows, back)
			for _, c := range l.codecs {
				enc := parquet.Encodings.ByteStreamSplit
				if c.plain {
					enc = parquet.Encodings.Plain
				}
				props := parquet.NewWriterProperties(parquet.WithCompression(c.c), parquet.WithCompressionLevel(c.level),
					parquet.WithDictionaryDefault(false), parquet.WithStats(false), parquet.WithEncodingFor("c0.list.element", enc))
				var file bytes.Buffer
				start := time.Now()
				w, err := pqarrow.NewFileWriter(sc, &file, props, pqarrow.DefaultWriterProps())
				if err != nil {
					t.Fatal(err)
				}
				for s := 0; s < len(rows); s += 4096 {
					b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
					lb := b.Field(0).(*array.ListBuilder)
					vb := lb.ValueBuilder().(*array.Float32Builder)
					for i := s; i < min(s+4096, len(rows)); i++ {
						lb.Append(true)
						vb.AppendValues(stored[i], nil)
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
				secs := time.Since(start).Seconds() + rounding
				size := int64(file.Len())
				if ref == 0 {
					ref = size
				}
				fmt.Printf("| %s | %s | %s | %.2f MB | %.2fx | %.1e | %.1e | %.1e | %.1e | %.0f |\n", cand.name, l.name, c.name, float64(size)/1e6,
					float64(ref)/float64(size), maxErr, maxEnt, maxDiag, div, float64(raw)/1e6/secs)
			}
		}
	}
}

// rowResidual is the "1+w, row residual" layout of a matrix stored as 1 +
// w (v): at each row's last column (a causal matrix's diagonal) r = w −
// (1 − the sum of the row's other weights) instead of w, so 1 + r is 1
// for a row that sums to 1; it returns the stored values and the weights
// a reader restores from them (w = r + 1 − the others' sum).
func rowResidual(kind string, q, k int, v []float32) (stored, back []float32) {
	stored = append([]float32(nil), v...)
	back = make([]float32, len(v))
	for t := range q {
		row := v[t*k : (t+1)*k]
		p := k - 1
		if kind == KindDecoderSelf && q == k {
			p = t
		}
		var others float64
		for j, x := range row {
			back[t*k+j] = x - 1
			if j != p {
				others += float64(x - 1)
			}
		}
		if math.IsNaN(others) || math.IsInf(others, 0) {
			continue
		}
		stored[t*k+p] = float32(1 + (float64(row[p]-1) - (1 - others)))
		back[t*k+p] = float32(float64(stored[t*k+p]-1) + (1 - others))
	}
	return stored, back
}
