package store

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/float16"
	"github.com/apache/arrow-go/v18/parquet"
)

// schema is the one definition of a Parquet file kind: its columns in file
// order, the sort key the writer enforces, and the row checks. The Arrow
// schema, the writer's builders, the Parquet encodings and the reader's
// type checks are all derived from it.
type schema[T any] struct {
	stem      string // file name stem: "attention" → attention.parquet, attention-00000.parquet
	cols      []column[T]
	sortBy    []string          // the sort key's column names, recorded in the row group metadata
	compare   func(a, b *T) int // the sort key; the writer requires strictly increasing keys
	key       func(*T) string   // the sort key in words, for error messages
	check     func(*T) error    // a row's own consistency, on write and on read
	size      func(*T) int      // a row's uncompressed size estimate in bytes, for row group sizing
	exampleID func(*T) int32    // the join key, for filtering by example
}

// column is one top-level column of a row type T: its Arrow field and how a
// row's value goes into a builder and comes out of an array.
type column[T any] struct {
	name string
	typ  arrow.DataType
	// dict turns Parquet dictionary encoding on: it pays for low-cardinality
	// strings (pass, kind) and token pieces, and costs for free text and floats.
	dict bool
	// encoding, when not plain, is the leaf's Parquet encoding:
	// BYTE_STREAM_SPLIT puts the k-th byte of every value together, which
	// zstd compresses far better than plain floats or fixed-point integers
	// (bench/RESULTS.md, "Attention storage"). Stats are off for such
	// columns: nobody filters on a weight.
	encoding parquet.Encoding
	// zstdLevel, when above 0, is the column's zstd level in place of the
	// writer's (the packed weights: a slower level that pays there).
	zstdLevel int
	appender  func(b array.Builder) func(*T)
	// prepare, when set, turns a row's value into what is stored (attention
	// weights rounded to the grid) before it is appended. It must touch
	// only its row: Writer.Write prepares many rows on several goroutines.
	prepare func(*T)
	reader  func(a arrow.Array) func(i int, row *T)
	// accepts reports whether a file's column type can be read; nil means
	// exactly typ.
	accepts func(arrow.DataType) bool
	// optional: files written before the column existed lack it, and read
	// as its zero value.
	optional bool
	// alts are the same value stored other ways under other names (the
	// compact precision's weights_plus_one and the packed precision's
	// weights_packed for weights): a file that lacks this column but has
	// one of theirs is read through that one's reader.
	alts []column[T]
}

// in returns the column of a file's schema that holds c, and its index: c
// itself or one of its alts; ok is false when the file has none.
func (c column[T]) in(sc *arrow.Schema) (col column[T], idx int, ok bool) {
	if i := sc.FieldIndices(c.name); len(i) > 0 {
		return c, i[0], true
	}
	for _, a := range c.alts {
		if i := sc.FieldIndices(a.name); len(i) > 0 {
			return a, i[0], true
		}
	}
	return c, -1, false
}

// names is c's name and its alts', quoted and joined by "or".
func (c column[T]) names() string {
	out := fmt.Sprintf("%q", c.name)
	for _, a := range c.alts {
		out += fmt.Sprintf(" or %q", a.name)
	}
	return out
}

// optionalCol marks c as a column older files may lack.
func optionalCol[T any](c column[T]) column[T] {
	c.optional = true
	return c
}

func (c column[T]) readable(t arrow.DataType) bool {
	if c.accepts != nil {
		return c.accepts(t)
	}
	return arrow.TypeEqual(c.typ, t)
}

// parquetPath is the column's leaf path in the Parquet schema, as pqarrow
// names the elements of a list.
func (c column[T]) parquetPath() string {
	if c.typ.ID() == arrow.LIST {
		return c.name + ".list.element"
	}
	return c.name
}

func (s *schema[T]) arrowSchema() *arrow.Schema {
	fields := make([]arrow.Field, len(s.cols))
	for i, c := range s.cols {
		fields[i] = arrow.Field{Name: c.name, Type: c.typ}
	}
	return arrow.NewSchema(fields, nil)
}

// withColumn returns a copy of s with column old replaced by c.
func (s *schema[T]) withColumn(old string, c column[T]) *schema[T] {
	out := *s
	out.cols = append([]column[T](nil), s.cols...)
	for i := range out.cols {
		if out.cols[i].name == old {
			out.cols[i] = c
		}
	}
	return &out
}

func int16Col[T any](name string, p func(*T) *int16) column[T] {
	return column[T]{
		name: name, typ: arrow.PrimitiveTypes.Int16,
		appender: func(b array.Builder) func(*T) {
			bb := b.(*array.Int16Builder)
			return func(r *T) { bb.Append(*p(r)) }
		},
		reader: func(a arrow.Array) func(int, *T) {
			aa := a.(*array.Int16)
			return func(i int, r *T) { *p(r) = aa.Value(i) }
		},
	}
}

// int32Col stores a whole number in an int32 column, whatever Go type holds
// it: an int32 key, an int matrix dimension, or a count that a metrics table
// keeps as float32.
func int32Col[T any, V int32 | int | float32](name string, p func(*T) *V) column[T] {
	return column[T]{
		name: name, typ: arrow.PrimitiveTypes.Int32,
		appender: func(b array.Builder) func(*T) {
			bb := b.(*array.Int32Builder)
			return func(r *T) { bb.Append(int32(*p(r))) }
		},
		reader: func(a arrow.Array) func(int, *T) {
			aa := a.(*array.Int32)
			return func(i int, r *T) { *p(r) = V(aa.Value(i)) }
		},
	}
}

func float32Col[T any](name string, p func(*T) *float32) column[T] {
	return column[T]{
		name: name, typ: arrow.PrimitiveTypes.Float32,
		appender: func(b array.Builder) func(*T) {
			bb := b.(*array.Float32Builder)
			return func(r *T) { bb.Append(*p(r)) }
		},
		reader: func(a arrow.Array) func(int, *T) {
			aa := a.(*array.Float32)
			return func(i int, r *T) { *p(r) = aa.Value(i) }
		},
	}
}

func boolCol[T any](name string, p func(*T) *bool) column[T] {
	return column[T]{
		name: name, typ: arrow.FixedWidthTypes.Boolean,
		appender: func(b array.Builder) func(*T) {
			bb := b.(*array.BooleanBuilder)
			return func(r *T) { bb.Append(*p(r)) }
		},
		reader: func(a arrow.Array) func(int, *T) {
			aa := a.(*array.Boolean)
			return func(i int, r *T) { *p(r) = aa.Value(i) }
		},
	}
}

// stringCol is a string column; dict marks low-cardinality ones.
func stringCol[T any](name string, dict bool, p func(*T) *string) column[T] {
	return column[T]{
		name: name, typ: arrow.BinaryTypes.String, dict: dict,
		appender: func(b array.Builder) func(*T) {
			bb := b.(*array.StringBuilder)
			return func(r *T) { bb.Append(*p(r)) }
		},
		reader: func(a arrow.Array) func(int, *T) {
			aa := a.(*array.String)
			str := copier(dict)
			return func(i int, r *T) { *p(r) = str(aa.Value(i)) }
		},
	}
}

// copier returns a function that copies strings out of Arrow buffers, which
// are released after a batch. Dictionary columns repeat a few values, so
// their copies are shared.
func copier(intern bool) func(string) string {
	if !intern {
		return strings.Clone
	}
	seen := map[string]string{}
	return func(s string) string {
		if c, ok := seen[s]; ok {
			return c
		}
		c := strings.Clone(s)
		seen[c] = c
		return c
	}
}

func stringListCol[T any](name string, p func(*T) *[]string) column[T] {
	return column[T]{
		name: name, typ: arrow.ListOfNonNullable(arrow.BinaryTypes.String), dict: true,
		appender: func(b array.Builder) func(*T) {
			lb := b.(*array.ListBuilder)
			vb := lb.ValueBuilder().(*array.StringBuilder)
			return func(r *T) {
				lb.Append(true)
				vb.AppendValues(*p(r), nil)
			}
		},
		reader: func(a arrow.Array) func(int, *T) {
			la := a.(*array.List)
			vals := la.ListValues().(*array.String)
			str := copier(true)
			return func(i int, r *T) {
				start, end := la.ValueOffsets(i)
				if start == end {
					*p(r) = nil
					return
				}
				out := make([]string, end-start)
				for j := range out {
					out[j] = str(vals.Value(int(start) + j))
				}
				*p(r) = out
			}
		},
	}
}

func int32ListCol[T any](name string, p func(*T) *[]int32) column[T] {
	return column[T]{
		name: name, typ: arrow.ListOfNonNullable(arrow.PrimitiveTypes.Int32),
		appender: func(b array.Builder) func(*T) {
			lb := b.(*array.ListBuilder)
			vb := lb.ValueBuilder().(*array.Int32Builder)
			return func(r *T) {
				lb.Append(true)
				vb.AppendValues(*p(r), nil)
			}
		},
		reader: func(a arrow.Array) func(int, *T) {
			la := a.(*array.List)
			vals := la.ListValues().(*array.Int32).Int32Values()
			return func(i int, r *T) {
				start, end := la.ValueOffsets(i)
				*p(r) = cloneOrNil(vals[start:end])
			}
		},
	}
}

func float32ListCol[T any](name string, p func(*T) *[]float32) column[T] {
	return column[T]{
		name: name, typ: arrow.ListOfNonNullable(arrow.PrimitiveTypes.Float32), encoding: parquet.Encodings.ByteStreamSplit,
		appender: func(b array.Builder) func(*T) {
			lb := b.(*array.ListBuilder)
			vb := lb.ValueBuilder().(*array.Float32Builder)
			return func(r *T) {
				lb.Append(true)
				vb.AppendValues(*p(r), nil)
			}
		},
		reader: func(a arrow.Array) func(int, *T) {
			la := a.(*array.List)
			vals := la.ListValues().(*array.Float32).Float32Values()
			return func(i int, r *T) {
				start, end := la.ValueOffsets(i)
				*p(r) = cloneOrNil(vals[start:end])
			}
		},
	}
}

// float16ListCol stores []float32 values as half floats (Parquet FLOAT16
// logical type): half the bytes, about three significant digits.
func float16ListCol[T any](name string, p func(*T) *[]float32) column[T] {
	c := float32ListCol(name, p)
	c.typ = arrow.ListOfNonNullable(arrow.FixedWidthTypes.Float16)
	c.encoding = parquet.Encodings.Plain
	c.appender = func(b array.Builder) func(*T) {
		lb := b.(*array.ListBuilder)
		vb := lb.ValueBuilder().(*array.Float16Builder)
		var buf []float16.Num
		return func(r *T) {
			lb.Append(true)
			vals := *p(r)
			buf = buf[:0]
			for _, v := range vals {
				buf = append(buf, float16.New(v))
			}
			vb.AppendValues(buf, nil)
		}
	}
	return c
}

// anyFloatList reads list<float32> and list<halffloat> into []float32, so a
// reader takes files written with either precision.
func anyFloatList[T any](name string, p func(*T) *[]float32) column[T] {
	c := float32ListCol(name, p)
	f32 := c.reader
	c.accepts = func(t arrow.DataType) bool {
		l, ok := t.(*arrow.ListType)
		return ok && (l.Elem().ID() == arrow.FLOAT32 || l.Elem().ID() == arrow.FLOAT16)
	}
	c.reader = func(a arrow.Array) func(int, *T) {
		la := a.(*array.List)
		h, ok := la.ListValues().(*array.Float16)
		if !ok {
			return f32(a)
		}
		vals := h.Values()
		return func(i int, r *T) {
			start, end := la.ValueOffsets(i)
			if start == end {
				*p(r) = nil
				return
			}
			out := make([]float32, end-start)
			for j, v := range vals[start:end] {
				out[j] = v.Float32()
			}
			*p(r) = out
		}
	}
	return c
}

func cloneOrNil[E any](s []E) []E {
	if len(s) == 0 {
		return nil
	}
	return append([]E(nil), s...)
}

// compareKeys compares sort keys field by field.
func compareKeys(cs ...int) int {
	for _, c := range cs {
		if c != 0 {
			return c
		}
	}
	return 0
}

var (
	knownPasses = []string{PassDetached, PassForced, PassFree}
	knownKinds  = []string{KindCross, KindDecoderSelf, KindEncoderSelf}
)

func checkName(what, v string, known []string) error {
	for _, k := range known {
		if v == k {
			return nil
		}
	}
	return fmt.Errorf("%s %q is not one of %s", what, v, strings.Join(known, ", "))
}

// passKindKey orders rows that share (example_id, pass, kind, layer, head).
func passKindKey(id1 int32, p1, k1 string, l1, h1 int16, id2 int32, p2, k2 string, l2, h2 int16) int {
	return compareKeys(cmp.Compare(id1, id2), strings.Compare(p1, p2), strings.Compare(k1, k2),
		cmp.Compare(l1, l2), cmp.Compare(h1, h2))
}

// gridListCol stores []float32 attention weights rounded to multiples of
// step (a power of two), each within maxErr, still as list<float> with
// BYTE_STREAM_SPLIT: a multiple of 2^-14 has at most 14 significant bits,
// so the low mantissa bytes are all zero and zstd packs the column close
// to a 14-bit integer's, while every reader still gets probabilities from
// the same column. Rows are rounded by quantizeRows, which keeps row sums
// and entropy. A matrix's rows are cols values each.
func gridListCol[T any](name string, g grid, p func(*T) *[]float32, cols func(*T) int) column[T] {
	c := float32ListCol(name, p)
	c.prepare = func(r *T) {
		vals := *p(r)
		out := make([]float32, len(vals))
		quantizeWithin(vals, out, cols(r), g)
		*p(r) = out
	}
	return c
}

// plusOneListCol stores []float32 attention weights rounded as gridListCol
// does (multiples of step, a power of two, by quantizeWithin), as 1 + w in a
// list<float> column with BYTE_STREAM_SPLIT: every stored value then has
// the exponent of 1, so the two high byte streams are constant and the
// grid index alone fills the mantissa's top bits, which zstd packs about
// a fifth tighter than the weights themselves (bench/RESULTS.md,
// "attention storage"). 1 + n·s and its difference from 1 are exact in
// float32 for every grid s ≥ 2^-23 quantizeWithin uses (down to 2^-20), so
// readers get the rounded weight back exactly by subtracting 1 (a matrix
// quantizeWithin leaves unrounded comes back within 2^-24). Values
// quantizeRows leaves as they are (outside [0, 1], NaN; never a softmax's)
// come back within 2^-24·|1 + w|.
func plusOneListCol[T any](name string, g grid, p func(*T) *[]float32, cols func(*T) int) column[T] {
	c := gridListCol(name, g, p, cols)
	round := c.prepare
	c.prepare = func(r *T) {
		round(r) // into a new slice: the row's own weights are left as they are
		vals := *p(r)
		for j := range vals {
			vals[j]++
		}
	}
	f32 := c.reader
	c.reader = func(a arrow.Array) func(int, *T) {
		read := f32(a)
		return func(i int, r *T) {
			read(i, r)
			vals := *p(r)
			for j := range vals {
				vals[j]--
			}
		}
	}
	return c
}
