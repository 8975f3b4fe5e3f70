package store

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

var expPosSpec = os.Getenv("EXP_POS") // cross,dec,enc each first|last|diag

func expPos(kind string, t, rows, cols int) int {
	spec := []string{"last", "diag", "last"}
	if expPosSpec != "" {
		spec = strings.Split(expPosSpec, ",")
	}
	k := map[string]int{KindCross: 0, KindDecoderSelf: 1, KindEncoderSelf: 2}[kind]
	switch spec[k] {
	case "first":
		return 0
	case "diag":
		if t < cols {
			return t
		}
	case "second":
		if cols > 1 {
			return 1
		}
	case "penult":
		if cols > 1 {
			return cols - 2
		}
	}
	if kind == KindDecoderSelf && rows == cols && expTri {
		return t
	}
	return cols - 1
}

func TestExpResidual(t *testing.T) {
	run := os.Getenv("ATTNAUDIT_STORAGE_RUN")
	if run == "" {
		t.Skip()
	}
	var rows []Attention
	if err := ScanAttention(run, func(a Attention) error { rows = append(rows, a); return nil }); err != nil {
		t.Fatal(err)
	}
	var raw int64
	q := make([][]float32, len(rows))
	for i, r := range rows {
		raw += 4 * int64(len(r.Weights.Data))
		q[i] = make([]float32, len(r.Weights.Data))
		quantizeWithin(r.Weights.Data, q[i], r.Weights.Cols, CompactStep, FixedMaxError, CompactFine)
	}
	// order-0 entropy of 2^17 index by kind and position class
	type key struct{ kind, cls string }
	hist := map[key]map[int64]int{}
	add := func(k key, v float32) {
		m := hist[k]
		if m == nil {
			m = map[int64]int{}
			hist[k] = m
		}
		m[int64(math.Round(float64(v)*(1<<17)))]++
	}
	balanced, total := 0, 0
	for i, r := range rows {
		m := r.Weights
		for tt := 0; tt < m.Rows; tt++ {
			row := q[i][tt*m.Cols : (tt+1)*m.Cols]
			var s float64
			for _, v := range row {
				s += float64(v)
			}
			total++
			if s == 1 {
				balanced++
			}
			p := expPos(r.Kind, tt, m.Rows, m.Cols)
			mx := 0
			for j := range row {
				if row[j] > row[mx] {
					mx = j
				}
			}
			for j, v := range row {
				if r.Kind == KindDecoderSelf && m.Rows == m.Cols && j > tt {
					add(key{r.Kind, "future"}, v)
					continue
				}
				cls := "other"
				if j == p {
					cls = "pos"
				} else if j == 0 {
					cls = "first"
				}
				add(key{r.Kind, cls}, v)
				if j == mx {
					add(key{r.Kind, "argmax"}, v)
				}
			}
		}
	}
	fmt.Printf("rows %d, sum exactly 1: %d\n", total, balanced)
	var keys []key
	for k := range hist {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool { return keys[a].kind+keys[a].cls < keys[b].kind+keys[b].cls })
	for _, k := range keys {
		n := 0
		for _, c := range hist[k] {
			n += c
		}
		var h float64
		for _, c := range hist[k] {
			p := float64(c) / float64(n)
			h -= p * math.Log2(p)
		}
		fmt.Printf("%s %s: %d values, %.2f bits, %.1f MB\n", k.kind, k.cls, n, h, h*float64(n)/8e6)
	}
	// layouts
	residual := func(i int) []float32 {
		r := rows[i]
		m := r.Weights
		out := make([]float32, len(q[i]))
		for tt := 0; tt < m.Rows; tt++ {
			row := q[i][tt*m.Cols : (tt+1)*m.Cols]
			o := out[tt*m.Cols : (tt+1)*m.Cols]
			p := expPos(r.Kind, tt, m.Rows, m.Cols)
			var s float64
			for j, v := range row {
				o[j] = 1 + v
				if j != p {
					s += float64(v)
				}
			}
			if !math.IsInf(s, 0) && !math.IsNaN(s) {
				rr := float64(row[p]) - (1 - s)
				o[p] = float32(1 + rr)
				back := float32(float64(o[p]-1) + (1 - s))
				if back != row[p] {
					t.Fatalf("row %d %d: %v back %v", i, tt, row[p], back)
				}
			}
		}
		return out
	}
	plus := func(i int) []float32 {
		out := make([]float32, len(q[i]))
		for j, v := range q[i] {
			out[j] = 1 + v
		}
		return out
	}
	sc := arrow.NewSchema([]arrow.Field{{Name: "c0", Type: arrow.ListOfNonNullable(arrow.PrimitiveTypes.Float32)}}, nil)
	type codec struct {
		name  string
		c     compress.Compression
		level int
		enc   parquet.Encoding
	}
	codecs := []codec{
		{"zstd 3 bss", compress.Codecs.Zstd, 3, parquet.Encodings.ByteStreamSplit},
		{"zstd 9 bss", compress.Codecs.Zstd, 9, parquet.Encodings.ByteStreamSplit},
		{"zstd 19 bss", compress.Codecs.Zstd, 19, parquet.Encodings.ByteStreamSplit},
		{"brotli 5 plain", compress.Codecs.Brotli, 5, parquet.Encodings.Plain},
		{"brotli 5 bss", compress.Codecs.Brotli, 5, parquet.Encodings.ByteStreamSplit},
		{"brotli 9 plain", compress.Codecs.Brotli, 9, parquet.Encodings.Plain},
		{"brotli 9 bss", compress.Codecs.Brotli, 9, parquet.Encodings.ByteStreamSplit},
	}
	if os.Getenv("EXP_CODECS") == "quick" {
		codecs = codecs[:2]
	}
	for _, lay := range []struct {
		name string
		f    func(int) []float32
	}{{"1+w", plus}, {"1+w residual", residual}} {
		for _, c := range codecs {
			props := parquet.NewWriterProperties(parquet.WithCompression(c.c), parquet.WithCompressionLevel(c.level),
				parquet.WithDictionaryDefault(false), parquet.WithStats(false), parquet.WithEncodingFor("c0.list.element", c.enc))
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
					vb.AppendValues(lay.f(i), nil)
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
			fmt.Printf("| %s | %s | %.2f MB | %.2fx vs 96.7 | %.0f MB/s (no rounding) |\n", lay.name, c.name, float64(file.Len())/1e6, 96.7e6/float64(file.Len()), float64(raw)/1e6/secs)
		}
	}
}
