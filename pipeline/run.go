// Package pipeline runs attnaudit's stages (infer, metrics, report, compare,
// audit) over run folders. A run folder holds one checkpoint × dataset ×
// config; its name carries a hash of all three, so rerunning a command goes
// back to the same folder and resumes it, and a changed input never mixes
// its files with an old run's.
//
// pipeline does I/O and ordering only: it reads and writes Parquet through
// package store and leaves every score to package metrics (metrics.Run for
// a run's scoring), so no metric, flag or gate is written here except the
// audit's gate table (regressionGates).
package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"attnaudit/configs"
	"attnaudit/dataset"
	"attnaudit/examples"
	"attnaudit/inference"
	"attnaudit/metrics"
)

// Stage names, as recorded in the manifest.
const (
	StageInfer   = "infer"
	StageMetrics = "metrics"
	StageReport  = "report"
)

// Env is what the stages need from outside: where to write messages and the
// ONNX Runtime to run models with (nil for stages that run no model).
type Env struct {
	Log      io.Writer // one line per event
	Progress io.Writer // examples/s and ETA; rewritten in place on a terminal
	Runtime  *inference.Runtime
	Version  string
	// Stop, when closed, asks a running infer stage to stop (on SIGTERM or
	// SIGINT): chunks being written are finished and committed, the chunk
	// being translated is abandoned, and Infer returns ErrInterrupted. A
	// rerun resumes. Nil never stops.
	Stop <-chan struct{}
}

// ErrInterrupted is returned by a stage that Env.Stop stopped.
var ErrInterrupted = errors.New("interrupted; rerun the same command to resume")

func (env Env) stopped() bool {
	select {
	case <-env.Stop:
		return true
	default:
		return false
	}
}

// Inputs names what a run is made from. Empty Checkpoint or Data mean the
// shipped final checkpoint and the embedded demo dataset.
type Inputs struct {
	Checkpoint string
	Data       string
	OutputDir  string
	Config     configs.Config
}

// run is an opened run folder with its inputs loaded.
type run struct {
	dir      string
	cfg      configs.Config
	ckpt     *inference.Checkpoint
	ckptPath string
	data     *dataset.Dataset
	dataPath string
	id       string
	// cuts is into how many slices infer cuts translation batch n of
	// chunk c (key {c, n}; absent: whole): Parallelism.CutBatches.
	cuts map[[2]int]int
}

// openRun loads a run's checkpoint and dataset and creates its folder.
func openRun(env Env, in Inputs) (*run, error) {
	ckpt, ckptPath, err := OpenCheckpoint(in.Checkpoint)
	if err != nil {
		return nil, err
	}
	if err := checkLayers(in.Config, ckpt); err != nil {
		return nil, err
	}
	data, dataPath, err := loadDataset(in.Data, ckpt, in.Config.Strict)
	if err != nil {
		return nil, err
	}
	for _, p := range data.Problems {
		fmt.Fprintf(env.Log, "dataset: skipped %s\n", p)
	}
	if len(data.Examples) == 0 {
		return nil, fmt.Errorf("%s: no usable examples", dataPath)
	}
	r := &run{cfg: in.Config, ckpt: ckpt, ckptPath: ckptPath, data: data, dataPath: dataPath}
	r.id = runID(ckpt.Hash(), data.Hash, in.Config)
	r.dir = filepath.Join(in.OutputDir, runFolderName(ckpt, r.id))
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating run folder: %w", err)
	}
	return r, nil
}

// checkLayers resolves every configured layer against the checkpoint's
// decoder before any stage starts, so a bad layer fails the run at once,
// not after inference.
func checkLayers(cfg configs.Config, ckpt *inference.Checkpoint) error {
	_, dec := ckpt.Layers()
	if dec == 0 { // not inspected (no ONNX Runtime): checked when the model loads
		return nil
	}
	for _, s := range []struct {
		key   string
		layer int
	}{{"metrics.layer", cfg.Metrics.Layer}, {"metrics.aer_layer", cfg.Metrics.AERLayer}, {"report.report_layer", cfg.Report.Layer}} {
		if _, err := metrics.ResolveLayer(s.layer, dec, "cross"); err != nil {
			return fmt.Errorf("%s of %s: %w", s.key, ckpt.Name(), err)
		}
	}
	return nil
}

// loadDataset loads a dataset file, or the embedded demo set when path is
// empty, skipping lines longer than the checkpoint's positions.
func loadDataset(path string, ckpt *inference.Checkpoint, strict bool) (*dataset.Dataset, string, error) {
	tok := ckpt.Tokenizer()
	return readDataset(path, dataset.Options{
		Strict:      strict,
		MaxTokens:   ckpt.Meta().MaxPositions,
		CountTokens: tok.SourceLen,
	})
}

// readDataset reads the dataset at path, or the embedded demo set when path
// is empty or names it, and returns it with the name runs record.
func readDataset(path string, opts dataset.Options) (*dataset.Dataset, string, error) {
	if path == "" || path == examples.DemoDataName {
		data, err := dataset.LoadBytes(examples.DemoDataName, examples.DemoData, opts)
		return data, examples.DemoDataName, err
	}
	data, err := dataset.Load(path, opts)
	return data, path, err
}

// OpenCheckpoint opens a checkpoint folder, or the shipped final one when
// dir is empty, and returns it with the folder it came from.
func OpenCheckpoint(dir string) (*inference.Checkpoint, string, error) {
	if dir == "" {
		var err error
		if dir, err = examples.DefaultCheckpoint(); err != nil {
			return nil, "", err
		}
	}
	ck, err := inference.OpenCheckpoint(os.DirFS(dir), ".")
	if err != nil {
		return nil, "", fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	return ck, dir, nil
}

// runID hashes everything that determines the infer stage's results.
// Settings that only affect speed or where things go (threads, provider,
// batch size) are left out on purpose: the same run on CPU and GPU is the
// same run.
func runID(ckptHash, dataHash string, cfg configs.Config) string {
	cfg.ORTLib, cfg.Provider, cfg.CUDADevice, cfg.Threads, cfg.Workers, cfg.BatchSize = "", "", 0, 0, 0, 0
	// Later stages' settings do not change what infer writes; a change to
	// them, new settings among them, reruns those stages in the same folder
	// (see stage), so they are left out of the hash altogether.
	var keys map[string]any
	c, _ := json.Marshal(cfg)
	_ = json.Unmarshal(c, &keys)
	delete(keys, "metrics")
	delete(keys, "report")
	delete(keys, "audit")
	c, _ = json.Marshal(keys)
	h := sha256.New()
	fmt.Fprintf(h, "checkpoint %s\ndataset %s\nconfig %s\n", ckptHash, dataHash, c)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// runFolderName reads well in a listing and sorts by epoch:
// ko-en-small-epoch0040-3f2a9c1d.
func runFolderName(ckpt *inference.Checkpoint, id string) string {
	meta := ckpt.Meta()
	name := unsafeName.ReplaceAllString(meta.Name, "-")
	if name == "" {
		name = "checkpoint"
	}
	return fmt.Sprintf("%s-epoch%04d-%s", name, meta.Epoch, id[:8])
}

func (r *run) chunks() int {
	return (len(r.data.Examples) + r.cfg.ChunkSize - 1) / r.cfg.ChunkSize
}

func (r *run) chunk(c int) []dataset.Example {
	return r.data.Examples[c*r.cfg.ChunkSize : min((c+1)*r.cfg.ChunkSize, len(r.data.Examples))]
}

// chunkDone reports whether chunk c's record, written after its parts,
// exists (checkChunks has checked the parts against it).
func (r *run) chunkDone(c int) bool {
	return exists(filepath.Join(r.dir, chunkRecordName(c)))
}

// shardRecord is what one infer process left behind: which provider ran it
// and how long it took. The manifest sums them.
type shardRecord struct {
	Shard       string                `json:"shard"`
	Provider    string                `json:"provider"`
	Parallelism inference.Parallelism `json:"parallelism"`
	ORTVersion  string                `json:"ort_version"`
	ORTLibrary  string                `json:"ort_library"`
	Seconds     float64               `json:"seconds"`
	Finished    time.Time             `json:"finished"`
}

func shardRecordName(s Shard) string {
	return fmt.Sprintf(".infer-shard-%d-of-%d.json", s.Index, s.Count)
}

func (r *run) writeShardRecord(s Shard, model *inference.Model, took time.Duration) error {
	rec := shardRecord{Shard: s.String(), Provider: model.Provider(), Parallelism: model.Parallelism(), ORTVersion: inference.ORTVersion(),
		ORTLibrary: inference.ORTLibrary(), Seconds: took.Seconds(), Finished: time.Now().UTC()}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(r.dir, shardRecordName(s)), data)
}

func (r *run) shardRecords() ([]shardRecord, error) {
	paths, err := filepath.Glob(filepath.Join(r.dir, ".infer-shard-*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var recs []shardRecord
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var rec shardRecord
		if err := json.Unmarshal(data, &rec); err != nil {
			return nil, fmt.Errorf("%s: %v", p, err)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// manifest describes the finished infer stage.
func (r *run) manifest(recs []shardRecord) *Manifest {
	var secs float64
	var providers []string
	for _, rec := range recs {
		secs += rec.Seconds
		if !slices.Contains(providers, rec.Provider) {
			providers = append(providers, rec.Provider)
		}
	}
	par := make([]inference.Parallelism, len(recs))
	for i, rec := range recs {
		par[i] = rec.Parallelism
	}
	m := &Manifest{
		RunID:       r.id,
		Created:     time.Now().UTC(),
		Tool:        ToolInfo{GoVersion: runtime.Version(), ORTVersion: inference.ORTVersion(), ORTLibrary: inference.ORTLibrary()},
		Provider:    strings.Join(providers, "+"),
		Parallelism: par,
		Checkpoint: CheckpointInfo{
			Path: r.ckptPath, Hash: r.ckpt.Hash(), Meta: checkpointMeta(r.ckpt.MetaJSON()),
		},
		Dataset: DatasetInfo{Path: r.dataPath, Hash: r.data.Hash, Examples: len(r.data.Examples)},
		Config:  r.cfg,
		Shards:  len(recs),
		Chunks:  r.chunks(),
		Stages:  map[string]Stage{StageInfer: {Seconds: secs, Finished: time.Now().UTC()}},
	}
	if enc, dec := r.ckpt.Layers(); enc > 0 || dec > 0 {
		m.Attention = &AttentionShape{EncoderLayers: enc, DecoderLayers: dec, Heads: r.ckpt.Heads()}
	}
	for _, p := range r.data.Problems {
		m.Dataset.Problems = append(m.Dataset.Problems, p.String())
		if p.Line > 0 {
			m.Dataset.SkippedLines = append(m.Dataset.SkippedLines, p.Line)
		}
	}
	return m
}

// checkpointMeta decodes checkpoint.json, which OpenCheckpoint has already
// checked.
func checkpointMeta(raw json.RawMessage) CheckpointMeta {
	var c CheckpointMeta
	if err := c.UnmarshalJSON(raw); err != nil {
		c.raw = raw
	}
	return c
}
