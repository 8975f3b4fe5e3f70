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

// TestStorageCandidates measures layouts that are not precisions (make
// bench-storage prints it after TestStorageTable): for each grid of
// weights (rounded with quantizeRows, so each within 1e-4, row sums and
// entropy balanced where the grid leaves a choice) and each way to lay the
// weights out in Parquet, the size of the weights column alone against
// float32 byte-split at zstd 3, the largest error per weight and per
// head entropy, and the write speed. "w" is the probability as float32
// (readers get probabilities directly); "1+w" is 1 + the probability as
// float32, a constant exponent, so byte-split streams hold the grid index
// (readers subtract 1); "hi/lo" is the grid index n = w/step as two
// list<uint8> columns, dictionary-encoded (readers compute (256·hi+lo)·step).
func TestStorageCandidates(t *testing.T) {
	run := os.Getenv("ATTNAUDIT_STORAGE_RUN")
	if run == "" {
		t.Skip("set ATTNAUDIT_STORAGE_RUN to a float32 run folder (make bench-storage)")
	}
	var rows []metrics.Matrix
	if err := ScanAttention(run, func(a Attention) error {
		rows = append(rows, a.Weights)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var raw int64
	for _, r := range rows {
		raw += 4 * int64(len(r.Data))
	}
	type grid struct {
		name string
		step float64
	}
	type layout struct {
		name  string
		cols  []arrow.DataType
		props func(level int) []parquet.WriterProperty
		fill  func(bs []*array.ListBuilder, q []float32, step float64)
	}
	f32, u8 := arrow.PrimitiveTypes.Float32, arrow.PrimitiveTypes.Uint8
	base := func(level int, more ...parquet.WriterProperty) []parquet.WriterProperty {
		return append([]parquet.WriterProperty{parquet.WithCompression(compress.Codecs.Zstd), parquet.WithCompressionLevel(level),
			parquet.WithDictionaryDefault(false), parquet.WithStats(false)}, more...)
	}
	floats := func(offset float32) func(bs []*array.ListBuilder, q []float32, step float64) {
		return func(bs []*array.ListBuilder, q []float32, _ float64) {
			vb := bs[0].ValueBuilder().(*array.Float32Builder)
			for _, v := range q {
				vb.Append(offset + v)
			}
		}
	}
	split := func(level int) []parquet.WriterProperty {
		return base(level, parquet.WithEncodingFor("c0.list.element", parquet.Encodings.ByteStreamSplit))
	}
	layouts := []layout{
		{"w, byte-split", []arrow.DataType{f32}, split, floats(0)},
		{"1+w, byte-split", []arrow.DataType{f32}, split, floats(1)},
		{"hi/lo uint8, dictionary", []arrow.DataType{u8, u8}, func(level int) []parquet.WriterProperty {
			return base(level, parquet.WithDictionaryFor("c0.list.element", true), parquet.WithDictionaryFor("c1.list.element", true))
		}, func(bs []*array.ListBuilder, q []float32, step float64) {
			hi, lo := bs[0].ValueBuilder().(*array.Uint8Builder), bs[1].ValueBuilder().(*array.Uint8Builder)
			for _, v := range q {
				n := int(math.Round(float64(v) / step))
				hi.Append(uint8(n >> 8))
				lo.Append(uint8(n))
			}
		}},
	}
	var ref int64
	fmt.Println("| grid (max error 1e-4) | layout | zstd | weights column | vs float32 | max abs error/weight | max entropy error/head | write MB/s |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|")
	for _, g := range []grid{{"float32", 0}, {"2^-14 (fixed)", FixedStep}, {"2^-13", 1.0 / (1 << 13)}, {"1.5e-4", 1.5e-4}, {"2e-4", 2e-4}} {
		for _, l := range layouts {
			pow2 := g.step == 0 || math.Exp2(math.Round(math.Log2(g.step))) == g.step
			if (l.name != "w, byte-split" && g.step == 0) || (l.name != "hi/lo uint8, dictionary" && !pow2) {
				continue // floats hold only power-of-two grids exactly; float32 has no grid index
			}
			for _, level := range []int{3, 9} {
				if g.step == 0 && level != 3 {
					continue
				}
				fields := make([]arrow.Field, len(l.cols))
				for i, typ := range l.cols {
					fields[i] = arrow.Field{Name: fmt.Sprintf("c%d", i), Type: arrow.ListOfNonNullable(typ)}
				}
				sc := arrow.NewSchema(fields, nil)
				var file bytes.Buffer
				start := time.Now()
				w, err := pqarrow.NewFileWriter(sc, &file, parquet.NewWriterProperties(l.props(level)...), pqarrow.DefaultWriterProps())
				if err != nil {
					t.Fatal(err)
				}
				var maxErr, maxEnt float64
				var q []float32
				for s := 0; s < len(rows); s += 4096 {
					b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
					bs := make([]*array.ListBuilder, len(l.cols))
					for i := range bs {
						bs[i] = b.Field(i).(*array.ListBuilder)
					}
					for _, r := range rows[s:min(s+4096, len(rows))] {
						q = resize(q, len(r.Data))
						copy(q, r.Data)
						if g.step > 0 {
							quantizeRows(r.Data, q, r.Cols, g.step, FixedMaxError, FixedFine)
						}
						for _, lb := range bs {
							lb.Append(true)
						}
						l.fill(bs, q, g.step)
						if level == 3 {
							for j, v := range q {
								maxErr = math.Max(maxErr, math.Abs(float64(v-r.Data[j])))
							}
							maxEnt = math.Max(maxEnt, math.Abs(metrics.Entropy(metrics.Matrix{Rows: r.Rows, Cols: r.Cols, Data: q})-metrics.Entropy(r)))
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
				errs := "″ | ″"
				if level == 3 {
					errs = fmt.Sprintf("%.1e | %.1e", maxErr, maxEnt)
				}
				fmt.Printf("| %s | %s | %d | %.1f MB | %.2fx | %s | %.0f |\n", g.name, l.name, level, float64(size)/1e6, float64(ref)/float64(size), errs, float64(raw)/1e6/secs)
			}
		}
	}
}
