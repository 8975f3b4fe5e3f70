package metrics

import (
	"fmt"
	"math"
	"slices"
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

// Flags are the run-level flags of one sentence (SPEC §5), indexed by
// FlagIndex.
type Flags [NumFlags]bool

// Names lists the flags that are set, in table order.
func (f Flags) Names() []string {
	var out []string
	for i, on := range f {
		if on {
			out = append(out, FlagTable[i].Name)
		}
	}
	return out
}

// Any reports whether a flag is set.
func (f Flags) Any() bool { return slices.Contains(f[:], true) }

// FlagSentence sets the flags of one sentence and says why, one plain
// sentence per reason, in table order. Scores that are NaN raise no flag.
func FlagSentence(s SentenceScores, l Limits) (Flags, []string) {
	var f Flags
	var why []string
	for i, rule := range FlagTable {
		if reasons := rule.Test(s, l); len(reasons) > 0 {
			f[i] = true
			why = append(why, reasons...)
		}
	}
	return f, why
}

// JoinReasons joins reasons as sentence_metrics.parquet stores them.
func JoinReasons(why []string) string { return strings.Join(why, "; ") }
