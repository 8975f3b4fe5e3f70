package pipeline

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"attnaudit/configs"
	"attnaudit/dataset"
	"attnaudit/inference"
	"attnaudit/metrics"
	"attnaudit/store"
)

func TestSubPartRanges(t *testing.T) {
	cases := []struct {
		name    string
		weights []int64
		target  int64
		most    int
		want    [][2]int
	}{
		{"no examples", nil, 10, 8, [][2]int{{0, 0}}},
		{"under one target", []int64{3, 3}, 10, 8, [][2]int{{0, 2}}},
		{"even", []int64{5, 5, 5, 5}, 10, 8, [][2]int{{0, 2}, {2, 4}}},
		// 40 weights, target 10: four ranges of 10 where the examples allow.
		{"uneven", []int64{1, 9, 10, 2, 2, 6, 10}, 10, 8, [][2]int{{0, 2}, {2, 3}, {3, 6}, {6, 7}}},
		{"capped", []int64{10, 10, 10, 10}, 10, 2, [][2]int{{0, 2}, {2, 4}}},
		{"one example each at most", []int64{100, 1}, 10, 8, [][2]int{{0, 1}, {1, 2}}},
		// One heavy example takes the shares of several ranges: fewer,
		// never empty, ranges.
		{"heavy first", []int64{100, 1, 1, 1}, 10, 8, [][2]int{{0, 1}, {1, 2}, {2, 3}, {3, 4}}},
		{"all zero", []int64{0, 0, 0}, 10, 8, [][2]int{{0, 3}}},
	}
	for _, c := range cases {
		got := subPartRanges(c.weights, c.target, c.most)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: subPartRanges(%v, %d, %d) = %v, want %v", c.name, c.weights, c.target, c.most, got, c.want)
		}
	}
	// Ranges cover every example once, in order, none empty.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		w := make([]int64, 1+rng.IntN(40))
		for i := range w {
			w[i] = rng.Int64N(50)
		}
		got := subPartRanges(w, 1+rng.Int64N(200), 1+rng.IntN(8))
		next := 0
		for _, rg := range got {
			if rg[0] != next || rg[1] <= rg[0] {
				t.Fatalf("subPartRanges(%v) = %v: not contiguous non-empty ranges", w, got)
			}
			next = rg[1]
		}
		if next != len(w) {
			t.Fatalf("subPartRanges(%v) = %v: does not reach %d", w, got, len(w))
		}
	}
}

// TestChunkWrittenAsSubParts writes a chunk whose attention is cut into
// sub-parts: the chunk's record lists them, the run's attention reads back
// row for row in example order, and a damaged sub-part makes checkChunks
// forget the chunk and remove all of its files.
func TestChunkWrittenAsSubParts(t *testing.T) {
	defer func(w int64) { subPartWeights = w }(subPartWeights)
	subPartWeights = 2000

	cfg := configs.Default()
	cfg.ChunkSize, cfg.DetachedPairs = 10, false
	data := &dataset.Dataset{}
	for i := range 25 {
		data.Examples = append(data.Examples, dataset.Example{Index: i, ID: "ex", Source: "s", Reference: "r", HasReference: true})
	}
	r := &run{dir: t.TempDir(), cfg: cfg, data: data}
	rng := rand.New(rand.NewPCG(3, 4))
	matrix := func(rows, cols int) metrics.Matrix {
		m := metrics.NewMatrix(rows, cols)
		for i := range m.Data {
			m.Data[i] = rng.Float32()
		}
		return m
	}
	heads := func(layers, rows, cols int) [][]metrics.Matrix {
		out := make([][]metrics.Matrix, layers)
		for l := range out {
			out[l] = []metrics.Matrix{matrix(rows, cols), matrix(rows, cols)}
		}
		return out
	}
	slots := &writeSlots{threads: 3}
	var wantRows int
	for c := range r.chunks() {
		exs := r.chunk(c)
		out := newChunkOutput(len(exs))
		pass := func(tgt, src int) inference.Pass {
			return inference.Pass{IDs: make([]int32, tgt), Pieces: make([]string, tgt), Logprobs: make([]float32, tgt),
				Cross: heads(2, tgt, src), DecoderSelf: heads(2, tgt, tgt)}
		}
		var odd []int
		for i := range exs {
			src := 2 + rng.IntN(8)
			forced := pass(2+rng.IntN(8), src)
			out.results[i] = inference.Result{SrcIDs: make([]int32, src), SrcPieces: make([]string, src), EncoderSelf: heads(2, src, src),
				Free: pass(2+rng.IntN(8), src), Forced: &forced}
			wantRows += 5 * 2 * 2
			if i%2 == 1 { // a detached pass for every other example
				d := pass(2+rng.IntN(8), src)
				out.detached[i] = &d
				odd = append(odd, i)
				wantRows += 2 * 2 * 2
			}
		}
		// As the batches would: the translations in two halves, then the
		// detached passes.
		half := len(exs) / 2
		for _, b := range []struct {
			idx      []int
			detached bool
		}{{seq(0, half), false}, {seq(half, len(exs)), false}, {odd, true}} {
			if err := out.prepare(exs, b.idx, b.detached, store.Selection{}, cfg.Precision); err != nil {
				t.Fatal(err)
			}
		}
		if out.results[0].EncoderSelf != nil || out.results[0].Free.Cross != nil || out.results[0].Forced.DecoderSelf != nil {
			t.Fatal("prepare kept the float32 matrices of the rows it rounded")
		}
		if err := r.writeChunk(c, out, slots); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := r.readChunkRecord(0)
	if err != nil {
		t.Fatal(err)
	}
	var subs []string
	for _, p := range rec.Parts {
		subs = append(subs, p.Name)
	}
	want := []string{store.AttentionPartName(0)}
	for j := 1; j < len(subs)-1; j++ {
		want = append(want, store.AttentionSubPartName(0, j))
	}
	if want = append(want, store.ExamplesPartName(0)); len(subs) < 4 || !slices.Equal(subs, want) {
		t.Fatalf("chunk 0's record lists %v, want %v, with at least two attention sub-parts", subs, want)
	}
	var keys []int32
	n := 0
	var prev store.Attention
	if err := store.ScanAttention(r.dir, func(a store.Attention) error {
		if n > 0 && a.ExampleID == prev.ExampleID && a.Pass == store.PassDetached && prev.Pass != store.PassDetached {
			t.Fatalf("example %d: detached pass after %s", a.ExampleID, prev.Pass)
		}
		prev = a
		n++
		if len(keys) == 0 || keys[len(keys)-1] != a.ExampleID {
			keys = append(keys, a.ExampleID)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != wantRows || len(keys) != len(data.Examples) || !slices.IsSorted(keys) {
		t.Fatalf("read %d rows of examples %v, want %d rows of examples 0…%d in order", n, keys, wantRows, len(data.Examples)-1)
	}

	// Damage sub-part 1 of chunk 0: the chunk is forgotten, every sub-part
	// of it removed, the other chunks kept.
	if err := os.WriteFile(filepath.Join(r.dir, "attention-00000.1.parquet"), []byte("damaged"), 0o644); err != nil {
		t.Fatal(err)
	}
	redo, err := r.checkChunks(io.Discard, Shard{Index: 0, Count: 1}, true)
	if err != nil || redo != 1 {
		t.Fatalf("checkChunks: %d chunks to redo, %v; want 1", redo, err)
	}
	left, err := store.AttentionSubParts(r.dir, 0)
	if err != nil || len(left) != 0 || r.chunkDone(0) || !r.chunkDone(1) {
		t.Fatalf("after checkChunks: chunk 0's sub-parts %v (%v), done %v, chunk 1 done %v", left, err, r.chunkDone(0), r.chunkDone(1))
	}
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func TestThreadUse(t *testing.T) {
	cases := []struct {
		plan                  inference.Parallelism
		provider              string
		narrow, wide, helpers int
	}{
		{inference.Parallelism{Threads: 16, Workers: 16, IntraOp: 1}, "cpu", 1, 0, 0},
		{inference.Parallelism{Threads: 6, Workers: 3, IntraOp: 2}, "cpu", 2, 0, 0},
		{inference.Parallelism{Threads: 5, Workers: 2, IntraOp: 2}, "cpu", 2, 0, 1},
		{inference.Parallelism{Threads: 1, Workers: 1, IntraOp: 1}, "cpu", 1, 0, 0},
		// 13 batches on 16 threads: 3 wide workers of 2
		{inference.Parallelism{Threads: 16, Workers: 13, IntraOp: 1, Wide: 3, WideIntraOp: 2}, "cpu", 1, 2, 0},
		// 3 batches on 16 threads: 4 threads each, 4 left to round
		{inference.Parallelism{Threads: 16, Workers: 3, IntraOp: 4}, "cpu", 4, 0, 4},
		// CUDA: one worker waiting on the GPU, every other thread rounds.
		{inference.Parallelism{Threads: 16, Workers: 1, IntraOp: 16}, "cuda", 1, 1, 15},
		{inference.Parallelism{Threads: 1, Workers: 1, IntraOp: 1}, "cuda", 1, 1, 0},
	}
	for _, c := range cases {
		n, w, h := threadUse(c.plan, c.provider)
		if n != c.narrow || (c.plan.Wide > 0 && w != c.wide) || h != c.helpers {
			t.Errorf("threadUse(%+v, %s) = %d narrow, %d wide, %d helpers; want %d, %d, %d", c.plan, c.provider, n, w, h, c.narrow, c.wide, c.helpers)
		}
	}
}

// TestRoundPieces cuts rows of known sizes: pieces are contiguous, cover
// every row once, never cut a row, and close once they hold pieceWeights.
func TestRoundPieces(t *testing.T) {
	rowsOf := func(sizes ...int) []store.Attention {
		rows := make([]store.Attention, len(sizes))
		for i, n := range sizes {
			rows[i].Weights.Data = make([]float32, n)
		}
		return rows
	}
	big, half := pieceWeights, pieceWeights/2
	cases := []struct {
		sizes []int
		want  [][2]int
	}{
		{nil, nil},
		{[]int{10}, [][2]int{{0, 1}}},
		{[]int{10, 20, 30}, [][2]int{{0, 3}}},          // a short sentence: one piece
		{[]int{big, 10, 10}, [][2]int{{0, 1}, {1, 3}}}, // a row of pieceWeights closes a piece
		{[]int{half, half, half, half, 1}, [][2]int{{0, 2}, {2, 4}, {4, 5}}},
		{[]int{3 * big, half}, [][2]int{{0, 1}, {1, 2}}}, // a row larger than a piece stays whole
	}
	for _, c := range cases {
		if got := roundPieces(rowsOf(c.sizes...)); !slices.Equal(got, c.want) {
			t.Errorf("roundPieces(%v) = %v, want %v", c.sizes, got, c.want)
		}
	}
}

// TestNewChunkJobSlices: a batch that CutBatches cuts becomes slices whose
// rows, dealt in turn, are the batch's rows once each, in the batch's
// order within each slice, each slice knowing the whole batch (for its
// padding); other batches and the detached passes stay whole.
func TestNewChunkJobSlices(t *testing.T) {
	cfg := configs.Default()
	cfg.ChunkSize, cfg.BatchSize, cfg.DetachedPairs = 20, 8, true
	data := &dataset.Dataset{}
	for i := range 20 {
		data.Examples = append(data.Examples, dataset.Example{Index: i, ID: "ex", Source: strings.Repeat("가", 1+(7*i)%20), Reference: "r", HasReference: true})
	}
	r := &run{dir: t.TempDir(), cfg: cfg, data: data}
	whole := r.newChunkJob(0)
	r.cuts = map[[2]int]int{{0, 2}: 3} // batch 2 holds the 4 longest sources
	cut := r.newChunkJob(0)
	var batch []int
	for _, b := range whole.batches {
		if b.n == 2 && !b.detached {
			batch = b.idx
		}
	}
	var got [][]int
	for _, b := range cut.batches {
		if b.n != 2 || b.detached {
			if b.whole != nil {
				t.Errorf("batch %d (detached %v) is a slice", b.n, b.detached)
			}
			continue
		}
		if b.slices != 3 || b.slice != len(got)+1 || !reflect.DeepEqual(b.whole, batch) || b.sliceName() != fmt.Sprintf(" slice %d/3", b.slice) {
			t.Errorf("slice %+v of batch %v", b, batch)
		}
		got = append(got, b.idx)
	}
	want := [][]int{{batch[0], batch[3]}, {batch[1]}, {batch[2]}}
	if len(batch) != 4 || !reflect.DeepEqual(got, want) {
		t.Errorf("batch %v in slices %v, want %v", batch, got, want)
	}
	if len(cut.batches) != len(whole.batches)+2 || cut.pending.Load() != int32(len(cut.batches)) {
		t.Errorf("%d jobs (pending %d) from %d batches", len(cut.batches), cut.pending.Load(), len(whole.batches))
	}
}
