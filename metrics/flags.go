package metrics

import (
	"fmt"
	"math"
	"strings"
)

// Limits are the thresholds the flags use, resolved against the reference
// pool, with the words that say where each comes from.
type Limits struct {
	SeqLogprob     float64 `json:"seq_logprob"` // flag below
	SeqLogprobRule string  `json:"seq_logprob_rule"`
	WassCombo      float64 `json:"wass_combo"` // flag above
	WassComboRule  string  `json:"wass_combo_rule"`
	Thresholds
}

// ResolveLimits turns the configured thresholds into numbers: a quantile of
// the pool's seq_logprob and wass_combo values unless an absolute value is
// configured. A threshold the pool cannot give (no values) is NaN and flags
// nothing.
func ResolveLimits(t Thresholds, poolSeqLogprob, poolWassCombo []float64) Limits {
	l := Limits{Thresholds: t}
	if t.SeqLogprobMin != nil {
		l.SeqLogprob = *t.SeqLogprobMin
		l.SeqLogprobRule = "below the configured minimum"
	} else {
		l.SeqLogprob = Quantile(poolSeqLogprob, t.SeqLogprobQuantile)
		l.SeqLogprobRule = fmt.Sprintf("in the lowest %s of this run", percent(t.SeqLogprobQuantile))
	}
	if t.WassComboMax != nil {
		l.WassCombo = *t.WassComboMax
		l.WassComboRule = "above the configured maximum"
	} else {
		l.WassCombo = Quantile(poolWassCombo, 1-t.WassComboQuantile)
		l.WassComboRule = fmt.Sprintf("in the highest %s of this run", percent(t.WassComboQuantile))
	}
	return l
}

func percent(q float64) string { return fmt.Sprintf("%g%%", math.Round(q*1000)/10) }

// Flags are the run-level flags of one sentence (SPEC §5).
type Flags struct {
	HallucinationSuspect bool
	DiffuseAttention     bool
	SinkDominated        bool
	NoHeadDiversity      bool
	Copying              bool
	BrokenMask           bool
	UntrainedLike        bool
}

// Flag names, as in sentence_metrics.parquet and the run summary.
const (
	FlagHallucinationSuspect = "hallucination_suspect"
	FlagDiffuseAttention     = "diffuse_attention"
	FlagSinkDominated        = "sink_dominated"
	FlagNoHeadDiversity      = "no_head_diversity"
	FlagCopying              = "copying"
	FlagBrokenMask           = "broken_mask"
	FlagUntrainedLike        = "untrained_like"
)

// Names lists the flags that are set.
func (f Flags) Names() []string {
	var out []string
	for _, x := range []struct {
		on   bool
		name string
	}{
		{f.HallucinationSuspect, FlagHallucinationSuspect}, {f.DiffuseAttention, FlagDiffuseAttention},
		{f.SinkDominated, FlagSinkDominated}, {f.NoHeadDiversity, FlagNoHeadDiversity},
		{f.Copying, FlagCopying}, {f.BrokenMask, FlagBrokenMask}, {f.UntrainedLike, FlagUntrainedLike},
	} {
		if x.on {
			out = append(out, x.name)
		}
	}
	return out
}

// FlagSentence sets the flags of one sentence and says why, one plain
// sentence per reason. Scores that are NaN raise no flag.
func FlagSentence(s SentenceScores, l Limits) (Flags, []string) {
	var f Flags
	var why []string
	if s.SeqLogprob < l.SeqLogprob {
		f.HallucinationSuspect = true
		why = append(why, fmt.Sprintf("seq-logprob %.2f is %s (threshold %.2f)", s.SeqLogprob, l.SeqLogprobRule, l.SeqLogprob))
	}
	if s.WassCombo > l.WassCombo {
		f.HallucinationSuspect = true
		why = append(why, fmt.Sprintf("wass-combo %.3f is %s (threshold %.3f)", s.WassCombo, l.WassComboRule, l.WassCombo))
	}
	if s.CrossEntropyNormMedian > l.DiffuseEntropyNorm {
		f.DiffuseAttention = true
		why = append(why, fmt.Sprintf("cross-attention is diffuse: median normalised entropy of the heads %.2f is above %.2f", s.CrossEntropyNormMedian, l.DiffuseEntropyNorm))
	}
	if s.CrossLastMass > l.SinkLastMass {
		f.SinkDominated = true
		why = append(why, fmt.Sprintf("cross-attention puts %.0f%% of its mass on the source EOS (limit %.0f%%)", 100*s.CrossLastMass, 100*l.SinkLastMass))
	}
	if s.CrossHeadDiversity < l.MinHeadDiversity {
		f.NoHeadDiversity = true
		why = append(why, fmt.Sprintf("cross-attention heads all look alike: mean Jensen–Shannon divergence %.3f is below %.3f", s.CrossHeadDiversity, l.MinHeadDiversity))
	}
	if s.RepNgram > l.CopyRepNgram {
		f.Copying = true
		why = append(why, fmt.Sprintf("%.0f%% of the word 3-grams of the output are repeats (limit %.0f%%)", 100*s.RepNgram, 100*l.CopyRepNgram))
	}
	if s.RepeatMass > l.CopyRepeatMass {
		f.Copying = true
		why = append(why, fmt.Sprintf("decoder self-attention puts %.0f%% of its mass on earlier copies of the current token (limit %.0f%%)", 100*s.RepeatMass, 100*l.CopyRepeatMass))
	}
	if s.ZeroRows > 0 {
		f.BrokenMask = true
		why = append(why, fmt.Sprintf("%d attention rows are all zero (a broken mask)", s.ZeroRows))
	}
	if s.MaxRowSumErr > l.RowSumTolerance {
		f.BrokenMask = true
		why = append(why, fmt.Sprintf("an attention row sums to 1 ± %.3g, beyond the tolerance %.3g (a broken mask)", s.MaxRowSumErr, l.RowSumTolerance))
	}
	if s.NonCausalEntropyNorm > l.UntrainedEntropyNorm {
		f.UntrainedLike = true
		why = append(why, fmt.Sprintf("attention is nearly uniform everywhere: mean normalised entropy %.3f is above %.3f, as in an untrained model", s.NonCausalEntropyNorm, l.UntrainedEntropyNorm))
	}
	return f, why
}

// JoinReasons joins reasons as sentence_metrics.parquet stores them.
func JoinReasons(why []string) string { return strings.Join(why, "; ") }
