package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"attnaudit/store"
)

// chunkRecord is what a chunk's writer committed: its parts' sizes,
// hashes and row counts. It is written after the parts, atomically, and is
// what marks a chunk done; the manifest gathers them (Manifest.Parts).
type chunkRecord struct {
	Chunk int              `json:"chunk"`
	Parts []store.PartInfo `json:"parts"`
}

func chunkRecordName(c int) string { return fmt.Sprintf(".chunk-%05d.json", c) }

func (r *run) writeChunkRecord(c int, parts []store.PartInfo) error {
	data, err := json.Marshal(chunkRecord{Chunk: c, Parts: parts})
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(r.dir, chunkRecordName(c)), data)
}

// readChunkRecord reads chunk c's record; a chunk without one is not done.
func (r *run) readChunkRecord(c int) (*chunkRecord, error) {
	data, err := os.ReadFile(filepath.Join(r.dir, chunkRecordName(c)))
	if err != nil {
		return nil, err
	}
	var rec chunkRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("%s: %v", chunkRecordName(c), err)
	}
	return &rec, nil
}

// checkChunks checks the parts of the done chunks that shard owns (every
// chunk when all is set) against their records, and forgets a chunk whose
// part is missing, damaged, or whose record is unreadable, removing its
// files, so that infer writes it again. It reports how many it forgot.
func (r *run) checkChunks(log io.Writer, shard Shard, all bool) (int, error) {
	redo := 0
	for c := range r.chunks() {
		if !all && !shard.Owns(c) {
			continue
		}
		rec, err := r.readChunkRecord(c)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err == nil {
			for _, p := range rec.Parts {
				if err = store.CheckPart(r.dir, p); err != nil {
					break
				}
			}
		}
		if err == nil {
			continue
		}
		fmt.Fprintf(log, "infer: chunk %d: %v; writing it again\n", c, err)
		paths := []string{filepath.Join(r.dir, chunkRecordName(c)), filepath.Join(r.dir, store.ExamplesPartName(c))}
		subs, err := store.AttentionSubParts(r.dir, c)
		if err != nil {
			return redo, err
		}
		for _, p := range append(paths, subs...) {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return redo, err
			}
		}
		redo++
	}
	return redo, nil
}

// inferParts gathers the chunk records' parts in chunk order, for the
// manifest.
func (r *run) inferParts() ([]store.PartInfo, error) {
	var parts []store.PartInfo
	for c := range r.chunks() {
		rec, err := r.readChunkRecord(c)
		if err != nil {
			return nil, fmt.Errorf("chunk %d: %w", c, err)
		}
		parts = append(parts, rec.Parts...)
	}
	return parts, nil
}

// Verify checks a finished run folder: its manifest reads; every part the
// manifest records exists with its size, SHA-256 and row count; every
// chunk has its examples and attention parts; the examples parts hold the
// dataset's examples; no attention or examples part lies there that the
// manifest does not record; the metrics stage's files, once it ran, read.
// It returns every problem found, or none.
//
// A folder without a manifest (an infer stage that failed or was stopped)
// is reported as incomplete, with the chunks it has committed checked
// against their records: those a rerun keeps.
func Verify(dir string) []error {
	m, err := ReadManifest(dir)
	if errors.Is(err, errIncomplete) {
		return verifyIncomplete(dir, err)
	}
	if err != nil {
		return []error{err}
	}
	var probs []error
	if len(m.Parts) == 0 {
		return []error{fmt.Errorf("%s: the manifest records no part sizes and hashes (a run made before they were recorded, or not by infer)", filepath.Join(dir, ManifestName))}
	}
	recorded := map[string]bool{}
	var exampleRows int64
	for _, p := range m.Parts {
		recorded[p.Name] = true
		if err := store.CheckPart(dir, p); err != nil {
			probs = append(probs, err)
		}
		if strings.HasPrefix(p.Name, store.ExamplesStem+"-") {
			exampleRows += p.Rows
		}
	}
	if m.Chunks < 0 || 2*m.Chunks > len(m.Parts) {
		probs = append(probs, fmt.Errorf("%s: %d chunks, but %d parts recorded (two a chunk)", filepath.Join(dir, ManifestName), m.Chunks, len(m.Parts)))
	}
	for c := range min(m.Chunks, len(m.Parts)) {
		for _, name := range []string{store.ExamplesPartName(c), store.AttentionPartName(c)} {
			if !recorded[name] {
				probs = append(probs, fmt.Errorf("%s: chunk %d's part is not in the manifest", filepath.Join(dir, name), c))
			}
		}
	}
	if exampleRows != int64(m.Dataset.Examples) {
		probs = append(probs, fmt.Errorf("%s: the examples parts record %d rows, the dataset has %d examples", dir, exampleRows, m.Dataset.Examples))
	}
	for _, stem := range []string{store.AttentionStem, store.ExamplesStem} {
		paths, _ := store.Parts(dir, stem)
		for _, p := range paths {
			if !recorded[filepath.Base(p)] {
				probs = append(probs, fmt.Errorf("%s: not recorded in the manifest", p))
			}
		}
	}
	if _, ok := m.Stages[StageMetrics]; ok {
		for _, name := range []string{store.HeadMetricsStem + ".parquet", store.SentenceMetricsStem + ".parquet"} {
			if _, err := store.FileRows(filepath.Join(dir, name)); err != nil {
				probs = append(probs, fmt.Errorf("metrics stage output: %w", err))
			}
		}
	}
	slices.SortStableFunc(probs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return probs
}

// verifyIncomplete checks the chunks an unfinished run has committed: each
// record's parts against their size, SHA-256 and row count. The first
// problem is always incomplete, which says how many chunks are committed
// and intact.
func verifyIncomplete(dir string, incomplete error) []error {
	recs, _ := filepath.Glob(filepath.Join(dir, ".chunk-*.json"))
	slices.Sort(recs)
	var probs []error
	intact := 0
	for _, path := range recs {
		data, err := os.ReadFile(path)
		var rec chunkRecord
		if err == nil {
			err = json.Unmarshal(data, &rec)
		}
		if err != nil {
			probs = append(probs, fmt.Errorf("%s: %v", path, err))
			continue
		}
		ok := true
		for _, p := range rec.Parts {
			if err := store.CheckPart(dir, p); err != nil {
				probs = append(probs, err)
				ok = false
			}
		}
		if ok {
			intact++
		}
	}
	head := fmt.Errorf("%w (committed chunks intact: %d of %d)", incomplete, intact, len(recs))
	return append([]error{head}, probs...)
}
