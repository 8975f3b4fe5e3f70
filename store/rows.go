// Package store defines attnaudit's Parquet schemas (../shared/SPEC.md §4) and
// the streaming writers and readers for them. Stages meet only here: infer
// writes examples and attention, metrics reads them and writes head and
// sentence metrics, report reads everything.
//
// Files: examples.parquet or parts examples-00000.parquet…; attention parts
// attention-00000.parquet… or, per shard, attention-s003-00000.parquet…;
// head_metrics.parquet; sentence_metrics.parquet. Every file is zstd
// compressed, with dictionary-encoded pass/kind strings and token pieces,
// byte-split floats, non-nullable columns, and rows sorted by (example_id,
// pass, kind, layer, head) as far as the file has those columns; writers
// refuse rows out of that order. Any Parquet reader reads them: in DuckDB,
// SELECT * FROM read_parquet('run/attention-*.parquet').
//
// Writers hold one row group in memory and give a file its final name only
// when it is complete. Readers take a run folder (or one file) and read
// every part of a kind in name order (see Parts).
package store

import "attnaudit/metrics"

// Pass names which target sequence a teacher-forced decoder pass ran over.
// The values sort in the files' order: detached < forced < free.
const (
	PassDetached = metrics.PassDetached // a source forced with another example's reference
	PassFree     = metrics.PassFree     // the model's own output
	PassForced   = metrics.PassForced   // the reference translation
)

// Kind names an attention tensor of the checkpoint contract. The values sort
// in the files' order: cross < decoder_self < encoder_self.
const (
	KindEncoderSelf = metrics.KindEncoderSelf
	KindDecoderSelf = metrics.KindDecoderSelf
	KindCross       = metrics.KindCross
)

// Example is one row of examples.parquet. Token sequences follow the
// checkpoint contract: SrcIDs/SrcPieces end with EOS; TgtIDs/TgtPieces are
// the hypothesis tokens the decoder predicted, ending with EOS, so that
// query row t of the free pass's attention predicts TgtPieces[t]. The Ref*
// fields are the same for the reference (the forced pass).
type Example struct {
	ExampleID     int32 // 0-based position in the dataset; the join key
	ID            string
	Source        string
	Reference     string // empty when the dataset has none
	Hypothesis    string
	SrcPieces     []string
	TgtPieces     []string
	SrcIDs        []int32
	TgtIDs        []int32
	TokenLogprobs []float32
	SeqLogprob    float32
	RefPieces     []string
	RefIDs        []int32
	RefLogprobs   []float32
	// DetachedFrom is the example whose reference the detached pass forced
	// this source with (-1: no detached pass); Det* are that pass's tokens.
	DetachedFrom int32
	DetPieces    []string
	DetIDs       []int32
	DetLogprobs  []float32
	Chrf         float32 // NaN without a reference
	Bleu         float32 // NaN without a reference
	// EncoderValueNorms and CrossValueNorms are the value-vector norms of
	// the encoder's self-attention and the decoder's cross-attention
	// (inference.TensorEncoderValueNorms), [layer][head][source position]
	// flattened row-major, len(SrcIDs) per head; empty when the checkpoint
	// does not export them. Files written before them lack the columns.
	EncoderValueNorms []float32
	CrossValueNorms   []float32
}

// Attention is one row of attention.parquet: one head of one layer of one
// attention kind, for one example and pass, padding removed.
type Attention struct {
	ExampleID int32
	Pass      string
	Kind      string
	Layer     int16
	Head      int16
	Weights   metrics.Matrix // q_len = Weights.Rows, k_len = Weights.Cols
}

// HeadMetrics is one row of head_metrics.parquet: the SPEC §5 head metrics of
// one head for one example, pass and kind. Values holds them in
// metrics.HeadTable's order, one column each under the table's names; a
// metric that does not apply (repeat_mass outside decoder_self, aer without
// gold alignments or outside cross) is NaN.
type HeadMetrics struct {
	ExampleID  int32
	Pass       string
	Kind       string
	Layer      int16
	Head       int16
	QLen, KLen int32
	Values     [metrics.NumHeadMetrics]float32
}

// Value is one metric of the row.
func (r HeadMetrics) Value(m metrics.HeadIndex) float32 { return r.Values[m] }

// SentenceMetrics is one row of sentence_metrics.parquet: detector scores,
// flags and their reasons for one example and pass. Values holds the
// scores in metrics.SentenceTable's order and Flags the flags in
// metrics.FlagTable's, one column each under the tables' names. Scores that
// cannot be computed (no reference, no gold alignment) are NaN.
type SentenceMetrics struct {
	ExampleID int32
	Pass      string
	Values    [metrics.NumSentenceMetrics]float32
	Flags     metrics.Flags
	Reasons   string // plain words, one reason per flag, joined by "; "
}

// Value is one score of the row.
func (r SentenceMetrics) Value(m metrics.SentenceIndex) float32 { return r.Values[m] }
