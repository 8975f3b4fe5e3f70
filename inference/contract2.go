package inference

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	ort "github.com/yalue/onnxruntime_go"
)

// Tensor names of contract 2: Hugging Face Optimum's, for seq2seq exports.
// The attention outputs keep contract 1's names (TensorEncoderSelf,
// TensorDecoderSelf, TensorCross) and layout; in the decoders, their query
// axis is the positions the call reads (one per cached step).
const (
	TensorInputIDs      = "input_ids"
	TensorAttentionMask = "attention_mask"
	TensorLastHidden    = "last_hidden_state"
	TensorEncoderMask   = "encoder_attention_mask"
	TensorEncoderHidden = "encoder_hidden_states"
)

// Cache halves and their two tensors, in Optimum's order.
var (
	cacheParts = []string{"decoder", "encoder"}
	cacheKV    = []string{"key", "value"}
)

// PastName is the cache input of layer i: part "decoder" (self-attention)
// or "encoder" (cross-attention), kv "key" or "value".
func PastName(i int, part, kv string) string {
	return fmt.Sprintf("past_key_values.%d.%s.%s", i, part, kv)
}

// PresentName is the cache output matching PastName.
func PresentName(i int, part, kv string) string {
	return fmt.Sprintf("present.%d.%s.%s", i, part, kv)
}

// cacheNames lists the cache tensors of layers 0..layers-1 for the given
// parts, in Optimum's order (per layer: part by part, key then value).
func cacheNames(name func(int, string, string) string, layers int, parts ...string) []string {
	var out []string
	for i := range layers {
		for _, p := range parts {
			for _, kv := range cacheKV {
				out = append(out, name(i, p, kv))
			}
		}
	}
	return out
}

// cacheLayout is the key/value cache of a contract-2 checkpoint: every
// tensor is [batch, heads, positions, dim], positions being the target
// positions so far (decoder half) or the source length (encoder half).
type cacheLayout struct {
	layers, heads, dim int
}

var presentRe = regexp.MustCompile(`^present\.(\d+)\.decoder\.key$`)

var (
	encInputs2  = []spec{{name: TensorInputIDs, typ: i64, rank: 2}, {name: TensorAttentionMask, typ: i64, rank: 2}}
	encOutputs2 = []spec{
		{name: TensorLastHidden, typ: f32, rank: 3, static: []int{2}},
		{name: TensorEncoderSelf, typ: f32, rank: 5, static: []int{0, 2}, optional: true},
	}
	attnOutputs2 = []spec{
		{name: TensorDecoderSelf, typ: f32, rank: 5, static: []int{0, 2}, optional: true},
		{name: TensorCross, typ: f32, rank: 5, static: []int{0, 2}, optional: true},
	}
)

func cacheSpecs(names []string) []spec {
	out := make([]spec, len(names))
	for i, n := range names {
		out[i] = spec{name: n, typ: f32, rank: 4, static: []int{1, 3}}
	}
	return out
}

// check2 checks contract 2's three graphs: Optimum's inputs and outputs,
// one cache layout across all of them, and the attention outputs.
func (c *contractIO) check2() error {
	if err := checkTensors(EncoderModelFile, "input", c.encIn, encInputs2, true); err != nil {
		return err
	}
	if err := checkTensors(EncoderModelFile, "output", c.encOut, encOutputs2, false); err != nil {
		return err
	}
	layers := 0
	for _, o := range c.decOut {
		if m := presentRe.FindStringSubmatch(o.Name); m != nil {
			layers++
		}
	}
	if layers == 0 {
		return fmt.Errorf("%s: output %s missing: contract 2's first-step decoder returns the key/value cache (present.{i}.decoder|encoder.key|value); the graph has %s", DecoderModelFile, PresentName(0, "decoder", "key"), names(c.decOut))
	}
	decIn := []spec{
		{name: TensorInputIDs, typ: i64, rank: 2},
		{name: TensorEncoderMask, typ: i64, rank: 2},
		{name: TensorEncoderHidden, typ: f32, rank: 3, static: []int{2}},
	}
	logits := spec{name: TensorLogits, typ: f32, rank: 3, static: []int{2}}
	decOut := append(append([]spec{logits}, cacheSpecs(cacheNames(PresentName, layers, cacheParts...))...), attnOutputs2...)
	pastIn := append([]spec{decIn[0], decIn[1]}, cacheSpecs(cacheNames(PastName, layers, cacheParts...))...)
	pastOut := append(append([]spec{logits}, cacheSpecs(cacheNames(PresentName, layers, "decoder"))...), attnOutputs2...)
	for _, g := range []struct {
		file, kind string
		infos      []ort.InputOutputInfo
		want       []spec
		exact      bool
	}{
		{DecoderModelFile, "input", c.decIn, decIn, true},
		{DecoderModelFile, "output", c.decOut, decOut, false},
		{DecoderWithPastFile, "input", c.pastIn, pastIn, true},
		{DecoderWithPastFile, "output", c.pastOut, pastOut, false},
	} {
		if err := checkTensors(g.file, g.kind, g.infos, g.want, g.exact); err != nil {
			return err
		}
	}

	// One cache layout: the first tensor's heads and dim everywhere.
	first := find(c.decOut, PresentName(0, "decoder", "key"))
	c.cache = cacheLayout{layers: layers, heads: int(first.Dimensions[1]), dim: int(first.Dimensions[3])}
	for _, g := range []struct {
		file, kind string
		infos      []ort.InputOutputInfo
		names      []string
	}{
		{DecoderModelFile, "output", c.decOut, cacheNames(PresentName, layers, cacheParts...)},
		{DecoderWithPastFile, "input", c.pastIn, cacheNames(PastName, layers, cacheParts...)},
		{DecoderWithPastFile, "output", c.pastOut, cacheNames(PresentName, layers, "decoder")},
	} {
		for _, n := range g.names {
			d := find(g.infos, n).Dimensions
			if int(d[1]) != c.cache.heads || int(d[3]) != c.cache.dim {
				return fmt.Errorf("%s: %s %s has shape %s, but the cache is [batch, %d, positions, %d] (as %s of %s)",
					g.file, g.kind, n, shapeString(d), c.cache.heads, c.cache.dim, first.Name, DecoderModelFile)
			}
		}
	}

	encD, decD := find(c.encOut, TensorLastHidden).Dimensions[2], find(c.decIn, TensorEncoderHidden).Dimensions[2]
	if encD != decD {
		return fmt.Errorf("%s: input %s has d_model %d but %s's %s has %d", DecoderModelFile, TensorEncoderHidden, decD, EncoderModelFile, TensorLastHidden, encD)
	}
	c.dModel = int(encD)
	c.vocab = int(find(c.decOut, TensorLogits).Dimensions[2])
	if v := int(find(c.pastOut, TensorLogits).Dimensions[2]); v != c.vocab {
		return fmt.Errorf("%s: output %s has %d classes but %s's has %d", DecoderWithPastFile, TensorLogits, v, DecoderModelFile, c.vocab)
	}

	c.heads, c.decLayers = c.cache.heads, layers
	if info := find(c.encOut, TensorEncoderSelf); info != nil {
		c.has[TensorEncoderSelf] = true
		c.encLayers = int(info.Dimensions[0])
		if h := int(info.Dimensions[2]); h != c.heads {
			return fmt.Errorf("%s: output %s has %d heads but the cache has %d", EncoderModelFile, TensorEncoderSelf, h, c.heads)
		}
	}
	for _, t := range []string{TensorDecoderSelf, TensorCross} {
		a, b := find(c.decOut, t), find(c.pastOut, t)
		if (a == nil) != (b == nil) {
			has, lacks := DecoderModelFile, DecoderWithPastFile
			if a == nil {
				has, lacks = lacks, has
			}
			return fmt.Errorf("%s: output %s missing, but %s has it: the attention of a step comes from both decoders", lacks, t, has)
		}
		if a == nil {
			continue
		}
		for _, g := range []struct {
			file string
			info *ort.InputOutputInfo
		}{{DecoderModelFile, a}, {DecoderWithPastFile, b}} {
			if l, h := int(g.info.Dimensions[0]), int(g.info.Dimensions[2]); l != layers || h != c.heads {
				return fmt.Errorf("%s: output %s has %d layers and %d heads; the cache has %d and %d", g.file, t, l, h, layers, c.heads)
			}
		}
		c.has[t] = true
	}
	return nil
}

// isCache says whether a tensor belongs to the key/value cache.
func isCache(name string) bool {
	return strings.HasPrefix(name, "past_key_values.") || strings.HasPrefix(name, "present.")
}

// describeGraph writes a graph's inputs and outputs, the cache tensors
// summed up in one line each way.
func describeGraph(b *strings.Builder, file string, in, out []ort.InputOutputInfo) {
	fmt.Fprintf(b, "%s\n", file)
	for _, g := range []struct {
		kind  string
		infos []ort.InputOutputInfo
	}{{"input", in}, {"output", out}} {
		var cache []string
		for _, t := range g.infos {
			if isCache(t.Name) {
				cache = append(cache, t.Name)
				continue
			}
			fmt.Fprintf(b, "  %-7s %-22s %-8s %s\n", g.kind, t.Name, t.DataType, shapeString(t.Dimensions))
		}
		if len(cache) > 0 {
			first := find(g.infos, cache[0])
			fmt.Fprintf(b, "  %-7s %-22s %-8s %s\n", g.kind, fmt.Sprintf("%d cache tensors", len(cache)), first.DataType, cacheSummary(cache, first.Dimensions))
		}
	}
}

// cacheSummary is "past_key_values.{0..5}.{decoder,encoder}.{key,value} [?, 8, ?, 10]".
func cacheSummary(names []string, shape ort.Shape) string {
	prefix := names[0][:strings.Index(names[0], ".")]
	var parts []string
	for _, n := range names {
		if f := strings.Split(n, "."); len(f) == 4 && !slices.Contains(parts, f[2]) {
			parts = append(parts, f[2])
		}
	}
	layers := len(names) / max(len(parts), 1) / len(cacheKV)
	return fmt.Sprintf("%s.{0..%d}.{%s}.{key,value} %s", prefix, layers-1, strings.Join(parts, ","), shapeString(shape))
}
