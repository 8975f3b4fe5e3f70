package metrics

import (
	"slices"
	"strings"
	"testing"
)

func TestFlagSentence(t *testing.T) {
	// Pool seq_logprob −2.0 … −0.1: the 5% quantile is −2.0 + 0.95·0.1 = −1.905.
	var pool []float64
	for i := 1; i <= 20; i++ {
		pool = append(pool, -0.1*float64(i))
	}
	l := ResolveLimits(DefaultConfig().Thresholds, pool, []float64{.1, .2, .3, .4})
	near(t, "seq limit", l.SeqLogprob, -1.905, 1e-12)
	near(t, "combo limit", l.WassCombo, .385, 1e-12)
	s := SentenceScores{SeqLogprob: -2.31, WassCombo: .1, CrossEntropyNormMedian: .95, CrossLastMass: .2,
		CrossHeadDiversity: .3, RepNgram: 0, RepeatMass: .1, NonCausalEntropyNorm: .5}
	f, why := FlagSentence(s, l)
	if got := f.Names(); !slices.Equal(got, []string{"hallucination_suspect", "diffuse_attention"}) {
		t.Errorf("flags %v", got)
	}
	if len(why) != 2 || why[0] != "seq-logprob -2.31 is in the lowest 5% of this run (threshold -1.91)" {
		t.Errorf("reasons %q", why)
	}
	abs := -3.0
	th := DefaultConfig().Thresholds
	th.SeqLogprobMin = &abs
	l = ResolveLimits(th, pool, nil)
	s.ZeroRows, s.MaxRowSumErr = 2, 1
	f, why = FlagSentence(s, l)
	if f[FlagHallucinationSuspect] || !f[FlagBrokenMask] || !strings.Contains(JoinReasons(why), "2 attention rows are all zero") {
		t.Errorf("absolute threshold: %+v %q", f, why)
	}
	// NaN scores and thresholds raise nothing.
	f, _ = FlagSentence(SentenceScores{SeqLogprob: nan, WassCombo: nan, CrossEntropyNormMedian: nan, CrossLastMass: nan,
		CrossHeadDiversity: nan, RepNgram: nan, RepeatMass: nan, NonCausalEntropyNorm: nan}, l)
	if len(f.Names()) != 0 {
		t.Errorf("NaN scores flagged %v", f.Names())
	}
}

// TestFlagRulesRenderTheirThresholds: the rule texts carry the thresholds
// and layer actually configured, not the defaults.
func TestFlagRulesRenderTheirThresholds(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Layer = 2
	cfg.Thresholds.SinkLastMass = 0.7
	cfg.Thresholds.DiffuseEntropyNorm = 0.85
	l := ResolveLimits(cfg.Thresholds, []float64{-1, -2, -3}, []float64{.1, .2})
	for f, want := range map[FlagIndex][]string{
		FlagSinkDominated:        {"70%", "decoder layer 2's"},
		FlagDiffuseAttention:     {"0.85", "decoder layer 2's"},
		FlagHallucinationSuspect: {"in the lowest 5% of this run"},
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
