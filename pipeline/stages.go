package pipeline

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"attnaudit/configs"
	"attnaudit/dataset"
	"attnaudit/metrics"
	"attnaudit/store"
)

// Run runs every stage for one checkpoint and dataset, skipping stages the
// run folder already holds, and returns the run folder.
func Run(env Env, in Inputs) (string, error) {
	dir, err := Infer(env, in, All)
	if err != nil {
		return "", err
	}
	if err := Metrics(env, dir, in.Config, false); err != nil {
		return dir, err
	}
	return dir, Report(env, dir, in.Config, false)
}

// passesWords names passes in a sentence: "the free pass", "the forced
// and free passes".
func passesWords(passes []string) string {
	if len(passes) == 1 {
		return "the " + passes[0] + " pass"
	}
	return "the " + strings.Join(passes[:len(passes)-1], ", ") + " and " + passes[len(passes)-1] + " passes"
}

// storedCoverage is the attention a run stored when its store setting is
// a selection, nil when it stored everything.
func storedCoverage(m *Manifest) (*metrics.Coverage, error) {
	sel, err := store.ParseSelection(m.Config.Store)
	if err != nil || sel.All() {
		return nil, err
	}
	enc, dec := m.Checkpoint.Meta.EncLayers, m.Checkpoint.Meta.DecLayers
	if a := m.Attention; a != nil {
		enc, dec = a.EncoderLayers, a.DecoderLayers
	}
	if enc == 0 && dec == 0 {
		return nil, fmt.Errorf("the run stored %q, and neither its manifest nor checkpoint.json records the model's layers (a run made before they were recorded): run infer again in a new output folder", m.Config.Store)
	}
	layers := map[string]int{metrics.KindEncoderSelf: enc, metrics.KindDecoderSelf: dec, metrics.KindCross: dec}
	return &metrics.Coverage{Store: m.Config.Store, Layers: layers, Keeps: func(pass, kind string, layer int) bool {
		return sel.Keeps(pass, kind, layer, layers[kind])
	}}, nil
}

// RunDir returns the run folder that Inputs name, without running anything.
// Single stages use it to find a run from the same flags that made it.
func RunDir(env Env, in Inputs) (string, error) {
	r, err := openRun(env, in)
	if err != nil {
		return "", err
	}
	return r.dir, nil
}

// Metrics runs the metrics stage on a finished infer stage and records its
// summary in the manifest. Unless redo, it is skipped when the manifest
// already has it (`run` resumes; the `metrics` command recomputes).
func Metrics(env Env, dir string, cfg configs.Config, redo bool) error {
	return stage(env, dir, StageMetrics, redo, cfg, func(m *Manifest) (map[string]int64, error) {
		gold, labels, err := goldOf(m)
		if err != nil {
			return nil, err
		}
		carried, err := carriedThresholds(cfg.Metrics.ThresholdsFrom)
		if err != nil {
			return nil, err
		}
		cov, err := storedCoverage(m)
		if err != nil {
			return nil, err
		}
		sum, err := ComputeMetrics(dir, cfg.Metrics, WithGold(gold, labels), WithThresholds(carried), WithCoverage(cov))
		if err != nil {
			return nil, err
		}
		for _, o := range sum.NotComputed {
			fmt.Fprintf(env.Log, "metrics: not computed for %s: %s: %s\n", passesWords(o.Passes), o.What, o.Why)
		}
		if carried == nil {
			sum.Thresholds.CalibratedAt = time.Now().UTC()
		}
		m.Summary = sum
		delete(m.Stages, StageReport) // the report shows the old metrics
		return nil, nil
	})
}

// Report writes report.html for a run whose metrics stage finished; redo as
// for Metrics.
func Report(env Env, dir string, cfg configs.Config, redo bool) error {
	return stage(env, dir, StageReport, redo, cfg, func(m *Manifest) (map[string]int64, error) {
		if _, ok := m.Stages[StageMetrics]; !ok {
			return nil, fmt.Errorf("%s: run the metrics stage first", dir)
		}
		path, err := WriteReport(dir, cfg.Report)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(env.Log, "report: wrote %s\n", path)
		return nil, nil
	})
}

// stage runs one post-infer stage under the run's lock and records its time
// and settings in the manifest, rewritten atomically. A stage already
// recorded with the same settings is skipped unless redo.
func stage(env Env, dir, name string, redo bool, cfg configs.Config, do func(*Manifest) (map[string]int64, error)) error {
	unlock, err := lockDir(dir, All)
	if err != nil {
		return err
	}
	defer unlock()
	m, err := ReadManifest(dir)
	if err != nil {
		return err
	}
	if _, done := m.Stages[name]; done && !redo && stageSettingsEqual(name, m.Config, cfg) && thresholdsCurrent(name, m, cfg) {
		fmt.Fprintf(env.Log, "%s: already done for %s\n", name, dir)
		return nil
	}
	start := time.Now()
	rows, err := do(m)
	if err != nil {
		return fmt.Errorf("%s stage: %w", name, err)
	}
	m.Stages[name] = Stage{Seconds: time.Since(start).Seconds(), Finished: time.Now().UTC(), Rows: rows}
	switch name {
	case StageMetrics:
		m.Config.Metrics = cfg.Metrics
	case StageReport:
		m.Config.Report = cfg.Report
	}
	return writeManifest(dir, m)
}

// stageSettingsEqual reports whether a stage's settings in the manifest's
// config a and in b are the same.
func stageSettingsEqual(name string, a, b configs.Config) bool {
	switch name {
	case StageMetrics:
		return reflect.DeepEqual(a.Metrics, b.Metrics)
	case StageReport:
		return reflect.DeepEqual(a.Report, b.Report)
	}
	return true
}

// carriedThresholds reads the detector thresholds recorded by the run named
// in thresholds_from; nil when none is named.
func carriedThresholds(from string) (*metrics.ThresholdSet, error) {
	if from == "" {
		return nil, nil
	}
	m, err := ReadManifest(from)
	if err != nil {
		return nil, fmt.Errorf("thresholds_from: %w", err)
	}
	if m.Summary == nil || m.Summary.Thresholds == nil || len(m.Summary.Thresholds.Detectors) == 0 {
		return nil, fmt.Errorf("thresholds_from %s: the run records no calibrated detector thresholds; run its metrics stage again (`attnaudit metrics --run %s`)", from, from)
	}
	return m.Summary.Thresholds, nil
}

// thresholdsCurrent reports whether a metrics stage that took its
// thresholds from another run used that run's present ones (its metrics
// may have been redone since).
func thresholdsCurrent(name string, m *Manifest, cfg configs.Config) bool {
	if name != StageMetrics || cfg.Metrics.ThresholdsFrom == "" {
		return true
	}
	want, err := carriedThresholds(cfg.Metrics.ThresholdsFrom)
	return err == nil && m.Summary != nil && m.Summary.Thresholds.SameValues(want)
}

// upToDate reports whether a finished run needs no stage run again for cfg.
func upToDate(m *Manifest, cfg configs.Config) bool {
	for _, name := range []string{StageMetrics, StageReport} {
		if _, done := m.Stages[name]; !done || !stageSettingsEqual(name, m.Config, cfg) || !thresholdsCurrent(name, m, cfg) {
			return false
		}
	}
	return true
}

// goldOf reloads the run's dataset for what infer does not store: gold
// alignments and hallucination labels, by example_id. The dataset must be
// the one the run was made from (same hash).
func goldOf(m *Manifest) (map[int32]metrics.Alignment, map[int32]bool, error) {
	data, _, err := readDataset(m.Dataset.Path, dataset.Options{})
	if err != nil {
		return nil, nil, fmt.Errorf("reloading the dataset for gold alignments and labels: %w", err)
	}
	if data.Hash != m.Dataset.Hash {
		return nil, nil, fmt.Errorf("%s changed since the run was made (sha256 %.12s, run has %.12s)", m.Dataset.Path, data.Hash, m.Dataset.Hash)
	}
	// Example ids count kept examples; reapplying the run's skips keeps
	// them aligned with the run's ids.
	skipped := map[int]bool{}
	for _, line := range m.Dataset.SkippedLines {
		skipped[line] = true
	}
	gold, labels := map[int32]metrics.Alignment{}, map[int32]bool{}
	id := int32(0)
	for _, ex := range data.Examples {
		if skipped[ex.Line] {
			continue
		}
		if ex.Alignment != nil {
			gold[id] = *ex.Alignment
		}
		if ex.Label != nil {
			labels[id] = *ex.Label
		}
		id++
	}
	return gold, labels, nil
}
