package pipeline

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"attnaudit/configs"
	"attnaudit/dataset"
	"attnaudit/inference"
	"attnaudit/metrics"
	"attnaudit/store"
)

// Infer runs the infer stage: it translates the dataset chunk by chunk,
// captures attention with teacher-forced passes and writes one examples part
// and one attention part per chunk. A chunk whose parts exist is skipped, so
// an interrupted run resumes where it stopped; when every chunk of the run
// is written (by this shard or others) it writes manifest.json.
func Infer(env Env, in Inputs, shard Shard) (runDir string, err error) {
	start := time.Now()
	r, err := openRun(env, in)
	if err != nil {
		return "", err
	}
	unlock, err := lockDir(r.dir, shard)
	if err != nil {
		return "", err
	}
	defer unlock()
	// Parts are checked against their records before a chunk counts as
	// done: a damaged or missing one is written again.
	m, err := ReadManifest(r.dir)
	complete := err == nil && m.Stages[StageInfer].Seconds > 0
	redo, err := r.checkChunks(env.Log, shard, complete)
	if err != nil {
		return "", err
	}
	if complete && redo == 0 {
		fmt.Fprintf(env.Log, "infer: %s is complete; nothing to do\n", r.dir)
		return r.dir, nil
	}
	if complete {
		// The run is incomplete until those chunks are back.
		if err := os.Remove(filepath.Join(r.dir, ManifestName)); err != nil {
			return "", fmt.Errorf("reopening %s: %w", r.dir, err)
		}
	}

	var chunks, costs, rows []int
	var batches []*batchJob
	for c := range r.chunks() {
		if shard.Owns(c) && !r.chunkDone(c) {
			chunks = append(chunks, c)
			for _, b := range r.newChunkJob(c).batches {
				costs, batches = append(costs, b.cost()), append(batches, b)
				rows = append(rows, len(b.idx))
				if b.detached {
					rows[len(rows)-1] = 0 // forced passes alone: not worth cutting
				}
			}
		}
	}
	model, err := env.Runtime.LoadFor(r.ckpt, costs)
	if err != nil {
		return "", err
	}
	defer model.Close()
	fmt.Fprintf(env.Log, "infer: %s on %s (%d examples, %d chunks) with %s, shard %s → %s\n",
		r.ckpt.Name(), r.data.Name, len(r.data.Examples), r.chunks(), model.Provider(), shard, r.dir)
	r.cuts = map[[2]int]int{}
	for i, k := range model.Parallelism().CutBatches(costs, rows) {
		if k > 1 {
			b := batches[i]
			r.cuts[[2]int{b.chunk.c, b.n}] = k
			fmt.Fprintf(env.Log, "infer: chunk %d batch %d (%d examples) in %d slices\n", b.chunk.c, b.n, len(b.idx), k)
		}
	}

	todo := 0
	for _, c := range chunks {
		todo += len(r.chunk(c))
	}
	est := r.expectedAttentionBytes(todo)
	fmt.Fprintf(env.Log, "infer: expect about %s of attention for %d examples (%s per example; precision %s, store %s)\n",
		formatBytes(est), todo, formatBytes(est/int64(max(todo, 1))), r.cfg.Precision, r.cfg.Store)
	prog := newProgress(env.Progress, "infer", todo)
	if err := r.translate(env, model, chunks, prog); err != nil {
		return "", err
	}
	if err := r.writeShardRecord(shard, model, time.Since(start)); err != nil {
		return "", err
	}
	return r.dir, r.finishInfer(env.Version)
}

// translate translates and writes the given chunks.
//
// Every chunk is cut into batches (sorted by source length, then the
// detached pairs), and the model's workers take batches from one queue,
// whichever chunk they belong to, the slowest first: on 16 cores a chunk
// of four batches would leave twelve workers idle, so several chunks are
// translated at once (chunksAhead). Each translated example is rounded as
// stored (store.PrepareAttention) by workers that find no batch waiting,
// as soon as its batch hands it out (Model.TranslateEach: with the key/value
// cache and greedy search, when its row ends, while the batch's longer
// sentences are still decoded). A chunk whose batches are all translated and rounded goes to
// the writers, which encode and commit its Parquet parts (the attention
// as sub-parts, written at once) on their own goroutines, with the
// threads the workers leave, while later chunks are translated: at GPU
// speed encoding (zstd) is slower than inference. Each chunk's parts are
// committed alone, so the order in which chunks finish changes nothing,
// and every batch is the same whatever the number of workers: the output
// is the same as one worker's, byte for byte.
//
// On Env.Stop no new chunk is started, batches not yet begun are dropped
// (their chunks are abandoned), and chunks already translated are written.
func (r *run) translate(env Env, model *inference.Model, chunks []int, prog *progress) error {
	workers := model.Workers()
	ahead := chunksAhead(len(workers), r.batchesPerChunk())
	writers := chunkWriters()
	plan := model.Parallelism()
	narrow, wide, helpers := threadUse(plan, model.Provider())
	slots := &writeSlots{threads: plan.Threads}
	fmt.Fprintf(env.Log, "infer: %s, %d more rounding; up to %d chunks translated and %d written at once\n", model.Parallelism(), helpers, ahead, writers)

	// Wide workers (more intra-op threads: Parallelism.Wide) take batches
	// from wideBatches, the slowest first, and say on wideFree when they
	// are done with one; the others take them from batches once no wide
	// worker is free.
	batches, wideBatches := make(chan *batchJob), make(chan *batchJob)
	wideFree := make(chan struct{}, plan.Wide)
	finished := make(chan *chunkJob)
	// abort is closed at the first error that is not a stop: the batches
	// still queued are then dropped, not translated for nothing.
	abort := make(chan struct{})
	aborted := func() bool {
		select {
		case <-abort:
			return true
		default:
			return false
		}
	}
	sel, err := store.ParseSelection(r.cfg.Store)
	if err != nil {
		return err
	}
	// done counts a batch of its chunk finished, translated and rounded
	// or not; the last sends the chunk on.
	done := func(b *batchJob) {
		if b.chunk.pending.Add(-1) == 0 {
			finished <- b.chunk
		}
	}
	// Translated examples are rounded as stored one by one, by the
	// workers, when no batch is waiting: on the cores the
	// decoding leaves idle (at batch 64 on 16 cores, 13 batches for 16
	// workers), not after the chunk's slowest batch, and never instead of
	// decoding, the critical path. (Rounding on goroutines of its own
	// competed with the slowest batch for the cores: 1.8 s instead of
	// 1.1 s.)
	rounds := newRoundQueue()
	quit := make(chan struct{}) // closed with batches: helpers return
	start := time.Now()
	var busy atomic.Int64 // nanoseconds the workers spent in batches
	var lastBatch time.Time
	var slowest batchTime
	runBatch := func(h *inference.Model, threads int, b *batchJob) {
		t0 := time.Now()
		// A count for each example and one for the batch: the batch is
		// done when it has ended and each example it handed out (as
		// soon as translated) is rounded.
		b.unrounded.Store(int32(len(b.idx)) + 1)
		handed := 0
		var err error
		switch {
		case env.stopped():
			err = ErrInterrupted
		case aborted():
			err = errAbandoned
		default:
			slots.working.Add(int32(threads))
			err = b.run(h, func(i int) {
				handed++
				ex := &roundExample{i: i, rows: b.chunk.out.attention(b.chunk.exs, i, b.detached, sel)}
				ex.pieces = roundPieces(ex.rows)
				ex.out = make([]store.Prepared[store.Attention], len(ex.pieces))
				ex.left.Store(int32(len(ex.pieces)))
				if len(ex.pieces) == 0 {
					b.chunk.out.keep(i, b.detached, nil, nil)
					b.unrounded.Add(-1)
					return
				}
				rounds.push(b, ex)
			})
			slots.working.Add(-int32(threads))
			slowest.note(b, threads, time.Since(t0))
		}
		busy.Add(int64(time.Since(t0)))
		if err != nil {
			b.chunk.fail(err)
		}
		if b.unrounded.Add(-int32(len(b.idx)-handed+1)) == 0 {
			done(b)
		}
	}
	round := func(t roundTask) {
		slots.working.Add(1)
		defer slots.working.Add(-1)
		b, ex := t.batch, t.ex
		pc := ex.pieces[t.piece]
		p, err := store.PrepareAttention(r.cfg.Precision, ex.rows[pc[0]:pc[1]])
		if err != nil {
			b.chunk.fail(err)
		}
		ex.out[t.piece] = p
		if ex.left.Add(-1) > 0 {
			return
		}
		b.chunk.out.keep(ex.i, b.detached, ex.rows, ex.out)
		if b.unrounded.Add(-1) == 0 {
			done(b)
		}
	}
	var wg sync.WaitGroup
	for range helpers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if t, ok := rounds.pop(); ok {
					round(t)
					continue
				}
				select {
				case <-rounds.ready:
				case <-quit:
					return
				}
			}
		}()
	}
	for _, h := range workers {
		in, threads := batches, narrow
		if plan.Wide > 0 && h.IntraOp() == plan.WideIntraOp {
			in, threads = wideBatches, wide
		}
		take := func(b *batchJob) {
			runBatch(h, threads, b)
			if in == wideBatches {
				wideFree <- struct{}{}
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				// A batch first, then an example to round, then wait for
				// either.
				select {
				case b, ok := <-in:
					if !ok {
						return
					}
					take(b)
					continue
				default:
				}
				if t, ok := rounds.pop(); ok {
					round(t)
					continue
				}
				select {
				case b, ok := <-in:
					if !ok {
						return
					}
					take(b)
				case <-rounds.ready:
				}
			}
		}()
	}
	type writeDone struct {
		examples int
		err      error
	}
	written := make(chan writeDone)
	stop := env.Stop
	var queue []*batchJob
	var ready []*chunkJob // translated, waiting for a writer
	translating, writing, next, wideIdle := 0, 0, 0, plan.Wide
	var firstErr error
	stopping := false
	fail := func(err error) {
		if firstErr == nil || errors.Is(firstErr, ErrInterrupted) && !errors.Is(err, ErrInterrupted) {
			if !errors.Is(err, ErrInterrupted) && !aborted() {
				close(abort)
			}
			firstErr = err
		}
	}
	for {
		if !stopping && env.stopped() {
			stopping = true
			if next < len(chunks) {
				fmt.Fprintf(env.Log, "infer: stopping before chunk %d; finishing the chunks being written\n", chunks[next])
			} else {
				fmt.Fprintf(env.Log, "infer: stopping; every chunk has been started, finishing the chunks being written\n")
			}
			fail(ErrInterrupted)
		}
		for firstErr == nil && next < len(chunks) && translating+len(ready) < ahead {
			cj := r.newChunkJob(chunks[next])
			next++
			if len(cj.batches) == 0 { // nothing to translate: written as it is
				ready = append(ready, cj)
				continue
			}
			translating++
			// The slowest batches of every chunk in flight first (longest
			// processing time first): a chunk's longest batch queued
			// behind another chunk's short ones would end the run late.
			queue = append(queue, cj.batches...)
			slices.SortStableFunc(queue, func(a, b *batchJob) int { return cmp.Compare(b.cost(), a.cost()) })
		}
		for len(ready) > 0 && writing < writers {
			cj := ready[0]
			ready = ready[1:]
			writing++
			go func() { written <- writeDone{len(cj.exs), r.writeChunk(cj.c, cj.out, slots)} }()
		}
		if translating == 0 && writing == 0 && len(ready) == 0 && (next == len(chunks) || firstErr != nil) {
			break
		}
		var send, sendWide chan *batchJob
		var head *batchJob
		if len(queue) > 0 {
			head = queue[0]
			if wideIdle > 0 {
				sendWide = wideBatches
			} else {
				send = batches
			}
		}
		select {
		case send <- head:
			queue = queue[1:]
		case sendWide <- head:
			queue = queue[1:]
			wideIdle--
		case <-wideFree:
			wideIdle++
		case cj := <-finished:
			translating--
			lastBatch = time.Now()
			switch {
			case errors.Is(cj.err, ErrInterrupted):
				fmt.Fprintf(env.Log, "infer: stopping: chunk %d abandoned; finishing the chunks being written\n", cj.c)
				fail(cj.err)
			case cj.err != nil:
				fail(cj.err)
			default: // written even after another chunk failed: it is done
				ready = append(ready, cj)
			}
		case w := <-written:
			writing--
			if w.err != nil {
				fail(w.err)
			} else {
				prog.add(w.examples)
			}
		case <-stop:
			// Seen at the top of the loop. Batches still queued are handed
			// out and dropped by the workers, which keeps the count of each
			// chunk's batches right.
			stop = nil
		}
	}
	close(batches)
	close(wideBatches)
	close(quit)
	wg.Wait()
	if firstErr == nil && !lastBatch.IsZero() {
		// Where the time went, for tuning threads and workers: how busy the
		// workers were while there was translating to do, and how long the
		// writers took after the last batch.
		span := lastBatch.Sub(start)
		fmt.Fprintf(env.Log, "infer: translated in %.2fs (workers busy %.0f%% of it; slowest batch %s), last part written %.2fs later\n",
			span.Seconds(), 100*float64(busy.Load())/float64(int64(len(workers))*max(int64(span), 1)), &slowest, time.Since(lastBatch).Seconds())
	}
	return firstErr
}

// batchTime keeps the slowest batch of a run, for the log: at few batches
// a worker (batch 64 on 16 cores) it bounds the run.
type batchTime struct {
	mu      sync.Mutex
	took    time.Duration
	b       *batchJob
	threads int // the worker's
}

func (t *batchTime) note(b *batchJob, threads int, took time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if took > t.took {
		t.took, t.b, t.threads = took, b, threads
	}
}

func (t *batchTime) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.b == nil {
		return "none"
	}
	kind := ""
	if t.b.detached {
		kind = " detached"
	}
	return fmt.Sprintf("%.2fs: chunk %d%s batch %d%s, %d examples, threads %d", t.took.Seconds(), t.b.chunk.c, kind, t.b.n, t.b.sliceName(), len(t.b.idx), t.threads)
}

// threadUse is how many threads a worker of plan keeps busy while it
// decodes, narrow or wide (Parallelism.Wide), and how many of plan's
// threads the workers leave to rounding helpers. A worker on the CPU uses
// its intra-op threads; one driving a GPU mostly waits on it: one thread,
// and the others round (at GPU speed rounding is most of the CPU's work).
func threadUse(plan inference.Parallelism, provider string) (narrow, wide, helpers int) {
	narrow, wide = plan.IntraOp, plan.WideIntraOp
	if provider != "cpu" {
		narrow, wide = 1, 1
	}
	return narrow, wide, max(0, plan.Threads-(plan.Workers-plan.Wide)*narrow-plan.Wide*wide)
}

// writeSlots bounds the sub-parts written at once to the threads the
// workers and rounding helpers leave (at least one): a writer is a Go
// thread beside the workers' ONNX Runtime threads, and more threads than
// cores slow the slowest batch, which ends the run.
type writeSlots struct {
	threads int
	working atomic.Int32 // threads of workers decoding, workers and helpers rounding
	mu      sync.Mutex
	writing int
}

func (w *writeSlots) acquire() {
	for {
		w.mu.Lock()
		if w.writing < max(1, w.threads-int(w.working.Load())) {
			w.writing++
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
	}
}

func (w *writeSlots) release() {
	w.mu.Lock()
	w.writing--
	w.mu.Unlock()
}

// roundQueue holds the examples of translated batches waiting to be
// rounded. ready has a token whenever the queue may hold one, for workers
// waiting on a batch or an example at once.
type roundQueue struct {
	mu    sync.Mutex
	tasks []roundTask
	ready chan struct{}
}

// roundTask is a piece of one example of a translated batch to round.
type roundTask struct {
	batch *batchJob
	ex    *roundExample
	piece int // into ex.pieces
}

// roundExample is an example of a translated batch being rounded, in
// pieces (roundPieces) on any threads; the last piece done stores them.
type roundExample struct {
	i      int // index into the batch's chunk
	rows   []store.Attention
	pieces [][2]int
	out    []store.Prepared[store.Attention]
	left   atomic.Int32 // pieces not yet rounded
}

func newRoundQueue() *roundQueue { return &roundQueue{ready: make(chan struct{}, 1)} }

// push queues the pieces of example ex of b.
func (q *roundQueue) push(b *batchJob, ex *roundExample) {
	q.mu.Lock()
	for k := range ex.pieces {
		q.tasks = append(q.tasks, roundTask{b, ex, k})
	}
	q.mu.Unlock()
	q.signal()
}

func (q *roundQueue) pop() (roundTask, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.tasks) == 0 {
		return roundTask{}, false
	}
	t := q.tasks[0]
	q.tasks = q.tasks[1:]
	if len(q.tasks) > 0 {
		q.signal() // wake another worker too
	}
	return t, true
}

func (q *roundQueue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// errAbandoned marks a chunk dropped because another failed; the other's
// error is the one returned.
var errAbandoned = errors.New("abandoned after another chunk failed")

// chunksAhead is how many chunks are translated at once: enough that
// while one chunk waits for its last batches the others still hold two
// batches for every worker (with fewer, workers sat idle: 38% busy on 16
// cores at batch 16 with two chunks), at least two, and at most eight
// (memory holds every chunk in flight; chunk_size bounds each).
func chunksAhead(workers, batchesPerChunk int) int {
	return min(8, max(2, (2*workers+batchesPerChunk-1)/batchesPerChunk+1))
}

// batchesPerChunk is how many batches a full chunk is cut into.
func (r *run) batchesPerChunk() int {
	n := (r.cfg.ChunkSize + r.cfg.BatchSize - 1) / r.cfg.BatchSize
	if r.cfg.DetachedPairs {
		n *= 2
	}
	return n
}

// chunkWriters is how many chunks may be written at once: a quarter of the
// cores, from one to four.
func chunkWriters() int {
	return max(1, min(4, runtime.GOMAXPROCS(0)/4))
}

// chunkOutput is what translating one chunk produced, in example order.
// Its attention goes into rows and detRows as each batch is done
// (prepare); the results and detached passes then keep the rest.
type chunkOutput struct {
	results  []inference.Result
	detached []*inference.Pass
	// rows holds each example's forced and free passes' attention rows
	// as stored (in pieces, in row order: roundPieces), detRows its
	// detached pass's; weights and detWeights count their weights.
	rows, detRows       [][]store.Prepared[store.Attention]
	weights, detWeights []int64
}

func newChunkOutput(n int) chunkOutput {
	return chunkOutput{
		results: make([]inference.Result, n), detached: make([]*inference.Pass, n),
		rows: make([][]store.Prepared[store.Attention], n), detRows: make([][]store.Prepared[store.Attention], n),
		weights: make([]int64, n), detWeights: make([]int64, n),
	}
}

// prepare rounds the attention rows sel keeps of the examples idx (their
// detached passes when detached is set) as precision stores them, and
// drops the float32 matrices they came from, each example in one piece.
// Batches fill disjoint examples, or the other half of one, so they need
// no lock between them.
func (o *chunkOutput) prepare(exs []dataset.Example, idx []int, detached bool, sel store.Selection, precision string) error {
	for _, i := range idx {
		rows := o.attention(exs, i, detached, sel)
		p, err := store.PrepareAttention(precision, rows)
		if err != nil {
			return err
		}
		o.keep(i, detached, rows, []store.Prepared[store.Attention]{p})
	}
	return nil
}

// attention returns the attention rows sel keeps of example i (its
// detached pass's when detached is set), on its float32 matrices.
func (o *chunkOutput) attention(exs []dataset.Example, i int, detached bool, sel store.Selection) []store.Attention {
	id := int32(exs[i].Index)
	if detached {
		return passRows(nil, sel, id, store.PassDetached, o.detached[i], nil)
	}
	res := &o.results[i]
	rows := passRows(nil, sel, id, store.PassForced, res.Forced, nil)
	return passRows(rows, sel, id, store.PassFree, &res.Free, res.EncoderSelf)
}

// keep stores example i's rows rounded (pieces, in row order) and drops
// the float32 matrices they came from.
func (o *chunkOutput) keep(i int, detached bool, rows []store.Attention, pieces []store.Prepared[store.Attention]) {
	var n int64
	for _, row := range rows {
		n += int64(len(row.Weights.Data))
	}
	if detached {
		o.detRows[i], o.detWeights[i] = pieces, n
		o.detached[i].Cross, o.detached[i].DecoderSelf = nil, nil
		return
	}
	res := &o.results[i]
	o.rows[i], o.weights[i] = pieces, n
	res.EncoderSelf, res.Free.Cross, res.Free.DecoderSelf = nil, nil, nil
	if res.Forced != nil {
		res.Forced.Cross, res.Forced.DecoderSelf = nil, nil
	}
}

// roundPieces cuts rows into contiguous pieces of about pieceWeights
// weights each (a row is never cut), for rounding on several threads: a
// long sentence (a hallucination running to the length limit) is a
// million weights, and the last of a batch's sentences ends the run.
func roundPieces(rows []store.Attention) [][2]int {
	var out [][2]int
	start, n := 0, 0
	for j, row := range rows {
		n += len(row.Weights.Data)
		if n >= pieceWeights || j == len(rows)-1 {
			out = append(out, [2]int{start, j + 1})
			start, n = j+1, 0
		}
	}
	return out
}

// pieceWeights is about how many weights one rounding task takes: a few
// milliseconds of one core.
const pieceWeights = 1 << 16

// chunkJob is a chunk being translated: its batches run on any worker and
// fill out by example index, so they need no lock between them.
type chunkJob struct {
	c       int
	exs     []dataset.Example
	out     chunkOutput
	batches []*batchJob
	pending atomic.Int32 // batches not yet finished
	mu      sync.Mutex
	err     error // the first batch error
}

func (cj *chunkJob) fail(err error) {
	cj.mu.Lock()
	defer cj.mu.Unlock()
	if cj.err == nil {
		cj.err = err
	}
}

// batchJob is one batch of a chunk: translation of the examples idx, or,
// when detached is set, forcing their sources with their detached
// partners' references.
type batchJob struct {
	chunk *chunkJob
	n     int // the batch's number in its chunk, for errors
	idx   []int
	// whole is the batch a slice is cut from (nil: the batch is whole),
	// slice its number (1 … slices): Parallelism.CutBatches.
	whole         []int
	slice, slices int
	detached      bool
	opts          inference.DecodeOptions
	unrounded     atomic.Int32 // examples not yet rounded, and one while the batch runs
}

// sliceName is " slice j/k" for a slice of a batch, "" for a whole one.
func (b *batchJob) sliceName() string {
	if b.whole == nil {
		return ""
	}
	return fmt.Sprintf(" slice %d/%d", b.slice, b.slices)
}

// cost is a batch's decoding time in arbitrary units, for ordering the
// queue: a search takes as many steps as its longest output, which grows
// with the longest source, for every row; a detached pass is one forced
// pass, a small part of a search.
func (b *batchJob) cost() int {
	longest := 0
	for _, i := range b.idx {
		longest = max(longest, len(b.chunk.exs[i].Source))
	}
	if b.detached {
		return longest
	}
	return longest * len(b.idx)
}

// newChunkJob cuts chunk c into batches: its examples sorted by source
// length, longest batch first, then, when configured, their detached pairs: every source forced
// with the reference of the example half a chunk away ("fully detached"
// pairs, Guerreiro et al. 2023), so that detectors can be scored on known
// hallucinations without labels.
func (r *run) newChunkJob(c int) *chunkJob {
	exs := r.chunk(c)
	cj := &chunkJob{c: c, exs: exs, out: newChunkOutput(len(exs))}
	order := make([]int, len(exs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		return len(exs[order[a]].Source) < len(exs[order[b]].Source)
	})
	// Batches of the longest sources first: the workers finish together
	// when the slowest batches are not left for last.
	bs, opts := r.cfg.BatchSize, DecodeOptions(r.cfg)
	last := (len(order) - 1) / bs
	for n := last; n >= 0; n-- {
		idx := order[n*bs : min((n+1)*bs, len(order))]
		k := max(1, r.cuts[[2]int{c, n}])
		if k == 1 {
			cj.batches = append(cj.batches, &batchJob{chunk: cj, n: n, idx: idx, opts: opts})
			continue
		}
		// Slices of rows dealt in turn, so that each holds sources of
		// every length of the batch, all padded like the whole batch.
		for j := range k {
			var part []int
			for p := j; p < len(idx); p += k {
				part = append(part, idx[p])
			}
			cj.batches = append(cj.batches, &batchJob{chunk: cj, n: n, idx: part, whole: idx, slice: j + 1, slices: k, opts: opts})
		}
	}
	if r.cfg.DetachedPairs && len(exs) > 1 {
		var at []int
		for i := range exs {
			if exs[detachedPartner(i, len(exs))].HasReference {
				at = append(at, i)
			}
		}
		for b, k := 0, 0; b < len(at); b, k = b+bs, k+1 {
			cj.batches = append(cj.batches, &batchJob{chunk: cj, n: k, idx: at[b:min(b+bs, len(at))], detached: true})
		}
	}
	cj.pending.Store(int32(len(cj.batches)))
	return cj
}

// run translates or force-decodes the batch on model m.
func (b *batchJob) run(m *inference.Model, handed func(i int)) error {
	exs := b.chunk.exs
	if b.detached {
		srcs, refs := make([]string, len(b.idx)), make([]string, len(b.idx))
		for k, i := range b.idx {
			srcs[k], refs[k] = exs[i].Source, exs[detachedPartner(i, len(exs))].Reference
		}
		out, err := m.Force(srcs, refs)
		if err != nil {
			return fmt.Errorf("chunk %d: detached pairs: batch %d (%s): %w", b.chunk.c, b.n, exampleIDs(exs, b.idx), err)
		}
		for k, i := range b.idx {
			b.chunk.out.detached[i] = &out[k]
			handed(i)
		}
		return nil
	}
	reqs := make([]inference.Request, len(b.idx))
	for k, i := range b.idx {
		reqs[k] = inference.Request{Source: exs[i].Source, Reference: exs[i].Reference, HasReference: exs[i].HasReference}
	}
	padTo := 0
	for _, i := range b.whole {
		padTo = max(padTo, m.SourceTokens(exs[i].Source))
	}
	err := m.TranslateSlice(reqs, padTo, b.opts, func(r inference.Result) {
		i := b.idx[r.Index]
		b.chunk.out.results[i] = r
		handed(i)
	})
	if err != nil {
		return fmt.Errorf("chunk %d, batch %d%s (%s): %w", b.chunk.c, b.n, b.sliceName(), exampleIDs(exs, b.idx), err)
	}
	return nil
}

// exampleIDs names the examples exs[i] for i in idx by example_id and
// dataset id, for errors: "example_id 3 (ko-17), 9 (line-12)".
func exampleIDs(exs []dataset.Example, idx []int) string {
	parts := make([]string, len(idx))
	for k, i := range idx {
		parts[k] = fmt.Sprintf("%d (%s)", exs[i].Index, exs[i].ID)
	}
	return "example_id " + strings.Join(parts, ", ")
}

// writeChunk writes chunk c's rows in example order, attention and
// examples parts, then the chunk's record of them, which marks it done.
//
// The attention rows, rounded as their batches finished (prepare), are
// most of the bytes and of the rest of the CPU (zstd); they are written as sub-parts, each a range of the chunk's examples, on their
// own goroutines: one file is encoded on one core, and the last chunks of
// a run would otherwise leave every other core idle while they are
// written. The ranges depend on the rows alone (subPartRanges), never on
// the number of cores, so a run's files are the same on any machine.
//
// slots bounds the sub-parts being written at once, across chunks.
func (r *run) writeChunk(c int, out chunkOutput, slots *writeSlots) error {
	// Sub-parts of an earlier, unfinished try of this chunk would
	// otherwise lie beside the new ones.
	stale, err := store.AttentionSubParts(r.dir, c)
	if err != nil {
		return err
	}
	for _, p := range stale {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	weights := make([]int64, len(out.results))
	for i := range weights {
		weights[i] = out.weights[i] + out.detWeights[i]
	}
	ranges := subPartRanges(weights, subPartWeights, maxSubParts)
	infos := make([][]store.PartInfo, len(ranges))
	errs := make([]error, len(ranges))
	var wg sync.WaitGroup
	for j, rg := range ranges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots.acquire()
			defer slots.release()
			infos[j], errs[j] = writeAttentionPart(r.dir, store.AttentionOptions{Part: c, Sub: j, Precision: r.cfg.Precision},
				out.detRows[rg[0]:rg[1]], out.rows[rg[0]:rg[1]])
		}()
	}
	exInfos, exErr := r.writeExamplesPart(c, out.results, out.detached)
	wg.Wait()
	if err := errors.Join(append(errs, exErr)...); err != nil {
		return err
	}
	var parts []store.PartInfo
	for _, in := range infos {
		parts = append(parts, in...)
	}
	return r.writeChunkRecord(c, append(parts, exInfos...))
}

// Sub-parts: a chunk's attention is cut into ranges of about
// subPartWeights weights (16 MB as float32, about 3.5 MB on disk at the
// packed default; 0.1–0.2 s to write on an idle core of the 2-core
// machine), at most maxSubParts of them, so that on 16 cores the last
// chunks of a run are written on 8 cores each, and a part stays large
// enough for readers to scan quickly. A var for tests.
var (
	subPartWeights int64 = 4 << 20
	maxSubParts          = 8
)

// subPartRanges cuts examples with the given numbers of weights into
// contiguous ranges [from, to) of about equal weight: as many as the total
// holds of target (at least one, at most most, at most one an example).
// Ranges are never empty, except the only one of a chunk without examples.
func subPartRanges(weights []int64, target int64, most int) [][2]int {
	var total int64
	for _, w := range weights {
		total += w
	}
	n := int(min(int64(most), max(1, (total+target/2)/target), int64(max(1, len(weights)))))
	var ranges [][2]int
	from := 0
	var acc int64
	for i, w := range weights {
		acc += w
		// Cut after example i once the ranges so far hold their share.
		if k := len(ranges) + 1; k < n && acc*int64(n) >= total*int64(k) && i+1 < len(weights) {
			ranges = append(ranges, [2]int{from, i + 1})
			from = i + 1
		}
	}
	return append(ranges, [2]int{from, len(weights)})
}

// writeAttentionPart writes examples' rows, each example's detached pass
// then its other passes, into the attention part opts names, and returns
// what it committed.
func writeAttentionPart(dir string, opts store.AttentionOptions, detRows, rows [][]store.Prepared[store.Attention]) ([]store.PartInfo, error) {
	// Abort drops a part that Close did not commit, so a failed chunk
	// leaves no file under a final name.
	aw, err := store.NewAttentionWriter(dir, opts)
	if err != nil {
		return nil, err
	}
	defer aw.Abort()
	for i := range rows {
		if err := aw.WritePrepared(detRows[i]...); err != nil {
			return nil, err
		}
		if err := aw.WritePrepared(rows[i]...); err != nil {
			return nil, err
		}
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	return aw.PartInfos(), nil
}

// writeExamplesPart writes chunk c's examples part.
func (r *run) writeExamplesPart(c int, results []inference.Result, detached []*inference.Pass) ([]store.PartInfo, error) {
	exs := r.chunk(c)
	ew, err := store.NewExampleWriter(r.dir, c)
	if err != nil {
		return nil, err
	}
	defer ew.Abort()
	for i, res := range results {
		row := exampleRow(exs[i], res)
		row.DetachedFrom = -1
		if d := detached[i]; d != nil {
			row.DetachedFrom = int32(exs[detachedPartner(i, len(exs))].Index)
			row.DetPieces, row.DetIDs, row.DetLogprobs = d.Pieces, d.IDs, d.Logprobs
		}
		if err := ew.Write(row); err != nil {
			return nil, err
		}
	}
	if err := ew.Close(); err != nil {
		return nil, err
	}
	return ew.PartInfos(), nil
}

// DecodeOptions returns the search settings of cfg. A beam of one is run
// as greedy search, which finds the same output without beam bookkeeping.
func DecodeOptions(cfg configs.Config) inference.DecodeOptions {
	beam := cfg.Beam
	if beam == 1 {
		beam = 0
	}
	return inference.DecodeOptions{Beam: beam, MaxLen: cfg.MaxLen, RepetitionPenalty: float32(cfg.RepetitionPenalty)}
}

// detachedPartner is the example, half a chunk of n away, whose reference
// example i is forced with in the detached pass.
func detachedPartner(i, n int) int { return (i + n/2) % n }

// passRows appends to rows the rows sel keeps of one pass of an example,
// in the schema's sort order (kind, then layer and head), with the
// encoder's attention when it is given: it reads only the source, so it is
// the same in every pass and stored once, with the free pass. Passes must
// come in the schema's order: detached, forced, free. A nil pass adds
// nothing.
func passRows(rows []store.Attention, sel store.Selection, id int32, name string, pass *inference.Pass, encoder [][]metrics.Matrix) []store.Attention {
	if pass == nil {
		return rows
	}
	kinds := []struct {
		kind string
		m    [][]metrics.Matrix
	}{
		{store.KindCross, pass.Cross},
		{store.KindDecoderSelf, pass.DecoderSelf},
		{store.KindEncoderSelf, encoder},
	}
	for _, k := range kinds {
		for layer, heads := range k.m {
			if !sel.Keeps(name, k.kind, layer, len(k.m)) {
				continue
			}
			for head, m := range heads {
				rows = append(rows, store.Attention{ExampleID: id, Pass: name, Kind: k.kind, Layer: int16(layer), Head: int16(head), Weights: m})
			}
		}
	}
	return rows
}

func exampleRow(ex dataset.Example, res inference.Result) store.Example {
	row := store.Example{
		ExampleID:     int32(ex.Index),
		ID:            ex.ID,
		Source:        ex.Source,
		Reference:     ex.Reference,
		Hypothesis:    res.Hypothesis,
		SrcPieces:     res.SrcPieces,
		SrcIDs:        res.SrcIDs,
		TgtPieces:     res.Free.Pieces,
		TgtIDs:        res.Free.IDs,
		TokenLogprobs: res.Free.Logprobs,
		SeqLogprob:    float32(metrics.SeqLogprob(res.Free.Logprobs)),
		Chrf:          float32(math.NaN()),
		Bleu:          float32(math.NaN()),
	}
	if res.Forced != nil {
		row.RefPieces, row.RefIDs, row.RefLogprobs = res.Forced.Pieces, res.Forced.IDs, res.Forced.Logprobs
	}
	row.EncoderValueNorms, row.CrossValueNorms = flatNorms(res.EncoderValueNorms), flatNorms(res.CrossValueNorms)
	if ex.HasReference {
		row.Chrf = float32(metrics.SentenceChrF(res.Hypothesis, ex.Reference))
		row.Bleu = float32(metrics.SentenceBLEU(res.Hypothesis, ex.Reference))
	}
	return row
}

// flatNorms lays value-vector norms [layer][head][position] out row-major,
// as examples.parquet stores them.
func flatNorms(norms [][][]float32) []float32 {
	var out []float32
	for _, heads := range norms {
		for _, h := range heads {
			out = append(out, h...)
		}
	}
	return out
}

// finishInfer writes the manifest once every chunk of the run exists,
// whichever shard wrote it.
func (r *run) finishInfer(version string) error {
	for c := range r.chunks() {
		if !r.chunkDone(c) {
			return nil
		}
	}
	records, err := r.shardRecords()
	if err != nil {
		return err
	}
	m := r.manifest(records)
	m.Tool.Version = version
	if m.Parts, err = r.inferParts(); err != nil {
		return err
	}
	rows := map[string]int64{}
	for _, p := range m.Parts {
		rows[strings.SplitN(p.Name, "-", 2)[0]] += p.Rows
	}
	infer := m.Stages[StageInfer]
	infer.Rows = rows
	m.Stages[StageInfer] = infer
	return writeManifest(r.dir, m)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
