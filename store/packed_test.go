package store

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"attnaudit/metrics"
)

// causalMatrix is a decoder self-attention softmax: row t over keys 0…t,
// the keys after it exactly 0.
func causalMatrix(rng *rand.Rand, n int) metrics.Matrix {
	m := metrics.NewMatrix(n, n)
	for t := range n {
		row := m.Row(t)
		var sum float64
		for j := 0; j <= t; j++ {
			v := math.Exp(3 * rng.NormFloat64())
			row[j] = float32(v)
			sum += v
		}
		for j := 0; j <= t; j++ {
			row[j] = float32(float64(row[j]) / sum)
		}
	}
	return m
}

// packedFixture is one example's attention with every case of the packed
// layout, and the length of each row's stored list.
func packedFixture() ([]Attention, []int) {
	rng := rand.New(rand.NewPCG(23, 29))
	var rows []Attention
	var lens []int
	add := func(kind string, m metrics.Matrix, n int) {
		rows = append(rows, Attention{Pass: PassForced, Kind: kind, Layer: int16(len(rows)), Weights: m})
		lens = append(lens, n)
	}
	// cross: balanced, each row's last weight left out
	add(KindCross, softmaxMatrix(rng, 5, 7), 5*6)
	// cross with a row of NaN, and with a row that sums to 0.5: every value kept
	nan := softmaxMatrix(rng, 3, 4)
	nan.Data[5] = float32(math.NaN())
	add(KindCross, nan, 3*4)
	half := softmaxMatrix(rng, 3, 4)
	for j := range 4 {
		half.Data[4+j] /= 2
	}
	add(KindCross, half, 3*4)
	// causal decoder self-attention: the triangle without its diagonal
	add(KindDecoderSelf, causalMatrix(rng, 6), 6*5/2)
	// square decoder self-attention with weights after the diagonal: all
	// kept, also at 3 × 3, where dropping each row's last weight would
	// leave a triangle's length
	add(KindDecoderSelf, softmaxMatrix(rng, 3, 3), 3*3)
	add(KindDecoderSelf, softmaxMatrix(rng, 4, 4), 4*4)
	// causal, but a row sums to 0.5: the triangle with its diagonal
	c := causalMatrix(rng, 4)
	for j := range 4 {
		c.Data[8+j] /= 2
	}
	add(KindDecoderSelf, c, 4*5/2)
	// a 1 × 1 decoder self-attention (weight 1): nothing stored
	add(KindDecoderSelf, metrics.Matrix{Rows: 1, Cols: 1, Data: []float32{1}}, 0)
	// a decoder self-attention that is not square: the last weights left out
	add(KindDecoderSelf, softmaxMatrix(rng, 2, 5), 2*4)
	// encoder self-attention, and an empty matrix
	add(KindEncoderSelf, softmaxMatrix(rng, 4, 4), 4*3)
	add(KindEncoderSelf, metrics.Matrix{}, 0)
	return rows, lens
}

// TestPackedLayout writes every case of the packed layout (packed.go)
// with the default precision and checks the stored lists' lengths and
// values (1 + the rounded weight, nothing else) and that the reader gives
// back exactly the rounded weights, the left-out ones included.
func TestPackedLayout(t *testing.T) {
	rows, lens := packedFixture()
	dir := t.TempDir()
	writeAttention(t, dir, rows, AttentionOptions{})

	stored := readPackedColumn(t, filepath.Join(dir, AttentionPartName(0)))
	got := readAttention(t, dir)
	if len(stored) != len(rows) || len(got) != len(rows) {
		t.Fatalf("%d stored lists, %d rows read; want %d", len(stored), len(got), len(rows))
	}
	for i, r := range rows {
		m := r.Weights
		want := make([]float32, len(m.Data))
		quantizeWithin(m.Data, want, m.Cols, packedGrid)
		if len(stored[i]) != lens[i] {
			t.Errorf("row %d (%s %d×%d): %d values stored, want %d", i, r.Kind, m.Rows, m.Cols, len(stored[i]), lens[i])
		}
		// every stored value is 1 + a rounded weight, in row order
		k := 0
		for _, w := range want {
			if k < len(stored[i]) && (stored[i][k] == 1+w || math.IsNaN(float64(w)) && math.IsNaN(float64(stored[i][k]))) {
				k++
			}
		}
		if k != len(stored[i]) {
			t.Errorf("row %d (%s %d×%d): stored %v is not 1 + %v less some values", i, r.Kind, m.Rows, m.Cols, stored[i], want)
		}
		g := got[i].Weights
		if g.Rows != m.Rows || g.Cols != m.Cols || len(g.Data) != len(want) {
			t.Fatalf("row %d: read %d×%d with %d values, want %d×%d", i, g.Rows, g.Cols, len(g.Data), m.Rows, m.Cols)
		}
		for j, w := range want {
			if g.Data[j] != w && !(math.IsNaN(float64(w)) && math.IsNaN(float64(g.Data[j]))) {
				t.Errorf("row %d (%s %d×%d) weight %d: read %g, rounded %g", i, r.Kind, m.Rows, m.Cols, j, g.Data[j], w)
			}
			if math.Abs(float64(g.Data[j]-m.Data[j])) > FixedMaxError {
				t.Errorf("row %d weight %d: read %g for %g", i, j, g.Data[j], m.Data[j])
			}
		}
	}
	// a causal matrix's zeros stay 0
	for j, w := range got[3].Weights.Data {
		if t0, c := j/6, j%6; c > t0 && w != 0 {
			t.Errorf("causal weight (%d, %d) read as %g", t0, c, w)
		}
	}
}

// TestPackedRoundingPrefersEven checks the packed grid's even preference
// and its bounds on many softmax rows: every weight within FixedMaxError,
// on 2^-16, most weights above 2^-13 even multiples of 2^-13, row sums
// kept.
func TestPackedRoundingPrefersEven(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 37))
	var even, odd int
	for range 200 {
		m := softmaxMatrix(rng, 1+rng.IntN(20), 2+rng.IntN(60))
		q := make([]float32, len(m.Data))
		quantizeRows(m.Data, q, m.Cols, packedGrid)
		for j, w := range q {
			if d := math.Abs(float64(w - m.Data[j])); d > FixedMaxError {
				t.Fatalf("weight %g rounded to %g", m.Data[j], w)
			}
			n := float64(w) / PackedStep
			if f := n * PackedFine; f != math.Trunc(f) {
				t.Fatalf("weight %g rounded to %g, off the grid", m.Data[j], w)
			}
			if m.Data[j] >= PackedStep { // weights below one step are on the fine grid
				if math.Mod(n, 2) == 0 {
					even++
				} else {
					odd++
				}
			}
		}
		for r := range m.Rows {
			var a, b float64
			for j := range m.Cols {
				a += float64(m.Data[r*m.Cols+j])
				b += float64(q[r*m.Cols+j])
			}
			if math.Abs(a-b) > PackedStep/2+1e-6 {
				t.Fatalf("row sums to %g, float32 %g", b, a)
			}
		}
	}
	// nearest rounding alone leaves half odd; the preference about 1 in 5
	if odd*2 > even {
		t.Errorf("%d even and %d odd multiples of 2^-13: the even preference does not hold", even, odd)
	}
	t.Logf("%d even, %d odd multiples", even, odd)
}

// TestUnpackWeights checks the layouts a list's length selects, by hand,
// and that lengths fitting none are refused.
func TestUnpackWeights(t *testing.T) {
	for _, tt := range []struct {
		kind string
		q, k int
		v    []float32
		want []float32 // nil: refused
	}{
		{KindCross, 2, 2, []float32{1.25, 1.75, 1.5, 1.5}, []float32{0.25, 0.75, 0.5, 0.5}},
		{KindCross, 2, 2, []float32{1.25, 1.5}, []float32{0.25, 0.75, 0.5, 0.5}},
		{KindCross, 2, 3, []float32{1.25, 1.25, 2, 1}, []float32{0.25, 0.25, 0.5, 1, 0, 0}},
		{KindDecoderSelf, 3, 3, []float32{2, 1.5, 1.5, 1.25, 1.25, 1.5}, []float32{1, 0, 0, 0.5, 0.5, 0, 0.25, 0.25, 0.5}},
		{KindDecoderSelf, 3, 3, []float32{1.5, 1.25, 1.25}, []float32{1, 0, 0, 0.5, 0.5, 0, 0.25, 0.25, 0.5}},
		{KindDecoderSelf, 2, 2, []float32{2, 1, 1.5, 1.5}, []float32{1, 0, 0.5, 0.5}},
		{KindDecoderSelf, 1, 1, nil, []float32{1}},
		{KindDecoderSelf, 1, 1, []float32{2}, []float32{1}},
		{KindEncoderSelf, 0, 0, nil, []float32{}},
		{KindCross, 2, 3, []float32{1.5, 1.5, 1.5}, nil},
		{KindDecoderSelf, 3, 3, []float32{1, 1}, nil},
		{KindCross, -1, 3, nil, nil},
	} {
		got, ok := unpackWeights(tt.kind, tt.q, tt.k, tt.v)
		if ok != (tt.want != nil) || len(got) != len(tt.want) {
			t.Errorf("unpack %s %d×%d %v = %v, %v; want %v", tt.kind, tt.q, tt.k, tt.v, got, ok, tt.want)
			continue
		}
		for j := range got {
			if got[j] != tt.want[j] {
				t.Errorf("unpack %s %d×%d %v = %v; want %v", tt.kind, tt.q, tt.k, tt.v, got, tt.want)
				break
			}
		}
	}
}

// readPackedColumn reads a packed part's weights_packed lists as stored,
// checking that the part has no weights column.
func readPackedColumn(t *testing.T, path string) [][]float32 {
	t.Helper()
	f, err := os.Open(path)
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
	if len(sc.FieldIndices("weights")) != 0 || len(sc.FieldIndices(PackedColumn)) != 1 {
		t.Fatalf("packed part's columns: %v; want %s and no weights", sc, PackedColumn)
	}
	var out [][]float32
	for _, c := range tbl.Column(sc.FieldIndices(PackedColumn)[0]).Data().Chunks() {
		l := c.(*array.List)
		vals := l.ListValues().(*array.Float32).Float32Values()
		for i := range l.Len() {
			s, e := l.ValueOffsets(i)
			out = append(out, append([]float32{}, vals[s:e]...))
		}
	}
	return out
}
