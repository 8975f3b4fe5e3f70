package metrics

import (
	"slices"
	"testing"
)

// TestSacreBLEUParity checks chrF and BLEU against
// testdata/sacrebleu_fixture.json, computed by sacreBLEU itself from
// testdata/sacrebleu_pairs.tsv (testdata/make_sacrebleu_fixture.py).
func TestSacreBLEUParity(t *testing.T) {
	var fx struct {
		Version string `json:"sacrebleu_version"`
		Pairs   []struct {
			Hypothesis, Reference string
			ChrF                  float64 `json:"chrf"`
			BLEU                  float64 `json:"bleu"`
			Counts                []int   `json:"bleu_counts"`
			Totals                []int   `json:"bleu_totals"`
			SysLen                int     `json:"sys_len"`
			RefLen                int     `json:"ref_len"`
			Hyp13a                string  `json:"hyp_13a"`
			Ref13a                string  `json:"ref_13a"`
		}
		CorpusChrF float64 `json:"corpus_chrf"`
		CorpusBLEU float64 `json:"corpus_bleu"`
	}
	readJSON(t, "testdata/sacrebleu_fixture.json", &fx)
	if len(fx.Pairs) < 30 {
		t.Fatalf("fixture has %d pairs", len(fx.Pairs))
	}
	var hyps, refs []string
	for _, p := range fx.Pairs {
		hyps, refs = append(hyps, p.Hypothesis), append(refs, p.Reference)
		if got := Tokenize13a(p.Hypothesis); got != p.Hyp13a {
			t.Errorf("Tokenize13a(%q) = %q, sacreBLEU %q", p.Hypothesis, got, p.Hyp13a)
		}
		if got := Tokenize13a(p.Reference); got != p.Ref13a {
			t.Errorf("Tokenize13a(%q) = %q, sacreBLEU %q", p.Reference, got, p.Ref13a)
		}
		st := BLEUStatistics(p.Hypothesis, p.Reference)
		if st.SysLen != p.SysLen || st.RefLen != p.RefLen || !slices.Equal(st.Correct[:], p.Counts) || !slices.Equal(st.Total[:], p.Totals) {
			t.Errorf("BLEU statistics of %q / %q = %+v, sacreBLEU sys %d ref %d counts %v totals %v",
				p.Hypothesis, p.Reference, st, p.SysLen, p.RefLen, p.Counts, p.Totals)
		}
		near(t, "SentenceBLEU("+p.Hypothesis+")", SentenceBLEU(p.Hypothesis, p.Reference), p.BLEU, 0.01)
		near(t, "SentenceChrF("+p.Hypothesis+")", SentenceChrF(p.Hypothesis, p.Reference), p.ChrF, 0.01)
	}
	near(t, "CorpusBLEU", CorpusBLEU(hyps, refs), fx.CorpusBLEU, 0.01)
	near(t, "CorpusChrF", CorpusChrF(hyps, refs), fx.CorpusChrF, 0.01)
}
