package report

import (
	"time"

	"attnaudit/metrics"
	"attnaudit/store"
)

// RunData is everything report.html shows about one run. pipeline fills it
// from a run folder; tests build it in memory.
type RunData struct {
	Summary Summary
	// Examples are the rows of examples.parquet, one per example.
	Examples []store.Example
	// Sentences are the free pass's rows of sentence_metrics.parquet (rows
	// of other passes are ignored).
	Sentences []store.SentenceMetrics
	// Heads aggregates head_metrics.parquet (HeadAggregator).
	Heads HeadStats
	// Attention holds the free pass's attention of the examples the report
	// shows (Select(...).IDs()); others may be left out.
	Attention map[int32]ExampleAttention
}

// ExampleAttention is one example's attention, [layer][head], free pass.
type ExampleAttention struct {
	Cross, DecoderSelf, EncoderSelf [][]metrics.Matrix
}

// Summary describes a run in the page header and in compare.html.
type Summary struct {
	RunID          string
	Name           string // the run folder's name
	Checkpoint     string // checkpoint name from checkpoint.json
	CheckpointPath string
	CheckpointHash string
	Epoch, Step    int
	Dataset        string
	DatasetHash    string
	Examples       int
	Problems       []string // dataset lines skipped, "file:line: message"
	Provider       string
	Created        time.Time
	Tool           string
	CorpusChrF     float64 // NaN without references
	CorpusBLEU     float64 // NaN without references
	Timings        []Timing
	Detectors      []DetectorScore
	// FlagRules are the flags' rules with the thresholds the run used,
	// by flag name; a run from before they were recorded has none, and
	// the report shows each flag's generic description.
	FlagRules map[string]string
	// NotComputed is what the metrics stage could not compute because
	// the run stored part of its attention (the store setting), and why.
	NotComputed []metrics.Omission
}

// Timing is one stage's wall time.
type Timing struct {
	Stage   string
	Seconds float64
}

// DetectorScore is how well a hallucination detector separates labelled
// (or fully detached) pairs from the rest.
type DetectorScore struct {
	Name       string
	Against    string // "labels" or "detached pairs"
	AUROC      float64
	FPRAt90TPR float64
	// Threshold is the detector's threshold as the run used it ("≤ -2.267"),
	// empty for none; Suspect marks the detectors that raise
	// hallucination_suspect.
	Threshold string
	Suspect   bool
}

// Verdict says in words how well the detector separates: "near chance"
// below AUROC 0.6, "weak" below 0.75, else "useful".
func (d DetectorScore) Verdict() string { return metrics.Verdict(d.AUROC) }

// CompareData is everything compare.html shows: runs of one model on one
// dataset, oldest first.
type CompareData struct {
	Runs []CompareRun
	// Baseline is the index in Runs every run is compared with; -1
	// compares each run with its predecessor.
	Baseline int
	// Regressions are the audit gates that fired (pipeline computes them
	// once, for compare.html and the audit's exit code alike).
	Regressions []Regression
}

// CompareRun is one run of a comparison. Examples need only ExampleID,
// Source and Hypothesis (to show examples whose flags changed); pieces and
// attention may be left out to save memory.
type CompareRun struct {
	Summary   Summary
	Heads     HeadStats
	Sentences []store.SentenceMetrics
	Examples  []store.Example
}

// Regression is a gate that fired: What got worse in Run than in Against
// (runs named as in Summary.Name) by more than Limit allows.
type Regression struct {
	Run, Against  string
	What          string
	Before, After float64
	Limit         float64
}
