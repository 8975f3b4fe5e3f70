package pipeline

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzCheckpointMeta decodes arbitrary checkpoint.json contents as the
// manifest keeps them: an error, or the same bytes written back.
func FuzzCheckpointMeta(f *testing.F) {
	if data, err := os.ReadFile("../testdata/checkpoints/tiny/checkpoint.json"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`{"name": "ko-en-small", "epoch": 27, "step": 12000, "extra": [1, 2, {"x": null}]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"epoch": "27", "step": 1e99}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c CheckpointMeta
		if err := c.UnmarshalJSON(data); err != nil {
			return
		}
		out, err := c.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != "null" && !bytes.Equal(out, data) {
			t.Fatalf("written back as %q, read %q", out, data)
		}
	})
}

// FuzzReadManifest reads arbitrary manifest.json contents: an error or a
// manifest, never a panic, and Verify of such a folder reports problems
// rather than failing otherwise.
func FuzzReadManifest(f *testing.F) {
	f.Add([]byte(`{"run_id": "x", "chunks": 1, "stages": {"infer": {"seconds": 1}}, "parts": [{"name": "attention-00000.parquet", "bytes": 10, "sha256": "00", "rows": 1}]}`))
	f.Add([]byte(`{"parts": [{"name": "../../etc/passwd"}], "dataset": {"examples": -1}}`))
	f.Add([]byte(`{"checkpoint": {"meta": {"name": 5}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, ManifestName), data, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := ReadManifest(dir)
		if err != nil {
			return
		}
		if _, err := json.Marshal(m); err != nil {
			t.Fatalf("a manifest read does not write: %v", err)
		}
		Verify(dir)
	})
}
