package metrics

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Limits are the thresholds the flags use: the detector thresholds of the
// run (calibrated or carried) and the configured attention thresholds.
type Limits struct {
	// Detectors are the detector thresholds; hallucination_suspect uses
	// those of Detectors.Suspect. Nil flags no suspect.
	Detectors *ThresholdSet
	Thresholds
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
