package store

import (
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// The packed precision's layout (PackedColumn; docs/storage.md). Weights
// are rounded as the compact precision's are (on packedGrid) and stored as
// 1 + w, row by row, leaving out what a reader can restore exactly:
//
//   - a causal matrix (kind decoder_self, q_len = k_len, every weight
//     after the diagonal 0) keeps row t's columns 0…t only ("triangular");
//   - a balanced matrix (every row's weights multiples of 2^-30 in [0, 1]
//     that sum to exactly 1, which rounding makes of every softmax row)
//     leaves out each row's last kept weight, 1 minus the others ("drop").
//
// A matrix that is neither keeps all q_len × k_len values, as the compact
// precision does. Readers tell the four layouts apart by the list's length
// n (with kind, q_len and k_len):
//
//	n = q·k                          all values
//	n = q·(k−1)                      drop (a matrix that is not decoder_self with q = k)
//	n = q·(q+1)/2                    triangular (decoder_self, q = k)
//	n = q·(q−1)/2                    triangular and drop (decoder_self, q = k)
//
// Those lengths differ whenever they could be confused (a square
// decoder_self matrix is never written as drop without triangular: at
// q = 3 its length would be a triangle's), and a compact file's lists
// (always q·k) read the same way.

// PackedColumn is the packed precision's weights column.
const PackedColumn = "weights_packed"

// packedZstdLevel is the packed column's zstd level: 1% smaller than
// the writer's level 3 at a fifth less speed (bench/RESULTS.md).
var packedZstdLevel = 9

// packedUnit: a balanced row's weights are multiples of it, so that any
// sum of them (fewer than 2^23 values of at most 1) is exact in float64
// whatever the order of addition: every reader restores the left-out
// weight exactly.
const packedUnit = 1.0 / (1 << 30)

// packedShape is how a matrix of kind (q × k rows and columns, its values
// stored as 1 + w in v) is packed.
func packedShape(kind string, q, k int, v []float32) (tri, drop bool) {
	if q < 1 || k < 1 || len(v) != q*k {
		return false, false
	}
	if kind == KindDecoderSelf && q == k {
		tri = true
		for t := range q {
			for _, x := range v[t*k+t+1 : (t+1)*k] {
				if x != 1 {
					tri = false
					break
				}
			}
		}
		if !tri {
			return false, false
		}
	}
	for t := range q {
		keep := k
		if tri {
			keep = t + 1
		}
		var sum float64
		for _, x := range v[t*k : t*k+keep] {
			w := float64(x) - 1
			if !(w >= 0 && w <= 1) || w/packedUnit != math.Trunc(w/packedUnit) {
				return tri, false
			}
			sum += w
		}
		if sum != 1 {
			return tri, false
		}
	}
	return tri, true
}

// appendPacked appends the values of a q × k matrix stored as 1 + w (v,
// row-major) that the packed layout keeps.
func appendPacked(vb *array.Float32Builder, kind string, q, k int, v []float32) {
	tri, drop := packedShape(kind, q, k, v)
	if !tri && !drop {
		vb.AppendValues(v, nil)
		return
	}
	for t := range q {
		keep := k
		if tri {
			keep = t + 1
		}
		if drop {
			keep--
		}
		vb.AppendValues(v[t*k:t*k+keep], nil)
	}
}

// unpackWeights returns the q × k weights (row-major) of a matrix of kind
// packed into v (1 + w each), and false when v's length fits no layout.
func unpackWeights(kind string, q, k int, v []float32) ([]float32, bool) {
	if q < 0 || k < 0 || q > maxPackedRows {
		return nil, false
	}
	n, Q, K := int64(len(v)), int64(q), int64(k)
	square := kind == KindDecoderSelf && q == k
	var tri, drop bool
	switch {
	case n == Q*K:
	case square && n == Q*(Q+1)/2:
		tri = true
	case square && n == Q*(Q-1)/2:
		tri, drop = true, true
	case !square && n == Q*(K-1):
		drop = true
	default:
		return nil, false
	}
	if n == 0 && !drop {
		return nil, true
	}
	out := make([]float32, q*k)
	s := 0
	for t := range q {
		keep := k
		if tri {
			keep = t + 1
		}
		stored := keep
		if drop {
			stored--
		}
		row := out[t*k : (t+1)*k]
		var sum float64
		for j, x := range v[s : s+stored] {
			row[j] = x - 1
			sum += float64(row[j])
		}
		s += stored
		if drop {
			row[keep-1] = float32(1 - sum)
		}
	}
	return out, true
}

// maxPackedRows bounds the rows unpackWeights restores: a one-column
// matrix's rows are all left out (each weight is 1), so q_len alone, from
// a damaged file, could otherwise ask for any allocation.
const maxPackedRows = 1 << 20

// packedListCol stores []float32 attention weights rounded as
// plusOneListCol does (1 + w, on g), in the packed layout: shape gives a
// row's kind, q_len and k_len (read before this column: the attention
// schema has them first). A list whose length fits no layout is read as
// it is stored (less 1), which the row check then reports.
func packedListCol[T any](name string, g grid, p func(*T) *[]float32, shape func(*T) (string, int, int)) column[T] {
	c := plusOneListCol(name, g, p, func(r *T) int { _, _, k := shape(r); return k })
	c.zstdLevel = packedZstdLevel
	c.appender = func(b array.Builder) func(*T) {
		lb := b.(*array.ListBuilder)
		vb := lb.ValueBuilder().(*array.Float32Builder)
		return func(r *T) {
			lb.Append(true)
			kind, q, k := shape(r)
			appendPacked(vb, kind, q, k, *p(r))
		}
	}
	c.reader = func(a arrow.Array) func(int, *T) {
		la := a.(*array.List)
		vals := la.ListValues().(*array.Float32).Float32Values()
		return func(i int, r *T) {
			start, end := la.ValueOffsets(i)
			kind, q, k := shape(r)
			if out, ok := unpackWeights(kind, q, k, vals[start:end]); ok {
				*p(r) = out
				return
			}
			out := make([]float32, end-start)
			for j, x := range vals[start:end] {
				out[j] = x - 1
			}
			*p(r) = out
		}
	}
	return c
}
