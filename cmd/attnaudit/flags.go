package main

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"attnaudit/configs"
)

// configFlag ties a command-line flag to one key of configs.Config. Flags are
// generated from the config struct, so every setting has exactly one flag
// and one documented default (the comment above its key in default.yaml).
type configFlag struct {
	path  []string // yaml keys from the root, e.g. ["metrics", "thresholds", "sink_last_mass"]
	flag  cli.Flag
	value func(c *cli.Context, name string) any
}

// Groups of configuration keys, by what reads them. A command carries the
// flags of the groups it uses (withConfigFlags).
const (
	groupRuntime   = "runtime"   // ONNX Runtime: ort_lib, provider, cuda_device, threads, workers
	groupInference = "inference" // decoding and storage: batch_size … detached_pairs; they also name the run folder
	groupMetrics   = "metrics"
	groupReport    = "report"
	groupAudit     = "audit"
)

// runtimeKeys are the top-level keys of groupRuntime; the other top-level
// keys are groupInference, and nested keys belong to their section.
var runtimeKeys = map[string]bool{"ort_lib": true, "provider": true, "cuda_device": true, "threads": true, "workers": true}

// group is the group of a configuration key's path.
func (cf configFlag) group() string {
	switch {
	case len(cf.path) > 1:
		return cf.path[0]
	case runtimeKeys[cf.path[0]]:
		return groupRuntime
	}
	return groupInference
}

// configFlags returns a flag for every leaf of configs.Config, named after
// its yaml key with dashes, with usage taken from default.yaml's comments.
// A leaf whose name is taken (by another leaf, or by one of the command's
// own flags in reserved) is named by its whole path: --metrics-layer in
// visualize, whose own --layer is the seed's.
func configFlags(reserved ...string) []configFlag {
	docs := defaultDocs()
	taken := map[string]int{}
	for _, r := range reserved {
		taken[r] = 2
	}
	type leaf struct {
		path []string
		v    reflect.Value
	}
	var leaves []leaf
	var walk func(v reflect.Value, prefix []string)
	walk = func(v reflect.Value, prefix []string) {
		for i := 0; i < v.NumField(); i++ {
			key := strings.Split(v.Type().Field(i).Tag.Get("yaml"), ",")[0]
			path := append(append([]string(nil), prefix...), key)
			if fv := v.Field(i); fv.Kind() == reflect.Struct {
				walk(fv, path)
			} else {
				leaves = append(leaves, leaf{path, fv})
				taken[key]++
			}
		}
	}
	walk(reflect.ValueOf(configs.Default()), nil)

	var out []configFlag
	for _, l := range leaves {
		name := l.path[len(l.path)-1]
		if taken[name] > 1 {
			name = strings.Join(l.path, "_")
		}
		name = strings.ReplaceAll(name, "_", "-")
		usage := docs[strings.Join(l.path, ".")]
		get := func(c *cli.Context, name string) any { return c.Value(name) }
		var f cli.Flag
		switch fv := l.v; fv.Kind() {
		case reflect.String:
			f = &cli.StringFlag{Name: name, Usage: usage, Value: fv.String()}
		case reflect.Int:
			f = &cli.IntFlag{Name: name, Usage: usage, Value: int(fv.Int())}
		case reflect.Float64:
			f = &cli.Float64Flag{Name: name, Usage: usage, Value: fv.Float()}
		case reflect.Bool:
			f = &cli.BoolFlag{Name: name, Usage: usage, Value: fv.Bool()}
		case reflect.Pointer: // an optional number: unset by default
			f = &cli.Float64Flag{Name: name, Usage: usage + " (default: unset)"}
		case reflect.Slice:
			f = &cli.IntSliceFlag{Name: name, Usage: usage}
			get = func(c *cli.Context, name string) any { return c.IntSlice(name) }
		default:
			panic(fmt.Sprintf("config key %s: no flag for kind %s", strings.Join(l.path, "."), fv.Kind()))
		}
		out = append(out, configFlag{path: l.path, flag: f, value: get})
	}
	return out
}

// defaultDocs maps each dotted key of default.yaml to the comment above it.
func defaultDocs() map[string]string {
	var root yaml.Node
	if err := yaml.Unmarshal(configs.DefaultYAML(), &root); err != nil {
		panic(err) // embedded and tested
	}
	docs := map[string]string{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := prefix + k.Value
			docs[key] = commentText(k.HeadComment)
			if v.Kind == yaml.MappingNode {
				walk(v, key+".")
			}
		}
	}
	if len(root.Content) > 0 {
		walk(root.Content[0], "")
	}
	return docs
}

// commentText turns a YAML head comment into one line of usage text,
// dropping section rulers such as "# --- Inference ---".
func commentText(c string) string {
	var words []string
	for _, line := range strings.Split(c, "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#"))
		if line == "" || strings.HasPrefix(line, "---") {
			continue
		}
		words = append(words, line)
	}
	return strings.Join(words, " ")
}

// configFlagOf maps each generated flag back to its config key; commands
// register theirs through withConfigFlags.
var configFlagOf = map[cli.Flag]configFlag{}

// loadConfig layers the defaults, --config and the config flags given on the
// command line.
func loadConfig(c *cli.Context) (configs.Config, error) {
	set := map[string]any{}
	for _, f := range c.Command.Flags {
		cf, ok := configFlagOf[f]
		if !ok {
			continue
		}
		name := f.Names()[0]
		if !c.IsSet(name) {
			continue
		}
		m := set
		for _, k := range cf.path[:len(cf.path)-1] {
			sub, ok := m[k].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[k] = sub
			}
			m = sub
		}
		m[cf.path[len(cf.path)-1]] = cf.value(c, name)
	}
	return configs.Load(c.String("config"), set)
}
