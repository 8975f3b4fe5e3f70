package inference

import (
	"fmt"
	"strings"
)

// Optional encoder-graph outputs of both contracts (docs/contract2.md,
// "Value-vector norms"): per layer, batch row, head and source position,
// ||f_h(x_j)||, the norm of what source position j adds to head h's output
// per unit of attention (Kobayashi et al. 2020, "Attention is Not Only a
// Weight"). They depend on the source only, so the encoder graph returns
// them for the decoder's cross-attention too. A checkpoint without them
// translates as before; norm-based metrics are then left empty.
const (
	TensorEncoderValueNorms = "encoder_value_norms" // [enc_layers, batch, heads, src_len]
	TensorCrossValueNorms   = "cross_value_norms"   // [dec_layers, batch, heads, src_len]
)

var valueNormOutputs = []spec{
	{name: TensorEncoderValueNorms, typ: f32, rank: 4, static: []int{0, 2}, optional: true},
	{name: TensorCrossValueNorms, typ: f32, rank: 4, static: []int{0, 2}, optional: true},
}

// checkValueNorms checks the optional value-norm outputs of the encoder
// graph against the layers and heads the attention (or cache) has shown.
func (c *contractIO) checkValueNorms() error {
	file, _, _ := c.files()
	if err := checkTensors(file, "output", c.encOut, valueNormOutputs, false); err != nil {
		return err
	}
	for _, t := range []struct {
		name   string
		layers *int
		of     string
	}{{TensorEncoderValueNorms, &c.encLayers, "encoder"}, {TensorCrossValueNorms, &c.decLayers, "decoder"}} {
		info := find(c.encOut, t.name)
		if info == nil {
			continue
		}
		layers, heads := int(info.Dimensions[0]), int(info.Dimensions[2])
		if *t.layers != 0 && layers != *t.layers {
			return fmt.Errorf("%s: output %s has %d layers but the %s has %d", file, t.name, layers, t.of, *t.layers)
		}
		if c.heads != 0 && heads != c.heads {
			return fmt.Errorf("%s: output %s has %d heads but the attention has %d", file, t.name, heads, c.heads)
		}
		*t.layers = layers
		c.has[t.name] = true
	}
	return nil
}

// describeValueNorms is inspect's line on the value-vector norms.
func (c *contractIO) describeValueNorms() string {
	file, _, _ := c.files()
	var have []string
	for _, t := range []string{TensorEncoderValueNorms, TensorCrossValueNorms} {
		if c.has[t] {
			have = append(have, t)
		}
	}
	if len(have) == 0 {
		return "value norms none (norm-based attention metrics stay empty)\n"
	}
	return fmt.Sprintf("value norms %s (%s)\n", strings.Join(have, ", "), file)
}

// valueNorms copies row r's norms out of a tensor [layers, n, heads, S]:
// [layer][head], the first k source positions each.
func valueNorms(buf []float32, layers, n, heads, S, r, k int) [][][]float32 {
	all := make([]float32, layers*heads*k) // one allocation
	out := make([][][]float32, layers)
	for l := range layers {
		out[l] = make([][]float32, heads)
		for h := range heads {
			at := ((l*n+r)*heads + h) * S
			out[l][h], all = all[:k:k], all[k:]
			copy(out[l][h], buf[at:at+k])
		}
	}
	return out
}
