package report

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"attnaudit/metrics"
	"attnaudit/store"
)

var (
	update = flag.Bool("update", false, "rewrite the golden files in testdata/")
	keep   = flag.String("keep", "", "also write the test figures and pages into this folder, to look at")
)

// keepFile copies a test output into -keep's folder.
func keepFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if *keep == "" {
		return
	}
	if err := os.MkdirAll(*keep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(*keep, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// softRows builds a rows×cols attention matrix whose row t peaks at
// center(t) with the given sharpness; every row sums to 1.
func softRows(rows, cols int, sharp float64, center func(t int) float64, rng *rand.Rand) metrics.Matrix {
	m := metrics.NewMatrix(rows, cols)
	for t := range rows {
		row := m.Row(t)
		var sum float64
		for j := range cols {
			d := float64(j) - center(t)
			v := math.Exp(-sharp*d*d) + 0.02*rng.Float64()
			row[j] = float32(v)
			sum += v
		}
		for j := range row {
			row[j] = float32(float64(row[j]) / sum)
		}
	}
	return m
}

// causal zeroes the upper triangle and renormalises (decoder self-attention).
func causal(m metrics.Matrix) metrics.Matrix {
	for t := range m.Rows {
		row := m.Row(t)
		var sum float32
		for j := range row {
			if j > t {
				row[j] = 0
			}
			sum += row[j]
		}
		for j := range row {
			row[j] /= sum
		}
	}
	return m
}

// synthExample is a Korean→English example with diagonal-ish cross
// attention (diag = true) or attention stuck on the source EOS.
func synthExample(seed uint64, layers, heads int, diag bool) VisualizeExample {
	rng := rand.New(rand.NewPCG(seed, 7))
	ex := VisualizeExample{
		Source:     "나는 학교에 간다.",
		Hypothesis: "I go to school.",
		SrcPieces:  []string{"나는", "▁학교에", "▁간", "다", ".", "</s>"},
		TgtPieces:  []string{"I", "▁go", "▁to", "▁school", ".", "</s>"},
	}
	ns, nt := len(ex.SrcPieces), len(ex.TgtPieces)
	for l := range layers {
		var cross, dec, enc []metrics.Matrix
		for h := range heads {
			sharp := 0.3 + 0.4*float64(h%4) + 0.2*float64(l)
			center := func(t int) float64 { return float64(t) * float64(ns-1) / float64(nt-1) }
			if !diag {
				center = func(int) float64 { return float64(ns - 1) }
			} else if h%3 == 2 {
				center = func(t int) float64 { return float64(ns - 1 - t%ns) }
			}
			cross = append(cross, softRows(nt, ns, sharp, center, rng))
			dec = append(dec, causal(softRows(nt, nt, sharp, func(t int) float64 { return float64(t) - float64(h%2) }, rng)))
			enc = append(enc, softRows(ns, ns, sharp, func(t int) float64 { return float64(t + h%3 - 1) }, rng))
		}
		ex.Cross = append(ex.Cross, cross)
		ex.DecoderSelf = append(ex.DecoderSelf, dec)
		ex.EncoderSelf = append(ex.EncoderSelf, enc)
	}
	return ex
}

// synthRun is a run of n examples: every 7th a hallucination suspect with
// attention on the source EOS, every 11th repeating itself, the rest clean.
func synthRun(n, layers, heads int) RunData {
	data := RunData{
		Summary: Summary{
			RunID: "3f2a9c1d00000000", Name: "ko-en-small-epoch0040-3f2a9c1d", Checkpoint: "ko-en-small",
			CheckpointPath: "examples/checkpoints/ko-en-small", CheckpointHash: "ab12cd34ef56ab12cd34ef56",
			Epoch: 40, Step: 12000, Dataset: "tatoeba-dev.tsv", DatasetHash: "0123456789abcdef",
			Examples: n, Provider: "cpu", Tool: "attnaudit test, ORT 1.24",
			CorpusChrF: 48.25, CorpusBLEU: 21.5,
			Timings: []Timing{{"infer", 12.5}, {"metrics", 1.25}},
			Detectors: []DetectorScore{{Name: "seq_logprob", Against: "detached pairs", AUROC: 0.91, FPRAt90TPR: 0.22, Threshold: "≤ -2.267", Suspect: true},
				{Name: "wass_to_unif", Against: "detached pairs", AUROC: 0.55, FPRAt90TPR: 0.86, Threshold: "≥ 0.016"}},
			Problems: []string{"tatoeba-dev.tsv:17: blank line"},
		},
		Attention: map[int32]ExampleAttention{},
	}
	agg := NewHeadAggregator()
	for i := range n {
		id := int32(i)
		hall, rep := i%7 == 3, i%11 == 5
		vex := synthExample(uint64(i), layers, heads, !hall)
		ex := store.Example{
			ExampleID: id, ID: fmt.Sprintf("tatoeba-%04d", i), Source: vex.Source, Reference: "I am going to school.",
			Hypothesis: vex.Hypothesis, SrcPieces: vex.SrcPieces, TgtPieces: vex.TgtPieces,
			Chrf: float32(40 + i%20), Bleu: float32(10 + i%15),
		}
		for t := range ex.TgtPieces {
			ex.TokenLogprobs = append(ex.TokenLogprobs, -float32(t%4)*0.9-float32(i%3))
		}
		ex.SeqLogprob = -float32(i%3) - 1.35
		if i == 1 {
			ex.Reference, ex.Chrf, ex.Bleu = "", float32(math.NaN()), float32(math.NaN())
		}
		sm := store.SentenceMetrics{ExampleID: id, Pass: store.PassFree, Values: [metrics.NumSentenceMetrics]float32{metrics.SentSeqLogprob: ex.SeqLogprob, metrics.SentIgnSrc: 0.1, metrics.SentWassToUnif: 0.2, metrics.SentWassToData: 0.1, metrics.SentWassCombo: 0.1 + float32(i%5)/50, metrics.SentRepeatMass: 0.05, metrics.SentChrF: ex.Chrf, metrics.SentBLEU: ex.Bleu, metrics.SentAER: float32(math.NaN())}}
		if hall {
			sm.Flags[metrics.FlagHallucinationSuspect], sm.Flags[metrics.FlagSinkDominated], sm.Values[metrics.SentWassCombo] = true, true, 0.8
			sm.Reasons = "wass_combo 0.80 above the pool's 95th percentile 0.41; 72% of cross-attention mass on the source EOS"
		}
		if rep {
			sm.Flags[metrics.FlagCopying], sm.Values[metrics.SentRepNgram], sm.Values[metrics.SentRepeatMass] = true, 0.4, 0.6
			sm.Reasons = strings.TrimPrefix(sm.Reasons+"; 40% of 3-grams repeat", "; ")
		}
		data.Examples = append(data.Examples, ex)
		data.Sentences = append(data.Sentences, sm, store.SentenceMetrics{ExampleID: id, Pass: store.PassForced, Flags: metrics.Flags{metrics.FlagBrokenMask: true}})
		data.Attention[id] = ExampleAttention{Cross: vex.Cross, DecoderSelf: vex.DecoderSelf, EncoderSelf: vex.EncoderSelf}
		for _, kind := range kinds {
			for l := range layers {
				for h := range heads {
					base := float32((l*heads+h)%10) / 10
					r := store.HeadMetrics{ExampleID: id, Pass: store.PassFree, Kind: kind, Layer: int16(l), Head: int16(h), Values: [metrics.NumHeadMetrics]float32{metrics.HeadEntropyNorm: 0.2 + base/2, metrics.HeadConfidence: 0.9 - base/2, metrics.HeadConfidenceNoEOS: 0.85 - base/2, metrics.HeadDiagonality: 0.95 - base/3 - float32(i%4)/20, metrics.HeadFirstMass: 0.05, metrics.HeadLastMass: 0.1 + base/4, metrics.HeadDiversityOfLayer: 0.3, metrics.HeadRepeatMass: 0.1, metrics.HeadRowSumErr: 1e-6, metrics.HeadAER: float32(math.NaN())}}
					if hall {
						r.Values[metrics.HeadDiagonality], r.Values[metrics.HeadEntropyNorm], r.Values[metrics.HeadLastMass] = 0.3, 0.95, 0.7
					}
					if err := agg.Add(r); err != nil {
						panic(err)
					}
					r.Pass = store.PassForced
					r.Values[metrics.HeadDiagonality] = -1 // must not count
					if err := agg.Add(r); err != nil {
						panic(err)
					}
				}
			}
		}
	}
	data.Heads = agg.Stats()
	return data
}
