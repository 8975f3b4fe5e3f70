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
	gold       map[int32]metrics.Alignment
	labels     map[int32]bool
	thresholds *metrics.ThresholdSet
	coverage   *metrics.Coverage
}

// WithCoverage tells ComputeMetrics which attention a run that stored a
// selection holds (nil: everything): it scores what is there, leaves the
// rest NaN or absent, and lists it in the summary's NotComputed.
func WithCoverage(c *metrics.Coverage) MetricsOption {
	return func(in *metricsInputs) { in.coverage = c }
}

// WithThresholds makes ComputeMetrics flag with another run's recorded
// detector thresholds instead of calibrating its own (nil: calibrate).
func WithThresholds(t *metrics.ThresholdSet) MetricsOption {
	return func(in *metricsInputs) { in.thresholds = t }
}

// WithGold gives ComputeMetrics the dataset's gold word alignments (for
// AER) and hallucination labels (for detector evaluation), by example_id.
// Either map may be nil.
func WithGold(alignments map[int32]metrics.Alignment, labels map[int32]bool) MetricsOption {
	return func(in *metricsInputs) { in.gold, in.labels = alignments, labels }
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
	run := metrics.NewRun(cfg, in.labels)
	run.Name(runDir)
	if in.thresholds != nil {
		run.UseThresholds(in.thresholds)
	}
	scored := map[passKey]metrics.PassScores{}
	// keep runs on one goroutine, in scan order, so the rows, the
	// summarizer's seeded sampling and the results are those of a serial
	// scan.
	keep := func(j *scoreJob) error {
		if err := writeHeadRows(hw, j.group, j.scores); err != nil {
			return err
		}
		run.AddHeads(j.pass, j.scores)
		j.scores.EncoderSelf, j.scores.DecoderSelf, j.scores.Cross = nil, nil, nil // only the sentence scores are kept
		scored[passKey{j.input.ExampleID, j.pass}] = j.scores
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

	if err := addSentences(run, examples, scored, cfg, in); err != nil {
		return nil, err
	}
	rows, sum := run.Finish()
	var passes []string
	for _, p := range []string{store.PassDetached, store.PassForced, store.PassFree} {
		if sum.Rows[p] > 0 {
			passes = append(passes, p)
		}
	}
	sum.NotComputed = in.coverage.Omissions(cfg, passes)

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
	pin := metrics.PassInput{ExampleID: ex.ExampleID, Pass: pass, SrcPieces: ex.SrcPieces}
	switch pass {
	case store.PassFree:
		pin.Target, pin.TgtPieces, pin.TgtIDs, pin.Logprobs = ex.Hypothesis, ex.TgtPieces, ex.TgtIDs, ex.TokenLogprobs
		pin.Reference, pin.HasReference = ex.Reference, ex.Reference != ""
	case store.PassForced:
		pin.Target, pin.TgtPieces, pin.TgtIDs, pin.Logprobs = ex.Reference, ex.RefPieces, ex.RefIDs, ex.RefLogprobs
	case store.PassDetached:
		pin.Target, pin.TgtPieces, pin.TgtIDs, pin.Logprobs = piecesText(ex.DetPieces), ex.DetPieces, ex.DetIDs, ex.DetLogprobs
	}
	// Gold alignments index the example's own reference: metrics uses
	// them on the forced pass only.
	if g, ok := in.gold[ex.ExampleID]; ok {
		pin.Gold = &g
	}
	for _, a := range group {
		if err := fileAttention(a, &pin.EncoderSelf, &pin.DecoderSelf, &pin.Cross); err != nil {
			return pin, err
		}
	}
	pin.Partial = in.coverage.Partial(pass)
	for _, k := range []struct {
		kind   string
		layers *[][]metrics.Matrix
	}{{store.KindEncoderSelf, &pin.EncoderSelf}, {store.KindDecoderSelf, &pin.DecoderSelf}, {store.KindCross, &pin.Cross}} {
		if c := in.coverage; c != nil && len(*k.layers) > 0 {
			// A run that stored some layers: the model's, the missing
			// ones without heads, so layer numbers (-1 the last) resolve
			// as in a full run.
			if len(*k.layers) > c.Layers[k.kind] {
				return pin, fmt.Errorf("example %d, pass %s: %s layer %d stored, the model has %d layers", ex.ExampleID, pass, k.kind, len(*k.layers)-1, c.Layers[k.kind])
			}
			for len(*k.layers) < c.Layers[k.kind] {
				*k.layers = append(*k.layers, nil)
			}
		}
		for l, hs := range *k.layers {
			if len(hs) == 0 && (in.coverage == nil || in.coverage.Keeps(pass, k.kind, l)) {
				return pin, fmt.Errorf("example %d, pass %s: %s layer %d has no heads", ex.ExampleID, pass, k.kind, l)
			}
		}
	}
	var err error
	if pin.EncoderNorms, err = unflattenNorms(ex.EncoderValueNorms, pin.EncoderSelf, len(ex.SrcIDs)); err != nil {
		return pin, fmt.Errorf("example %d: encoder_value_norms: %w", ex.ExampleID, err)
	}
	if pin.CrossNorms, err = unflattenNorms(ex.CrossValueNorms, pin.Cross, len(ex.SrcIDs)); err != nil {
		return pin, fmt.Errorf("example %d: cross_value_norms: %w", ex.ExampleID, err)
	}
	return pin, nil
}

// unflattenNorms splits examples.parquet's row-major value-vector norms
// into [layer][head][source position], with the layers and heads of the
// attention they weigh; nil when either is absent.
func unflattenNorms(flat []float32, attn [][]metrics.Matrix, srcLen int) ([][][]float32, error) {
	if len(flat) == 0 || len(attn) == 0 {
		return nil, nil
	}
	heads := 0
	for _, hs := range attn { // a layer the run did not store has none
		heads = max(heads, len(hs))
	}
	if len(flat) != len(attn)*heads*srcLen {
		return nil, fmt.Errorf("%d values, want %d layers × %d heads × %d source tokens", len(flat), len(attn), heads, srcLen)
	}
	out := make([][][]float32, len(attn))
	for l := range out {
		out[l] = make([][]float32, heads)
		for h := range heads {
			out[l][h], flat = flat[:srcLen:srcLen], flat[srcLen:]
		}
	}
	return out, nil
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
		row := store.HeadMetrics{ExampleID: a.ExampleID, Pass: a.Pass, Kind: a.Kind, Layer: a.Layer, Head: a.Head,
			QLen: int32(a.Weights.Rows), KLen: int32(a.Weights.Cols)}
		for i, v := range layers[a.Layer][a.Head] {
			row.Values[i] = f32(v)
		}
		if err := w.Write(row); err != nil {
			return err
		}
	}
	return nil
}

func f32(x float64) float32 { return float32(x) }

// addSentences adds one result per example and pass to run, in file order:
// every pass that had attention, plus the free pass, the forced pass when
// the example has a reference and the detached pass when it was decoded,
// scored without attention if the run stored none for them. It also adds every example for the corpus scores.
func addSentences(run *metrics.Run, examples []store.Example, scored map[passKey]metrics.PassScores, cfg metrics.Config, in metricsInputs) error {
	seen := 0
	for _, ex := range examples {
		run.AddExample(ex.Hypothesis, ex.Reference, ex.Reference != "")
		for _, pass := range []string{store.PassDetached, store.PassForced, store.PassFree} {
			sc, ok := scored[passKey{ex.ExampleID, pass}]
			if ok {
				seen++
			} else if pass == store.PassFree || (pass == store.PassForced && len(ex.RefIDs) > 0) ||
				(pass == store.PassDetached && len(ex.DetIDs) > 0) {
				pin, err := passInput(ex, pass, nil, in)
				if err != nil {
					return err
				}
				sc = metrics.ScorePass(pin, cfg)
			} else {
				continue
			}
			run.AddSentence(ex.ExampleID, pass, sc)
		}
	}
	if seen != len(scored) {
		return errors.New("metrics: attention holds passes other than detached, forced and free")
	}
	return nil
}

// sentenceRow is a pass's row of sentence_metrics.parquet.
func sentenceRow(r *metrics.PassResult) store.SentenceMetrics {
	row := store.SentenceMetrics{ExampleID: r.ExampleID, Pass: r.Pass, Flags: r.Flags, Reasons: r.Reasons}
	for i, m := range metrics.SentenceTable {
		row.Values[i] = f32(m.Get(r.Scores))
	}
	return row
}
