// Package configs holds attnaudit's defaults (default.yaml, embedded) and the
// one loader that layers them: defaults, then a user's YAML file, then the
// flags given on the command line.
package configs

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"attnaudit/metrics"
	"attnaudit/report"
	"attnaudit/store"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the documented defaults, as shipped.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Config is every setting of a run. Each field's yaml key is also a flag
// name, with dashes for underscores; default.yaml documents them.
type Config struct {
	ORTLib     string `yaml:"ort_lib" json:"ort_lib"`
	Provider   string `yaml:"provider" json:"provider"`
	CUDADevice int    `yaml:"cuda_device" json:"cuda_device"`
	Threads    int    `yaml:"threads" json:"threads"`
	Workers    int    `yaml:"workers" json:"workers"`

	BatchSize         int     `yaml:"batch_size" json:"batch_size"`
	ChunkSize         int     `yaml:"chunk_size" json:"chunk_size"`
	Beam              int     `yaml:"beam" json:"beam"`
	MaxLen            int     `yaml:"max_len" json:"max_len"`
	RepetitionPenalty float64 `yaml:"repetition_penalty" json:"repetition_penalty"`
	Precision         string  `yaml:"precision" json:"precision"`
	Store             string  `yaml:"store" json:"store"`
	Strict            bool    `yaml:"strict" json:"strict"`
	DetachedPairs     bool    `yaml:"detached_pairs" json:"detached_pairs"`

	Metrics metrics.Config `yaml:"metrics" json:"metrics"`
	Report  report.Options `yaml:"report" json:"report"`
	Audit   AuditConfig    `yaml:"audit" json:"audit"`
}

// Load returns the defaults overlaid with the YAML file at path (when path is
// not empty) and then with flags, a map from yaml key to the value given on
// the command line.
func Load(path string, flags map[string]any) (Config, error) {
	c := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("reading config: %w", err)
		}
		if err := overlay(&c, data, path); err != nil {
			return Config{}, err
		}
	}
	if len(flags) > 0 {
		data, err := yaml.Marshal(flags)
		if err != nil {
			return Config{}, fmt.Errorf("encoding flags: %w", err)
		}
		if err := overlay(&c, data, "command-line flags"); err != nil {
			return Config{}, err
		}
	}
	return c, c.Validate()
}

// overlay decodes YAML onto c, rejecting unknown keys so a typo in a config
// file is an error rather than a silently ignored setting.
func overlay(c *Config, data []byte, name string) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && err.Error() != "EOF" {
		return fmt.Errorf("%s: %v", name, err)
	}
	return nil
}

// Validate checks values that the type system does not.
func (c Config) Validate() error {
	var errs []string
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	check(c.Provider == "auto" || c.Provider == "cpu" || c.Provider == "cuda",
		"provider %q: want auto, cpu or cuda", c.Provider)
	check(c.CUDADevice >= 0, "cuda_device %d: want ≥ 0", c.CUDADevice)
	check(c.Threads >= 0, "threads %d: want ≥ 0", c.Threads)
	check(c.Workers >= 0, "workers %d: want ≥ 0", c.Workers)
	check(c.BatchSize >= 1, "batch_size %d: want ≥ 1", c.BatchSize)
	check(c.ChunkSize >= c.BatchSize, "chunk_size %d: want ≥ batch_size (%d)", c.ChunkSize, c.BatchSize)
	check(c.Beam >= 1, "beam %d: want ≥ 1", c.Beam)
	check(c.MaxLen >= 0, "max_len %d: want ≥ 0", c.MaxLen)
	check(slices.Contains(store.Precisions, c.Precision), "precision %q: want %s", c.Precision, strings.Join(store.Precisions, ", "))
	if _, err := store.ParseSelection(c.Store); err != nil {
		errs = append(errs, err.Error())
	}
	check(c.RepetitionPenalty >= 1, "repetition_penalty %g: want ≥ 1", c.RepetitionPenalty)
	if err := c.Metrics.Validate(); err != nil {
		errs = append(errs, err.Error())
	}
	if err := c.Report.Validate(); err != nil {
		errs = append(errs, "report: "+err.Error())
	}
	errs = append(errs, c.Audit.validate()...)
	if len(errs) > 0 {
		return fmt.Errorf("invalid configuration: %s", strings.Join(errs, "; "))
	}
	return nil
}
