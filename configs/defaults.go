package configs

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"attnaudit/metrics"
	"attnaudit/report"
	"attnaudit/store"
)

//go:generate go run ./gendefault

// Default returns every setting's default. Each value is written once: here
// for the top-level and audit settings, in metrics.DefaultConfig and
// report.DefaultOptions for theirs. default.yaml documents them; its values
// are written from these by `go generate ./configs`, and a test checks
// that the committed file is what the generator writes.
func Default() Config {
	return Config{
		Provider:          "auto",
		BatchSize:         32,
		ChunkSize:         256,
		Beam:              1,
		RepetitionPenalty: 1,
		Precision:         store.PrecisionPacked,
		Store:             "all",
		DetachedPairs:     true,
		Metrics:           metrics.DefaultConfig(),
		Report:            report.DefaultOptions(),
		Audit:             AuditConfig{ChrFDrop: 1, SuspectRise: 0.05, DiagonalityDrop: 0.05, AERRise: 0.05},
	}
}

// keyLine is one "key: value" line of default.yaml, indented two spaces a
// level; comments and section headers pass through untouched.
var keyLine = regexp.MustCompile(`^(\s*)([a-z0-9_]+):(.*)$`)

// RenderDefaultYAML rewrites the value of every leaf key of doc (the
// documented default.yaml) with Default()'s, keeping the comments and
// layout. Every leaf of the document must be a setting and every setting
// must be in the document.
func RenderDefaultYAML(doc []byte) ([]byte, error) {
	raw, err := yaml.Marshal(Default())
	if err != nil {
		return nil, err
	}
	var values map[string]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		return nil, err
	}
	leaves := map[string]any{}
	var flatten func(prefix string, m map[string]any)
	flatten = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				flatten(prefix+k+".", sub)
			} else {
				leaves[prefix+k] = v
			}
		}
	}
	flatten("", values)

	var out bytes.Buffer
	var path []string
	for n, line := range strings.SplitAfter(string(doc), "\n") {
		m := keyLine.FindStringSubmatch(strings.TrimRight(line, "\n"))
		if m == nil || strings.HasPrefix(strings.TrimSpace(line), "#") {
			out.WriteString(line)
			continue
		}
		depth := len(m[1]) / 2
		if depth > len(path) {
			return nil, fmt.Errorf("default.yaml:%d: indented under no section", n+1)
		}
		path = append(path[:depth], m[2])
		key := strings.Join(path, ".")
		if strings.TrimSpace(m[3]) == "" { // a section
			out.WriteString(line)
			continue
		}
		v, ok := leaves[key]
		if !ok {
			return nil, fmt.Errorf("default.yaml:%d: %s is not a setting", n+1, key)
		}
		delete(leaves, key)
		enc, err := yaml.Marshal(v)
		if err != nil {
			return nil, err
		}
		s := strings.TrimSpace(string(enc))
		switch {
		case s == "[]": // an empty list means "all"; the file says null
			s = "null"
		case strings.HasPrefix(s, "- "):
			s = "[" + strings.ReplaceAll(strings.TrimPrefix(s, "- "), "\n- ", ", ") + "]"
		}
		fmt.Fprintf(&out, "%s%s: %s\n", m[1], m[2], s)
	}
	if len(leaves) > 0 {
		var missing []string
		for k := range leaves {
			missing = append(missing, k)
		}
		return nil, fmt.Errorf("default.yaml lacks the settings %v", missing)
	}
	return out.Bytes(), nil
}
