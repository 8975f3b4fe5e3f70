package metrics

import (
	"math"
	"slices"
)

// PassInput is one teacher-forced pass over one example: the tokens, the
// target's log-probabilities and every attention head, padding removed.
type PassInput struct {
	ExampleID int32
	// Pass is PassFree, PassForced or PassDetached. Gold alignments index
	// the reference's words, so AER is computed on the forced pass only.
	Pass string
	// Target is the text the decoder was forced over (the hypothesis for
	// the free pass, the reference for the forced pass); Reference is what
	// chrF and BLEU compare it with, when HasReference.
	Target       string
	Reference    string
	HasReference bool
	SrcPieces    []string // ending with EOS
	TgtPieces    []string // the predicted tokens, ending with EOS
	TgtIDs       []int32  // as TgtPieces
	Logprobs     []float32
	Gold         *Alignment // gold word alignment of the reference, or nil; used on the forced pass only
	// Attention per kind, [layer][head]. A kind the checkpoint does not
	// export is nil. A layer the run did not store (the store setting) has
	// no heads; its kind is then marked in Partial.
	EncoderSelf, DecoderSelf, Cross [][]Matrix
	// Partial marks the kinds the run stored only some layers of, or
	// none, for this pass: scores that need every layer of such a kind
	// (repeat_mass, src_contribution, the untrained_like flag's mean
	// entropy) are NaN, and the layer-bound ones are NaN where their layer
	// is missing.
	Partial Partial
	// EncoderNorms and CrossNorms are the value-vector norms of the
	// encoder's self-attention and of the cross-attention,
	// [layer][head][source position]; nil when the checkpoint does not
	// export them, and the norm-based scores are NaN.
	EncoderNorms, CrossNorms [][][]float32
}

// Partial says which attention kinds of a pass hold fewer than all of the
// model's layers because the run stored a selection.
type Partial struct{ EncoderSelf, DecoderSelf, Cross bool }

// SentenceScores are the sentence metrics of one pass. WassToData and
// WassCombo need the reference pool: ScorePass leaves them NaN and the
// stage fills them in with Pool and WassCombo.
type SentenceScores struct {
	SeqLogprob, IgnSrc                float64
	WassToUnif, WassToData, WassCombo float64
	RepeatMass, RepNgram              float64
	ChrF, BLEU, AER                   float64
	// Norm-based scores (normattn.go); NaN without value-vector norms.
	IgnSrcNorm, WassToUnifNorm, SrcContribution, AERNorm float64

	// Inputs of the attention flags.
	CrossEntropyNormMedian float64 // median entropy_norm of the audited layer's cross heads
	CrossLastMass          float64 // EOS mass of the audited layer's head-averaged cross-attention
	CrossHeadDiversity     float64 // head_diversity of the audited layer's cross heads
	MaxRowSumErr           float64 // over every head of every kind
	ZeroRows               int     // over every head of every kind
	NonCausalEntropyNorm   float64 // mean entropy_norm of encoder self and cross heads
}

// PassScores are all scores of one pass.
type PassScores struct {
	EncoderSelf, DecoderSelf, Cross [][]HeadScores // [layer][head]
	Sentence                        SentenceScores
	// Pi is π of the audited layer (SourceDistribution), kept for the
	// reference pool; TargetLen is the target length in tokens.
	Pi        []float64
	TargetLen int
}

// ScorePass computes every metric of one pass that needs no other example.
func ScorePass(in PassInput, cfg Config) PassScores {
	var s Scorer
	return s.ScorePass(in, cfg)
}

// Scorer computes ScorePass with scratch space (guided priors, per-head
// sums, word maps) kept from one pass to the next, so that scoring a run
// allocates little beyond the scores it returns. The zero value is ready to
// use; a Scorer must not be used by two goroutines at once, so a stage
// scoring in parallel keeps one per worker.
type Scorer struct {
	priors [3]prior // one per attention kind: their shapes differ
	plogp  []float64
	inputs []int32
	mean   headMean
	links  hardLinker
}

// prior is a GuidedPrior kept for the next matrix of the same shape.
type prior struct {
	rows, cols int
	sigma      float64
	w          []float64
}

func (p *prior) of(rows, cols int, sigma float64) []float64 {
	if p.w == nil || p.rows != rows || p.cols != cols || p.sigma != sigma {
		p.rows, p.cols, p.sigma = rows, cols, sigma
		p.w = guidedPrior(p.w, rows, cols, sigma)
	}
	return p.w
}

// ScorePass is the package's ScorePass using s's scratch space. The scores
// it returns share nothing with s.
func (s *Scorer) ScorePass(in PassInput, cfg Config) PassScores {
	nan := math.NaN()
	out := PassScores{TargetLen: len(in.TgtIDs)}
	ss := &out.Sentence
	*ss = SentenceScores{
		SeqLogprob: SeqLogprob(in.Logprobs), IgnSrc: nan, WassToUnif: nan, WassToData: nan, WassCombo: nan,
		RepeatMass: nan, RepNgram: RepNgram(in.Target), ChrF: nan, BLEU: nan, AER: nan,
		IgnSrcNorm: nan, WassToUnifNorm: nan, SrcContribution: nan, AERNorm: nan,
		CrossEntropyNormMedian: nan, CrossLastMass: nan, CrossHeadDiversity: nan, NonCausalEntropyNorm: nan,
	}
	if in.HasReference {
		ss.ChrF = SentenceChrF(in.Target, in.Reference)
		ss.BLEU = SentenceBLEU(in.Target, in.Reference)
	}

	// Decoder input ids row by row: BOS (−1, equal to no token), then the
	// target tokens but the last.
	var inputs []int32
	if n := len(in.TgtIDs); n > 0 {
		s.inputs = append(append(s.inputs[:0], -1), in.TgtIDs[:n-1]...)
		inputs = s.inputs
	}
	var gold *goldSets
	if in.Gold != nil && in.Pass == PassForced {
		g := newGoldSets(*in.Gold)
		gold = &g
		s.links.reset(in.SrcPieces, in.TgtPieces)
	}
	normed := normWeightedLayers(in.Cross, in.CrossNorms)
	out.EncoderSelf = s.scoreKind(0, in.EncoderSelf, cfg, nil, nil, nil)
	out.DecoderSelf = s.scoreKind(1, in.DecoderSelf, cfg, inputs, nil, nil)
	out.Cross = s.scoreKind(2, in.Cross, cfg, nil, gold, normed)

	var noncausal []float64
	for _, kind := range [][][]HeadScores{out.EncoderSelf, out.DecoderSelf, out.Cross} {
		for _, layer := range kind {
			for _, h := range layer {
				// Over the stored heads only, when the run stored a selection.
				if !math.IsNaN(h[HeadRowSumErr]) {
					ss.MaxRowSumErr = max(ss.MaxRowSumErr, h[HeadRowSumErr])
				}
				ss.ZeroRows += int(h[HeadZeroRows])
			}
		}
	}
	for _, kind := range [][][]HeadScores{out.EncoderSelf, out.Cross} {
		for _, layer := range kind {
			for _, h := range layer {
				noncausal = append(noncausal, h[HeadEntropyNorm])
			}
		}
	}
	ss.NonCausalEntropyNorm = Mean(noncausal)
	if in.Partial.EncoderSelf || in.Partial.Cross {
		ss.NonCausalEntropyNorm = nan
	}

	// Copy behaviour: the decoder layer that looks back at copies most.
	for _, layer := range out.DecoderSelf {
		if in.Partial.DecoderSelf {
			break
		}
		m := Mean(pluck(layer, HeadRepeatMass))
		if !math.IsNaN(m) && (math.IsNaN(ss.RepeatMass) || m > ss.RepeatMass) {
			ss.RepeatMass = m
		}
	}

	if l, ok := resolveLayer(cfg.Layer, len(in.Cross)); ok && len(in.Cross[l]) > 0 {
		heads := in.Cross[l]
		avg := s.mean.of(heads)
		ss.IgnSrc = IgnSrc(avg, cfg.IgnSrcLambda)
		ss.CrossLastMass = LastMass(avg)
		ss.CrossHeadDiversity = out.Cross[l][0][HeadDiversityOfLayer]
		ss.CrossEntropyNormMedian = Quantile(pluck(out.Cross[l], HeadEntropyNorm), 0.5)
		out.Pi = SourceDistribution(heads, cfg.DropEOS)
		ss.WassToUnif = WassToUnif(out.Pi)
		if normed != nil {
			ss.IgnSrcNorm = IgnSrc(s.mean.of(normed[l]), cfg.IgnSrcLambda)
			ss.WassToUnifNorm = WassToUnif(SourceDistribution(normed[l], cfg.DropEOS))
		}
	}
	if !in.Partial.Cross {
		ss.SrcContribution = SourceContribution(in.Cross, in.CrossNorms)
	}
	if l, ok := resolveLayer(cfg.AERLayer, len(in.Cross)); ok && gold != nil && len(in.Cross[l]) > 0 {
		ss.AER = s.sentenceAER(in.Cross[l], cfg.AERHeads, gold)
		if normed != nil {
			ss.AERNorm = s.sentenceAER(normed[l], cfg.AERHeads, gold)
		}
	}
	return out
}

// sentenceAER is the AER of the mean of the chosen heads (all when none
// are chosen) of one layer.
func (s *Scorer) sentenceAER(layer []Matrix, chosen []int, gold *goldSets) float64 {
	heads := layer
	if len(chosen) > 0 {
		heads = nil
		for _, h := range chosen {
			if h < len(layer) {
				heads = append(heads, layer[h])
			}
		}
	}
	if links := s.links.links(s.mean.of(heads)); links != nil {
		return gold.aer(links)
	}
	return math.NaN()
}

// scoreKind scores every head of one attention kind; slot picks the kind's
// kept prior. inputs (decoder self only) enable RepeatMass; gold (cross
// only) enables per-head AER against s.links' pieces, and with normed (the
// norm-based attention of layers) the per-head norm-based AER.
func (s *Scorer) scoreKind(slot int, layers [][]Matrix, cfg Config, inputs []int32, gold *goldSets, normed [][]Matrix) [][]HeadScores {
	if layers == nil {
		return nil
	}
	n := 0
	for _, heads := range layers {
		n += len(heads)
	}
	all := make([]HeadScores, n) // one allocation for the kind's layers
	out := make([][]HeadScores, len(layers))
	for l, heads := range layers {
		if len(heads) == 0 { // a layer the run did not store
			continue
		}
		out[l], all = all[:len(heads):len(heads)], all[len(heads):]
		s.plogp = s.plogp[:0]
		for h, m := range heads {
			sc, plogp := scoreHead(m, s.priors[slot].of(m.Rows, m.Cols, cfg.GuidedSigma))
			s.plogp = append(s.plogp, plogp)
			for i := numBuiltinHeadMetrics; i < NumHeadMetrics; i++ {
				sc[i] = HeadTable[i].Compute(m)
			}
			if inputs != nil {
				sc[HeadRepeatMass] = RepeatMass(m, inputs)
			}
			if gold != nil {
				if links := s.links.links(m); links != nil {
					sc[HeadAER] = gold.aer(links)
				}
				if normed != nil {
					if links := s.links.links(normed[l][h]); links != nil {
						sc[HeadAERNorm] = gold.aer(links)
					}
				}
			}
			out[l][h] = sc
		}
		div := headDiversity(heads, s.plogp)
		for h := range out[l] {
			out[l][h][HeadDiversityOfLayer] = div
		}
	}
	return out
}

// scoreHead computes the single-head metrics in one pass over m; it equals
// calling Entropy, Confidence, … one by one (a test checks this). It also
// returns Σ p ln p, which head diversity reuses.
func scoreHead(m Matrix, prior []float64) (HeadScores, float64) {
	sc := nanHeadScores()
	sc[HeadZeroRows] = 0
	if m.Rows == 0 || m.Cols == 0 {
		return sc, 0
	}
	var ent, conf, confNoEOS, off, first, last, rowErr float64
	zero := 0
	for t := range m.Rows {
		row := m.Row(t)
		var sum float64
		best, bestNoEOS := float32(math.Inf(-1)), float32(math.Inf(-1))
		w := prior[t*m.Cols : (t+1)*m.Cols]
		for j, a := range row {
			x := float64(a)
			if a > 0 {
				ent -= x * fastLog(x)
			}
			sum += x
			off += x * w[j]
			if a > best {
				best = a
			}
			if j < m.Cols-1 && a > bestNoEOS {
				bestNoEOS = a
			}
		}
		if sum == 0 && allZero(row) {
			zero++
		}
		conf += float64(best)
		confNoEOS += float64(bestNoEOS)
		first += float64(row[0])
		last += float64(row[m.Cols-1])
		rowErr = max(rowErr, math.Abs(sum-1))
	}
	n := float64(m.Rows)
	sc[HeadEntropy] = ent / n
	if m.Cols > 1 {
		sc[HeadEntropyNorm] = sc[HeadEntropy] / math.Log(float64(m.Cols))
		sc[HeadConfidenceNoEOS] = confNoEOS / n
	}
	sc[HeadConfidence] = conf / n
	sc[HeadDiagonality] = 1 - off/n
	sc[HeadFirstMass] = first / n
	sc[HeadLastMass] = last / n
	sc[HeadRowSumErr] = rowErr
	sc[HeadZeroRows] = float64(zero)
	return sc, -ent
}

func allZero(row []float32) bool {
	return !slices.ContainsFunc(row, func(a float32) bool { return a != 0 })
}

// pluck is one metric of every head.
func pluck(hs []HeadScores, m HeadIndex) []float64 {
	out := make([]float64, len(hs))
	for i, h := range hs {
		out[i] = h[m]
	}
	return out
}
