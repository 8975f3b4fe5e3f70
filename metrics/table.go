package metrics

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Attention kinds, as head_metrics.parquet, the run summary and the report
// name them.
const (
	KindEncoderSelf = "encoder_self"
	KindDecoderSelf = "decoder_self"
	KindCross       = "cross"
)

// HeadMetric describes one head metric (SPEC §5) once. Everything that
// stores, summarises or shows head metrics walks HeadTable: the columns of
// head_metrics.parquet, the run summary's per-layer distributions, the
// report's figures and tables. Adding a metric is a HeadIndex constant and
// its HeadTable entry with a Compute function; the built-in metrics are
// computed together in one pass over each matrix (scoreHead) instead.
type HeadMetric struct {
	Name string // column and summary key
	Doc  string // one line, as the report shows it
	// Kinds are the attention kinds the metric means something for, where
	// the report shows it (repeat_mass and aer are NaN elsewhere). Empty:
	// every kind.
	Kinds []string
	// Lo and Hi are the metric's range, the report's colour scale; NaN:
	// the data's range.
	Lo, Hi float64
	// Count marks an integer count, stored as an int32 column.
	Count bool
	// Pass is the pass whose values the report and the compare page show
	// (and the audit gates): PassFree unless set. AER shows the forced pass,
	// the only one whose target is the reference the gold links index.
	Pass string
	// Plot draws it in the report's per-head figures; Compare also in the
	// compare page's per-layer curves across runs.
	Plot, Compare bool
	// Compute scores one head's matrix; nil for the metrics scoreHead
	// and scoreKind compute.
	Compute func(Matrix) float64
}

// ShownPass is the pass whose values the report shows for the metric.
func (m HeadMetric) ShownPass() string {
	if m.Pass == "" {
		return PassFree
	}
	return m.Pass
}

// AppliesTo reports whether the metric means something for an attention kind.
func (m HeadMetric) AppliesTo(kind string) bool {
	if len(m.Kinds) == 0 {
		return true
	}
	for _, k := range m.Kinds {
		if k == kind {
			return true
		}
	}
	return false
}

// HeadIndex names a head metric: its position in HeadTable and HeadScores.
type HeadIndex int

// The head metrics, in column order.
const (
	HeadEntropy HeadIndex = iota
	HeadEntropyNorm
	HeadConfidence
	HeadConfidenceNoEOS
	HeadDiagonality
	HeadFirstMass
	HeadLastMass
	HeadDiversityOfLayer
	HeadRepeatMass
	HeadRowSumErr
	HeadZeroRows
	HeadAER
	HeadAERNorm
	numBuiltinHeadMetrics
	// NumHeadMetrics counts the metrics, those of extraHeadMetrics
	// included.
	NumHeadMetrics = numBuiltinHeadMetrics + HeadIndex(len(extraHeadMetrics))
)

// HeadTable describes every head metric, indexed by HeadIndex.
var HeadTable = headTable()

func headTable() (t [NumHeadMetrics]HeadMetric) {
	copy(t[:], builtinHeadMetrics[:])
	copy(t[numBuiltinHeadMetrics:], extraHeadMetrics[:])
	return t
}

var builtinHeadMetrics = [numBuiltinHeadMetrics]HeadMetric{
	HeadEntropy:         {Name: "entropy", Doc: "mean row entropy (nats)", Lo: 0, Hi: math.NaN()},
	HeadEntropyNorm:     {Name: "entropy_norm", Doc: "mean row entropy / ln(keys): 1 = uniform", Lo: 0, Hi: 1, Plot: true, Compare: true},
	HeadConfidence:      {Name: "confidence", Doc: "mean of each row's largest weight", Lo: 0, Hi: 1, Plot: true, Compare: true},
	HeadConfidenceNoEOS: {Name: "confidence_noeos", Doc: "confidence with the EOS column dropped", Lo: 0, Hi: 1, Plot: true, Compare: true, Kinds: []string{KindCross}},
	HeadDiagonality:     {Name: "diagonality", Doc: "mass near the diagonal (guided-attention prior): 1 = monotonic", Lo: 0, Hi: 1, Plot: true, Compare: true},
	HeadFirstMass:       {Name: "first_mass", Doc: "mass on the first key", Lo: 0, Hi: 1, Plot: true, Compare: true},
	HeadLastMass:        {Name: "last_mass", Doc: "mass on the last key (EOS sink)", Lo: 0, Hi: 1, Plot: true, Compare: true},
	HeadDiversityOfLayer: {Name: "head_diversity", Doc: "mean pairwise Jensen–Shannon divergence of the layer's heads",
		Lo: 0, Hi: math.Ln2, Plot: true, Compare: true},
	HeadRepeatMass: {Name: "repeat_mass", Doc: "mass on earlier steps holding the same token (copying)", Lo: 0, Hi: 1, Plot: true, Compare: true,
		Kinds: []string{KindDecoderSelf}},
	HeadRowSumErr: {Name: "row_sum_err", Doc: "largest |row sum − 1| (broken masks)", Lo: math.NaN(), Hi: math.NaN(), Plot: true},
	HeadZeroRows:  {Name: "zero_rows", Doc: "rows that are all zero (broken masks)", Lo: 0, Hi: math.NaN(), Count: true},
	HeadAER: {Name: "aer", Doc: "alignment error rate against gold links (forced pass: the reference)", Lo: 0, Hi: 1, Plot: true, Compare: true,
		Kinds: []string{KindCross}, Pass: PassForced},
	HeadAERNorm: {Name: "aer_norm", Doc: "AER of the norm-based attention (weights × value-vector norms; forced pass)", Lo: 0, Hi: 1, Plot: true, Compare: true,
		Kinds: []string{KindCross}, Pass: PassForced},
}

// HeadScores are the head metrics of one head, indexed by HeadIndex. Metrics
// that do not apply are NaN: repeat_mass outside decoder self-attention, aer
// outside cross-attention or without a gold alignment.
type HeadScores [NumHeadMetrics]float64

// nanHeadScores is every metric NaN.
func nanHeadScores() HeadScores {
	var h HeadScores
	for i := range h {
		h[i] = math.NaN()
	}
	return h
}

// SentenceMetric describes one sentence metric (a detector score or a
// quality score of one pass) once: the columns of sentence_metrics.parquet,
// the detectors the run summary evaluates and the compare page's curves
// walk SentenceTable. Adding one is a SentenceIndex constant, its entry, a
// SentenceScores field and the code in ScorePass (or Run) that sets it.
type SentenceMetric struct {
	Name string // column name
	Doc  string
	// Field is the metric's place in SentenceScores.
	Field func(*SentenceScores) *float64
	// Detector is +1 for a hallucination detector whose higher scores are
	// worse, -1 for one whose lower scores are worse, 0 for no detector.
	Detector int
	// Compare draws its mean per run on the compare page.
	Compare bool
	// Pooled marks a score relative to the run's reference pool (its other
	// sentences): it gets no threshold, since a fixed threshold on it would
	// still move with the run.
	Pooled bool
}

// Get is the metric's value in s.
func (m SentenceMetric) Get(s SentenceScores) float64 { return *m.Field(&s) }

// SentenceIndex names a sentence metric: its position in SentenceTable.
type SentenceIndex int

// The sentence metrics, in column order.
const (
	SentSeqLogprob SentenceIndex = iota
	SentIgnSrc
	SentIgnSrcNorm
	SentWassToUnif
	SentWassToUnifNorm
	SentWassToData
	SentWassCombo
	SentSrcContribution
	SentRepeatMass
	SentRepNgram
	SentChrF
	SentBLEU
	SentAER
	SentAERNorm
	NumSentenceMetrics
)

// SentenceTable describes every sentence metric, indexed by SentenceIndex.
var SentenceTable = [NumSentenceMetrics]SentenceMetric{
	SentSeqLogprob: {Name: "seq_logprob", Doc: "mean token log-probability of the target",
		Field: func(s *SentenceScores) *float64 { return &s.SeqLogprob }, Detector: -1, Compare: true},
	SentIgnSrc: {Name: "ign_src", Doc: "share of source tokens the audited layer's cross-attention ignores",
		Field: func(s *SentenceScores) *float64 { return &s.IgnSrc }, Detector: +1, Compare: true},
	SentIgnSrcNorm: {Name: "ign_src_norm", Doc: "ign_src of the norm-based cross-attention (weights × value-vector norms)",
		Field: func(s *SentenceScores) *float64 { return &s.IgnSrcNorm }, Detector: +1, Compare: true},
	SentWassToUnifNorm: {Name: "wass_to_unif_norm", Doc: "wass_to_unif of the norm-based cross-attention",
		Field: func(s *SentenceScores) *float64 { return &s.WassToUnifNorm }, Detector: +1, Compare: true},
	SentSrcContribution: {Name: "src_contribution", Doc: "norm-based source contribution: value-vector length the cross-attention pulls in, relative to uniform attention",
		Field: func(s *SentenceScores) *float64 { return &s.SrcContribution }, Detector: -1, Compare: true},
	SentAERNorm: {Name: "aer_norm", Doc: "aer of the norm-based cross-attention (forced pass only)",
		Field: func(s *SentenceScores) *float64 { return &s.AERNorm }},
	SentWassToUnif: {Name: "wass_to_unif", Doc: "Wasserstein distance of the source distribution to uniform",
		Field: func(s *SentenceScores) *float64 { return &s.WassToUnif }, Detector: +1, Compare: true},
	SentWassToData: {Name: "wass_to_data", Doc: "Wasserstein distance to the nearest reference examples' distributions",
		Field: func(s *SentenceScores) *float64 { return &s.WassToData }, Detector: +1, Compare: true, Pooled: true},
	SentWassCombo: {Name: "wass_combo", Doc: "wass_to_data, with wass_to_unif where that is extreme",
		Field: func(s *SentenceScores) *float64 { return &s.WassCombo }, Detector: +1, Compare: true, Pooled: true},
	SentRepeatMass: {Name: "repeat_mass", Doc: "decoder self-attention on earlier copies of the current token (most copying layer)",
		Field: func(s *SentenceScores) *float64 { return &s.RepeatMass }, Compare: true},
	SentRepNgram: {Name: "rep_ngram", Doc: "share of the target's word 3-grams that are repeats",
		Field: func(s *SentenceScores) *float64 { return &s.RepNgram }, Compare: true},
	SentChrF: {Name: "chrf", Doc: "sentence chrF against the reference",
		Field: func(s *SentenceScores) *float64 { return &s.ChrF }},
	SentBLEU: {Name: "bleu", Doc: "sentence BLEU against the reference",
		Field: func(s *SentenceScores) *float64 { return &s.BLEU }},
	SentAER: {Name: "aer", Doc: "alignment error rate of the audited AER layer against gold links (forced pass only)",
		Field: func(s *SentenceScores) *float64 { return &s.AER }},
}

// Detectors are the sentence metrics that detect hallucinations, in table
// order.
func Detectors() []SentenceMetric {
	var out []SentenceMetric
	for _, m := range SentenceTable {
		if m.Detector != 0 {
			out = append(out, m)
		}
	}
	return out
}

// FlagRule is one per-sentence flag (SPEC §5), described once: its column
// in sentence_metrics.parquet, the run summary's counts, the report's
// explanations. Adding one is a FlagIndex constant and its entry.
type FlagRule struct {
	Name string
	// Doc says what the flag means, without numbers.
	Doc string
	// Rule says when the flag is raised, with the thresholds a run used
	// (rendered into the run summary, as sacreBLEU's signatures record
	// their settings).
	Rule func(l Limits, cfg Config) string
	// Test returns one plain reason per cause that raises the flag on s;
	// none leaves it down. NaN scores raise nothing.
	Test func(s SentenceScores, l Limits) []string
}

// FlagIndex names a flag: its position in FlagTable and Flags.
type FlagIndex int

// The flags, in column order.
const (
	FlagHallucinationSuspect FlagIndex = iota
	FlagDiffuseAttention
	FlagSinkDominated
	FlagNoHeadDiversity
	FlagCopying
	FlagBrokenMask
	FlagUntrainedLike
	NumFlags
)

// Name is the flag's name.
func (f FlagIndex) Name() string { return FlagTable[f].Name }

// FlagTable describes every flag, indexed by FlagIndex.
var FlagTable = [NumFlags]FlagRule{
	FlagHallucinationSuspect: {
		Name: "hallucination_suspect",
		Doc:  "a detector score past its threshold (by default a Seq-Logprob as low as the worst 5% of a baseline run's translations), calibrated once and carried from run to run",
		Rule: func(l Limits, _ Config) string {
			var parts []string
			for _, name := range l.Detectors.suspect() {
				t, _ := l.Detectors.Find(name)
				if t.Value == nil {
					parts = append(parts, fmt.Sprintf("%s: no threshold (%s had no scores to calibrate on), so never", name, l.Detectors.Describe(t)))
					continue
				}
				parts = append(parts, fmt.Sprintf("%s %s %s (%s)", name, pastWords(t), num(*t.Value, 3), l.Detectors.Describe(t)))
			}
			if len(parts) == 0 {
				return "never: no suspect detectors configured"
			}
			return strings.Join(parts, ", or ")
		},
		Test: func(s SentenceScores, l Limits) (why []string) {
			for _, name := range l.Detectors.suspect() {
				t, _ := l.Detectors.Find(name)
				m, ok := SentenceByName(name)
				if !ok {
					continue
				}
				if v := m.Get(s); t.Past(v) {
					why = append(why, fmt.Sprintf("%s %.3f is %s its threshold %.3f", name, v, pastWords(t), *t.Value))
				}
			}
			return why
		},
	},
	FlagDiffuseAttention: {
		Name: "diffuse_attention",
		Doc:  "the audited layer's cross heads spread attention almost uniformly",
		Rule: func(l Limits, c Config) string {
			return fmt.Sprintf("median entropy_norm of %s cross heads above %s", layerWords(c.Layer), num(l.DiffuseEntropyNorm, 2))
		},
		Test: func(s SentenceScores, l Limits) (why []string) {
			if s.CrossEntropyNormMedian > l.DiffuseEntropyNorm {
				why = append(why, fmt.Sprintf("cross-attention is diffuse: median normalised entropy of the heads %.2f is above %.2f", s.CrossEntropyNormMedian, l.DiffuseEntropyNorm))
			}
			return why
		},
	},
	FlagSinkDominated: {
		Name: "sink_dominated",
		Doc:  "the cross-attention mass sits on the source EOS",
		Rule: func(l Limits, c Config) string {
			return fmt.Sprintf("%s head-averaged cross-attention puts more than %s of its mass on the source EOS", layerWords(c.Layer), pct(l.SinkLastMass))
		},
		Test: func(s SentenceScores, l Limits) (why []string) {
			if s.CrossLastMass > l.SinkLastMass {
				why = append(why, fmt.Sprintf("cross-attention puts %.0f%% of its mass on the source EOS (limit %.0f%%)", 100*s.CrossLastMass, 100*l.SinkLastMass))
			}
			return why
		},
	},
	FlagNoHeadDiversity: {
		Name: "no_head_diversity",
		Doc:  "the heads of a layer attend alike",
		Rule: func(l Limits, c Config) string {
			return fmt.Sprintf("%s cross heads' mean Jensen–Shannon divergence below %s nats", layerWords(c.Layer), num(l.MinHeadDiversity, 3))
		},
		Test: func(s SentenceScores, l Limits) (why []string) {
			if s.CrossHeadDiversity < l.MinHeadDiversity {
				why = append(why, fmt.Sprintf("cross-attention heads all look alike: mean Jensen–Shannon divergence %.3f is below %.3f", s.CrossHeadDiversity, l.MinHeadDiversity))
			}
			return why
		},
	},
	FlagCopying: {
		Name: "copying",
		Doc:  "decoder self-attention copies earlier tokens, or the output repeats 3-grams",
		Rule: func(l Limits, _ Config) string {
			return fmt.Sprintf("more than %s of the output's word 3-grams repeated, or a decoder layer putting more than %s of its self-attention on earlier copies of the current token",
				pct(l.CopyRepNgram), pct(l.CopyRepeatMass))
		},
		Test: func(s SentenceScores, l Limits) (why []string) {
			if s.RepNgram > l.CopyRepNgram {
				why = append(why, fmt.Sprintf("%.0f%% of the word 3-grams of the output are repeats (limit %.0f%%)", 100*s.RepNgram, 100*l.CopyRepNgram))
			}
			if s.RepeatMass > l.CopyRepeatMass {
				why = append(why, fmt.Sprintf("decoder self-attention puts %.0f%% of its mass on earlier copies of the current token (limit %.0f%%)", 100*s.RepeatMass, 100*l.CopyRepeatMass))
			}
			return why
		},
	},
	FlagBrokenMask: {
		Name: "broken_mask",
		Doc:  "attention rows that do not sum to 1, or are all zero (a masking bug)",
		Rule: func(l Limits, _ Config) string {
			return fmt.Sprintf("an all-zero attention row, or a row summing to 1 ± more than %.3g, in any head", l.RowSumTolerance)
		},
		Test: func(s SentenceScores, l Limits) (why []string) {
			if s.ZeroRows > 0 {
				why = append(why, fmt.Sprintf("%d attention rows are all zero (a broken mask)", s.ZeroRows))
			}
			if s.MaxRowSumErr > l.RowSumTolerance {
				why = append(why, fmt.Sprintf("an attention row sums to 1 ± %.3g, beyond the tolerance %.3g (a broken mask)", s.MaxRowSumErr, l.RowSumTolerance))
			}
			return why
		},
	},
	FlagUntrainedLike: {
		Name: "untrained_like",
		Doc:  "attention nearly uniform everywhere, as in an untrained model",
		Rule: func(l Limits, _ Config) string {
			return fmt.Sprintf("mean entropy_norm of every encoder self- and cross-attention head above %s", num(l.UntrainedEntropyNorm, 3))
		},
		Test: func(s SentenceScores, l Limits) (why []string) {
			if s.NonCausalEntropyNorm > l.UntrainedEntropyNorm {
				why = append(why, fmt.Sprintf("attention is nearly uniform everywhere: mean normalised entropy %.3f is above %.3f, as in an untrained model", s.NonCausalEntropyNorm, l.UntrainedEntropyNorm))
			}
			return why
		},
	},
}

// pastWords says which side of a threshold flags.
func pastWords(t Threshold) string {
	if t.Direction == "below" {
		return "at or below"
	}
	return "at or above"
}

// suspect are the detectors that raise hallucination_suspect.
func (s *ThresholdSet) suspect() []string {
	if s == nil {
		return nil
	}
	return s.Suspect
}

// SentenceByName finds a sentence metric by its column name.
func SentenceByName(name string) (SentenceMetric, bool) {
	for _, m := range SentenceTable {
		if m.Name == name {
			return m, true
		}
	}
	return SentenceMetric{}, false
}

// layerWords names a configured layer: "the last layer's", "layer 2's".
func layerWords(layer int) string {
	switch {
	case layer == -1:
		return "the last decoder layer's"
	case layer < 0:
		return fmt.Sprintf("decoder layer %d's (from the end)", layer)
	default:
		return fmt.Sprintf("decoder layer %d's", layer)
	}
}

// num formats a threshold, "none" where the pool could not give one.
func num(x float64, prec int) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "none"
	}
	return strconv.FormatFloat(x, 'f', prec, 64)
}

func pct(x float64) string { return strconv.FormatFloat(100*x, 'g', 4, 64) + "%" }
