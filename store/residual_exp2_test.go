package store

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
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

func TestExpCoarse(t *testing.T) {
	run := os.Getenv("ATTNAUDIT_STORAGE_RUN")
	if run == "" {
		t.Skip()
	}
	var rows []Attention
	if err := ScanAttention(run, func(a Attention) error { rows = append(rows, a); return nil }); err != nil {
		t.Fatal(err)
	}
	var raw int64
	for _, r := range rows {
		raw += 4 * int64(len(r.Weights.Data))
	}
	settings := strings.Split(os.Getenv("EXP_SETTINGS"), ";")
	levels := []int{3, 9}
	if l := os.Getenv("EXP_LEVELS"); l != "" {
		levels = nil
		for _, x := range strings.Split(l, ",") {
			n, _ := strconv.Atoi(x)
			levels = append(levels, n)
		}
	}
	if p := os.Getenv("EXP_PAGE"); p != "" {
		n, _ := strconv.Atoi(p)
		expPage = int64(n)
	}
	resList := []bool{false, true}
	fmt.Println("tri", expTri)
	if os.Getenv("EXP_RES") == "1" {
		resList = []bool{true}
	}
	for _, set := range settings {
		f := strings.Split(set, ",")
		expCoarse, _ = strconv.Atoi(f[0])
		expCoarseFine, _ = strconv.Atoi(f[1])
		step := CompactStep
		fineF := CompactFine
		if len(f) > 3 {
			fineF, _ = strconv.Atoi(f[3])
		}
		if len(f) > 4 {
			entropyGoal, _ = strconv.ParseFloat(f[4], 64)
		}
		if len(f) > 2 {
			d, _ := strconv.Atoi(f[2])
			step = 1.0 / float64(int(1)<<d)
		}
		q := make([][]float32, len(rows))
		stored := make([]metrics.Matrix, len(rows))
		start := time.Now()
		for i, r := range rows {
			q[i] = make([]float32, len(r.Weights.Data))
			quantizeWithin(r.Weights.Data, q[i], r.Weights.Cols, step, FixedMaxError, float64(fineF))
			stored[i] = metrics.Matrix{Rows: r.Weights.Rows, Cols: r.Weights.Cols, Data: q[i]}
		}
		qsecs := time.Since(start).Seconds()
		var maxErr, maxEnt, maxDiag float64
		offgrid := 0
		for i, r := range rows {
			on := true
			for j, v := range q[i] {
				maxErr = math.Max(maxErr, math.Abs(float64(v-r.Weights.Data[j])))
				if x := float64(v) / (step / CompactFine); x != math.Round(x) {
					on = false
				}
			}
			if !on {
				offgrid++
			}
			maxEnt = math.Max(maxEnt, math.Abs(metrics.Entropy(stored[i])-metrics.Entropy(r.Weights)))
			maxDiag = math.Max(maxDiag, math.Abs(metrics.Diagonality(stored[i])-metrics.Diagonality(r.Weights)))
		}
		div := maxDiversityError(rows, stored)
		for _, res := range resList {
			for _, level := range levels {
				size, secs := expWrite(t, rows, q, res, compress.Codecs.Zstd, level)
				fmt.Printf("| page %d coarse %d fine %d step %g fineF %d goal %g | res %v | zstd %d | %.2f MB | %.2fx | %.1e | %.1e | %.1e | %.1e | %d finer | %.0f MB/s write, %.0f MB/s rounding |\n",
					expPage, expCoarse, expCoarseFine, step, fineF, entropyGoal, res, level, float64(size)/1e6, 96.7e6/float64(size), maxErr, maxEnt, maxDiag, div, offgrid, float64(raw)/1e6/secs, float64(raw)/1e6/qsecs)
			}
		}
	}
	expCoarse, expCoarseFine = 0, 0
	entropyGoal = 1e-5
}

var expPage int64
var expDrop = os.Getenv("EXP_DROP") == "1"
var expTri = os.Getenv("EXP_TRI") == "1"

func expWrite(t *testing.T, rows []Attention, q [][]float32, res bool, codec compress.Compression, level int) (int, float64) {
	page := expPage
	if page == 0 {
		page = 1 << 20
	}
	sc := arrow.NewSchema([]arrow.Field{{Name: "c0", Type: arrow.ListOfNonNullable(arrow.PrimitiveTypes.Float32)}}, nil)
	props := parquet.NewWriterProperties(parquet.WithCompression(codec), parquet.WithCompressionLevel(level),
		parquet.WithDictionaryDefault(false), parquet.WithStats(false), parquet.WithDataPageSize(page), parquet.WithEncodingFor("c0.list.element", parquet.Encodings.ByteStreamSplit))
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
			m := rows[i].Weights
			for tt := 0; tt < m.Rows; tt++ {
				row := q[i][tt*m.Cols : (tt+1)*m.Cols]
				p := -1
				var sum float64
				if res {
					p = expPos(rows[i].Kind, tt, m.Rows, m.Cols)
					for j, v := range row {
						if j != p {
							sum += float64(v)
						}
					}
					if math.IsNaN(sum) || math.IsInf(sum, 0) {
						p = -1
					}
				}
				for j, v := range row {
					if expTri && rows[i].Kind == KindDecoderSelf && m.Rows == m.Cols && j > tt {
						continue
					}
					if j == p && expDrop && float64(v)-(1-sum) == 0 {
						continue
					}
					if j == p {
						vb.Append(float32(1 + (float64(v) - (1 - sum))))
					} else {
						vb.Append(1 + v)
					}
				}
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
	return file.Len(), time.Since(start).Seconds()
}
