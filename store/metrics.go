package store

import (
	"cmp"
	"fmt"
	"strings"
)

// File names of the metrics stage's outputs.
const (
	HeadMetricsStem     = "head_metrics"
	SentenceMetricsStem = "sentence_metrics"
)

// headMetricsSchema is head_metrics.parquet (SPEC §4, §5).
var headMetricsSchema = &schema[HeadMetrics]{
	stem: HeadMetricsStem,
	cols: []column[HeadMetrics]{
		int32Col("example_id", func(r *HeadMetrics) *int32 { return &r.ExampleID }),
		stringCol("pass", true, func(r *HeadMetrics) *string { return &r.Pass }),
		stringCol("kind", true, func(r *HeadMetrics) *string { return &r.Kind }),
		int16Col("layer", func(r *HeadMetrics) *int16 { return &r.Layer }),
		int16Col("head", func(r *HeadMetrics) *int16 { return &r.Head }),
		int32Col("q_len", func(r *HeadMetrics) *int32 { return &r.QLen }),
		int32Col("k_len", func(r *HeadMetrics) *int32 { return &r.KLen }),
		float32Col("entropy", func(r *HeadMetrics) *float32 { return &r.Entropy }),
		float32Col("entropy_norm", func(r *HeadMetrics) *float32 { return &r.EntropyNorm }),
		float32Col("confidence", func(r *HeadMetrics) *float32 { return &r.Confidence }),
		float32Col("confidence_noeos", func(r *HeadMetrics) *float32 { return &r.ConfidenceNoEOS }),
		float32Col("diagonality", func(r *HeadMetrics) *float32 { return &r.Diagonality }),
		float32Col("first_mass", func(r *HeadMetrics) *float32 { return &r.FirstMass }),
		float32Col("last_mass", func(r *HeadMetrics) *float32 { return &r.LastMass }),
		float32Col("head_diversity", func(r *HeadMetrics) *float32 { return &r.HeadDiversity }),
		float32Col("repeat_mass", func(r *HeadMetrics) *float32 { return &r.RepeatMass }),
		float32Col("row_sum_err", func(r *HeadMetrics) *float32 { return &r.RowSumErr }),
		int32Col("zero_rows", func(r *HeadMetrics) *int32 { return &r.ZeroRows }),
		float32Col("aer", func(r *HeadMetrics) *float32 { return &r.AER }),
	},
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
	cols: []column[SentenceMetrics]{
		int32Col("example_id", func(r *SentenceMetrics) *int32 { return &r.ExampleID }),
		stringCol("pass", true, func(r *SentenceMetrics) *string { return &r.Pass }),
		float32Col("seq_logprob", func(r *SentenceMetrics) *float32 { return &r.SeqLogprob }),
		float32Col("ign_src", func(r *SentenceMetrics) *float32 { return &r.IgnSrc }),
		float32Col("wass_to_unif", func(r *SentenceMetrics) *float32 { return &r.WassToUnif }),
		float32Col("wass_to_data", func(r *SentenceMetrics) *float32 { return &r.WassToData }),
		float32Col("wass_combo", func(r *SentenceMetrics) *float32 { return &r.WassCombo }),
		float32Col("repeat_mass", func(r *SentenceMetrics) *float32 { return &r.RepeatMass }),
		float32Col("rep_ngram", func(r *SentenceMetrics) *float32 { return &r.RepNgram }),
		float32Col("chrf", func(r *SentenceMetrics) *float32 { return &r.Chrf }),
		float32Col("bleu", func(r *SentenceMetrics) *float32 { return &r.Bleu }),
		float32Col("aer", func(r *SentenceMetrics) *float32 { return &r.AER }),
		boolCol("hallucination_suspect", func(r *SentenceMetrics) *bool { return &r.HallucinationSuspect }),
		boolCol("diffuse_attention", func(r *SentenceMetrics) *bool { return &r.DiffuseAttention }),
		boolCol("sink_dominated", func(r *SentenceMetrics) *bool { return &r.SinkDominated }),
		boolCol("no_head_diversity", func(r *SentenceMetrics) *bool { return &r.NoHeadDiversity }),
		boolCol("copying", func(r *SentenceMetrics) *bool { return &r.Copying }),
		boolCol("broken_mask", func(r *SentenceMetrics) *bool { return &r.BrokenMask }),
		boolCol("untrained_like", func(r *SentenceMetrics) *bool { return &r.UntrainedLike }),
		stringCol("reasons", true, func(r *SentenceMetrics) *string { return &r.Reasons }),
	},
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
