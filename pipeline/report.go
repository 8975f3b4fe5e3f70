package pipeline

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"attnaudit/configs"
	"attnaudit/metrics"
	"attnaudit/report"
	"attnaudit/store"
)

// ReportName is the report stage's page in a run folder.
const ReportName = "report.html"

// WriteReport writes report.html into a finished run folder and returns its
// path. It reads the Parquet files in a streaming pass for the head
// metrics and reads attention only for the examples the page shows.
func WriteReport(runDir string, opts report.Options) (string, error) {
	data, err := LoadRunData(runDir, opts)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := report.Generate(&buf, data, opts); err != nil {
		return "", fmt.Errorf("%s: %w", runDir, err)
	}
	path := filepath.Join(runDir, ReportName)
	return path, writeFileAtomic(path, buf.Bytes())
}

// LoadRunData reads what report.html shows from a run folder: the manifest,
// examples, free-pass sentence metrics, head metrics aggregated as they
// stream by, and the attention of the examples report.Select picks.
func LoadRunData(runDir string, opts report.Options) (report.RunData, error) {
	data, err := loadRunSummary(runDir, true)
	if err != nil {
		return report.RunData{}, err
	}
	sel := report.Select(data, opts)
	if data.Attention, err = loadAttention(runDir, sel.IDs()); err != nil {
		return report.RunData{}, err
	}
	m, err := ReadManifest(runDir)
	if err != nil {
		return report.RunData{}, err
	}
	cov, err := storedCoverage(m)
	if err != nil {
		return report.RunData{}, err
	}
	if cov != nil {
		// Layers not stored stay without heads, so that layer numbers
		// (-1 the last) resolve against the model's layers.
		for id, ea := range data.Attention {
			for _, k := range []struct {
				kind   string
				layers *[][]metrics.Matrix
			}{{store.KindEncoderSelf, &ea.EncoderSelf}, {store.KindDecoderSelf, &ea.DecoderSelf}, {store.KindCross, &ea.Cross}} {
				for len(*k.layers) > 0 && len(*k.layers) < cov.Layers[k.kind] {
					*k.layers = append(*k.layers, nil)
				}
			}
			data.Attention[id] = ea
		}
	}
	return data, nil
}

// loadRunSummary reads everything but attention. Without pieces, the
// examples keep only their text (enough for compare.html).
func loadRunSummary(runDir string, pieces bool) (report.RunData, error) {
	m, err := ReadManifest(runDir)
	if err != nil {
		return report.RunData{}, err
	}
	exs, err := store.ReadExamples(runDir)
	if err != nil {
		return report.RunData{}, fmt.Errorf("%s: %w", runDir, err)
	}
	if !pieces {
		for i := range exs {
			e := &exs[i]
			e.SrcPieces, e.TgtPieces, e.SrcIDs, e.TgtIDs, e.TokenLogprobs = nil, nil, nil, nil, nil
			e.RefPieces, e.RefIDs, e.RefLogprobs = nil, nil, nil
		}
	}
	sents, err := store.ReadSentenceMetrics(runDir)
	if err != nil {
		return report.RunData{}, fmt.Errorf("%s: %w", runDir, err)
	}
	free := sents[:0]
	for _, s := range sents {
		if s.Pass == store.PassFree {
			free = append(free, s)
		}
	}
	agg := report.NewHeadAggregator()
	if err := store.ScanHeadMetrics(runDir, agg.Add); err != nil {
		return report.RunData{}, fmt.Errorf("%s: %w", runDir, err)
	}
	sum, err := runSummary(runDir, m)
	if err != nil {
		return report.RunData{}, err
	}
	return report.RunData{Summary: sum, Examples: exs, Sentences: free, Heads: agg.Stats()}, nil
}

// runSummary turns the manifest into the page header.
func runSummary(runDir string, m *Manifest) (report.Summary, error) {
	meta := m.Checkpoint.Meta
	s := report.Summary{
		RunID: m.RunID, Name: filepath.Base(filepath.Clean(runDir)),
		Checkpoint: meta.Name, CheckpointPath: m.Checkpoint.Path, CheckpointHash: m.Checkpoint.Hash,
		Epoch: meta.Epoch, Step: int(meta.Step),
		Dataset: m.Dataset.Path, DatasetHash: m.Dataset.Hash, Examples: m.Dataset.Examples, Problems: m.Dataset.Problems,
		Provider: m.Provider, Created: m.Created,
		Tool:       fmt.Sprintf("attnaudit %s, %s, ONNX Runtime %s", orUnknown(m.Tool.Version), m.Tool.GoVersion, orUnknown(m.Tool.ORTVersion)),
		CorpusChrF: math.NaN(), CorpusBLEU: math.NaN(),
	}
	for _, name := range []string{StageInfer, StageMetrics, StageReport} {
		if st, ok := m.Stages[name]; ok {
			s.Timings = append(s.Timings, report.Timing{Stage: name, Seconds: st.Seconds})
		}
	}
	if rs := m.Summary; rs != nil {
		s.FlagRules = rs.FlagRules
		s.NotComputed = rs.NotComputed
		if rs.CorpusChrF != nil {
			s.CorpusChrF = *rs.CorpusChrF
		}
		if rs.CorpusBLEU != nil {
			s.CorpusBLEU = *rs.CorpusBLEU
		}
		for _, d := range rs.Detectors {
			ds := report.DetectorScore{Name: d.Detector, Against: d.Against, AUROC: d.AUROC, FPRAt90TPR: d.FPRAt90TPR}
			if t, ok := rs.Thresholds.Find(d.Detector); ok && t.Value != nil {
				side := "≥"
				if t.Direction == "below" {
					side = "≤"
				}
				ds.Threshold = fmt.Sprintf("%s %.3f", side, *t.Value)
				ds.Suspect = slices.Contains(rs.Thresholds.Suspect, d.Detector)
			}
			s.Detectors = append(s.Detectors, ds)
		}
	}
	return s, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown version)"
	}
	return s
}

// loadAttention reads the free pass's attention of the given examples,
// [layer][head] per kind.
func loadAttention(runDir string, ids []int32) (map[int32]report.ExampleAttention, error) {
	out := map[int32]report.ExampleAttention{}
	if len(ids) == 0 {
		return out, nil
	}
	err := store.ScanAttention(runDir, func(a store.Attention) error {
		if a.Pass != store.PassFree {
			return nil
		}
		ea := out[a.ExampleID]
		if err := fileAttention(a, &ea.EncoderSelf, &ea.DecoderSelf, &ea.Cross); err != nil {
			return err
		}
		out[a.ExampleID] = ea
		return nil
	}, store.WithExampleIDs(ids...))
	if err != nil {
		return nil, fmt.Errorf("%s: reading attention: %w", runDir, err)
	}
	return out, nil
}

// WriteCompare writes compare.html at out for the given finished runs, in
// epoch/step order, and returns the regressions it highlights. baseline (a
// run folder, which need not be among runDirs) is the run every other is
// gated against; empty gates each run against its predecessor. The gates
// are the audit's (gate, compareRuns), so the page and the audit's exit
// code never disagree.
func WriteCompare(runDirs []string, baseline, out string, opts report.Options, gates configs.AuditConfig) ([]Regression, error) {
	dirs := append([]string(nil), runDirs...)
	if baseline != "" && !containsPath(dirs, baseline) {
		dirs = append(dirs, baseline)
	}
	runs := make([]report.CompareRun, len(dirs))
	for i, d := range dirs {
		rd, err := loadRunSummary(d, false)
		if err != nil {
			return nil, err
		}
		runs[i] = report.CompareRun{Summary: rd.Summary, Heads: rd.Heads, Sentences: rd.Sentences, Examples: rd.Examples}
	}
	order := make([]int, len(dirs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		ra, rb := runs[order[a]].Summary, runs[order[b]].Summary
		if ra.Epoch != rb.Epoch {
			return ra.Epoch < rb.Epoch
		}
		return ra.Step < rb.Step
	})
	data := report.CompareData{Baseline: -1}
	var gated []AuditRun
	labels := map[string]string{} // run folder → its name on the page
	for k, i := range order {
		data.Runs = append(data.Runs, runs[i])
		labels[dirs[i]] = runs[i].Summary.Name
		if baseline != "" && samePath(dirs[i], baseline) {
			data.Baseline = k
			labels[baseline] = runs[i].Summary.Name
			continue
		}
		km, err := readKeyMetrics(dirs[i])
		if err != nil {
			return nil, err
		}
		gated = append(gated, AuditRun{Run: dirs[i], KeyMetrics: km})
	}
	regs, err := gate(gated, baseline, gates)
	if err != nil {
		return nil, err
	}
	for _, r := range regs {
		data.Regressions = append(data.Regressions, report.Regression{Run: labels[r.Run], Against: labels[r.Against],
			What: regressionWhat(r), Before: r.Before, After: r.After, Limit: r.Limit})
	}
	var buf bytes.Buffer
	if err := report.GenerateCompare(&buf, data, opts); err != nil {
		return nil, err
	}
	if dir := filepath.Dir(out); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("writing %s: %w", out, err)
		}
	}
	return regs, writeFileAtomic(out, buf.Bytes())
}

// regressionWhat says in words what a fired gate measured, for the page.
func regressionWhat(r Regression) string {
	g, ok := gateByName(r.Gate)
	if !ok {
		return r.Gate
	}
	if g.rise {
		return g.what(r.Layer) + " rose"
	}
	return g.what(r.Layer) + " dropped"
}

func samePath(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}

func containsPath(list []string, p string) bool {
	for _, x := range list {
		if samePath(x, p) {
			return true
		}
	}
	return false
}
