package metrics

import (
	"cmp"
	"maps"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"

	"attnaudit/internal/parallel"
)

// DetectorEval is one detector's quality against binary labels.
type DetectorEval struct {
	Detector   string  `json:"detector"`
	Against    string  `json:"against"` // "label" (the dataset's) or "detached" (detached vs forced pairs)
	Positives  int     `json:"positives"`
	Negatives  int     `json:"negatives"`
	AUROC      float64 `json:"auroc"`
	FPRAt90TPR float64 `json:"fpr_at_90_tpr"`
}

// Verdict says in words how well a detector with this AUROC separates its
// classes: "near chance" below 0.6, "weak" below 0.75, else "useful".
// The report and docs/validity.md use the same words.
func Verdict(auroc float64) string {
	switch {
	case math.IsNaN(auroc):
		return "—"
	case auroc < 0.6:
		return "near chance"
	case auroc < 0.75:
		return "weak"
	}
	return "useful"
}

// EvaluateDetectors evaluates every detector on rows, where positive[i]
// says whether rows[i] is a hallucination. Detectors without a score on
// both classes are left out.
func EvaluateDetectors(against string, rows []SentenceScores, positive []bool) []DetectorEval {
	var out []DetectorEval
	for _, d := range Detectors() {
		scores := make([]float64, len(rows))
		for i, r := range rows {
			scores[i] = float64(d.Detector) * d.Get(r)
		}
		auc := AUROC(scores, positive)
		if math.IsNaN(auc) {
			continue
		}
		pos, neg := split(scores, positive)
		out = append(out, DetectorEval{Detector: d.Name, Against: against, Positives: len(pos), Negatives: len(neg),
			AUROC: auc, FPRAt90TPR: FPRAtTPR(scores, positive, 0.9)})
	}
	return out
}

// LayerSummary summarises the head metrics of one layer of one attention
// kind and pass over all heads and examples.
type LayerSummary struct {
	Pass    string          `json:"pass"`
	Kind    string          `json:"kind"`
	Layer   int             `json:"layer"`
	Metrics map[string]Dist `json:"metrics"`
}

// RunSummary is the metrics stage's summary of a run, stored in the
// manifest. Values that cannot be computed are left out.
type RunSummary struct {
	Examples   int            `json:"examples"`
	Rows       map[string]int `json:"rows"` // sentence rows per pass
	References int            `json:"references"`
	CorpusChrF *float64       `json:"corpus_chrf,omitempty"`
	CorpusBLEU *float64       `json:"corpus_bleu,omitempty"`
	// Thresholds are the detector thresholds the run flagged with, with
	// where they were calibrated.
	Thresholds   *ThresholdSet             `json:"thresholds"`
	Flags        map[string]map[string]int `json:"flags"`         // pass → flag → sentences
	SuspectShare float64                   `json:"suspect_share"` // of free-pass sentences
	Detectors    []DetectorEval            `json:"detectors,omitempty"`
	// FlagRules says when each flag is raised, with the thresholds and
	// layer this run used (FlagTable's rules, rendered).
	FlagRules map[string]string `json:"flag_rules,omitempty"`
	Heads     []LayerSummary    `json:"heads"`
	// NotComputed says what a run that stored a selection of its
	// attention (the store setting) lacks, per pass, and why.
	NotComputed []Omission `json:"not_computed,omitempty"`
}

// LayerMeans returns the mean of metric per layer for one pass and kind
// (NaN for a layer without values), e.g. the cross-attention diagonality
// per layer that `audit` gates on.
func (r RunSummary) LayerMeans(pass, kind, metric string) []float64 {
	var out []float64
	for _, l := range r.Heads {
		if l.Pass != pass || l.Kind != kind {
			continue
		}
		for len(out) <= l.Layer {
			out = append(out, math.NaN())
		}
		if d, ok := l.Metrics[metric]; ok {
			out[l.Layer] = d.Mean
		}
	}
	return out
}

// ReservoirSize bounds the values a HeadSummarizer keeps per layer and
// metric: means are exact, quantiles exact up to this many values and
// estimated from a uniform sample beyond.
const ReservoirSize = 8192

// HeadSummarizer accumulates head metrics into LayerSummary values in
// bounded memory.
type HeadSummarizer struct {
	layers map[layerKey]*layerAcc
	rng    *rand.Rand
}

type layerKey struct {
	pass, kind string
	layer      int
}

type layerAcc struct {
	sum    []float64
	n      []int
	sample [][]float64
}

// NewHeadSummarizer returns an empty summarizer; its sampling is seeded, so
// the same input gives the same summary.
func NewHeadSummarizer() *HeadSummarizer {
	return &HeadSummarizer{layers: map[layerKey]*layerAcc{}, rng: rand.New(rand.NewPCG(1, 2))}
}

// Add adds the heads of one layer of one example.
func (s *HeadSummarizer) Add(pass, kind string, layer int, heads []HeadScores) {
	k := layerKey{pass, kind, layer}
	acc := s.layers[k]
	if acc == nil {
		m := int(NumHeadMetrics)
		acc = &layerAcc{sum: make([]float64, m), n: make([]int, m), sample: make([][]float64, m)}
		s.layers[k] = acc
	}
	for _, h := range heads {
		for i, v := range h {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
			acc.sum[i] += v
			acc.n[i]++
			if len(acc.sample[i]) < ReservoirSize {
				acc.sample[i] = append(acc.sample[i], v)
			} else if j := s.rng.IntN(acc.n[i]); j < ReservoirSize {
				acc.sample[i][j] = v
			}
		}
	}
}

// Summaries returns one LayerSummary per pass, kind and layer seen, sorted.
// Each layer's quantiles sort its samples (up to ReservoirSize a metric),
// the last thing the metrics stage does before writing: the layers are
// described on every core.
func (s *HeadSummarizer) Summaries() []LayerSummary {
	keys := slices.Collect(maps.Keys(s.layers))
	out := make([]LayerSummary, len(keys))
	parallel.For(len(keys), runtime.GOMAXPROCS(0), func(j int) {
		k, acc := keys[j], s.layers[keys[j]]
		ls := LayerSummary{Pass: k.pass, Kind: k.kind, Layer: k.layer, Metrics: map[string]Dist{}}
		for i, m := range HeadTable {
			if d, ok := Describe(acc.sample[i]); ok {
				d.N = acc.n[i]
				d.Mean = acc.sum[i] / float64(acc.n[i])
				ls.Metrics[m.Name] = d
			}
		}
		out[j] = ls
	})
	slices.SortFunc(out, func(a, b LayerSummary) int {
		return cmp.Or(cmp.Compare(a.Pass, b.Pass), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Layer, b.Layer))
	})
	return out
}

// finite returns &x, or nil for NaN and ±Inf, which JSON cannot hold.
func finite(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}
