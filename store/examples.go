package store

import (
	"cmp"
	"fmt"
)

// ExamplesStem names examples files: examples.parquet, or parts
// examples-00000.parquet, …
const ExamplesStem = "examples"

// exampleSchema is examples.parquet (SPEC §4), one row per example.
var exampleSchema = &schema[Example]{
	stem: ExamplesStem,
	cols: []column[Example]{
		int32Col("example_id", func(r *Example) *int32 { return &r.ExampleID }),
		stringCol("id", false, func(r *Example) *string { return &r.ID }),
		stringCol("source", false, func(r *Example) *string { return &r.Source }),
		stringCol("reference", false, func(r *Example) *string { return &r.Reference }),
		stringCol("hypothesis", false, func(r *Example) *string { return &r.Hypothesis }),
		stringListCol("src_pieces", func(r *Example) *[]string { return &r.SrcPieces }),
		stringListCol("tgt_pieces", func(r *Example) *[]string { return &r.TgtPieces }),
		int32ListCol("src_ids", func(r *Example) *[]int32 { return &r.SrcIDs }),
		int32ListCol("tgt_ids", func(r *Example) *[]int32 { return &r.TgtIDs }),
		float32ListCol("token_logprobs", func(r *Example) *[]float32 { return &r.TokenLogprobs }),
		float32Col("seq_logprob", func(r *Example) *float32 { return &r.SeqLogprob }),
		stringListCol("ref_pieces", func(r *Example) *[]string { return &r.RefPieces }),
		int32ListCol("ref_ids", func(r *Example) *[]int32 { return &r.RefIDs }),
		float32ListCol("ref_logprobs", func(r *Example) *[]float32 { return &r.RefLogprobs }),
		int32Col("detached_from", func(r *Example) *int32 { return &r.DetachedFrom }),
		stringListCol("det_pieces", func(r *Example) *[]string { return &r.DetPieces }),
		int32ListCol("det_ids", func(r *Example) *[]int32 { return &r.DetIDs }),
		float32ListCol("det_logprobs", func(r *Example) *[]float32 { return &r.DetLogprobs }),
		float32Col("chrf", func(r *Example) *float32 { return &r.Chrf }),
		float32Col("bleu", func(r *Example) *float32 { return &r.Bleu }),
		optionalCol(float32ListCol("encoder_value_norms", func(r *Example) *[]float32 { return &r.EncoderValueNorms })),
		optionalCol(float32ListCol("cross_value_norms", func(r *Example) *[]float32 { return &r.CrossValueNorms })),
	},
	sortBy:  []string{"example_id"},
	compare: func(a, b *Example) int { return cmp.Compare(a.ExampleID, b.ExampleID) },
	key:     func(r *Example) string { return fmt.Sprintf("(example %d)", r.ExampleID) },
	check: func(r *Example) error {
		if len(r.SrcPieces) != len(r.SrcIDs) || len(r.TgtPieces) != len(r.TgtIDs) || len(r.RefPieces) != len(r.RefIDs) || len(r.DetPieces) != len(r.DetIDs) {
			return fmt.Errorf("pieces and ids differ in length (src %d/%d, tgt %d/%d, ref %d/%d, det %d/%d)",
				len(r.SrcPieces), len(r.SrcIDs), len(r.TgtPieces), len(r.TgtIDs), len(r.RefPieces), len(r.RefIDs), len(r.DetPieces), len(r.DetIDs))
		}
		return nil
	},
	size: func(r *Example) int {
		n := 64 + len(r.ID) + len(r.Source) + len(r.Reference) + len(r.Hypothesis)
		for _, ps := range [][]string{r.SrcPieces, r.TgtPieces, r.RefPieces, r.DetPieces} {
			for _, p := range ps {
				n += 4 + len(p)
			}
		}
		return n + 4*(len(r.SrcIDs)+len(r.TgtIDs)+len(r.RefIDs)+len(r.DetIDs)+len(r.TokenLogprobs)+len(r.RefLogprobs)+len(r.DetLogprobs)+
			len(r.EncoderValueNorms)+len(r.CrossValueNorms))
	},
	exampleID: func(r *Example) int32 { return r.ExampleID },
}

// ExampleWriter streams rows into one examples part.
type ExampleWriter = Writer[Example]

// NewExampleWriter starts writing examples part n (ExamplesPartName(n)) in
// dir. Rows must come in example_id order.
func NewExampleWriter(dir string, n int, opts ...WriterOption) (*ExampleWriter, error) {
	if n < 0 {
		return nil, fmt.Errorf("examples writer: negative part %d", n)
	}
	name := func(int) string { return ExamplesPartName(n) }
	return newWriter(dir, exampleSchema, name, newWriterConfig(1024, opts), 0, 0)
}

// ExamplesPartName is the file name of examples part n.
func ExamplesPartName(n int) string { return partName(ExamplesStem, "", n, 0) }

// ReadExamples reads every example under path (a run folder, or one file):
// examples.parquet and the examples parts, in name order.
func ReadExamples(path string, opts ...ReaderOption) ([]Example, error) {
	var out []Example
	err := scan(path, exampleSchema, newReaderConfig(opts), func(r *Example) error {
		out = append(out, *r)
		return nil
	})
	return out, err
}
