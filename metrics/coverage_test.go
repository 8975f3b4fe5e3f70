package metrics

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestPartialPassScoresTheStoredLayers blanks layers of a pass as a run
// storing some layers would: every head score of a stored layer equals
// the full pass's, scores that read the stored audited layer equal the
// full pass's, and those that need every layer of a kind, or a layer not
// stored, are NaN.
func TestPartialPassScoresTheStoredLayers(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	full := randomPass(rng, 9)
	norms := make([][][]float32, 6)
	for l := range norms {
		for range 8 {
			v := make([]float32, 9)
			for j := range v {
				v[j] = 0.5 + rng.Float32()
			}
			norms[l] = append(norms[l], v)
		}
	}
	full.CrossNorms = norms
	cfg := DefaultConfig() // metrics.layer -1, aer_layer -2
	want := ScorePass(full, cfg)

	blank := func(keep ...int) PassInput {
		in := full
		in.EncoderSelf, in.DecoderSelf, in.Cross = nil, nil, nil
		for l := range 6 {
			kept := false
			for _, k := range keep {
				kept = kept || k == l
			}
			var e, d, c []Matrix
			if kept {
				e, d, c = full.EncoderSelf[l], full.DecoderSelf[l], full.Cross[l]
			}
			in.EncoderSelf, in.DecoderSelf, in.Cross = append(in.EncoderSelf, e), append(in.DecoderSelf, d), append(in.Cross, c)
		}
		in.Partial = Partial{EncoderSelf: true, DecoderSelf: true, Cross: true}
		return in
	}
	same := func(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

	got := ScorePass(blank(0, 5), cfg)
	for _, l := range []int{0, 5} {
		if !reflect.DeepEqual(fmtScores(got.Cross[l]), fmtScores(want.Cross[l])) ||
			!reflect.DeepEqual(fmtScores(got.DecoderSelf[l]), fmtScores(want.DecoderSelf[l])) {
			t.Errorf("layer %d head scores differ from the full pass's", l)
		}
	}
	if got.Cross[2] != nil {
		t.Errorf("layer 2 has scores %v, was not stored", got.Cross[2])
	}
	g, w := got.Sentence, want.Sentence
	for name, p := range map[string][2]float64{"ign_src": {g.IgnSrc, w.IgnSrc}, "wass_to_unif": {g.WassToUnif, w.WassToUnif},
		"ign_src_norm": {g.IgnSrcNorm, w.IgnSrcNorm}, "cross_last_mass": {g.CrossLastMass, w.CrossLastMass},
		"cross_head_diversity": {g.CrossHeadDiversity, w.CrossHeadDiversity}, "seq_logprob": {g.SeqLogprob, w.SeqLogprob}} {
		if !same(p[0], p[1]) || math.IsNaN(p[0]) {
			t.Errorf("%s = %v, full pass %v", name, p[0], p[1])
		}
	}
	if !reflect.DeepEqual(got.Pi, want.Pi) {
		t.Error("π of the audited layer differs")
	}
	for name, v := range map[string]float64{"repeat_mass": g.RepeatMass, "src_contribution": g.SrcContribution,
		"non-causal entropy": g.NonCausalEntropyNorm, "aer (layer 4 not stored)": g.AER} {
		if !math.IsNaN(v) {
			t.Errorf("%s = %v, want NaN (its layers are not all stored)", name, v)
		}
	}
	if math.IsNaN(w.AER) || math.IsNaN(w.RepeatMass) || math.IsNaN(w.SrcContribution) {
		t.Fatal("the full pass lacks a score the test relies on")
	}

	// Layer 4 (aer_layer -2) stored, the last not: AER is the full pass's,
	// the audited layer's scores NaN.
	got = ScorePass(blank(4), cfg)
	if !same(got.Sentence.AER, w.AER) || !math.IsNaN(got.Sentence.IgnSrc) || !math.IsNaN(got.Sentence.CrossHeadDiversity) || got.Pi != nil {
		t.Errorf("layer 4 only: aer %v (full %v), ign_src %v, diversity %v, π %v", got.Sentence.AER, w.AER,
			got.Sentence.IgnSrc, got.Sentence.CrossHeadDiversity, got.Pi)
	}
}

func fmtScores(hs []HeadScores) [][]float64 {
	out := make([][]float64, len(hs))
	for i, h := range hs {
		for _, v := range h {
			if math.IsNaN(v) {
				v = -999
			}
			out[i] = append(out[i], v)
		}
	}
	return out
}

// TestCoverageOmissions checks the reasons for a run that stored the free
// pass's last cross-attention layer (6 layers a side): by hand.
func TestCoverageOmissions(t *testing.T) {
	layers := map[string]int{KindEncoderSelf: 6, KindDecoderSelf: 6, KindCross: 6}
	c := &Coverage{Store: "free,cross,layer=-1", Layers: layers, Keeps: func(pass, kind string, layer int) bool {
		return pass == PassFree && kind == KindCross && layer == 5
	}}
	if p := c.Partial(PassFree); p != (Partial{true, true, true}) {
		t.Errorf("Partial(free) = %+v", p)
	}
	var nilCov *Coverage
	if nilCov.Partial(PassFree) != (Partial{}) || nilCov.Omissions(DefaultConfig(), []string{PassFree}) != nil {
		t.Error("a nil coverage (everything stored) omits something")
	}
	got := c.Omissions(DefaultConfig(), []string{PassForced, PassFree})
	const why = ` (store "free,cross,layer=-1")`
	want := []Omission{
		{"head metrics of encoder_self attention", []string{PassForced, PassFree}, "not stored" + why},
		{"head metrics of decoder_self attention", []string{PassForced, PassFree}, "not stored" + why},
		{"head metrics of cross attention", []string{PassForced}, "not stored" + why},
		{"ign_src, ign_src_norm, wass_to_unif, wass_to_unif_norm, wass_to_data, wass_combo; flags diffuse_attention, sink_dominated, no_head_diversity",
			[]string{PassForced}, "they read cross-attention layer 5 (metrics.layer -1), not stored" + why},
		{"aer, aer_norm", []string{PassForced}, "they read cross-attention layer 4 (metrics.aer_layer -2), not stored" + why},
		{"src_contribution", []string{PassForced, PassFree}, "it reads every cross-attention layer, not all stored" + why},
		{"repeat_mass; the copying flag's attention test (repeated 3-grams still flag)", []string{PassForced, PassFree}, "it reads every decoder_self layer, not all stored" + why},
		{"flag untrained_like", []string{PassForced, PassFree}, "it reads every encoder_self and cross layer, not all stored" + why},
		{"flag broken_mask on the heads not stored", []string{PassForced, PassFree}, "it checks the stored heads only" + why},
		{"head metrics of cross attention, layers 0, 1, 2, 3, 4", []string{PassFree}, "not stored" + why},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("omissions:\n%+v\nwant\n%+v", got, want)
	}
}
