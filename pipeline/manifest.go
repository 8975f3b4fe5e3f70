package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"attnaudit/configs"
	"attnaudit/inference"
	"attnaudit/metrics"
	"attnaudit/store"
)

// ManifestName is the file that marks a run folder complete. It is written
// last and atomically: a folder without it is an incomplete run, which is
// resumed or redone and never read as done.
const ManifestName = "manifest.json"

// Manifest is manifest.json: what a run was made from and how.
type Manifest struct {
	RunID    string    `json:"run_id"`
	Created  time.Time `json:"created"`
	Tool     ToolInfo  `json:"tool"`
	Provider string    `json:"provider"`
	// Parallelism is how each shard's infer stage spread over the CPU
	// (threads, workers, intra-op threads), in shard order.
	Parallelism []inference.Parallelism `json:"parallelism,omitempty"`
	Checkpoint  CheckpointInfo          `json:"checkpoint"`
	Dataset     DatasetInfo             `json:"dataset"`
	Config      configs.Config          `json:"config"`
	Shards      int                     `json:"shards"`
	Chunks      int                     `json:"chunks"`
	Stages      map[string]Stage        `json:"stages"`
	// Parts are the infer stage's parts as committed (size, sha256, rows),
	// which `attnaudit verify` and resuming check the files against.
	// Runs made before they were recorded have none.
	Parts []store.PartInfo `json:"parts,omitempty"`
	// Attention is the model's attention as infer found it in the graphs:
	// what a run storing some layers only (the store setting) lacks is
	// worked out from it. Runs made before it was recorded have none.
	Attention *AttentionShape `json:"attention,omitempty"`
	// Summary is the metrics stage's run summary, nil before it ran.
	Summary *metrics.RunSummary `json:"summary,omitempty"`
}

// AttentionShape is a model's attention layers per side and heads; a
// count is 0 where the graphs export no such attention.
type AttentionShape struct {
	EncoderLayers int `json:"encoder_layers"`
	DecoderLayers int `json:"decoder_layers"`
	Heads         int `json:"heads"`
}

// ToolInfo names the software that made a run.
type ToolInfo struct {
	Version    string `json:"version"`
	GoVersion  string `json:"go_version"`
	ORTVersion string `json:"ort_version"`
	// ORTLibrary is the ONNX Runtime library's path and how it was found.
	ORTLibrary string `json:"ort_library,omitempty"`
}

// CheckpointInfo identifies a checkpoint by path and content.
type CheckpointInfo struct {
	Path string         `json:"path"`
	Hash string         `json:"hash"`
	Meta CheckpointMeta `json:"meta"` // checkpoint.json as shipped
}

// CheckpointMeta is checkpoint.json as shipped: written back byte for byte,
// with the fields the stages read decoded from it.
type CheckpointMeta struct {
	Name  string
	Epoch int
	Step  int64
	// EncLayers and DecLayers are checkpoint.json's enc_layers and
	// dec_layers, 0 where it has none.
	EncLayers, DecLayers int
	raw                  json.RawMessage
}

// MarshalJSON writes checkpoint.json as it was read.
func (c CheckpointMeta) MarshalJSON() ([]byte, error) {
	if len(c.raw) == 0 {
		return []byte("null"), nil
	}
	return c.raw, nil
}

// UnmarshalJSON keeps checkpoint.json and decodes name, epoch and step.
func (c *CheckpointMeta) UnmarshalJSON(data []byte) error {
	var known struct {
		Name  string `json:"name"`
		Epoch int    `json:"epoch"`
		Step  int64  `json:"step"`
		Enc   int    `json:"enc_layers"`
		Dec   int    `json:"dec_layers"`
	}
	if string(data) != "null" {
		if err := json.Unmarshal(data, &known); err != nil {
			return fmt.Errorf("checkpoint metadata: %w", err)
		}
	}
	*c = CheckpointMeta{Name: known.Name, Epoch: known.Epoch, Step: known.Step, EncLayers: known.Enc, DecLayers: known.Dec,
		raw: append(json.RawMessage(nil), data...)}
	return nil
}

// DatasetInfo identifies a dataset by path and content.
type DatasetInfo struct {
	Path     string   `json:"path"`
	Hash     string   `json:"hash"`
	Examples int      `json:"examples"`
	Problems []string `json:"problems,omitempty"` // lines skipped, with file:line
	// SkippedLines are the 1-based lines of Problems, so a later stage that
	// reloads the dataset numbers its examples as infer did.
	SkippedLines []int `json:"skipped_lines,omitempty"`
}

// Stage records one stage's time and output row counts.
type Stage struct {
	Seconds  float64          `json:"seconds"`
	Finished time.Time        `json:"finished"`
	Rows     map[string]int64 `json:"rows,omitempty"`
}

// ReadManifest reads dir's manifest. A folder without one is reported with
// errIncomplete, so callers can tell an unfinished run from a broken one.
func ReadManifest(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, errIncomplete)
	}
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %v", filepath.Join(dir, ManifestName), err)
	}
	return &m, nil
}

var errIncomplete = errors.New("incomplete run (no manifest.json): run the infer stage or `attnaudit run` again to resume it")

// writeManifest writes m into dir atomically.
func writeManifest(dir string, m *Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding manifest: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, ManifestName), append(data, '\n'))
}
