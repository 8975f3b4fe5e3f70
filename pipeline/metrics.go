package pipeline

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"attnaudit/metrics"
	"attnaudit/store"
)

// MetricsOption adds inputs the run folder does not hold to ComputeMetrics.
type MetricsOption func(*metricsInputs)

type metricsInputs struct {
	gold   map[int32]metrics.Alignment
	labels map[int32]bool
}

// WithGold gives ComputeMetrics the dataset's gold word alignments (for
// AER) and hallucination labels (for detector evaluation), by example_id.
// Either map may be nil.
func WithGold(alignments map[int32]metrics.Alignment, labels map[int32]bool) MetricsOption {
	return func(in *metricsInputs) { in.gold, in.labels = alignments, labels }
}

// passResult is what the metrics stage keeps of one example × pass between
// the streaming scan and the pool-dependent scores.
type passResult struct {
	exampleID int32
	pass      string
	scores    metrics.SentenceScores
	pi        []float64
	targetLen int
	flags     metrics.Flags
	reasons   string
}

// ComputeMetrics is the metrics stage. It reads examples and attention from
// runDir, streaming the attention one example and pass at a time, scores the
// passes on GOMAXPROCS workers, writes head_metrics.parquet while it goes
// (in the attention's order) and sentence_metrics.parquet at the end (its
// pool-relative scores need every sentence), and returns the run summary.
// Memory holds the examples' text, a few numbers per sentence and the
// attention of at most a bounded window of passes (see scoreWindow).
func ComputeMetrics(runDir string, cfg metrics.Config, opts ...MetricsOption) (*metrics.RunSummary, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var in metricsInputs
	for _, o := range opts {
		o(&in)
	}
	examples, err := store.ReadExamples(runDir)
	if err != nil {
		return nil, fmt.Errorf("metrics: reading examples: %w", err)
	}
	index := make(map[int32]int, len(examples))
	for i, ex := range examples {
		index[ex.ExampleID] = i
	}

	hw, err := store.NewHeadMetricsWriter(runDir)
	if err != nil {
		return nil, err
	}
	defer hw.Abort()
	heads := metrics.NewHeadSummarizer()
	results := map[passKey]*passResult{}
	// keep runs on one goroutine, in scan order, so the rows, the
	// summarizer's seeded sampling and the results are those of a serial
	// scan.
	keep := func(j *scoreJob) error {
		if err := writeHeadRows(hw, j.group, j.scores); err != nil {
			return err
		}
		for kind, layers := range map[string][][]metrics.HeadScores{
			store.KindEncoderSelf: j.scores.EncoderSelf, store.KindDecoderSelf: j.scores.DecoderSelf, store.KindCross: j.scores.Cross} {
			for l, hs := range layers {
				heads.Add(j.pass, kind, l, hs)
			}
		}
		results[passKey{j.input.ExampleID, j.pass}] = &passResult{exampleID: j.input.ExampleID, pass: j.pass,
			scores: j.scores.Sentence, pi: j.scores.Pi, targetLen: j.scores.TargetLen}
		return nil
	}
	pool := startScoring(cfg, runtime.GOMAXPROCS(0), keep)

	var group []store.Attention
	flush := func() error {
		if len(group) == 0 {
			return nil
		}
		id, pass := group[0].ExampleID, group[0].Pass
		i, ok := index[id]
		if !ok {
			return fmt.Errorf("metrics: attention of example %d, which examples.parquet does not hold", id)
		}
		pin, err := passInput(examples[i], pass, group, in)
		if err != nil {
			return err
		}
		err = pool.submit(&scoreJob{group: group, pass: pass, input: pin})
		group = nil // the job owns it now
		return err
	}
	err = store.ScanAttention(runDir, func(a store.Attention) error {
		if len(group) > 0 && (a.ExampleID != group[0].ExampleID || a.Pass != group[0].Pass) {
			if err := flush(); err != nil {
				return err
			}
		}
		group = append(group, a)
		return nil
	})
	if err == nil {
		err = flush()
	}
	if werr := pool.wait(); err == nil || errors.Is(err, errScoringStopped) {
		err = werr
	}
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if err := hw.Close(); err != nil {
		return nil, err
	}

	rows, err := sentenceRows(examples, results, cfg, in)
	if err != nil {
		return nil, err
	}
	sum := poolScores(rows, cfg)
	sum.Heads = heads.Summaries()
	sum.Examples = len(examples)
	corpusScores(sum, examples)
	evaluateDetectors(sum, rows, in.labels)

	sw, err := store.NewSentenceMetricsWriter(runDir)
	if err != nil {
		return nil, err
	}
	defer sw.Abort()
	for _, r := range rows {
		if err := sw.Write(sentenceRow(r)); err != nil {
			return nil, err
		}
	}
	if err := sw.Close(); err != nil {
		return nil, err
	}
	return sum, nil
}

// scoreJob is one example × pass on its way through the scoring pool.
type scoreJob struct {
	group  []store.Attention
	pass   string
	input  metrics.PassInput
	scores metrics.PassScores
	done   chan struct{} // closed once scores are set
}

// scoring scores jobs on a fixed set of workers, each with its own
// metrics.Scorer, and hands them to keep one at a time in submission order.
// Submissions wait while scoreWindow(workers) jobs are in flight, which
// bounds memory to that many passes' attention.
type scoring struct {
	work     chan *scoreJob // to the workers
	inOrder  chan *scoreJob // to the keeper, in submission order; its capacity is the window
	failed   chan struct{}  // closed when keep fails
	finished chan struct{}  // closed when the keeper has returned
	workers  sync.WaitGroup
	err      error // keep's error; read after finished
}

// scoreWindow is how many passes may be in flight: twice the workers, so
// each has a pass queued while the keeper waits for the oldest one.
func scoreWindow(workers int) int { return 2 * workers }

// errScoringStopped is submit's error once keep has failed; wait returns
// the failure itself.
var errScoringStopped = errors.New("scoring stopped")

func startScoring(cfg metrics.Config, workers int, keep func(*scoreJob) error) *scoring {
	workers = max(workers, 1)
	p := &scoring{work: make(chan *scoreJob), inOrder: make(chan *scoreJob, scoreWindow(workers)),
		failed: make(chan struct{}), finished: make(chan struct{})}
	for range workers {
		p.workers.Go(func() {
			var s metrics.Scorer
			for j := range p.work {
				j.scores = s.ScorePass(j.input, cfg)
				close(j.done)
			}
		})
	}
	go func() {
		defer close(p.finished)
		for j := range p.inOrder {
			<-j.done
			if p.err != nil {
				continue // drain, so that no worker or submitter blocks
			}
			if p.err = keep(j); p.err != nil {
				close(p.failed)
			}
		}
	}()
	return p
}

// submit queues j for scoring, waiting while the window is full.
func (p *scoring) submit(j *scoreJob) error {
	j.done = make(chan struct{})
	select {
	case p.inOrder <- j:
	case <-p.failed:
		return errScoringStopped
	}
	p.work <- j
	return nil
}

// wait scores and keeps every job submitted and returns keep's error.
func (p *scoring) wait() error {
	close(p.work)
	close(p.inOrder)
	p.workers.Wait()
	<-p.finished
	return p.err
}

type passKey struct {
	id   int32
	pass string
}

// passInput assembles one pass's tokens and attention. Attention rows come
// sorted by kind, layer and head.
func passInput(ex store.Example, pass string, group []store.Attention, in metricsInputs) (metrics.PassInput, error) {
	pin := metrics.PassInput{ExampleID: ex.ExampleID, SrcPieces: ex.SrcPieces}
	switch pass {
	case store.PassFree:
		pin.Target, pin.TgtPieces, pin.TgtIDs, pin.Logprobs = ex.Hypothesis, ex.TgtPieces, ex.TgtIDs, ex.TokenLogprobs
		pin.Reference, pin.HasReference = ex.Reference, ex.Reference != ""
	case store.PassForced:
		pin.Target, pin.TgtPieces, pin.TgtIDs, pin.Logprobs = ex.Reference, ex.RefPieces, ex.RefIDs, ex.RefLogprobs
	case store.PassDetached:
		pin.Target, pin.TgtPieces, pin.TgtIDs, pin.Logprobs = piecesText(ex.DetPieces), ex.DetPieces, ex.DetIDs, ex.DetLogprobs
	}
	// Gold alignments belong to the example's own reference, not to the
	// other example's that the detached pass was forced with.
	if g, ok := in.gold[ex.ExampleID]; ok && pass != store.PassDetached {
		pin.Gold = &g
	}
	for _, a := range group {
		if err := fileAttention(a, &pin.EncoderSelf, &pin.DecoderSelf, &pin.Cross); err != nil {
			return pin, err
		}
	}
	for _, layers := range [][][]metrics.Matrix{pin.EncoderSelf, pin.DecoderSelf, pin.Cross} {
		for l, hs := range layers {
			if len(hs) == 0 {
				return pin, fmt.Errorf("example %d, pass %s: layer %d has no heads", ex.ExampleID, pass, l)
			}
		}
	}
	return pin, nil
}

// fileAttention puts one attention row into the [layer][head] matrices of
// its kind, the shape metrics and report take. Rows come in the schema's
// sort order, so heads arrive in order; anything else is an error.
func fileAttention(a store.Attention, encoderSelf, decoderSelf, cross *[][]metrics.Matrix) error {
	var dst *[][]metrics.Matrix
	switch a.Kind {
	case store.KindEncoderSelf:
		dst = encoderSelf
	case store.KindDecoderSelf:
		dst = decoderSelf
	case store.KindCross:
		dst = cross
	default:
		return fmt.Errorf("example %d: unknown attention kind %q", a.ExampleID, a.Kind)
	}
	l, h := int(a.Layer), int(a.Head)
	if l < 0 || h < 0 {
		return fmt.Errorf("example %d, pass %s, %s: negative layer %d or head %d", a.ExampleID, a.Pass, a.Kind, l, h)
	}
	for len(*dst) <= l {
		*dst = append(*dst, nil)
	}
	if h != len((*dst)[l]) {
		return fmt.Errorf("example %d, pass %s, %s layer %d: head %d follows %d heads", a.ExampleID, a.Pass, a.Kind, l, h, len((*dst)[l]))
	}
	(*dst)[l] = append((*dst)[l], a.Weights)
	return nil
}

// piecesText is the text of SentencePiece pieces ending with EOS, as the
// tokenizer decodes it ("▁" is a space); the detached pass stores only
// pieces.
func piecesText(pieces []string) string {
	if len(pieces) == 0 {
		return ""
	}
	return strings.ReplaceAll(strings.Join(pieces[:len(pieces)-1], ""), "▁", " ")
}

// writeHeadRows writes one head_metrics row per attention row, in the
// attention's (kind, layer, head) order.
func writeHeadRows(w *store.HeadMetricsWriter, group []store.Attention, sc metrics.PassScores) error {
	for _, a := range group {
		var layers [][]metrics.HeadScores
		switch a.Kind {
		case store.KindEncoderSelf:
			layers = sc.EncoderSelf
		case store.KindDecoderSelf:
			layers = sc.DecoderSelf
		default:
			layers = sc.Cross
		}
		h := layers[a.Layer][a.Head]
		err := w.Write(store.HeadMetrics{
			ExampleID: a.ExampleID, Pass: a.Pass, Kind: a.Kind, Layer: a.Layer, Head: a.Head,
			QLen: int32(a.Weights.Rows), KLen: int32(a.Weights.Cols),
			Entropy: f32(h.Entropy), EntropyNorm: f32(h.EntropyNorm), Confidence: f32(h.Confidence),
			ConfidenceNoEOS: f32(h.ConfidenceNoEOS), Diagonality: f32(h.Diagonality),
			FirstMass: f32(h.FirstMass), LastMass: f32(h.LastMass), HeadDiversity: f32(h.HeadDiversity),
			RepeatMass: f32(h.RepeatMass), RowSumErr: f32(h.RowSumErr), ZeroRows: int32(h.ZeroRows), AER: f32(h.AER),
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func f32(x float64) float32 { return float32(x) }

// sentenceRows lists one result per example and pass in file order:
// every pass that had attention, plus the free pass, and the forced pass
// when the example has a reference, scored without attention if the run
// stored none for them.
func sentenceRows(examples []store.Example, results map[passKey]*passResult, cfg metrics.Config, in metricsInputs) ([]*passResult, error) {
	var out []*passResult
	seen := 0
	for _, ex := range examples {
		for _, pass := range []string{store.PassDetached, store.PassForced, store.PassFree} {
			r, ok := results[passKey{ex.ExampleID, pass}]
			if ok {
				seen++
			} else if pass == store.PassFree || (pass == store.PassForced && len(ex.RefIDs) > 0) {
				pin, err := passInput(ex, pass, nil, in)
				if err != nil {
					return nil, err
				}
				sc := metrics.ScorePass(pin, cfg)
				r = &passResult{exampleID: ex.ExampleID, pass: pass, scores: sc.Sentence, targetLen: sc.TargetLen}
			} else {
				continue
			}
			out = append(out, r)
		}
	}
	if seen != len(results) {
		return nil, errors.New("metrics: attention holds passes other than detached, forced and free")
	}
	return out, nil
}

// poolScores fills in wass_to_data and wass_combo against the reference
// pool (the run's free pass, leave-one-out), resolves the flag thresholds
// and sets the flags.
func poolScores(rows []*passResult, cfg metrics.Config) *metrics.RunSummary {
	var entries []metrics.PoolEntry
	for _, r := range rows {
		if r.pass == store.PassFree {
			entries = append(entries, metrics.PoolEntry{ID: r.exampleID, Len: r.targetLen, Pi: r.pi})
		}
	}
	pool := metrics.NewPool(entries)
	var unif, data []float64
	for _, r := range rows {
		r.scores.WassToData = pool.WassToData(r.exampleID, r.targetLen, r.pi, cfg.WassK, cfg.LengthTolerance)
		if r.pass == store.PassFree {
			unif = append(unif, r.scores.WassToUnif)
			data = append(data, r.scores.WassToData)
		}
	}
	combo := metrics.NewWassCombo(unif, data, cfg.ComboPercentile)
	var seq, comboScores []float64
	for _, r := range rows {
		r.scores.WassCombo = combo.Score(r.scores.WassToUnif, r.scores.WassToData)
		if r.pass == store.PassFree {
			seq = append(seq, r.scores.SeqLogprob)
			comboScores = append(comboScores, r.scores.WassCombo)
		}
	}
	limits := metrics.ResolveLimits(cfg.Thresholds, seq, comboScores)
	sum := &metrics.RunSummary{Rows: map[string]int{}, Flags: map[string]map[string]int{},
		Thresholds: metrics.NewThresholdSummary(limits, combo)}
	suspects, free := 0, 0
	for _, r := range rows {
		sum.Rows[r.pass]++
		flags, why := metrics.FlagSentence(r.scores, limits)
		r.flags, r.reasons = flags, metrics.JoinReasons(why)
		if sum.Flags[r.pass] == nil {
			sum.Flags[r.pass] = map[string]int{}
		}
		for _, name := range flags.Names() {
			sum.Flags[r.pass][name]++
		}
		if r.pass == store.PassFree {
			free++
			if flags.HallucinationSuspect {
				suspects++
			}
		}
	}
	if free > 0 {
		sum.SuspectShare = float64(suspects) / float64(free)
	}
	return sum
}

// corpusScores sets corpus chrF and BLEU of the hypotheses against the
// references, over the examples that have one.
func corpusScores(sum *metrics.RunSummary, examples []store.Example) {
	var chrf metrics.ChrFStats
	var bleu metrics.BLEUStats
	for _, ex := range examples {
		if ex.Reference == "" {
			continue
		}
		sum.References++
		chrf.Add(metrics.ChrFStatistics(ex.Hypothesis, ex.Reference))
		bleu.Add(metrics.BLEUStatistics(ex.Hypothesis, ex.Reference))
	}
	if sum.References > 0 {
		c, b := chrf.Score(), bleu.Score(false)
		sum.CorpusChrF, sum.CorpusBLEU = &c, &b
	}
}

// evaluateDetectors scores the detectors against the dataset's labels
// (free pass) and against detached pairs (detached vs forced passes).
func evaluateDetectors(sum *metrics.RunSummary, rows []*passResult, labels map[int32]bool) {
	var labelled, pairs []metrics.SentenceScores
	var labelPos, pairPos []bool
	for _, r := range rows {
		switch r.pass {
		case store.PassFree:
			if l, ok := labels[r.exampleID]; ok {
				labelled, labelPos = append(labelled, r.scores), append(labelPos, l)
			}
		case store.PassDetached, store.PassForced:
			pairs, pairPos = append(pairs, r.scores), append(pairPos, r.pass == store.PassDetached)
		}
	}
	sum.Detectors = append(metrics.EvaluateDetectors("label", labelled, labelPos),
		metrics.EvaluateDetectors("detached", pairs, pairPos)...)
}

func sentenceRow(r *passResult) store.SentenceMetrics {
	s := r.scores
	return store.SentenceMetrics{
		ExampleID: r.exampleID, Pass: r.pass,
		SeqLogprob: f32(s.SeqLogprob), IgnSrc: f32(s.IgnSrc), WassToUnif: f32(s.WassToUnif),
		WassToData: f32(s.WassToData), WassCombo: f32(s.WassCombo), RepeatMass: f32(s.RepeatMass),
		RepNgram: f32(s.RepNgram), Chrf: f32(s.ChrF), Bleu: f32(s.BLEU), AER: f32(s.AER),
		Flags: r.flags, Reasons: r.reasons,
	}
}
