package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// AttentionStem names attention files: attention.parquet, or parts
// attention-00000.parquet, attention-s003-00000.parquet, …
const AttentionStem = "attention"

// attentionSchema is attention.parquet (SPEC §4): weights are q_len × k_len,
// row-major, list<float32>.
var attentionSchema = &schema[Attention]{
	stem: AttentionStem,
	cols: []column[Attention]{
		int32Col("example_id", func(r *Attention) *int32 { return &r.ExampleID }),
		stringCol("pass", true, func(r *Attention) *string { return &r.Pass }),
		stringCol("kind", true, func(r *Attention) *string { return &r.Kind }),
		int16Col("layer", func(r *Attention) *int16 { return &r.Layer }),
		int16Col("head", func(r *Attention) *int16 { return &r.Head }),
		int32Col("q_len", func(r *Attention) *int { return &r.Weights.Rows }),
		int32Col("k_len", func(r *Attention) *int { return &r.Weights.Cols }),
		withAlts(anyFloatList("weights", func(r *Attention) *[]float32 { return &r.Weights.Data }), compactWeights, packedWeights),
	},
	sortBy: []string{"example_id", "pass", "kind", "layer", "head"},
	compare: func(a, b *Attention) int {
		return passKindKey(a.ExampleID, a.Pass, a.Kind, a.Layer, a.Head, b.ExampleID, b.Pass, b.Kind, b.Layer, b.Head)
	},
	key: func(r *Attention) string {
		return fmt.Sprintf("(example %d, pass %s, kind %s, layer %d, head %d)", r.ExampleID, r.Pass, r.Kind, r.Layer, r.Head)
	},
	check: func(r *Attention) error {
		if err := checkName("pass", r.Pass, knownPasses); err != nil {
			return err
		}
		if err := checkName("kind", r.Kind, knownKinds); err != nil {
			return err
		}
		m := r.Weights
		if m.Rows < 0 || m.Cols < 0 || len(m.Data) != m.Rows*m.Cols {
			return fmt.Errorf("weights hold %d values for q_len %d × k_len %d", len(m.Data), m.Rows, m.Cols)
		}
		return nil
	},
	size:      func(r *Attention) int { return 32 + 4*len(r.Weights.Data) },
	exampleID: func(r *Attention) int32 { return r.ExampleID },
}

// The fixed precision: weights are stored as multiples of FixedStep
// (2^-14), and those below it as multiples of FixedStep / FixedFine
// (2^-18), each within FixedMaxError of the float32 the model produced, in
// the same weights list<float> column as float32 runs. Each row is rounded
// so that its sum and its entropy stay as in float32 (quantizeRows; a
// matrix whose entropy or diagonality would move by more than 9e-5 goes to
// a finer grid, quantizeWithin), which keeps the metrics within 1e-4. The grids were
// chosen by measurement (bench/RESULTS.md, "attention storage").
const (
	FixedStep     = 1.0 / (1 << 14)
	FixedFine     = 16
	FixedMaxError = 1e-4
)

// attentionFixedSchema is attentionSchema with weights on the FixedStep
// grid.
var attentionFixedSchema = attentionSchema.withColumn("weights",
	gridListCol("weights", fixedGrid,
		func(r *Attention) *[]float32 { return &r.Weights.Data }, func(r *Attention) int { return r.Weights.Cols }))

// CompactColumn is the compact precision's weights column: 1 + each
// weight. A reader gets the probabilities by subtracting 1 (exact): in
// DuckDB list_transform(weights_plus_one, x -> x - 1), in pyarrow
// readers/attnaudit_attention.py.
const CompactColumn = "weights_plus_one"

// The compact precision rounds weights as the fixed one does on a grid
// twice as coarse: multiples of CompactStep (2^-13), those below it
// multiples of CompactStep / CompactFine (2^-17), each within
// FixedMaxError; a matrix whose entropy or diagonality would move by more
// than 9e-5 goes to a finer grid (quantizeWithin). Stored as 1 + w, every
// value has the exponent of 1 and its mantissa's top bits are the grid
// index, which zstd packs a fifth tighter than w (bench/RESULTS.md).
const (
	CompactStep = 1.0 / (1 << 13)
	CompactFine = 16
)

// compactWeights is the compact precision's weights column.
var compactWeights = plusOneListCol(CompactColumn, compactGrid,
	func(r *Attention) *[]float32 { return &r.Weights.Data }, func(r *Attention) int { return r.Weights.Cols })

// attentionCompactSchema is attentionSchema with weights stored as 1 + w
// in CompactColumn.
var attentionCompactSchema = attentionSchema.withColumn("weights", compactWeights)

// The packed precision (the default) rounds weights on CompactStep as the
// compact one does, with weights below it on step/PackedFine (2^-16), and,
// where the 1e-4 bound allows, to an even multiple (grid.even); a row's
// entropy balancing stops once the matrix's sum of row entropy errors is
// below PackedEntropyGoal. Stored as 1 + w (PackedColumn) without what
// readers restore exactly: a causal matrix's zeros after the diagonal and
// each row's last kept weight, 1 minus the others (packed.go). Chosen by
// measurement: 3.0x smaller than float32 on the demo run, metrics within
// 1e-4 (bench/RESULTS.md, "attention storage").
const (
	PackedStep        = CompactStep
	PackedFine        = 8
	PackedEntropyGoal = 6e-5
)

// packedWeights is the packed precision's weights column.
var packedWeights = packedListCol(PackedColumn, packedGrid,
	func(r *Attention) *[]float32 { return &r.Weights.Data },
	func(r *Attention) (string, int, int) { return r.Kind, r.Weights.Rows, r.Weights.Cols })

// attentionPackedSchema is attentionSchema with weights packed in
// PackedColumn.
var attentionPackedSchema = attentionSchema.withColumn("weights", packedWeights)

func withAlts[T any](c column[T], alts ...column[T]) column[T] {
	c.alts = alts
	return c
}

// attentionFloat16Schema is attentionSchema with weights as list<halffloat>.
var attentionFloat16Schema = func() *schema[Attention] {
	s := attentionSchema.withColumn("weights", float16ListCol("weights", func(r *Attention) *[]float32 { return &r.Weights.Data }))
	s.size = func(r *Attention) int { return 32 + 2*len(r.Weights.Data) }
	return s
}()

// AttentionOptions lays out the attention parts one writer produces.
type AttentionOptions struct {
	// Part is the number of the writer's first part file. Later parts, when
	// PartRows or PartBytes start them, take the following numbers, so a
	// caller that numbers parts by chunk must leave both limits at zero or
	// give each chunk its own Prefix.
	Part int
	// Prefix, when set, goes into every part name: "s003" gives
	// attention-s003-00000.parquet, so the shards of a `--shard I/N` run
	// write disjoint parts into one folder. Letters, digits and '_' only.
	Prefix string
	// Precision is how weights are stored: PrecisionPacked (the default,
	// ""), PrecisionCompact, PrecisionFixed, PrecisionFloat32 or
	// PrecisionFloat16.
	Precision string
	// PartRows starts a new part after this many rows (0: no limit).
	PartRows int64
	// PartBytes starts a new part once a part's file reaches this many bytes
	// (0: no limit). It is checked after each row group, so a part can
	// exceed it by one row group.
	PartBytes int64
	// Sub, when above 0, makes the writer's one part sub-part Sub of part
	// Part (attention-00007.2.parquet): a chunk's rows written as several
	// files at once, each a range of its examples (pipeline.writeChunk).
	// PartRows and PartBytes must then be zero.
	Sub int
}

// Attention weight precisions (AttentionOptions.Precision, the precision
// setting), with their largest error per weight against float32:
//
//	packed   compact's grid (2^-16 below 2^-13, even multiples where allowed) as 1 + w (column weights_packed) without causal zeros and each row's last weight (1 minus the others): ≤ 1e-4; 3.0x smaller than float32 on the demo run
//	compact  multiples of 2^-13 (2^-17 below it) stored as 1 + w (column weights_plus_one), row sums, entropy and diagonality kept: ≤ 1e-4; 2.6x smaller
//	fixed    multiples of 2^-14 as float (a weights list of probabilities), row sums and entropy kept: ≤ 1e-4; 2.0x smaller
//	float32  list<float>: exact
//	float16  list<halffloat>: ≤ 4.9e-4 (about three significant digits); 2.0x smaller
const (
	PrecisionPacked  = "packed"
	PrecisionCompact = "compact"
	PrecisionFixed   = "fixed"
	PrecisionFloat32 = "float32"
	PrecisionFloat16 = "float16"
)

// BytesPerWeight is what one weight costs on disk at a precision, zstd
// and Parquet overhead included, as measured on the demo run
// (bench/RESULTS.md, "Attention storage"); run uses it to announce a run's
// size before it starts. It is 0 for an unknown precision.
func BytesPerWeight(precision string) float64 {
	switch precision {
	case PrecisionPacked, "":
		return 0.87
	case PrecisionCompact:
		return 1.00
	case PrecisionFixed:
		return 1.32
	case PrecisionFloat32:
		return 2.63
	case PrecisionFloat16:
		return 1.38
	}
	return 0
}

// Precisions lists the precisions, the default first.
var Precisions = []string{PrecisionPacked, PrecisionCompact, PrecisionFixed, PrecisionFloat32, PrecisionFloat16}

// AttentionWriter streams attention rows into parts.
type AttentionWriter = Writer[Attention]

// NewAttentionWriter starts writing attention rows into dir, in parts named
// by opts. Rows must come in (example_id, pass, kind, layer, head) order.
func NewAttentionWriter(dir string, opts AttentionOptions, wopts ...WriterOption) (*AttentionWriter, error) {
	if opts.Part < 0 || opts.PartRows < 0 || opts.PartBytes < 0 || opts.Sub < 0 {
		return nil, fmt.Errorf("attention writer: negative Part, PartRows, PartBytes or Sub in %+v", opts)
	}
	if opts.Sub > 0 && (opts.PartRows > 0 || opts.PartBytes > 0) {
		return nil, fmt.Errorf("attention writer: sub-part %d of part %d cannot be split by PartRows or PartBytes", opts.Sub, opts.Part)
	}
	if err := checkPrefix(opts.Prefix); err != nil {
		return nil, err
	}
	s, err := attentionSchemaFor(opts.Precision)
	if err != nil {
		return nil, fmt.Errorf("attention writer: %w", err)
	}
	cfg := newWriterConfig(4096, wopts)
	name := func(k int) string { return partName(AttentionStem, opts.Prefix, opts.Part+k, opts.Sub) }
	return newWriter(dir, s, name, cfg, opts.PartRows, opts.PartBytes)
}

// attentionSchemaFor is the schema a precision writes.
func attentionSchemaFor(precision string) (*schema[Attention], error) {
	switch precision {
	case PrecisionPacked, "":
		return attentionPackedSchema, nil
	case PrecisionCompact:
		return attentionCompactSchema, nil
	case PrecisionFixed:
		return attentionFixedSchema, nil
	case PrecisionFloat32:
		return attentionSchema, nil
	case PrecisionFloat16:
		return attentionFloat16Schema, nil
	}
	return nil, fmt.Errorf("precision %q is not one of %s", precision, strings.Join(Precisions, ", "))
}

// PrepareAttention returns rows as an attention writer of precision
// stores them (weights rounded to its grid: most of a writer's work), for
// AttentionWriter.WritePrepared; rows are left as they are. It runs on
// the calling goroutine. Rows of a batch can so be rounded as soon as it
// is translated, on cores the decoding leaves idle, instead of when their
// chunk is written.
func PrepareAttention(precision string, rows []Attention) (Prepared[Attention], error) {
	s, err := attentionSchemaFor(precision)
	if err != nil {
		return Prepared[Attention]{}, err
	}
	return prepare(s, rows), nil
}

// AttentionPartName is the file name of attention part n without prefix:
// attention-00007.parquet, which is also sub-part 0 of part n.
func AttentionPartName(n int) string { return partName(AttentionStem, "", n, 0) }

// AttentionSubPartName is the file name of sub-part sub of attention part
// n without prefix: attention-00007.2.parquet (AttentionPartName for 0).
func AttentionSubPartName(n, sub int) string { return partName(AttentionStem, "", n, sub) }

// AttentionSubParts lists the files of attention part n without prefix
// under dir, sub-part 0 included, in sub-part order.
func AttentionSubParts(dir string, n int) ([]string, error) {
	paths, err := Parts(dir, AttentionStem)
	if err != nil {
		if _, serr := os.Stat(dir); serr == nil {
			return nil, nil // a folder without attention parts
		}
		return nil, err
	}
	var out []string
	for _, p := range paths {
		base := filepath.Base(p)
		if base == AttentionPartName(n) || strings.HasPrefix(base, strings.TrimSuffix(AttentionPartName(n), ".parquet")+".") {
			out = append(out, p)
		}
	}
	return out, nil
}

// ScanAttention calls fn with every attention row under path (a run folder,
// or one file), part by part in name order and in file order within a part.
// It holds one batch of rows in memory at a time. If fn returns an error,
// scanning stops and ScanAttention returns it, except for ErrStop, which
// stops scanning and returns nil. The row's slices are fn's to keep.
func ScanAttention(path string, fn func(Attention) error, opts ...ReaderOption) error {
	return scan(path, attentionSchema, newReaderConfig(opts), func(r *Attention) error { return fn(*r) })
}
