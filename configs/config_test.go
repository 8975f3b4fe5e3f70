package configs

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"attnaudit/metrics"
	"attnaudit/report"
)

func TestDefaultsAreValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Provider != "auto" || c.BatchSize != 32 || c.Beam != 1 || c.RepetitionPenalty != 1 {
		t.Errorf("unexpected defaults: %+v", c)
	}
}

// The packages' own defaults and default.yaml must say the same thing.
func TestDefaultYAMLMatchesPackageDefaults(t *testing.T) {
	c := Default()
	if got, want := c.Metrics, metrics.DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("default.yaml metrics:\n got  %+v\n want %+v", got, want)
	}
	if got, want := c.Report, report.DefaultOptions(); !reflect.DeepEqual(got, want) {
		t.Errorf("default.yaml report:\n got  %+v\n want %+v", got, want)
	}
}

func TestLoadLayersFileThenFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "my.yaml")
	if err := os.WriteFile(path, []byte("batch_size: 8\nbeam: 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, map[string]any{"beam": 2, "provider": "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	if c.BatchSize != 8 || c.Beam != 2 || c.Provider != "cpu" || c.ChunkSize != 256 {
		t.Errorf("got %+v", c)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ yaml, want string }{
		{"batch_sise: 8\n", "field batch_sise not found"},
		{"provider: tpu\n", `provider "tpu": want auto, cpu or cuda`},
		{"batch_size: 64\nchunk_size: 32\n", "chunk_size 32: want ≥ batch_size (64)"},
	} {
		path := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%q) error = %v, want it to contain %q", tc.yaml, err, tc.want)
		}
	}
}
