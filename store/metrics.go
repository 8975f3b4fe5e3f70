package store

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"attnaudit/metrics"
)

// File names of the metrics stage's outputs.
const (
	HeadMetricsStem     = "head_metrics"
	SentenceMetricsStem = "sentence_metrics"
)

// headMetricsSchema is head_metrics.parquet (SPEC §4, §5): the keys, then
// one column per entry of metrics.HeadTable.
var headMetricsSchema = &schema[HeadMetrics]{
	stem: HeadMetricsStem,
	cols: append([]column[HeadMetrics]{
		int32Col("example_id", func(r *HeadMetrics) *int32 { return &r.ExampleID }),
		stringCol("pass", true, func(r *HeadMetrics) *string { return &r.Pass }),
		stringCol("kind", true, func(r *HeadMetrics) *string { return &r.Kind }),
		int16Col("layer", func(r *HeadMetrics) *int16 { return &r.Layer }),
		int16Col("head", func(r *HeadMetrics) *int16 { return &r.Head }),
		int32Col("q_len", func(r *HeadMetrics) *int32 { return &r.QLen }),
		int32Col("k_len", func(r *HeadMetrics) *int32 { return &r.KLen }),
	}, headValueCols()...),
	sortBy: []string{"example_id", "pass", "kind", "layer", "head"},
	compare: func(a, b *HeadMetrics) int {
		return passKindKey(a.ExampleID, a.Pass, a.Kind, a.Layer, a.Head, b.ExampleID, b.Pass, b.Kind, b.Layer, b.Head)
	},
	key: func(r *HeadMetrics) string {
		return fmt.Sprintf("(example %d, pass %s, kind %s, layer %d, head %d)", r.ExampleID, r.Pass, r.Kind, r.Layer, r.Head)
	},
	check: func(r *HeadMetrics) error {
		if err := checkName("pass", r.Pass, knownPasses); err != nil {
			return err
		}
		return checkName("kind", r.Kind, knownKinds)
	},
	size:      func(*HeadMetrics) int { return 96 },
	exampleID: func(r *HeadMetrics) int32 { return r.ExampleID },
}

// sentenceMetricsSchema is sentence_metrics.parquet (SPEC §4, §5).
var sentenceMetricsSchema = &schema[SentenceMetrics]{
	stem: SentenceMetricsStem,
	cols: slices.Concat([]column[SentenceMetrics]{
		int32Col("example_id", func(r *SentenceMetrics) *int32 { return &r.ExampleID }),
		stringCol("pass", true, func(r *SentenceMetrics) *string { return &r.Pass }),
	}, sentenceValueCols(), []column[SentenceMetrics]{
		stringCol("reasons", true, func(r *SentenceMetrics) *string { return &r.Reasons }),
	}),
	sortBy: []string{"example_id", "pass"},
	compare: func(a, b *SentenceMetrics) int {
		return compareKeys(cmp.Compare(a.ExampleID, b.ExampleID), strings.Compare(a.Pass, b.Pass))
	},
	key: func(r *SentenceMetrics) string { return fmt.Sprintf("(example %d, pass %s)", r.ExampleID, r.Pass) },
	check: func(r *SentenceMetrics) error {
		return checkName("pass", r.Pass, knownPasses)
	},
	size:      func(r *SentenceMetrics) int { return 64 + len(r.Reasons) },
	exampleID: func(r *SentenceMetrics) int32 { return r.ExampleID },
}

// headValueCols are the metric columns of head_metrics.parquet, from
// metrics.HeadTable: float32, or int32 for counts.
func headValueCols() []column[HeadMetrics] {
	var cols []column[HeadMetrics]
	for i, m := range metrics.HeadTable {
		value := func(r *HeadMetrics) *float32 { return &r.Values[i] }
		if m.Count {
			cols = append(cols, int32Col(m.Name, value))
		} else {
			cols = append(cols, float32Col(m.Name, value))
		}
	}
	return cols
}

// sentenceValueCols are the score columns of sentence_metrics.parquet, from
// metrics.SentenceTable, then a boolean column per entry of metrics.FlagTable.
func sentenceValueCols() []column[SentenceMetrics] {
	var cols []column[SentenceMetrics]
	for i, m := range metrics.SentenceTable {
		cols = append(cols, float32Col(m.Name, func(r *SentenceMetrics) *float32 { return &r.Values[i] }))
	}
	for i, f := range metrics.FlagTable {
		cols = append(cols, boolCol(f.Name, func(r *SentenceMetrics) *bool { return &r.Flags[i] }))
	}
	return cols
}

// HeadMetricsWriter streams rows into head_metrics.parquet.
type HeadMetricsWriter = Writer[HeadMetrics]

// SentenceMetricsWriter streams rows into sentence_metrics.parquet.
type SentenceMetricsWriter = Writer[SentenceMetrics]

// NewHeadMetricsWriter starts writing head_metrics.parquet in dir. Rows must
// come in (example_id, pass, kind, layer, head) order.
func NewHeadMetricsWriter(dir string, opts ...WriterOption) (*HeadMetricsWriter, error) {
	name := func(int) string { return HeadMetricsStem + ".parquet" }
	return newWriter(dir, headMetricsSchema, name, newWriterConfig(64*1024, opts), 0, 0)
}

// NewSentenceMetricsWriter starts writing sentence_metrics.parquet in dir.
// Rows must come in (example_id, pass) order.
func NewSentenceMetricsWriter(dir string, opts ...WriterOption) (*SentenceMetricsWriter, error) {
	name := func(int) string { return SentenceMetricsStem + ".parquet" }
	return newWriter(dir, sentenceMetricsSchema, name, newWriterConfig(64*1024, opts), 0, 0)
}

// ScanHeadMetrics calls fn with every head-metrics row under path, like
// ScanAttention.
func ScanHeadMetrics(path string, fn func(HeadMetrics) error, opts ...ReaderOption) error {
	return scan(path, headMetricsSchema, newReaderConfig(opts), func(r *HeadMetrics) error { return fn(*r) })
}

// ReadHeadMetrics reads every head-metrics row under path (a run folder, or
// one file).
func ReadHeadMetrics(path string, opts ...ReaderOption) ([]HeadMetrics, error) {
	var out []HeadMetrics
	err := ScanHeadMetrics(path, func(r HeadMetrics) error {
		out = append(out, r)
		return nil
	}, opts...)
	return out, err
}

// ReadSentenceMetrics reads every sentence-metrics row under path (a run
// folder, or one file).
func ReadSentenceMetrics(path string, opts ...ReaderOption) ([]SentenceMetrics, error) {
	var out []SentenceMetrics
	err := scan(path, sentenceMetricsSchema, newReaderConfig(opts), func(r *SentenceMetrics) error {
		out = append(out, *r)
		return nil
	})
	return out, err
}
