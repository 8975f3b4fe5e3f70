package store

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"attnaudit/metrics"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// fixtureAttention returns the attention rows of n examples in file order:
// passes forced and free, every kind, layers × heads, each matrix's rows
// softmax-normalised random weights.
func fixtureAttention(n, layers, heads int, seed uint64) []Attention {
	rng := rand.New(rand.NewPCG(seed, 1))
	var rows []Attention
	for ex := range n {
		src := 3 + rng.IntN(9)
		tgt := map[string]int{PassForced: 2 + rng.IntN(9), PassFree: 2 + rng.IntN(9)}
		for _, pass := range []string{PassForced, PassFree} {
			for _, kind := range []string{KindCross, KindDecoderSelf, KindEncoderSelf} {
				q, k := tgt[pass], src
				switch kind {
				case KindDecoderSelf:
					k = q
				case KindEncoderSelf:
					q = src
				}
				for l := range layers {
					for h := range heads {
						rows = append(rows, Attention{
							ExampleID: int32(ex), Pass: pass, Kind: kind, Layer: int16(l), Head: int16(h),
							Weights: softmaxMatrix(rng, q, k),
						})
					}
				}
			}
		}
	}
	return rows
}

func softmaxMatrix(rng *rand.Rand, q, k int) metrics.Matrix {
	m := metrics.NewMatrix(q, k)
	for i := range q {
		row := m.Row(i)
		var sum float64
		for j := range row {
			v := math.Exp(3 * rng.NormFloat64())
			row[j] = float32(v)
			sum += v
		}
		for j := range row {
			row[j] = float32(float64(row[j]) / sum)
		}
	}
	return m
}

func checkedAllocator(t testing.TB) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

func writeAttention(t testing.TB, dir string, rows []Attention, opts AttentionOptions, wopts ...WriterOption) []string {
	t.Helper()
	w, err := NewAttentionWriter(dir, opts, wopts...)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	// Write in uneven batches to exercise the variadic path.
	for i := 0; i < len(rows); i += 7 {
		if err := w.Write(rows[i:min(i+7, len(rows))]...); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	return w.Parts()
}

func readAttention(t testing.TB, path string, opts ...ReaderOption) []Attention {
	t.Helper()
	var got []Attention
	if err := ScanAttention(path, func(a Attention) error {
		got = append(got, a)
		return nil
	}, opts...); err != nil {
		t.Fatal(err)
	}
	return got
}

func baseNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}

func TestAttentionRoundTrip(t *testing.T) {
	rows := fixtureAttention(5, 2, 3, 1) // 5 × 2 passes × 3 kinds × 6 heads = 180 rows
	tests := []struct {
		name      string
		opts      AttentionOptions
		wopts     []WriterOption
		wantParts []string
		tol       float64
	}{
		{name: "one part", wantParts: []string{"attention-00000.parquet"}},
		{name: "small row groups", wopts: []WriterOption{WithRowGroupRows(16)}, wantParts: []string{"attention-00000.parquet"}},
		{name: "row groups by bytes", wopts: []WriterOption{WithRowGroupBytes(2000)}, wantParts: []string{"attention-00000.parquet"}},
		{name: "first part number", opts: AttentionOptions{Part: 12}, wantParts: []string{"attention-00012.parquet"}},
		{
			name: "parts by rows", opts: AttentionOptions{PartRows: 50},
			wantParts: []string{"attention-00000.parquet", "attention-00001.parquet", "attention-00002.parquet", "attention-00003.parquet"},
		},
		{
			name: "shard prefix", opts: AttentionOptions{Prefix: "s003", Part: 4, PartRows: 100},
			wantParts: []string{"attention-s003-00004.parquet", "attention-s003-00005.parquet"},
		},
		{name: "float16", opts: AttentionOptions{Precision: PrecisionFloat16}, wantParts: []string{"attention-00000.parquet"}, tol: 1e-3},
		{name: "float32", opts: AttentionOptions{Precision: PrecisionFloat32}, wantParts: []string{"attention-00000.parquet"}},
		{name: "fixed", opts: AttentionOptions{Precision: PrecisionFixed}, wantParts: []string{"attention-00000.parquet"}, tol: fixedTol},
		{name: "compact", opts: AttentionOptions{Precision: PrecisionCompact}, wantParts: []string{"attention-00000.parquet"}, tol: fixedTol},
		{name: "packed", opts: AttentionOptions{Precision: PrecisionPacked}, wantParts: []string{"attention-00000.parquet"}, tol: fixedTol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			mem := checkedAllocator(t)
			parts := writeAttention(t, dir, rows, tt.opts, append(tt.wopts, WithWriteAllocator(mem))...)
			if got := baseNames(parts); !slices.Equal(got, tt.wantParts) {
				t.Fatalf("parts = %v, want %v", got, tt.wantParts)
			}
			listed, err := Parts(dir, AttentionStem)
			if err != nil || !slices.Equal(listed, parts) {
				t.Fatalf("Parts(dir) = %v, %v; want %v", listed, err, parts)
			}
			got := readAttention(t, dir, WithReadAllocator(mem))
			tol := tt.tol
			if tt.opts.Precision == "" {
				tol = fixedTol
			}
			assertAttentionEqual(t, got, rows, tol)
		})
	}
}

// TestCompactStoresOnePlusW checks the compact precision's layout (the
// default before packed): it writes the column weights_plus_one (and no weights column),
// holding 1 + w exactly, w multiples of 2^-13 (2^-17 below 2^-13; finer
// in matrices quantizeWithin refines) within FixedMaxError, and the reader
// gives back exactly w.
func TestCompactStoresOnePlusW(t *testing.T) {
	rows := fixtureAttention(5, 2, 3, 9)
	// tiny and zero weights, and a weight of 1
	rows[0].Weights.Data[0], rows[0].Weights.Data[1] = 3e-6, 0
	rows[1].Weights = metrics.Matrix{Rows: 1, Cols: 3, Data: []float32{1, 0, 0}}
	compact := t.TempDir()
	writeAttention(t, compact, rows, AttentionOptions{Precision: PrecisionCompact})

	f, err := os.Open(filepath.Join(compact, AttentionPartName(0)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pf, err := file.NewParquetReader(f)
	if err != nil {
		t.Fatal(err)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	sc := tbl.Schema()
	if len(sc.FieldIndices("weights")) != 0 || len(sc.FieldIndices(CompactColumn)) != 1 {
		t.Fatalf("compact part's columns: %v; want %s and no weights", sc, CompactColumn)
	}
	stored := tbl.Column(sc.FieldIndices(CompactColumn)[0]).Data().Chunk(0).(*array.List).ListValues().(*array.Float32).Float32Values()

	got := readAttention(t, compact)
	k, coarse := 0, 0
	for i := range rows {
		for j, w := range got[i].Weights.Data {
			if stored[k] != 1+w || stored[k]-1 != w {
				t.Fatalf("row %d weight %d: compact stores %g for %g", i, j, stored[k], w)
			}
			if n := float64(w) / (minStep / CompactFine); n != math.Trunc(n) {
				t.Fatalf("row %d weight %d: %g is on no grid quantizeWithin uses", i, j, w)
			}
			if n := float64(w) / CompactStep; w >= CompactStep && n == math.Trunc(n) {
				coarse++
			}
			k++
		}
	}
	if coarse*2 < k {
		t.Errorf("%d of %d weights on the 2^-13 grid", coarse, k)
	}
	if got[1].Weights.Data[0] != 1 || got[0].Weights.Data[1] != 0 {
		t.Errorf("1 and 0 read back as %g and %g", got[1].Weights.Data[0], got[0].Weights.Data[1])
	}
	assertAttentionEqual(t, got, rows, fixedTol)
}

// fixedTol is the fixed-point layout's error bound, plus float32 rounding.
const fixedTol = FixedMaxError + 1e-7

func assertAttentionEqual(t *testing.T, got, want []Attention, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("read %d rows, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ExampleID != w.ExampleID || g.Pass != w.Pass || g.Kind != w.Kind || g.Layer != w.Layer || g.Head != w.Head ||
			g.Weights.Rows != w.Weights.Rows || g.Weights.Cols != w.Weights.Cols || len(g.Weights.Data) != len(w.Weights.Data) {
			t.Fatalf("row %d: got %s %dx%d, want %s %dx%d", i, attentionSchema.key(&g), g.Weights.Rows, g.Weights.Cols,
				attentionSchema.key(&w), w.Weights.Rows, w.Weights.Cols)
		}
		for j, v := range w.Weights.Data {
			if d := math.Abs(float64(g.Weights.Data[j] - v)); d > tol*math.Max(1, float64(v)) {
				t.Fatalf("row %d weight %d = %g, want %g (tolerance %g)", i, j, g.Weights.Data[j], v, tol)
			}
		}
	}
}

func TestPartsRollOverByBytes(t *testing.T) {
	rows := fixtureAttention(20, 2, 4, 2)
	dir := t.TempDir()
	parts := writeAttention(t, dir, rows, AttentionOptions{PartBytes: 8 << 10}, WithRowGroupRows(32))
	if len(parts) < 3 {
		t.Fatalf("PartBytes 8 KiB gave %d parts, want several", len(parts))
	}
	for i, p := range parts {
		if want := AttentionPartName(i); filepath.Base(p) != want {
			t.Errorf("part %d is %s, want %s", i, filepath.Base(p), want)
		}
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		// A part can pass the limit by one row group (32 rows here).
		if i < len(parts)-1 && info.Size() < 8<<10 {
			t.Errorf("%s has %d bytes: rolled over before the 8 KiB limit", p, info.Size())
		}
	}
	assertAttentionEqual(t, readAttention(t, dir), rows, fixedTol)
}

func TestWriterRejectsBadOrder(t *testing.T) {
	mk := func(id int32, pass, kind string, layer, head int16) Attention {
		return Attention{ExampleID: id, Pass: pass, Kind: kind, Layer: layer, Head: head, Weights: metrics.Matrix{Rows: 1, Cols: 1, Data: []float32{1}}}
	}
	first := mk(3, PassForced, KindDecoderSelf, 1, 1)
	tests := []struct {
		name string
		next Attention
		want string
	}{
		{"duplicate", first, "attention row (example 3, pass forced, kind decoder_self, layer 1, head 1) after (example 3, pass forced, kind decoder_self, layer 1, head 1): rows must be sorted by (example_id, pass, kind, layer, head) without duplicates"},
		{"example goes back", mk(2, PassFree, KindEncoderSelf, 5, 5), "attention row (example 2, pass free, kind encoder_self, layer 5, head 5) after (example 3,"},
		{"pass goes back", mk(3, PassDetached, KindEncoderSelf, 5, 5), "row (example 3, pass detached,"},
		{"kind goes back", mk(3, PassForced, KindCross, 5, 5), "row (example 3, pass forced, kind cross,"},
		{"layer goes back", mk(3, PassForced, KindDecoderSelf, 0, 5), "layer 0, head 5) after"},
		{"head goes back", mk(3, PassForced, KindDecoderSelf, 1, 0), "layer 1, head 0) after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			mem := checkedAllocator(t)
			w, err := NewAttentionWriter(dir, AttentionOptions{}, WithWriteAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Write(first); err != nil {
				t.Fatal(err)
			}
			err = w.Write(tt.next)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Write = %v, want an error containing %q", err, tt.want)
			}
			// The writer closed itself: later calls return the same error
			// and nothing is left in the folder.
			if err2 := w.Write(mk(9, PassFree, KindCross, 0, 0)); err2 != err {
				t.Errorf("Write after failure = %v, want %v", err2, err)
			}
			if err2 := w.Close(); err2 != err {
				t.Errorf("Close after failure = %v, want %v", err2, err)
			}
			assertEmptyDir(t, dir)
		})
	}
}

func TestWriterRejectsInvalidRows(t *testing.T) {
	m := metrics.Matrix{Rows: 1, Cols: 2, Data: []float32{0.5, 0.5}}
	tests := []struct {
		name string
		row  Attention
		want string
	}{
		{"unknown pass", Attention{Pass: "greedy", Kind: KindCross, Weights: m}, `pass "greedy" is not one of detached, forced, free`},
		{"unknown kind", Attention{Pass: PassFree, Kind: "cross_attn", Weights: m}, `kind "cross_attn" is not one of cross, decoder_self, encoder_self`},
		{"short weights", Attention{Pass: PassFree, Kind: KindCross, Weights: metrics.Matrix{Rows: 2, Cols: 2, Data: []float32{1, 0, 1}}}, "weights hold 3 values for q_len 2 × k_len 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			w, err := NewAttentionWriter(dir, AttentionOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Write(tt.row); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Write = %v, want an error containing %q", err, tt.want)
			}
			assertEmptyDir(t, dir)
		})
	}
}

func TestNewAttentionWriterChecksOptions(t *testing.T) {
	dir := t.TempDir()
	for _, opts := range []AttentionOptions{{Prefix: "s/3"}, {Prefix: "a-b"}, {Part: -1}, {PartRows: -5}} {
		if _, err := NewAttentionWriter(dir, opts); err == nil {
			t.Errorf("NewAttentionWriter(%+v) accepted bad options", opts)
		}
	}
	if _, err := NewAttentionWriter(filepath.Join(dir, "missing"), AttentionOptions{}); err == nil {
		t.Error("NewAttentionWriter accepted a missing folder")
	}
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("folder holds %v, want nothing", names)
	}
}

// An unfinished writer (a crash, or a process still writing) leaves only a
// hidden temporary file that readers never see; Abort removes it.
func TestAtomicRename(t *testing.T) {
	dir := t.TempDir()
	mem := checkedAllocator(t)
	rows := fixtureAttention(4, 1, 2, 3)
	w, err := NewAttentionWriter(dir, AttentionOptions{PartRows: 20}, WithWriteAllocator(mem), WithRowGroupRows(8))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rows[:30]...); err != nil {
		t.Fatal(err)
	}
	// Part 0 is finished; part 1 is half written.
	if _, err := os.Stat(filepath.Join(dir, "attention-00000.parquet")); err != nil {
		t.Fatalf("finished part: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "attention-00001.parquet")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("half-written part has its final name (stat: %v)", err)
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, ".attention-00001.parquet.tmp-*"))
	if len(tmps) != 1 {
		t.Fatalf("temporary files %v, want one", tmps)
	}
	if got := readAttention(t, dir); len(got) != 20 {
		t.Fatalf("a reader sees %d rows, want the 20 of the finished part", len(got))
	}
	w.Abort()
	w.Abort()
	if err := w.Close(); !errors.Is(err, ErrAborted) {
		t.Errorf("Close after Abort = %v, want ErrAborted", err)
	}
	if err := w.Write(rows[30]); !errors.Is(err, ErrAborted) {
		t.Errorf("Write after Abort = %v, want ErrAborted", err)
	}
	if tmps, _ := filepath.Glob(filepath.Join(dir, ".*")); len(tmps) != 0 {
		t.Errorf("Abort left %v", tmps)
	}
	if parts, _ := Parts(dir, AttentionStem); len(parts) != 1 {
		t.Errorf("parts after Abort = %v, want only the finished one", parts)
	}
}

func TestCloseWithoutRowsWritesEmptyFile(t *testing.T) {
	dir := t.TempDir()
	mem := checkedAllocator(t)
	w, err := NewSentenceMetricsWriter(dir, WithWriteAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSentenceMetrics(dir, WithReadAllocator(mem))
	if err != nil || len(got) != 0 {
		t.Fatalf("ReadSentenceMetrics = %v, %v; want no rows, no error", got, err)
	}
	if err := w.Write(SentenceMetrics{Pass: PassFree}); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
}

func TestParts(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{
		"attention-s010-00000.parquet", "attention-00010.parquet", "attention-00002.parquet",
		"attention-s002-00001.parquet", "attention.parquet", "attention-s002-00000.parquet",
		".attention-00003.parquet.tmp-123", "attention-00004.parquet.crc", "attentions-00001.parquet",
		"examples-00000.parquet", "head_metrics.parquet", "attention-100000.parquet",
		"attention-00002.10.parquet", "attention-00002.2.parquet", "attention-00002.1.parquet", "attention-s002-00000.1.parquet",
		"attention-00002.x.parquet", "attention-00002..parquet",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Parts(dir, AttentionStem)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"attention.parquet", "attention-00002.parquet", "attention-00002.1.parquet", "attention-00002.2.parquet",
		"attention-00002.10.parquet", "attention-00010.parquet", "attention-100000.parquet",
		"attention-s002-00000.parquet", "attention-s002-00000.1.parquet", "attention-s002-00001.parquet", "attention-s010-00000.parquet"}
	if !slices.Equal(baseNames(got), want) {
		t.Errorf("Parts = %v, want %v", baseNames(got), want)
	}
	if _, err := Parts(dir, "sentence_metrics"); err == nil || !strings.Contains(err.Error(), "no sentence_metrics.parquet nor sentence_metrics-*.parquet parts") {
		t.Errorf("Parts without files = %v", err)
	}
	one := filepath.Join(dir, "head_metrics.parquet")
	if got, err := Parts(one, "whatever"); err != nil || !slices.Equal(got, []string{one}) {
		t.Errorf("Parts(file) = %v, %v", got, err)
	}
	if got := ShardPrefix(3, 8); got != "s003" {
		t.Errorf("ShardPrefix(3, 8) = %q", got)
	}
	if got := ShardPrefix(42, 2000); got != "s0042" {
		t.Errorf("ShardPrefix(42, 2000) = %q", got)
	}
}

func TestScanFiltersByExample(t *testing.T) {
	rows := fixtureAttention(30, 1, 2, 4)
	dir := t.TempDir()
	writeAttention(t, dir, rows, AttentionOptions{PartRows: 100}, WithRowGroupRows(10))
	mem := checkedAllocator(t)
	ids := []int32{29, 3, 17}
	got := readAttention(t, dir, WithExampleIDs(ids...), WithReadAllocator(mem), WithBatchRows(7))
	var want []Attention
	for _, r := range rows {
		if slices.Contains(ids, r.ExampleID) {
			want = append(want, r)
		}
	}
	assertAttentionEqual(t, got, want, fixedTol)
	if none := readAttention(t, dir, WithExampleIDs(1000)); len(none) != 0 {
		t.Errorf("unknown example gave %d rows", len(none))
	}
	if all := readAttention(t, filepath.Join(dir, "attention-00001.parquet")); len(all) != 100 {
		t.Errorf("reading one part file gave %d rows, want 100", len(all))
	}
}

func TestScanStopsEarly(t *testing.T) {
	rows := fixtureAttention(3, 1, 1, 5)
	dir := t.TempDir()
	writeAttention(t, dir, rows, AttentionOptions{PartRows: 5})
	mem := checkedAllocator(t)
	n := 0
	err := ScanAttention(dir, func(Attention) error {
		n++
		if n == 7 {
			return ErrStop
		}
		return nil
	}, WithReadAllocator(mem))
	if err != nil || n != 7 {
		t.Errorf("ScanAttention stopped after %d rows with %v, want 7 rows and nil", n, err)
	}
	boom := errors.New("boom")
	err = ScanAttention(dir, func(Attention) error { return boom }, WithReadAllocator(mem))
	if !errors.Is(err, boom) {
		t.Errorf("callback error came back as %v", err)
	}
}

// TestScanAhead decodes several parts at once: the rows come in the order
// of a sequential scan, and stopping early or failing stops every reader
// (the checked allocator finds nothing left allocated).
func TestScanAhead(t *testing.T) {
	rows := fixtureAttention(40, 2, 2, 6)
	dir := t.TempDir()
	writeAttention(t, dir, rows, AttentionOptions{PartRows: 7}, WithRowGroupRows(3))
	paths, err := Parts(dir, attentionSchema.stem)
	if err != nil || len(paths) < 10 {
		t.Fatalf("parts %v, %v", paths, err)
	}
	mem := checkedAllocator(t)
	cfg := newReaderConfig([]ReaderOption{WithReadAllocator(mem), WithBatchRows(5)})
	for _, ahead := range []int{2, 3, 8, 100} {
		var got []Attention
		err := scanAhead(paths, attentionSchema, cfg, ahead, func(r *Attention) error {
			got = append(got, *r)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		assertAttentionEqual(t, got, rows, fixedTol)
		n := 0
		err = scanAhead(paths, attentionSchema, cfg, ahead, func(*Attention) error {
			if n++; n == 30 {
				return ErrStop
			}
			return nil
		})
		if err != nil || n != 30 {
			t.Errorf("ahead %d: stopped after %d rows with %v", ahead, n, err)
		}
		boom := errors.New("boom")
		if err := scanAhead(paths, attentionSchema, cfg, ahead, func(*Attention) error { return boom }); !errors.Is(err, boom) {
			t.Errorf("ahead %d: callback error came back as %v", ahead, err)
		}
	}
}

func TestReadRejectsOtherFiles(t *testing.T) {
	dir := t.TempDir()
	w, err := NewSentenceMetricsWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// A sentence-metrics file under an attention name.
	if err := os.Rename(filepath.Join(dir, "sentence_metrics.parquet"), filepath.Join(dir, "attention.parquet")); err != nil {
		t.Fatal(err)
	}
	bothScans(func() {
		err = ScanAttention(dir, func(Attention) error { return nil })
		if err == nil || !strings.Contains(err.Error(), `attention.parquet: no column "kind": not an attnaudit attention file`) {
			t.Errorf("ScanAttention on a foreign file (GOMAXPROCS %d) = %v", runtime.GOMAXPROCS(0), err)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "examples.parquet"), []byte("not parquet"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadExamples(dir); err == nil || !strings.Contains(err.Error(), "examples.parquet") {
		t.Errorf("ReadExamples on garbage = %v", err)
	}
}

func fixtureExamples() []Example {
	nan := float32(math.NaN())
	return []Example{
		{
			ExampleID: 0, ID: "tatoeba-1", Source: "나는 학생이다.", Reference: "I am a student.", Hypothesis: "I am a student.",
			SrcPieces: []string{"나는", "▁학생", "이다", ".", "</s>"}, SrcIDs: []int32{50, 51, 52, 4, 3},
			TgtPieces: []string{"I", "▁am", "▁a", "▁student", ".", "</s>"}, TgtIDs: []int32{60, 61, 62, 63, 4, 3},
			TokenLogprobs: []float32{-0.1, -0.2, -0.05, -0.3, -0.01, -0.02}, SeqLogprob: -0.113,
			RefPieces: []string{"I", "▁am", "▁a", "▁student", ".", "</s>"}, RefIDs: []int32{60, 61, 62, 63, 4, 3},
			RefLogprobs: []float32{-0.1, -0.2, -0.05, -0.3, -0.01, -0.02}, Chrf: 100, Bleu: 100,
			// 1 layer × 2 heads × 5 source positions.
			EncoderValueNorms: []float32{1, 2, 3, 4, 5, 0.5, 0.25, 2, 8, 1},
			CrossValueNorms:   []float32{3, 1, 4, 1, 5, 9, 2, 6, 5, 3},
		},
		{
			ExampleID: 2, ID: "line-3", Source: "비가 온다", Hypothesis: "",
			SrcPieces: []string{"비가", "▁온다", "</s>"}, SrcIDs: []int32{70, 71, 3},
			TgtPieces: []string{"</s>"}, TgtIDs: []int32{3}, TokenLogprobs: []float32{-4}, SeqLogprob: -4,
			Chrf: nan, Bleu: nan,
		},
	}
}

// sameFloat treats NaN as equal to NaN.
func sameFloat(a, b float32) bool { return a == b || (a != a && b != b) }

// TestExamplesWithoutValueNorms: files written before the value-norm
// columns existed still read, with no norms.
func TestExamplesWithoutValueNorms(t *testing.T) {
	old := *exampleSchema
	old.cols = slices.DeleteFunc(slices.Clone(old.cols), func(c column[Example]) bool { return c.optional })
	if len(old.cols) != len(exampleSchema.cols)-2 {
		t.Fatalf("%d optional columns, want the 2 value-norm ones", len(exampleSchema.cols)-len(old.cols))
	}
	dir := t.TempDir()
	w, err := newWriter(dir, &old, func(int) string { return ExamplesPartName(0) }, newWriterConfig(1024, nil), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(fixtureExamples()...); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := ReadExamples(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].EncoderValueNorms != nil || got[0].CrossValueNorms != nil || got[0].Source != "나는 학생이다." {
		t.Errorf("read %+v", got)
	}
}

func TestExamplesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	mem := checkedAllocator(t)
	want := fixtureExamples()
	// Two parts, as the pipeline writes one per chunk.
	for part, rows := range [][]Example{want[:1], want[1:]} {
		w, err := NewExampleWriter(dir, part, WithWriteAllocator(mem))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(rows...); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadExamples(dir, WithReadAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d examples, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !sameFloat(g.Chrf, w.Chrf) || !sameFloat(g.Bleu, w.Bleu) {
			t.Errorf("example %d: chrf/bleu %v/%v, want %v/%v", i, g.Chrf, g.Bleu, w.Chrf, w.Bleu)
		}
		g.Chrf, g.Bleu, w.Chrf, w.Bleu = 0, 0, 0, 0
		if !reflect.DeepEqual(g, w) {
			t.Errorf("example %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
	if got, _ := ReadExamples(dir, WithExampleIDs(2)); len(got) != 1 || got[0].ID != "line-3" {
		t.Errorf("ReadExamples(WithExampleIDs(2)) = %+v", got)
	}

	w, err := NewExampleWriter(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	bad := want[0]
	bad.SrcIDs = bad.SrcIDs[:2]
	if err := w.Write(bad); err == nil || !strings.Contains(err.Error(), "examples row (example 0): pieces and ids differ in length (src 5/2") {
		t.Errorf("Write with mismatched pieces = %v", err)
	}
}

func fixtureHeadMetrics() []HeadMetrics {
	nan := float32(math.NaN())
	var rows []HeadMetrics
	for ex := range int32(3) {
		for _, kind := range []string{KindCross, KindDecoderSelf} {
			for h := range int16(2) {
				f := float32(ex)*10 + float32(h)
				rows = append(rows, HeadMetrics{ExampleID: ex, Pass: PassFree, Kind: kind, Layer: 5, Head: h, QLen: 4, KLen: 6, Values: [metrics.NumHeadMetrics]float32{metrics.HeadEntropy: f + 0.1, metrics.HeadEntropyNorm: 0.2, metrics.HeadConfidence: 0.3, metrics.HeadConfidenceNoEOS: 0.31, metrics.HeadDiagonality: 0.4, metrics.HeadFirstMass: 0.5, metrics.HeadLastMass: 0.6, metrics.HeadDiversityOfLayer: 0.7, metrics.HeadRepeatMass: nan, metrics.HeadRowSumErr: 1e-7, metrics.HeadZeroRows: float32(int32(h)), metrics.HeadAER: nan}})
			}
		}
	}
	return rows
}

func fixtureSentenceMetrics() []SentenceMetrics {
	return []SentenceMetrics{
		{ExampleID: 0, Pass: PassForced, Values: [metrics.NumSentenceMetrics]float32{metrics.SentSeqLogprob: -0.5, metrics.SentWassToUnif: 0.3, metrics.SentChrF: float32(math.NaN())}},
		{ExampleID: 0, Pass: PassFree, Values: [metrics.NumSentenceMetrics]float32{metrics.SentSeqLogprob: -0.4}, Flags: metrics.Flags{metrics.FlagHallucinationSuspect: true, metrics.FlagSinkDominated: true},
			Reasons: "seq_logprob in the bottom 5%; last_mass 0.62 > 0.5"},
		{ExampleID: 1, Pass: PassFree, Flags: metrics.Flags{metrics.FlagUntrainedLike: true, metrics.FlagBrokenMask: true, metrics.FlagCopying: true, metrics.FlagDiffuseAttention: true, metrics.FlagNoHeadDiversity: true}},
	}
}

// equalNaN compares structs of plain fields, NaN equal to NaN.
func equalNaN(a, b any) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range va.NumField() {
		fa, fb := va.Field(i), vb.Field(i)
		if fa.Kind() == reflect.Float32 {
			if !sameFloat(float32(fa.Float()), float32(fb.Float())) {
				return false
			}
		} else if fa.Kind() == reflect.Array && fa.Type().Elem().Kind() == reflect.Float32 {
			for k := range fa.Len() {
				if !sameFloat(float32(fa.Index(k).Float()), float32(fb.Index(k).Float())) {
					return false
				}
			}
		} else if !reflect.DeepEqual(fa.Interface(), fb.Interface()) {
			return false
		}
	}
	return true
}

func TestMetricsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	mem := checkedAllocator(t)
	heads, sents := fixtureHeadMetrics(), fixtureSentenceMetrics()
	hw, err := NewHeadMetricsWriter(dir, WithWriteAllocator(mem), WithRowGroupRows(5))
	if err != nil {
		t.Fatal(err)
	}
	if err := hw.Write(heads...); err != nil {
		t.Fatal(err)
	}
	if err := hw.Close(); err != nil {
		t.Fatal(err)
	}
	sw, err := NewSentenceMetricsWriter(dir, WithWriteAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.Write(sents...); err != nil {
		t.Fatal(err)
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	gotH, err := ReadHeadMetrics(dir, WithReadAllocator(mem))
	if err != nil || len(gotH) != len(heads) {
		t.Fatalf("ReadHeadMetrics: %d rows, %v; want %d", len(gotH), err, len(heads))
	}
	for i := range heads {
		if !equalNaN(gotH[i], heads[i]) {
			t.Errorf("head row %d:\n got %+v\nwant %+v", i, gotH[i], heads[i])
		}
	}
	gotS, err := ReadSentenceMetrics(dir, WithReadAllocator(mem))
	if err != nil || len(gotS) != len(sents) {
		t.Fatalf("ReadSentenceMetrics: %d rows, %v; want %d", len(gotS), err, len(sents))
	}
	for i := range sents {
		if !equalNaN(gotS[i], sents[i]) {
			t.Errorf("sentence row %d:\n got %+v\nwant %+v", i, gotS[i], sents[i])
		}
	}

	w, err := NewSentenceMetricsWriter(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	err = w.Write(sents[1], sents[0])
	if err == nil || !strings.Contains(err.Error(), "sentence_metrics row (example 0, pass forced) after (example 0, pass free): rows must be sorted by (example_id, pass)") {
		t.Errorf("out-of-order sentence rows: %v", err)
	}
}

// TestWritePreparedEqualsWrite writes the same rows with Write and, rounded
// beforehand in pieces by PrepareAttention, with WritePrepared: the files
// are the same byte for byte at every precision, the rows passed are left
// as they were, and rows prepared for another precision are refused.
func TestWritePreparedEqualsWrite(t *testing.T) {
	rows := fixtureAttention(12, 2, 3, 7)
	orig := make([][]float32, len(rows))
	for i, r := range rows {
		orig[i] = slices.Clone(r.Weights.Data)
	}
	for _, precision := range Precisions {
		a, b := t.TempDir(), t.TempDir()
		writeAttention(t, a, rows, AttentionOptions{Precision: precision})
		w, err := NewAttentionWriter(b, AttentionOptions{Precision: precision})
		if err != nil {
			t.Fatal(err)
		}
		ps := []Prepared[Attention]{{}} // the zero Prepared writes nothing
		for from := 0; from < len(rows); from += 5 {
			p, err := PrepareAttention(precision, rows[from:min(from+5, len(rows))])
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		if err := w.WritePrepared(ps...); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		fa, err := os.ReadFile(filepath.Join(a, AttentionPartName(0)))
		if err != nil {
			t.Fatal(err)
		}
		fb, err := os.ReadFile(filepath.Join(b, AttentionPartName(0)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fa, fb) {
			t.Errorf("%s: WritePrepared wrote %d bytes that differ from Write's %d", precision, len(fb), len(fa))
		}
	}
	for i, r := range rows {
		if !slices.Equal(r.Weights.Data, orig[i]) {
			t.Fatalf("row %d was changed by writing it", i)
		}
	}
	p, err := PrepareAttention(PrecisionFloat16, rows[:1])
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewAttentionWriter(t.TempDir(), AttentionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if err := w.WritePrepared(p); err == nil || !strings.Contains(err.Error(), "prepared for another precision") {
		t.Errorf("float16 rows into a fixed writer: %v", err)
	}
	if _, err := PrepareAttention("float8", rows[:1]); err == nil || !strings.Contains(err.Error(), `precision "float8" is not one of`) {
		t.Errorf("PrepareAttention(float8): %v", err)
	}
}
