package metrics

import (
	"fmt"
	"strings"
)

// Config holds the settings of the metrics stage. The zero value is not
// useful: start from DefaultConfig. The configs package embeds it under
// the `metrics:` key of default.yaml.
type Config struct {
	// GuidedSigma is g of the guided-attention prior behind diagonality.
	GuidedSigma float64 `yaml:"guided_sigma" json:"guided_sigma"`
	// IgnSrcLambda is λ of ign_src: a source token with less incoming
	// cross-attention mass than this counts as ignored.
	IgnSrcLambda float64 `yaml:"ign_src_lambda" json:"ign_src_lambda"`
	// Layer is the decoder layer whose head-averaged cross-attention gives
	// the sentence scores (π for the Wasserstein scores, ign_src) and the
	// attention flags; negative counts from the end (−1: the last layer).
	Layer int `yaml:"layer" json:"layer"`
	// DropEOS renormalises π without the source EOS before the Wasserstein
	// scores, so a head parked on EOS does not dominate them.
	DropEOS bool `yaml:"drop_eos" json:"drop_eos"`
	// WassK is the number of nearest reference examples wass_to_data
	// averages over.
	WassK int `yaml:"wass_k" json:"wass_k"`
	// LengthTolerance is the relative hypothesis-length window within which
	// reference examples count for wass_to_data (0.1: ±10%).
	LengthTolerance float64 `yaml:"length_tolerance" json:"length_tolerance"`
	// ComboPercentile is the percentile of wass_to_unif in the reference
	// pool above which wass_combo uses wass_to_unif.
	ComboPercentile float64 `yaml:"combo_percentile" json:"combo_percentile"`
	// AERLayer is the decoder layer whose cross-attention gives the
	// sentence AER; negative counts from the end. The default −2 (the
	// penultimate layer) is where Garg et al. 2019 ("Jointly Learning to
	// Align and Translate with Transformer Models") found the best
	// alignments. Every head's own AER is in head_metrics regardless.
	AERLayer int `yaml:"aer_layer" json:"aer_layer"`
	// AERHeads are the heads averaged for the sentence AER; empty: all.
	AERHeads []int `yaml:"aer_heads" json:"aer_heads"`
	// Thresholds of the run-level flags.
	Thresholds Thresholds `yaml:"thresholds" json:"thresholds"`
	// ThresholdsFrom names a run folder whose recorded detector thresholds
	// this run uses, unchanged; empty: the run calibrates its own. audit
	// sets it to its baseline's run for every later checkpoint.
	ThresholdsFrom string `yaml:"thresholds_from" json:"thresholds_from"`
}

// Thresholds of the flags (SPEC §5). The detector thresholds behind
// hallucination_suspect are calibrated once (Calibrate) and recorded with
// their source, never re-derived from the run they judge, so that a
// checkpoint that hallucinates everywhere has most of its sentences
// flagged rather than a fixed share.
type Thresholds struct {
	// Calibration says where the detector thresholds come from:
	// CalibrateFreeQuantile or CalibrateDetached, computed on the run named
	// by thresholds_from, or on the run itself when there is none. The
	// default is free_quantile: on the reference model the score catching
	// even all of the detached pairs (Seq-Logprob −2.79) is below every
	// free-pass sentence of every shipped checkpoint, epoch 1's included,
	// so detached-calibrated thresholds flag no free-pass sentence and the
	// suspect_rise gate could not fire (docs/validity.md).
	Calibration string `yaml:"calibration" json:"calibration"`
	// CalibrationShare is the share of detached pairs a detached-calibrated
	// threshold catches (0.9: the score that 90% of them reach).
	CalibrationShare float64 `yaml:"calibration_share" json:"calibration_share"`
	// FreeQuantile is the share of the calibrating run's free pass a
	// free_quantile threshold flags (0.05: its worst 5%).
	FreeQuantile float64 `yaml:"free_quantile" json:"free_quantile"`
	// SuspectDetectors, comma-separated, are the detectors whose thresholds
	// raise hallucination_suspect. Pool-relative ones (wass_to_data,
	// wass_combo) are refused: their scores move with the run's other
	// sentences.
	SuspectDetectors string `yaml:"suspect_detectors" json:"suspect_detectors"`
	// Absolute (absolute_thresholds), "detector=value,…", fixes a detector's threshold instead
	// of calibrating it.
	Absolute string `yaml:"absolute_thresholds" json:"absolute_thresholds"`
	// DiffuseEntropyNorm: diffuse_attention when the median entropy_norm
	// of the audited layer's cross heads is above it.
	DiffuseEntropyNorm float64 `yaml:"diffuse_entropy_norm" json:"diffuse_entropy_norm"`
	// SinkLastMass: sink_dominated when the audited layer's head-averaged
	// cross-attention puts more than this on the source EOS.
	SinkLastMass float64 `yaml:"sink_last_mass" json:"sink_last_mass"`
	// MinHeadDiversity: no_head_diversity when the audited layer's cross
	// heads differ by less than this mean Jensen–Shannon divergence (nats;
	// the maximum is ln 2 ≈ 0.69).
	MinHeadDiversity float64 `yaml:"min_head_diversity" json:"min_head_diversity"`
	// CopyRepNgram: copying when more than this share of the hypothesis'
	// word 3-grams are repeats.
	CopyRepNgram float64 `yaml:"copy_rep_ngram" json:"copy_rep_ngram"`
	// CopyRepeatMass: copying when some decoder layer's heads put on
	// average more than this self-attention mass on earlier copies of the
	// current token.
	CopyRepeatMass float64 `yaml:"copy_repeat_mass" json:"copy_repeat_mass"`
	// RowSumTolerance: broken_mask when any head has an all-zero row or a
	// row whose sum is further than this from 1 (float16 storage is off by
	// less than 1e-3).
	RowSumTolerance float64 `yaml:"row_sum_tolerance" json:"row_sum_tolerance"`
	// UntrainedEntropyNorm: untrained_like when the mean entropy_norm of
	// all encoder self-attention and cross-attention heads is above it
	// (decoder self-attention is causal, so its rows cannot reach ln n_k).
	UntrainedEntropyNorm float64 `yaml:"untrained_entropy_norm" json:"untrained_entropy_norm"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		GuidedSigma:     DefaultGuidedSigma,
		IgnSrcLambda:    DefaultIgnSrcLambda,
		Layer:           -1,
		WassK:           DefaultWassK,
		LengthTolerance: DefaultLengthTolerance,
		ComboPercentile: DefaultComboPercentile,
		AERLayer:        -2,
		Thresholds: Thresholds{
			Calibration:          CalibrateFreeQuantile,
			CalibrationShare:     0.9,
			FreeQuantile:         0.05,
			SuspectDetectors:     "seq_logprob",
			DiffuseEntropyNorm:   0.9,
			SinkLastMass:         0.5,
			MinHeadDiversity:     0.05,
			CopyRepNgram:         0.3,
			CopyRepeatMass:       0.5,
			RowSumTolerance:      0.01,
			UntrainedEntropyNorm: 0.97,
		},
	}
}

// Validate checks the ranges of c.
func (c Config) Validate() error {
	var errs []string
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	t := c.Thresholds
	check(c.GuidedSigma > 0, "guided_sigma %g: want > 0", c.GuidedSigma)
	check(c.IgnSrcLambda >= 0, "ign_src_lambda %g: want ≥ 0", c.IgnSrcLambda)
	check(c.WassK >= 1, "wass_k %d: want ≥ 1", c.WassK)
	check(c.LengthTolerance >= 0, "length_tolerance %g: want ≥ 0", c.LengthTolerance)
	check(c.ComboPercentile >= 0 && c.ComboPercentile <= 100, "combo_percentile %g: want 0…100", c.ComboPercentile)
	for _, h := range c.AERHeads {
		check(h >= 0, "aer_heads: head %d: want ≥ 0", h)
	}
	check(t.Calibration == CalibrateDetached || t.Calibration == CalibrateFreeQuantile,
		"thresholds.calibration %q: want %s or %s", t.Calibration, CalibrateDetached, CalibrateFreeQuantile)
	check(t.CalibrationShare > 0 && t.CalibrationShare <= 1, "thresholds.calibration_share %g: want 0 < share ≤ 1", t.CalibrationShare)
	check(t.FreeQuantile > 0 && t.FreeQuantile < 1, "thresholds.free_quantile %g: want 0 < q < 1", t.FreeQuantile)
	for _, d := range t.SuspectList() {
		if err := selfContained(d); err != nil {
			errs = append(errs, "thresholds.suspect_detectors: "+err.Error())
		}
	}
	if _, err := t.AbsoluteValues(); err != nil {
		errs = append(errs, err.Error())
	}
	check(t.RowSumTolerance > 0, "thresholds.row_sum_tolerance %g: want > 0", t.RowSumTolerance)
	if len(errs) > 0 {
		return fmt.Errorf("invalid metrics configuration: %s", strings.Join(errs, "; "))
	}
	return nil
}

// ResolveLayer turns a layer index that may count from the end (−1: the
// last) into 0…n−1 for a stack of n layers of the named attention kind.
// Every setting that names a layer (metrics.layer, metrics.aer_layer,
// report_layer, visualize --layer) is resolved here, with one message.
func ResolveLayer(layer, n int, what string) (int, error) {
	l := layer
	if l < 0 {
		l += n
	}
	if n == 0 {
		return 0, fmt.Errorf("layer %d: no %s attention", layer, what)
	}
	if l < 0 || l >= n {
		return 0, fmt.Errorf("layer %d: %s attention has %d layers (0..%d, or -1..-%d)", layer, what, n, n-1, n)
	}
	return l, nil
}

// resolveLayer is ResolveLayer for scoring, where a layer the pass lacks
// leaves its scores NaN.
func resolveLayer(l, n int) (int, bool) {
	l, err := ResolveLayer(l, n, "")
	return l, err == nil
}
