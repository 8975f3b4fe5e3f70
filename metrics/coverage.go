package metrics

import (
	"fmt"
	"strings"
)

// Coverage is the attention a run stored when it stored a selection (the
// store setting): the model's layers per kind and which rows were kept.
// With it the metrics stage scores what is there and says what it could
// not compute (Omissions) instead of failing.
type Coverage struct {
	Store  string         // the store setting, quoted in the reasons
	Layers map[string]int // the model's layers per kind; 0 or absent: not exported
	// Keeps reports whether the run stored a pass's layer of a kind.
	Keeps func(pass, kind string, layer int) bool
}

// Partial is PassInput.Partial for pass: the kinds of which the run kept
// fewer than all layers. A nil Coverage keeps everything.
func (c *Coverage) Partial(pass string) Partial {
	if c == nil {
		return Partial{}
	}
	return Partial{EncoderSelf: len(c.missing(pass, KindEncoderSelf)) > 0,
		DecoderSelf: len(c.missing(pass, KindDecoderSelf)) > 0, Cross: len(c.missing(pass, KindCross)) > 0}
}

// missing lists the layers of kind the model has and the run did not store
// for pass.
func (c *Coverage) missing(pass, kind string) []int {
	var out []int
	for l := range c.Layers[kind] {
		if !c.Keeps(pass, kind, l) {
			out = append(out, l)
		}
	}
	return out
}

// Omission is what the metrics stage did not compute for some passes of
// a run that stored a selection, and why.
type Omission struct {
	What   string   `json:"what"`
	Passes []string `json:"passes"`
	Why    string   `json:"why"`
}

// Omissions lists, for the given passes, the head metrics of the layers
// not stored and the sentence metrics and flags whose attention is
// missing; nil when everything is there.
func (c *Coverage) Omissions(cfg Config, passes []string) []Omission {
	if c == nil {
		return nil
	}
	var out []Omission
	add := func(pass, what, why string) {
		why += fmt.Sprintf(" (store %q)", c.Store)
		for i := range out {
			if out[i].What == what && out[i].Why == why {
				out[i].Passes = append(out[i].Passes, pass)
				return
			}
		}
		out = append(out, Omission{What: what, Passes: []string{pass}, Why: why})
	}
	for _, pass := range passes {
		partial := false
		for _, kind := range []string{KindEncoderSelf, KindDecoderSelf, KindCross} {
			n, miss := c.Layers[kind], c.missing(pass, kind)
			switch {
			case len(miss) == 0:
				continue
			case len(miss) == n:
				add(pass, "head metrics of "+kind+" attention", "not stored")
			default:
				add(pass, fmt.Sprintf("head metrics of %s attention, layer%s %s", kind, plural(len(miss)), ints(miss)), "not stored")
			}
			partial = true
		}
		if !partial {
			continue
		}
		cross := c.Layers[KindCross]
		if l, ok := resolveLayer(cfg.Layer, cross); ok && !c.Keeps(pass, KindCross, l) {
			add(pass, "ign_src, ign_src_norm, wass_to_unif, wass_to_unif_norm, wass_to_data, wass_combo; flags diffuse_attention, sink_dominated, no_head_diversity",
				fmt.Sprintf("they read cross-attention layer %d (metrics.layer %d), not stored", l, cfg.Layer))
		}
		if l, ok := resolveLayer(cfg.AERLayer, cross); ok && pass == PassForced && !c.Keeps(pass, KindCross, l) {
			add(pass, "aer, aer_norm", fmt.Sprintf("they read cross-attention layer %d (metrics.aer_layer %d), not stored", l, cfg.AERLayer))
		}
		p := c.Partial(pass)
		if p.Cross && cross > 0 {
			add(pass, "src_contribution", "it reads every cross-attention layer, not all stored")
		}
		if p.DecoderSelf && c.Layers[KindDecoderSelf] > 0 {
			add(pass, "repeat_mass; the copying flag's attention test (repeated 3-grams still flag)", "it reads every decoder_self layer, not all stored")
		}
		if (p.EncoderSelf && c.Layers[KindEncoderSelf] > 0) || (p.Cross && cross > 0) {
			add(pass, "flag untrained_like", "it reads every encoder_self and cross layer, not all stored")
		}
		add(pass, "flag broken_mask on the heads not stored", "it checks the stored heads only")
	}
	return out
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func ints(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}
