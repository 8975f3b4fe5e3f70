package pipeline

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
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

	model, err := env.Runtime.Load(r.ckpt)
	if err != nil {
		return "", err
	}
	defer model.Close()
	fmt.Fprintf(env.Log, "infer: %s on %s (%d examples, %d chunks) with %s, shard %s → %s\n",
		r.ckpt.Name(), r.data.Name, len(r.data.Examples), r.chunks(), model.Provider(), shard, r.dir)

	todo := 0
	for c := range r.chunks() {
		if shard.Owns(c) && !r.chunkDone(c) {
			todo += len(r.chunk(c))
		}
	}
	est := r.expectedAttentionBytes(todo)
	fmt.Fprintf(env.Log, "infer: expect about %s of attention for %d examples (%s per example; precision %s, store %s)\n",
		formatBytes(est), todo, formatBytes(est/int64(max(todo, 1))), r.cfg.Precision, r.cfg.Store)
	prog := newProgress(env.Progress, "infer", todo)
	// Chunks' Parquet parts are encoded and written on their own goroutines
	// while the next chunks are translated: at GPU speed, encoding (zstd) is
	// slower than inference. Up to chunkWriters() chunks are in flight; each
	// chunk is its own pair of part files, committed alone, so the order
	// they finish in changes nothing, and memory holds at most that many
	// chunks plus the one being translated.
	writers := chunkWriters()
	done := make(chan error, writers)
	var progMu sync.Mutex
	inFlight := 0
	var writeErr error
	collect := func() {
		if err := <-done; err != nil && writeErr == nil {
			writeErr = err
		}
		inFlight--
	}
	for c := range r.chunks() {
		if !shard.Owns(c) || r.chunkDone(c) {
			continue
		}
		if env.stopped() {
			fmt.Fprintf(env.Log, "infer: stopping before chunk %d; finishing the chunks being written\n", c)
			writeErr = ErrInterrupted
			break
		}
		out, err := r.translateChunk(env, model, c)
		if errors.Is(err, ErrInterrupted) {
			fmt.Fprintf(env.Log, "infer: stopping: chunk %d abandoned; finishing the chunks being written\n", c)
		}
		if err != nil {
			for inFlight > 0 {
				collect()
			}
			return "", err
		}
		for inFlight >= writers {
			collect()
		}
		if writeErr != nil {
			break
		}
		inFlight++
		go func() {
			err := r.writeChunk(c, out)
			if err == nil {
				progMu.Lock()
				prog.add(len(r.chunk(c)))
				progMu.Unlock()
			}
			done <- err
		}()
	}
	for inFlight > 0 {
		collect()
	}
	if writeErr != nil {
		return "", writeErr
	}
	if err := r.writeShardRecord(shard, model.Provider(), time.Since(start)); err != nil {
		return "", err
	}
	return r.dir, r.finishInfer(env.Version)
}

// chunkWriters is how many chunks may be written at once: a quarter of the
// cores, from one to four.
func chunkWriters() int {
	return max(1, min(4, runtime.GOMAXPROCS(0)/4))
}

// chunkOutput is what translating one chunk produced, in example order.
type chunkOutput struct {
	results  []inference.Result
	detached []*inference.Pass
}

// translateChunk translates chunk c in batches sorted by source length and,
// when configured, force-decodes its detached pairs.
func (r *run) translateChunk(env Env, model *inference.Model, c int) (chunkOutput, error) {
	exs := r.chunk(c)
	cfg := r.cfg
	order := make([]int, len(exs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		return len(exs[order[a]].Source) < len(exs[order[b]].Source)
	})
	results := make([]inference.Result, len(exs))
	detached := make([]*inference.Pass, len(exs))
	opts := DecodeOptions(cfg)
	for b := 0; b < len(order); b += cfg.BatchSize {
		if env.stopped() {
			return chunkOutput{}, ErrInterrupted
		}
		idx := order[b:min(b+cfg.BatchSize, len(order))]
		reqs := make([]inference.Request, len(idx))
		for k, i := range idx {
			reqs[k] = inference.Request{Source: exs[i].Source, Reference: exs[i].Reference, HasReference: exs[i].HasReference}
		}
		out, err := model.TranslateBatch(reqs, opts)
		if err != nil {
			return chunkOutput{}, fmt.Errorf("chunk %d, batch %d (%s): %w", c, b/cfg.BatchSize, exampleIDs(exs, idx), err)
		}
		for k, i := range idx {
			results[i] = out[k]
		}
	}
	if cfg.DetachedPairs && len(exs) > 1 {
		var err error
		if detached, err = r.detachedPasses(model, exs); err != nil {
			return chunkOutput{}, fmt.Errorf("chunk %d: detached pairs: %w", c, err)
		}
	}
	return chunkOutput{results, detached}, nil
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
func (r *run) writeChunk(c int, out chunkOutput) error {
	exs, cfg := r.chunk(c), r.cfg
	results, detached := out.results, out.detached
	// Abort drops a part that Close did not commit, so a failed chunk
	// leaves no file under a final name.
	aw, err := store.NewAttentionWriter(r.dir, store.AttentionOptions{Part: c, Precision: cfg.Precision})
	if err != nil {
		return err
	}
	sel, err := store.ParseSelection(cfg.Store)
	if err != nil {
		return err
	}
	defer aw.Abort()
	ew, err := store.NewExampleWriter(r.dir, c)
	if err != nil {
		return err
	}
	defer ew.Abort()
	for i, res := range results {
		id := int32(exs[i].Index)
		if err := writeAttention(aw, sel, id, res, detached[i]); err != nil {
			return err
		}
		row := exampleRow(exs[i], res)
		row.DetachedFrom = -1
		if d := detached[i]; d != nil {
			row.DetachedFrom = int32(exs[detachedPartner(i, len(exs))].Index)
			row.DetPieces, row.DetIDs, row.DetLogprobs = d.Pieces, d.IDs, d.Logprobs
		}
		if err := ew.Write(row); err != nil {
			return err
		}
	}
	if err := aw.Close(); err != nil {
		return err
	}
	if err := ew.Close(); err != nil {
		return err
	}
	return r.writeChunkRecord(c, append(aw.PartInfos(), ew.PartInfos()...))
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

// detachedPasses force-decodes every source of a chunk with the reference of
// the example half a chunk away ("fully detached" pairs, Guerreiro et al.
// 2023), so detectors can be scored on known hallucinations without labels.
func (r *run) detachedPasses(model *inference.Model, exs []dataset.Example) ([]*inference.Pass, error) {
	passes := make([]*inference.Pass, len(exs))
	var srcs, refs []string
	var at []int
	for i, ex := range exs {
		other := exs[detachedPartner(i, len(exs))]
		if !other.HasReference {
			continue
		}
		srcs, refs, at = append(srcs, ex.Source), append(refs, other.Reference), append(at, i)
	}
	for b := 0; b < len(at); b += r.cfg.BatchSize {
		e := min(b+r.cfg.BatchSize, len(at))
		out, err := model.Force(srcs[b:e], refs[b:e])
		if err != nil {
			return nil, fmt.Errorf("batch %d (%s): %w", b/r.cfg.BatchSize, exampleIDs(exs, at[b:e]), err)
		}
		for k := range out {
			passes[at[b+k]] = &out[k]
		}
	}
	return passes, nil
}

// detachedPartner is the example, half a chunk of n away, whose reference
// example i is forced with in the detached pass.
func detachedPartner(i, n int) int { return (i + n/2) % n }

// writeAttention writes an example's rows that sel keeps in the schema's
// sort order: pass, then kind, then layer and head.
func writeAttention(w *store.AttentionWriter, sel store.Selection, id int32, res inference.Result, detached *inference.Pass) error {
	type passRows struct {
		name string
		pass *inference.Pass
	}
	passes := []passRows{{store.PassDetached, detached}, {store.PassForced, res.Forced}, {store.PassFree, &res.Free}}
	for _, p := range passes {
		if p.pass == nil {
			continue
		}
		kinds := []struct {
			kind string
			m    [][]metrics.Matrix
		}{
			{store.KindCross, p.pass.Cross},
			{store.KindDecoderSelf, p.pass.DecoderSelf},
		}
		// The encoder reads only the source, so its attention is the same in
		// every pass: it is stored once, with the free pass.
		if p.name == store.PassFree {
			kinds = append(kinds, struct {
				kind string
				m    [][]metrics.Matrix
			}{store.KindEncoderSelf, res.EncoderSelf})
		}
		for _, k := range kinds {
			for layer, heads := range k.m {
				if !sel.Keeps(p.name, k.kind, layer, len(k.m)) {
					continue
				}
				for head, m := range heads {
					row := store.Attention{ExampleID: id, Pass: p.name, Kind: k.kind, Layer: int16(layer), Head: int16(head), Weights: m}
					if err := w.Write(row); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
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
