package pipeline

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"attnaudit/configs"
	"attnaudit/metrics"
	"attnaudit/store"
)

// SummaryName is the audit's machine-readable summary in the output folder.
const SummaryName = "audit-summary.json"

// AuditInputs names the checkpoints and dataset of a nightly audit.
type AuditInputs struct {
	Checkpoints []string
	Data        string
	OutputDir   string
	Baseline    string // a run folder; empty: each checkpoint's predecessor
	Config      configs.Config
}

// AuditSummary is audit-summary.json.
type AuditSummary struct {
	Path        string       `json:"-"`
	Created     time.Time    `json:"created"`
	Data        string       `json:"data"`
	Compare     string       `json:"compare"`
	Runs        []AuditRun   `json:"runs"`
	Regressions []Regression `json:"regressions"`
	FailOn      []string     `json:"fail_on"`
	Failed      bool         `json:"failed"` // a gate named in fail_on fired
}

// AuditRun is one checkpoint's line in the audit summary.
type AuditRun struct {
	Checkpoint string `json:"checkpoint"`
	Run        string `json:"run"`
	Skipped    bool   `json:"skipped"`
	Reason     string `json:"reason,omitempty"`
	// ThresholdsFrom is the run whose detector thresholds this run was
	// flagged with; empty for the run that calibrated them.
	ThresholdsFrom string `json:"thresholds_from,omitempty"`
	KeyMetrics
}

// Regression is a gate that fired between a run and the one it is gated
// against.
type Regression struct {
	Gate    string  `json:"gate"`
	Run     string  `json:"run"`
	Against string  `json:"against"`
	Before  float64 `json:"before"`
	After   float64 `json:"after"`
	Limit   float64 `json:"limit"`
	Layer   int     `json:"layer,omitempty"`
	Message string  `json:"message"`
}

// RegressionError is returned by Audit when a gate named in fail_on fired;
// the CLI turns it into exit code 3.
type RegressionError struct{ Regressions []Regression }

func (e *RegressionError) Error() string {
	msgs := make([]string, len(e.Regressions))
	for i, r := range e.Regressions {
		msgs[i] = r.Message
	}
	return fmt.Sprintf("%d regression(s): %s", len(msgs), strings.Join(msgs, "; "))
}

// Audit runs every stage for each checkpoint whose run is not complete yet,
// writes compare.html over all runs in epoch/step order and the summary, and
// gates each run against the baseline or its predecessor.
func Audit(env Env, in AuditInputs) (*AuditSummary, error) {
	sum := &AuditSummary{Created: time.Now().UTC(), Data: in.Data, FailOn: append([]string{}, in.Config.Audit.FailOnList()...)}
	if sum.Data == "" {
		sum.Data = "(embedded demo set)"
	}
	if err := os.MkdirAll(in.OutputDir, 0o755); err != nil {
		return nil, err
	}
	checkpoints, err := inEpochOrder(in.Checkpoints)
	if err != nil {
		return nil, err
	}
	// The detector thresholds are calibrated once, on the baseline run (or
	// the first checkpoint's), and carried to every other checkpoint, so
	// that each is flagged by the same yardstick; an explicit
	// thresholds_from wins.
	calibrated := in.Baseline
	dirs := make([]string, len(checkpoints))
	for i, ck := range checkpoints {
		if dirs[i], err = RunDir(env, Inputs{Checkpoint: ck, Data: in.Data, OutputDir: in.OutputDir, Config: in.Config}); err != nil {
			return nil, err
		}
		// A baseline among the audited checkpoints is brought up to date
		// first, since the others carry its thresholds.
		if i > 0 && calibrated != "" && filepath.Clean(dirs[i]) == filepath.Clean(calibrated) {
			checkpoints[0], checkpoints[i] = checkpoints[i], checkpoints[0]
			dirs[0], dirs[i] = dirs[i], dirs[0]
		}
	}
	for i, ck := range checkpoints {
		inputs := Inputs{Checkpoint: ck, Data: in.Data, OutputDir: in.OutputDir, Config: in.Config}
		dir := dirs[i]
		if m := &inputs.Config.Metrics; m.ThresholdsFrom == "" && calibrated != "" && filepath.Clean(calibrated) != filepath.Clean(dir) {
			m.ThresholdsFrom = calibrated
		}
		if calibrated == "" {
			calibrated = dir
		}
		run := AuditRun{Checkpoint: ck, Run: dir, ThresholdsFrom: inputs.Config.Metrics.ThresholdsFrom}
		// A run whose files fail Verify is resumed, which writes its
		// damaged chunks again.
		if m, err := ReadManifest(dir); err == nil && upToDate(m, inputs.Config) && (len(m.Parts) == 0 || len(Verify(dir)) == 0) {
			run.Skipped = true
			run.Reason = fmt.Sprintf("already audited: same checkpoint (sha256 %.12s), dataset (%.12s) and config", m.Checkpoint.Hash, m.Dataset.Hash)
			fmt.Fprintf(env.Log, "audit: %s skipped: %s\n", ck, run.Reason)
		} else if _, err := Run(env, inputs); err != nil {
			return nil, fmt.Errorf("auditing %s: %w", ck, err)
		}
		sum.Runs = append(sum.Runs, run)
	}
	if err := sum.load(); err != nil {
		return nil, err
	}
	dirs = make([]string, len(sum.Runs))
	for i, r := range sum.Runs {
		dirs[i] = r.Run
	}
	sum.Compare = filepath.Join(in.OutputDir, "compare.html")
	if sum.Regressions, err = WriteCompare(dirs, in.Baseline, sum.Compare, in.Config.Report, in.Config.Audit); err != nil {
		return nil, err
	}
	if sum.Regressions == nil {
		sum.Regressions = []Regression{} // [] rather than null for readers of the JSON
	}
	var failing []Regression
	for _, r := range sum.Regressions {
		fmt.Fprintf(env.Log, "audit: regression: %s\n", r.Message)
		if in.Config.Audit.Fails(r.Gate) {
			failing = append(failing, r)
		}
	}
	sum.Failed = len(failing) > 0
	sum.Path = filepath.Join(in.OutputDir, SummaryName)
	data, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(sum.Path, append(data, '\n')); err != nil {
		return nil, err
	}
	if sum.Failed {
		return sum, &RegressionError{Regressions: failing}
	}
	return sum, nil
}

// load reads each run's key metrics and orders the runs by epoch and step.
func (s *AuditSummary) load() error {
	for i := range s.Runs {
		km, err := readKeyMetrics(s.Runs[i].Run)
		if err != nil {
			return err
		}
		s.Runs[i].KeyMetrics = km
	}
	sort.SliceStable(s.Runs, func(a, b int) bool {
		ra, rb := s.Runs[a], s.Runs[b]
		if ra.Epoch != rb.Epoch {
			return ra.Epoch < rb.Epoch
		}
		return ra.Step < rb.Step
	})
	return nil
}

// gate compares each run with the baseline, or with its predecessor when
// there is no baseline.
func gate(runs []AuditRun, baseline string, cfg configs.AuditConfig) ([]Regression, error) {
	var base *AuditRun
	if baseline != "" {
		km, err := readKeyMetrics(baseline)
		if err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		base = &AuditRun{Run: baseline, KeyMetrics: km}
	}
	var out []Regression
	for i := range runs {
		against := base
		if against == nil {
			if i == 0 {
				continue
			}
			against = &runs[i-1]
		}
		if against.Run == runs[i].Run {
			continue
		}
		out = append(out, compareRuns(*against, runs[i], cfg)...)
	}
	return out, nil
}

// regressionGate is one regression gate of `audit`, defined once: the
// audit's checks (and so its exit code) and compare.html's highlights both
// walk regressionGates. configs owns the names (to check --fail-on) and the
// allowed changes.
type regressionGate struct {
	name string
	// what names the metric in words; layer is −1 for run-level metrics.
	what func(layer int) string
	// values are the metric per layer, or one value for the run.
	values func(AuditRun) []Number
	limit  func(configs.AuditConfig) float64
	// rise: a rise is worse (AER, suspects); else a drop is (chrF, diagonality).
	rise bool
}

var regressionGates = []regressionGate{
	{configs.GateChrFDrop, func(int) string { return "corpus chrF" },
		func(r AuditRun) []Number { return []Number{r.ChrF} }, func(c configs.AuditConfig) float64 { return c.ChrFDrop }, false},
	{configs.GateSuspectRise, func(int) string { return "hallucination-suspect share" },
		func(r AuditRun) []Number { return []Number{Number(r.SuspectShare)} }, func(c configs.AuditConfig) float64 { return c.SuspectRise }, true},
	{configs.GateDiagonalityDrop, func(l int) string { return fmt.Sprintf("layer %d cross-attention diagonality", l) },
		func(r AuditRun) []Number { return r.Diagonality }, func(c configs.AuditConfig) float64 { return c.DiagonalityDrop }, false},
	{configs.GateAERRise, func(l int) string { return fmt.Sprintf("layer %d AER", l) },
		func(r AuditRun) []Number { return r.AER }, func(c configs.AuditConfig) float64 { return c.AERRise }, true},
}

// gateByName finds a gate of regressionGates.
func gateByName(name string) (regressionGate, bool) {
	for _, g := range regressionGates {
		if g.name == name {
			return g, true
		}
	}
	return regressionGate{}, false
}

// compareRuns applies the gates of cfg to one pair of runs. A metric that is
// NaN on either side (no references, no gold alignments) gates nothing.
func compareRuns(before, after AuditRun, cfg configs.AuditConfig) []Regression {
	var out []Regression
	for _, g := range regressionGates {
		bs, as := g.values(before), g.values(after)
		for l := range min(len(bs), len(as)) {
			b, a := bs[l], as[l]
			worse := float64(b - a)
			if g.rise {
				worse = -worse
			}
			limit := g.limit(cfg)
			if math.IsNaN(float64(a)) || math.IsNaN(float64(b)) || worse <= limit {
				continue
			}
			out = append(out, Regression{Gate: g.name, Run: after.Run, Against: before.Run,
				Before: float64(b), After: float64(a), Limit: limit, Layer: l,
				Message: fmt.Sprintf("%s: %s went from %.4g to %.4g (allowed change %.4g) against %s",
					filepath.Base(after.Run), g.what(l), float64(b), float64(a), limit, filepath.Base(before.Run))})
		}
	}
	return out
}

// inEpochOrder sorts checkpoint folders by the epoch and step of their
// checkpoint.json, so that the first is the one audit calibrates on.
func inEpochOrder(dirs []string) ([]string, error) {
	type ck struct {
		dir  string
		meta CheckpointMeta
	}
	cks := make([]ck, len(dirs))
	for i, d := range dirs {
		cks[i].dir = d
		data, err := os.ReadFile(filepath.Join(d, "checkpoint.json"))
		if err == nil {
			err = json.Unmarshal(data, &cks[i].meta)
		}
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w", d, err)
		}
	}
	sort.SliceStable(cks, func(a, b int) bool {
		ma, mb := cks[a].meta, cks[b].meta
		if ma.Epoch != mb.Epoch {
			return ma.Epoch < mb.Epoch
		}
		return ma.Step < mb.Step
	})
	out := make([]string, len(cks))
	for i, c := range cks {
		out[i] = c.dir
	}
	return out, nil
}

// FindCheckpoints expands --checkpoints: a checkpoint folder, a folder of
// checkpoint folders, or a file listing one folder per line (# comments).
func FindCheckpoints(spec string) ([]string, error) {
	info, err := os.Stat(spec)
	if err != nil {
		return nil, fmt.Errorf("--checkpoints: %w", err)
	}
	if !info.IsDir() {
		f, err := os.Open(spec)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		var out []string
		sc := bufio.NewScanner(f)
		for line := 1; sc.Scan(); line++ {
			p := strings.TrimSpace(sc.Text())
			if p == "" || strings.HasPrefix(p, "#") {
				continue
			}
			if !exists(filepath.Join(p, "checkpoint.json")) {
				return nil, fmt.Errorf("%s:%d: %s has no checkpoint.json", spec, line, p)
			}
			out = append(out, p)
		}
		return out, sc.Err()
	}
	if exists(filepath.Join(spec, "checkpoint.json")) {
		return []string{spec}, nil
	}
	paths, err := filepath.Glob(filepath.Join(spec, "*", "checkpoint.json"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("--checkpoints %s: no checkpoint folders (with checkpoint.json) in it", spec)
	}
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Dir(p)
	}
	return out, nil
}

// FindRuns expands run folders and folders of run folders into the finished
// runs among them; unfinished ones are named and left out.
func FindRuns(specs []string) ([]string, error) {
	var out []string
	for _, spec := range specs {
		if exists(filepath.Join(spec, ManifestName)) {
			out = append(out, spec)
			continue
		}
		paths, err := filepath.Glob(filepath.Join(spec, "*", ManifestName))
		if err != nil {
			return nil, err
		}
		for _, p := range paths {
			out = append(out, filepath.Dir(p))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no finished runs (folders with manifest.json) in " + strings.Join(specs, ", "))
	}
	return out, nil
}

// KeyMetrics are the numbers of a run that the audit summary reports and the
// regression gates compare.
type KeyMetrics struct {
	Epoch        int                       `json:"epoch"`
	Step         int64                     `json:"step"`
	ChrF         Number                    `json:"chrf"`
	BLEU         Number                    `json:"bleu"`
	SuspectShare float64                   `json:"suspect_share"`
	Flags        map[string]map[string]int `json:"flags"`
	// Per decoder layer, free pass, mean over heads and examples.
	Diagonality []Number `json:"cross_diagonality"`
	AER         []Number `json:"aer"` // NaN (null) without gold alignments
}

// Number is a float64 that is null in JSON when it is NaN: a metric that
// could not be computed (no references, no gold alignments).
type Number float64

func (n Number) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(n)) || math.IsInf(float64(n), 0) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(n))
}

func (n *Number) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Number(math.NaN())
		return nil
	}
	return json.Unmarshal(b, (*float64)(n))
}

func numbers(xs []float64) []Number {
	out := make([]Number, len(xs))
	for i, x := range xs {
		out[i] = Number(x)
	}
	return out
}

// readKeyMetrics reads a finished run's key metrics from its manifest.
func readKeyMetrics(dir string) (KeyMetrics, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return KeyMetrics{}, err
	}
	if m.Summary == nil {
		return KeyMetrics{}, fmt.Errorf("%s: no metrics summary in the manifest; run the metrics stage", dir)
	}
	sum := m.Summary
	km := KeyMetrics{
		Epoch: m.Checkpoint.Meta.Epoch, Step: m.Checkpoint.Meta.Step,
		ChrF: Number(math.NaN()), BLEU: Number(math.NaN()),
		SuspectShare: sum.SuspectShare,
		Flags:        sum.Flags,
		Diagonality:  numbers(sum.LayerMeans(metrics.HeadTable[metrics.HeadDiagonality].ShownPass(), store.KindCross, metrics.HeadTable[metrics.HeadDiagonality].Name)),
		AER:          numbers(sum.LayerMeans(metrics.HeadTable[metrics.HeadAER].ShownPass(), store.KindCross, metrics.HeadTable[metrics.HeadAER].Name)),
	}
	if sum.CorpusChrF != nil {
		km.ChrF = Number(*sum.CorpusChrF)
	}
	if sum.CorpusBLEU != nil {
		km.BLEU = Number(*sum.CorpusBLEU)
	}
	return km, nil
}
