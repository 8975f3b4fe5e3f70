package metrics

// Passes, as the files and the summary name them. The values sort in the
// files' order: detached < forced < free.
const (
	PassDetached = "detached" // a source forced with another example's reference
	PassForced   = "forced"   // the reference translation
	PassFree     = "free"     // the model's own output
)

// PassResult is one example × pass of a run: its sentence scores, with the
// pool-relative ones, and its flags once Run.Finish has set them.
type PassResult struct {
	ExampleID int32
	Pass      string
	Scores    SentenceScores
	// Pi is π of the audited layer and TargetLen the target's length,
	// kept for the reference pool.
	Pi        []float64
	TargetLen int
	Flags     Flags
	Reasons   string // "; "-joined, as sentence_metrics.parquet stores them
}

// Run scores a whole run. The metrics stage hands it every pass's head
// scores in the order it scans attention (AddHeads: the per-layer summary
// samples in that order), every pass's sentence scores in file order
// (AddSentence) and every hypothesis with its reference (AddReference);
// Finish then scores each sentence against the reference pool, resolves
// the thresholds, sets the flags and evaluates the detectors.
type Run struct {
	cfg      Config
	labels   map[int32]bool
	carried  *ThresholdSet
	name     string
	heads    *HeadSummarizer
	rows     []*PassResult
	examples int
	refs     int
	chrf     ChrFStats
	bleu     BLEUStats
}

// NewRun starts scoring a run. labels are the dataset's hallucination
// labels by example id, for evaluating the detectors; nil for none.
func NewRun(cfg Config, labels map[int32]bool) *Run {
	return &Run{cfg: cfg, labels: labels, heads: NewHeadSummarizer()}
}

// UseThresholds makes the run flag with the detector thresholds of
// another run (thresholds_from) instead of calibrating its own.
func (r *Run) UseThresholds(t *ThresholdSet) { r.carried = t.Carry() }

// Name names the run (its folder), recorded as where the thresholds it
// calibrates come from.
func (r *Run) Name(name string) { r.name = name }

// AddHeads adds one pass's head scores to the per-layer summary.
func (r *Run) AddHeads(pass string, sc PassScores) {
	// In a fixed order: the summarizer's seeded sampling depends on it (a
	// map's order would make large runs' quantiles differ run to run).
	for _, k := range []struct {
		kind   string
		layers [][]HeadScores
	}{{KindEncoderSelf, sc.EncoderSelf}, {KindDecoderSelf, sc.DecoderSelf}, {KindCross, sc.Cross}} {
		for l, hs := range k.layers {
			if len(hs) == 0 { // a layer the run did not store
				continue
			}
			r.heads.Add(pass, k.kind, l, hs)
		}
	}
}

// AddSentence adds one pass's sentence scores.
func (r *Run) AddSentence(id int32, pass string, sc PassScores) {
	r.rows = append(r.rows, &PassResult{ExampleID: id, Pass: pass, Scores: sc.Sentence, Pi: sc.Pi, TargetLen: sc.TargetLen})
}

// AddExample counts an example and, when it has a reference, adds its
// hypothesis to the corpus chrF and BLEU.
func (r *Run) AddExample(hypothesis, reference string, hasReference bool) {
	r.examples++
	if hasReference {
		r.refs++
		r.chrf.Add(ChrFStatistics(hypothesis, reference))
		r.bleu.Add(BLEUStatistics(hypothesis, reference))
	}
}

// Finish completes the scores and returns the passes, in the order they
// were added, and the run summary. Its thresholds are the carried ones
// (UseThresholds), or calibrated on this run as cfg.Thresholds says.
func (r *Run) Finish() ([]*PassResult, *RunSummary) {
	sum, limits := r.poolScores()
	sum.Heads = r.heads.Summaries()
	sum.Examples = r.examples
	sum.References = r.refs
	if r.refs > 0 {
		c, b := r.chrf.Score(), r.bleu.Score(false)
		sum.CorpusChrF, sum.CorpusBLEU = &c, &b
	}
	sum.FlagRules = map[string]string{}
	for _, f := range FlagTable {
		sum.FlagRules[f.Name] = f.Rule(limits, r.cfg)
	}
	r.evaluateDetectors(sum)
	return r.rows, sum
}

// poolScores fills in wass_to_data and wass_combo against the reference
// pool (the run's free pass, leave-one-out), takes or calibrates the
// detector thresholds and sets the flags.
func (r *Run) poolScores() (*RunSummary, Limits) {
	cfg := r.cfg
	var entries []PoolEntry
	for _, p := range r.rows {
		if p.Pass == PassFree {
			entries = append(entries, PoolEntry{ID: p.ExampleID, Len: p.TargetLen, Pi: p.Pi})
		}
	}
	pool := NewPool(entries)
	var unif, data []float64
	for _, p := range r.rows {
		p.Scores.WassToData = pool.WassToData(p.ExampleID, p.TargetLen, p.Pi, cfg.WassK, cfg.LengthTolerance)
		if p.Pass == PassFree {
			unif = append(unif, p.Scores.WassToUnif)
			data = append(data, p.Scores.WassToData)
		}
	}
	combo := NewWassCombo(unif, data, cfg.ComboPercentile)
	for _, p := range r.rows {
		p.Scores.WassCombo = combo.Score(p.Scores.WassToUnif, p.Scores.WassToData)
	}
	set := r.carried
	if set == nil {
		set = Calibrate(cfg.Thresholds, r.calibrationScores())
		set.CalibratedOn = r.name
	}
	set.WassComboTau = finite(combo.Tau)
	limits := Limits{Detectors: set, Thresholds: cfg.Thresholds}
	sum := &RunSummary{Rows: map[string]int{}, Flags: map[string]map[string]int{}, Thresholds: set}
	suspects, free := 0, 0
	for _, p := range r.rows {
		sum.Rows[p.Pass]++
		flags, why := FlagSentence(p.Scores, limits)
		p.Flags, p.Reasons = flags, JoinReasons(why)
		if sum.Flags[p.Pass] == nil {
			sum.Flags[p.Pass] = map[string]int{}
		}
		for _, name := range flags.Names() {
			sum.Flags[p.Pass][name]++
		}
		if p.Pass == PassFree {
			free++
			if flags[FlagHallucinationSuspect] {
				suspects++
			}
		}
	}
	if free > 0 {
		sum.SuspectShare = float64(suspects) / float64(free)
	}
	return sum, limits
}

// calibrationScores are every detector's scores on the run's detached and
// free passes.
func (r *Run) calibrationScores() CalibrationScores {
	sc := CalibrationScores{Detached: map[string][]float64{}, Free: map[string][]float64{}}
	for _, p := range r.rows {
		var into map[string][]float64
		switch p.Pass {
		case PassDetached:
			into = sc.Detached
		case PassFree:
			into = sc.Free
		default:
			continue
		}
		for _, d := range Detectors() {
			into[d.Name] = append(into[d.Name], d.Get(p.Scores))
		}
	}
	return sc
}

// evaluateDetectors scores the detectors against the dataset's labels
// (free pass) and against detached pairs (detached vs forced passes).
func (r *Run) evaluateDetectors(sum *RunSummary) {
	var labelled, pairs []SentenceScores
	var labelPos, pairPos []bool
	for _, p := range r.rows {
		switch p.Pass {
		case PassFree:
			if l, ok := r.labels[p.ExampleID]; ok {
				labelled, labelPos = append(labelled, p.Scores), append(labelPos, l)
			}
		case PassDetached, PassForced:
			pairs, pairPos = append(pairs, p.Scores), append(pairPos, p.Pass == PassDetached)
		}
	}
	sum.Detectors = append(EvaluateDetectors("label", labelled, labelPos),
		EvaluateDetectors("detached", pairs, pairPos)...)
}
