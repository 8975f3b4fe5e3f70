package metrics

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Calibration modes of the detector thresholds (thresholds.calibration).
const (
	// CalibrateDetached takes, per detector, the score that catches
	// calibration_share of the calibrating run's detached pairs.
	CalibrateDetached = "detached"
	// CalibrateFreeQuantile takes, per detector, the free-pass score at the
	// calibrating run's worst free_quantile share.
	CalibrateFreeQuantile = "free_quantile"
)

// Threshold is one detector's threshold: a sentence whose score is at or
// beyond Value (below it for Direction "below", above it for "above") is
// past the threshold.
type Threshold struct {
	Detector  string   `json:"detector"`
	Value     *float64 `json:"value"` // nil: none could be calibrated (no scores)
	Direction string   `json:"direction"`
	// Source says how Value was made: "detached-pairs@0.90" (catches 90%
	// of detached pairs), "free-quantile@0.05" (the worst 5% of a run's
	// free pass) or "config" (thresholds.absolute_thresholds).
	Source string `json:"source"`
	// N is the number of scores Value was calibrated on.
	N int `json:"n,omitempty"`
}

// ThresholdSet is the detector thresholds a run used, recorded in its
// summary: made by the run itself, or carried verbatim from the run named
// by thresholds_from (audit carries its baseline's to every later
// checkpoint), so a sentence's flags do not depend on the other sentences
// of the run that judges it.
type ThresholdSet struct {
	// CalibratedOn is the run folder whose scores gave the values (the
	// metrics stage sets it); CalibratedAt when.
	CalibratedOn string    `json:"calibrated_on,omitempty"`
	CalibratedAt time.Time `json:"calibrated_at,omitzero"`
	// Suspect are the detectors whose thresholds raise
	// hallucination_suspect (thresholds.suspect_detectors).
	Suspect []string `json:"suspect_detectors"`
	// Detectors holds every detector's threshold, in SentenceTable order;
	// pool-relative detectors have none (see SentenceMetric.Pooled).
	Detectors []Threshold `json:"detectors"`
	// WassComboTau is τ of this run's wass_combo: wass_to_unif above it is
	// rescaled. Not carried: it describes the run's own pool.
	WassComboTau *float64 `json:"wass_combo_tau,omitempty"`
}

// Find returns the threshold of a detector.
func (s *ThresholdSet) Find(detector string) (Threshold, bool) {
	if s == nil {
		return Threshold{}, false
	}
	for _, t := range s.Detectors {
		if t.Detector == detector {
			return t, true
		}
	}
	return Threshold{}, false
}

// SameValues reports whether s and o hold the same thresholds (values,
// sources and suspect detectors); where and when they were made aside.
func (s *ThresholdSet) SameValues(o *ThresholdSet) bool {
	if s == nil || o == nil {
		return s == o
	}
	if !slices.Equal(s.Suspect, o.Suspect) || len(s.Detectors) != len(o.Detectors) {
		return false
	}
	for i, a := range s.Detectors {
		b := o.Detectors[i]
		if a.Detector != b.Detector || a.Direction != b.Direction || a.Source != b.Source || (a.Value == nil) != (b.Value == nil) ||
			(a.Value != nil && *a.Value != *b.Value) {
			return false
		}
	}
	return true
}

// Carry returns the thresholds to use in another run: the same values and
// origin, without this run's wass_combo τ.
func (s *ThresholdSet) Carry() *ThresholdSet {
	c := *s
	c.Suspect = slices.Clone(s.Suspect)
	c.Detectors = slices.Clone(s.Detectors)
	c.WassComboTau = nil
	return &c
}

// Describe says where a threshold comes from, in words: "the score that
// catches 90% of the detached pairs of RUN".
func (s *ThresholdSet) Describe(t Threshold) string {
	on := ""
	if s != nil && s.CalibratedOn != "" {
		on = " of " + s.CalibratedOn
	}
	method, arg, _ := strings.Cut(t.Source, "@")
	q, _ := strconv.ParseFloat(arg, 64)
	switch method {
	case "detached-pairs":
		return fmt.Sprintf("the score catching %s of the detached pairs%s", percent(q), on)
	case "free-quantile":
		return fmt.Sprintf("the worst %s of the free pass%s", percent(q), on)
	}
	return "configured"
}

// Past reports whether score is at or beyond the threshold; NaN scores and
// missing thresholds never are.
func (t Threshold) Past(score float64) bool {
	if t.Value == nil || math.IsNaN(score) {
		return false
	}
	if t.Direction == "below" {
		return score <= *t.Value
	}
	return score >= *t.Value
}

// direction names a detector orientation (SentenceMetric.Detector).
func direction(d int) string {
	if d < 0 {
		return "below"
	}
	return "above"
}

// CalibrationScores are the scores one run offers for calibration, per
// detector name: those of its detached pairs and of its free pass.
type CalibrationScores struct {
	Detached, Free map[string][]float64
}

// Calibrate makes every self-contained detector's threshold from a run's
// scores as t says: the configured absolute value where there is one, else
// the score that catches at least calibration_share of the detached pairs
// (the k-th most suspicious of n, k = ⌈share·n⌉, so that a sentence scoring
// like it is past it), or the free-pass quantile. A detector without
// scores gets no value and flags nothing.
func Calibrate(t Thresholds, sc CalibrationScores) *ThresholdSet {
	abs, _ := t.AbsoluteValues() // validated with the config
	set := &ThresholdSet{Suspect: t.SuspectList()}
	for _, d := range Detectors() {
		if d.Pooled {
			continue
		}
		th := Threshold{Detector: d.Name, Direction: direction(d.Detector)}
		switch v, ok := abs[d.Name]; {
		case ok:
			th.Value, th.Source = &v, "config"
		case t.Calibration == CalibrateFreeQuantile:
			th.Source = fmt.Sprintf("free-quantile@%.2f", t.FreeQuantile)
			xs := sortedFinite(sc.Free[d.Name])
			q := t.FreeQuantile
			if d.Detector > 0 {
				q = 1 - q
			}
			th.Value, th.N = finite(quantileSorted(xs, q)), len(xs)
		default:
			th.Source = fmt.Sprintf("detached-pairs@%.2f", t.CalibrationShare)
			xs := sortedFinite(sc.Detached[d.Name])
			th.Value, th.N = catching(xs, d.Detector, t.CalibrationShare), len(xs)
		}
		set.Detectors = append(set.Detectors, th)
	}
	return set
}

// catching is the score that at least share of the sorted scores xs are at
// or beyond, in the detector's direction: the k-th most suspicious,
// k = ⌈share·n⌉. nil without scores.
func catching(xs []float64, detector int, share float64) *float64 {
	n := len(xs)
	if n == 0 {
		return nil
	}
	k := min(max(int(math.Ceil(share*float64(n)-1e-9)), 1), n)
	if detector < 0 { // low is suspicious: the k-th lowest
		return finite(xs[k-1])
	}
	return finite(xs[n-k])
}

// SuspectList is thresholds.suspect_detectors as a list.
func (t Thresholds) SuspectList() []string {
	var out []string
	for _, d := range strings.Split(t.SuspectDetectors, ",") {
		if d = strings.TrimSpace(d); d != "" {
			out = append(out, d)
		}
	}
	return out
}

// AbsoluteValues parses thresholds.absolute_thresholds, "detector=value,…".
func (t Thresholds) AbsoluteValues() (map[string]float64, error) {
	out := map[string]float64{}
	for _, kv := range strings.Split(t.Absolute, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		name, val, ok := strings.Cut(kv, "=")
		name = strings.TrimSpace(name)
		if !ok {
			return nil, fmt.Errorf("thresholds.absolute_thresholds %q: want detector=value", kv)
		}
		if err := selfContained(name); err != nil {
			return nil, fmt.Errorf("thresholds.absolute_thresholds: %w", err)
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("thresholds.absolute_thresholds %q: %q is not a number", kv, val)
		}
		out[name] = v
	}
	return out, nil
}

// selfContained checks that name is a detector whose score depends on its
// own example only, so a fixed threshold on it means the same in every run.
func selfContained(name string) error {
	var names []string
	pooled := false
	for _, d := range Detectors() {
		if !d.Pooled {
			names = append(names, d.Name)
		} else if d.Name == name {
			pooled = true
		}
	}
	switch {
	case slices.Contains(names, name):
		return nil
	case pooled:
		return fmt.Errorf("%s is relative to the run's own reference pool, so a fixed threshold on it would still move with the run; use one of %s", name, strings.Join(names, ", "))
	}
	return fmt.Errorf("unknown detector %q (want one of %s)", name, strings.Join(names, ", "))
}
