package report

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"

	"attnaudit/metrics"
	"attnaudit/store"
)

// flagNames returns the names of the flags set on s.
func flagNames(s store.SentenceMetrics) []string { return s.Flags.Names() }

// Selection is which examples report.html shows in full: the most flagged
// ones, a random sample of the others, and the gallery.
type Selection struct {
	Worst     []int32 // flagged examples, the most flagged first, at most Options.WorstExamples
	Flagged   int     // flagged examples in the run
	Sampled   []int32 // unflagged examples drawn at random, at most Options.SampleExamples
	Unflagged int
	Gallery   []GalleryCategory
}

// GalleryCategory is one kind of attention the gallery shows examples of.
type GalleryCategory struct {
	Name string
	Why  string // how the examples were picked
	IDs  []int32
}

// IDs returns every example the selection shows, sorted, without repeats:
// the ones whose attention RunData.Attention must hold.
func (s Selection) IDs() []int32 {
	ids := slices.Concat(s.Worst, s.Sampled)
	for _, g := range s.Gallery {
		ids = append(ids, g.IDs...)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// Select picks the examples report.html shows, from sentence and head
// metrics only, so pipeline can load just their attention. It is
// deterministic for given data and options.
func Select(data RunData, opts Options) Selection {
	sents := freeSentences(data.Sentences)
	var sel Selection
	var flagged, clean []store.SentenceMetrics
	for _, s := range sents {
		if len(flagNames(s)) > 0 {
			flagged = append(flagged, s)
		} else {
			clean = append(clean, s)
		}
	}
	sort.SliceStable(flagged, func(i, j int) bool {
		a, b := flagged[i], flagged[j]
		if na, nb := len(flagNames(a)), len(flagNames(b)); na != nb {
			return na > nb
		}
		if a.Flags[metrics.FlagHallucinationSuspect] != b.Flags[metrics.FlagHallucinationSuspect] {
			return a.Flags[metrics.FlagHallucinationSuspect]
		}
		return less(a.Value(metrics.SentSeqLogprob), b.Value(metrics.SentSeqLogprob), a.ExampleID, b.ExampleID)
	})
	sel.Flagged, sel.Unflagged = len(flagged), len(clean)
	for _, s := range flagged[:min(len(flagged), opts.WorstExamples)] {
		sel.Worst = append(sel.Worst, s.ExampleID)
	}
	rng := rand.New(rand.NewPCG(uint64(opts.SampleSeed), 0x5eed))
	perm := rng.Perm(len(clean))
	for _, i := range perm[:min(len(clean), opts.SampleExamples)] {
		sel.Sampled = append(sel.Sampled, clean[i].ExampleID)
	}
	slices.Sort(sel.Sampled)
	sel.Gallery = gallery(data, sents, opts)
	return sel
}

// less orders by a ascending with NaN last, then by id.
func less(a, b float32, ida, idb int32) bool {
	na, nb := math.IsNaN(float64(a)), math.IsNaN(float64(b))
	switch {
	case na != nb:
		return nb
	case !na && a != b:
		return a < b
	}
	return ida < idb
}

func freeSentences(rows []store.SentenceMetrics) []store.SentenceMetrics {
	var out []store.SentenceMetrics
	for _, s := range rows {
		if s.Pass == store.PassFree || s.Pass == "" {
			out = append(out, s)
		}
	}
	return out
}

// scored is a candidate for a gallery category.
type scored struct {
	id    int32
	score float64
}

func top(c []scored, k int) []int32 {
	sort.SliceStable(c, func(i, j int) bool {
		if c[i].score != c[j].score {
			return c[i].score > c[j].score
		}
		return c[i].id < c[j].id
	})
	var out []int32
	for _, s := range c[:min(k, len(c))] {
		out = append(out, s.id)
	}
	return out
}

// gallery picks examples of four kinds of attention: clean and phrasal
// alignment from the cross-attention head metrics of the report's layer,
// suspected hallucinations and repetition from the sentence detectors.
func gallery(data RunData, sents []store.SentenceMetrics, opts Options) []GalleryCategory {
	k := opts.GalleryExamples
	if k == 0 {
		return nil
	}
	layerOf := func(eh ExampleHeads) (diag, ent float64) {
		l, err := resolveLayer(opts.Layer, len(eh.Diagonality), crossName)
		if err != nil {
			return math.NaN(), math.NaN()
		}
		return eh.Diagonality[l], eh.EntropyNorm[l]
	}
	srcLen := map[int32]int{}
	for _, e := range data.Examples {
		srcLen[e.ExampleID] = len(e.SrcPieces)
	}
	var cleanC, phrasalC, hallC, repC []scored
	var diags []float64
	unflagged := map[int32]bool{}
	for _, s := range sents {
		if len(flagNames(s)) == 0 {
			unflagged[s.ExampleID] = true
		}
	}
	for _, s := range sents {
		if d, _ := layerOf(data.Heads.Examples[s.ExampleID]); !math.IsNaN(d) {
			diags = append(diags, d)
		}
	}
	sort.Float64s(diags)
	medDiag := math.NaN()
	if len(diags) > 0 {
		medDiag = diags[len(diags)/2]
	}
	for _, s := range sents {
		id := s.ExampleID
		eh, ok := data.Heads.Examples[id]
		if ok && unflagged[id] {
			d, e := layerOf(eh)
			if !math.IsNaN(d) && !math.IsNaN(e) {
				cleanC = append(cleanC, scored{id, d - e})
				if d >= medDiag && e < 0.9 && srcLen[id] >= 4 {
					phrasalC = append(phrasalC, scored{id, e})
				}
			}
		}
		if s.Flags[metrics.FlagHallucinationSuspect] || s.Flags[metrics.FlagDiffuseAttention] || s.Flags[metrics.FlagSinkDominated] {
			score := float64(s.Value(metrics.SentWassCombo))
			if math.IsNaN(score) {
				score = -float64(s.Value(metrics.SentSeqLogprob))
			}
			hallC = append(hallC, scored{id, score})
		}
		if rep := float64(s.Value(metrics.SentRepNgram)); s.Flags[metrics.FlagCopying] || rep > 0 {
			repC = append(repC, scored{id, nanZero(rep) + nanZero(float64(s.Value(metrics.SentRepeatMass)))})
		}
	}
	cleanIDs := top(cleanC, k)
	var phrasal []scored
	for _, c := range phrasalC {
		if !slices.Contains(cleanIDs, c.id) {
			phrasal = append(phrasal, c)
		}
	}
	return []GalleryCategory{
		{Name: "Clean alignment", Why: "unflagged examples with the highest cross-attention diagonality minus normalised entropy at the report's layer", IDs: cleanIDs},
		{Name: "Phrasal alignment", Why: "unflagged examples at or above the median diagonality whose steps spread over neighbouring source tokens (highest entropy below 0.9): many-to-one, phrase-level alignment", IDs: top(phrasal, k)},
		{Name: "Suspected hallucination", Why: "examples flagged hallucination_suspect, diffuse_attention or sink_dominated, highest Wasserstein score (else lowest Seq-Logprob) first", IDs: top(hallC, k)},
		{Name: "Repetition", Why: "examples with repeated 3-grams or copying, highest rep_ngram + repeat_mass first", IDs: top(repC, k)},
	}
}

func nanZero(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}
