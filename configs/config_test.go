package configs

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
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

// default.yaml's values are written from Default() by `go generate
// ./configs`; the committed file must be what the generator writes, and
// must decode back to Default().
func TestDefaultYAMLIsGenerated(t *testing.T) {
	got, err := RenderDefaultYAML(DefaultYAML())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, DefaultYAML()) {
		t.Errorf("configs/default.yaml is not what `go generate ./configs` writes from Default(); run it")
	}
	var c Config
	if err := overlay(&c, DefaultYAML(), "default.yaml"); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("default.yaml decodes to\n %+v\nnot Default()\n %+v", c, Default())
	}
	if _, err := RenderDefaultYAML(append(DefaultYAML(), []byte("no_such_key: 1\n")...)); err == nil || !strings.Contains(err.Error(), "no_such_key is not a setting") {
		t.Errorf("unknown key: %v", err)
	}
}
