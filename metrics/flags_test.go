package metrics

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// seqSet is a threshold set flagging seq_logprob at or below v.
func seqSet(v float64) *ThresholdSet {
	return &ThresholdSet{Suspect: []string{"seq_logprob"},
		Detectors: []Threshold{{Detector: "seq_logprob", Value: &v, Direction: "below", Source: "detached-pairs@0.90"}}}
}

func TestFlagSentence(t *testing.T) {
	l := Limits{Detectors: seqSet(-1.905), Thresholds: DefaultConfig().Thresholds}
	s := SentenceScores{SeqLogprob: -2.31, WassCombo: .1, CrossEntropyNormMedian: .95, CrossLastMass: .2,
		CrossHeadDiversity: .3, RepNgram: 0, RepeatMass: .1, NonCausalEntropyNorm: .5}
	f, why := FlagSentence(s, l)
	if got := f.Names(); !slices.Equal(got, []string{"hallucination_suspect", "diffuse_attention"}) {
		t.Errorf("flags %v", got)
	}
	if len(why) != 2 || why[0] != "seq_logprob -2.310 is at or below its threshold -1.905" {
		t.Errorf("reasons %q", why)
	}
	// At the threshold is past it; just above is not.
	s.SeqLogprob = -1.905
	if f, _ := FlagSentence(s, l); !f[FlagHallucinationSuspect] {
		t.Error("a score equal to the threshold is not flagged")
	}
	s.SeqLogprob = -1.9
	if f, _ := FlagSentence(s, l); f[FlagHallucinationSuspect] {
		t.Error("a score above the threshold is flagged")
	}
	s.ZeroRows, s.MaxRowSumErr = 2, 1
	f, why = FlagSentence(s, l)
	if !f[FlagBrokenMask] || !strings.Contains(JoinReasons(why), "2 attention rows are all zero") {
		t.Errorf("broken mask: %+v %q", f, why)
	}
	// NaN scores and missing thresholds raise nothing.
	f, _ = FlagSentence(SentenceScores{SeqLogprob: nan, WassCombo: nan, CrossEntropyNormMedian: nan, CrossLastMass: nan,
		CrossHeadDiversity: nan, RepNgram: nan, RepeatMass: nan, NonCausalEntropyNorm: nan}, l)
	if len(f.Names()) != 0 {
		t.Errorf("NaN scores flagged %v", f.Names())
	}
	none := &ThresholdSet{Suspect: []string{"seq_logprob"}, Detectors: []Threshold{{Detector: "seq_logprob", Direction: "below"}}}
	if f, _ := FlagSentence(SentenceScores{SeqLogprob: -50}, Limits{Detectors: none}); f[FlagHallucinationSuspect] {
		t.Error("a detector without a threshold flagged")
	}
}

// TestCalibrate checks each calibration against hand-counted order
// statistics.
func TestCalibrate(t *testing.T) {
	th := DefaultConfig().Thresholds
	th.Calibration = CalibrateDetached
	th.SuspectDetectors = "seq_logprob,wass_to_unif"
	// Ten detached seq_logprobs −10 … −1: 90% is k = 9 of them, so the 9th
	// lowest, −2, catches −10 … −2. wass_to_unif .1 … 1.0 (high is
	// suspicious): the 9th highest is .2.
	sc := CalibrationScores{Detached: map[string][]float64{}, Free: map[string][]float64{}}
	for i := 1; i <= 10; i++ {
		sc.Detached["seq_logprob"] = append(sc.Detached["seq_logprob"], -float64(11-i))
		sc.Detached["wass_to_unif"] = append(sc.Detached["wass_to_unif"], float64(i)/10)
		sc.Free["seq_logprob"] = append(sc.Free["seq_logprob"], -0.1*float64(i))
	}
	sc.Detached["seq_logprob"] = append(sc.Detached["seq_logprob"], nan) // ignored
	set := Calibrate(th, sc)
	if !slices.Equal(set.Suspect, []string{"seq_logprob", "wass_to_unif"}) {
		t.Errorf("suspect detectors %v", set.Suspect)
	}
	seq, _ := set.Find("seq_logprob")
	near(t, "detached seq_logprob", *seq.Value, -2, 0)
	if seq.Direction != "below" || seq.Source != "detached-pairs@0.90" || seq.N != 10 {
		t.Errorf("seq_logprob threshold %+v", seq)
	}
	unif, _ := set.Find("wass_to_unif")
	near(t, "detached wass_to_unif", *unif.Value, .2, 1e-12)
	if _, ok := set.Find("wass_combo"); ok {
		t.Error("the pool-relative wass_combo got a threshold")
	}
	if ign, _ := set.Find("ign_src"); ign.Value != nil {
		t.Errorf("ign_src without scores got %v", *ign.Value)
	}
	// It catches at least the share asked for, on odd counts too.
	for _, n := range []int{1, 3, 7, 19} {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = -float64(i)
		}
		set := Calibrate(th, CalibrationScores{Detached: map[string][]float64{"seq_logprob": xs}})
		s, _ := set.Find("seq_logprob")
		caught := 0
		for _, x := range xs {
			if s.Past(x) {
				caught++
			}
		}
		if float64(caught) < 0.9*float64(n) || caught > n {
			t.Errorf("n=%d: catches %d", n, caught)
		}
	}

	// free_quantile: the 5% quantile of −0.1 … −1.0 is −1 + 0.45·0.1.
	th.Calibration = CalibrateFreeQuantile
	seq, _ = Calibrate(th, sc).Find("seq_logprob")
	near(t, "free-quantile seq_logprob", *seq.Value, -0.955, 1e-12)
	if seq.Source != "free-quantile@0.05" {
		t.Errorf("source %q", seq.Source)
	}
	// An absolute value wins over calibration.
	th.Absolute = "seq_logprob=-3.5"
	seq, _ = Calibrate(th, sc).Find("seq_logprob")
	if *seq.Value != -3.5 || seq.Source != "config" {
		t.Errorf("absolute: %+v", seq)
	}
}

func TestThresholdConfigIsValidated(t *testing.T) {
	for _, c := range []struct {
		set  func(*Thresholds)
		want string
	}{
		{func(t *Thresholds) { t.SuspectDetectors = "wass_combo" }, "relative to the run's own reference pool"},
		{func(t *Thresholds) { t.SuspectDetectors = "seq_logprb" }, `unknown detector "seq_logprb"`},
		{func(t *Thresholds) { t.Absolute = "seq_logprob" }, "want detector=value"},
		{func(t *Thresholds) { t.Absolute = "seq_logprob=x" }, "is not a number"},
		{func(t *Thresholds) { t.Calibration = "run" }, "thresholds.calibration"},
		{func(t *Thresholds) { t.CalibrationShare = 0 }, "calibration_share"},
	} {
		cfg := DefaultConfig()
		c.set(&cfg.Thresholds)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", cfg.Thresholds, err, c.want)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Error(err)
	}
}

// TestFlagRulesRenderTheirThresholds: the rule texts carry the thresholds,
// their source and the layer actually used, not the defaults.
func TestFlagRulesRenderTheirThresholds(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Layer = 2
	cfg.Thresholds.SinkLastMass = 0.7
	cfg.Thresholds.DiffuseEntropyNorm = 0.85
	set := seqSet(-2.5)
	set.CalibratedOn = "runs/base"
	l := Limits{Detectors: set, Thresholds: cfg.Thresholds}
	for f, want := range map[FlagIndex][]string{
		FlagSinkDominated:        {"70%", "decoder layer 2's"},
		FlagDiffuseAttention:     {"0.85", "decoder layer 2's"},
		FlagHallucinationSuspect: {"seq_logprob at or below -2.500 (the score catching 90% of the detached pairs of runs/base)"},
	} {
		got := FlagTable[f].Rule(l, cfg)
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s rule %q lacks %q", f.Name(), got, w)
			}
		}
	}
	for i, r := range FlagTable {
		if r.Name == "" || r.Doc == "" || r.Rule == nil || r.Test == nil {
			t.Errorf("flag %d incompletely described: %+v", i, r)
		}
	}
}

// runOf scores examples 0…n−1 of a synthetic dataset: example i's free
// pass has seq_logprob −0.1·(i mod 30), its detached pair −1 − 0.2·(i mod
// 17), its forced pass −0.5; its π leans on the first token by i mod 5.
func runOf(cfg Config, n int, carried *ThresholdSet) []*PassResult {
	r := NewRun(cfg, nil)
	if carried != nil {
		r.UseThresholds(carried)
	}
	for i := range n {
		id := int32(i)
		w := float64(i%5) / 10
		pi := []float64{0.5 + w, 0.5 - w}
		for _, p := range []struct {
			pass string
			seq  float64
		}{{PassDetached, -1 - 0.2*float64(i%17)}, {PassForced, -0.5}, {PassFree, -0.1 * float64(i%30)}} {
			r.AddSentence(id, p.pass, PassScores{Sentence: SentenceScores{SeqLogprob: p.seq, WassToUnif: WassToUnif(pi),
				IgnSrc: nan, RepeatMass: nan, RepNgram: 0, CrossEntropyNormMedian: .5, CrossLastMass: .1,
				CrossHeadDiversity: .3, NonCausalEntropyNorm: .5}, Pi: pi, TargetLen: 10 + i%7})
		}
	}
	rows, _ := r.Finish()
	return rows
}

// TestFlagsDoNotMoveWithTheRun: with the thresholds of a calibrating run,
// an example's flags are the same whatever other examples the dataset
// holds; run-relative thresholds would have moved them.
func TestFlagsDoNotMoveWithTheRun(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Thresholds.Calibration = CalibrateDetached
	cfg.Thresholds.SuspectDetectors = "seq_logprob,wass_to_unif"
	base := NewRun(cfg, nil)
	for i := range 40 {
		base.AddSentence(int32(i), PassDetached, PassScores{Sentence: SentenceScores{SeqLogprob: -1.5 - float64(i%9)/4,
			WassToUnif: float64(i%10) / 10, IgnSrc: nan, WassToData: nan, RepeatMass: nan}})
	}
	_, sum := base.Finish()
	set := sum.Thresholds
	if seq, _ := set.Find("seq_logprob"); seq.Value == nil {
		t.Fatal("no seq_logprob threshold calibrated")
	}

	flagsOf := func(rows []*PassResult) map[string]string {
		out := map[string]string{}
		for _, p := range rows {
			out[fmt.Sprint(p.ExampleID, p.Pass)] = fmt.Sprint(p.Flags.Names(), p.Reasons)
		}
		return out
	}
	small, large := flagsOf(runOf(cfg, 60, set)), flagsOf(runOf(cfg, 600, set))
	suspects := 0
	for k, f := range small {
		if large[k] != f {
			t.Errorf("%s: flags %s with 60 examples, %s with 600", k, f, large[k])
		}
		if strings.Contains(f, "hallucination_suspect") {
			suspects++
		}
	}
	if suspects == 0 || suspects == len(small) {
		t.Errorf("%d of %d passes suspect: the test would not notice a change", suspects, len(small))
	}
}
