package pipeline

import (
	"fmt"

	"attnaudit/store"
)

// expectedAttentionBytes estimates the attention Parquet that infer writes
// for the first n examples still to do, before any is translated: every
// stored matrix's weights times what a weight costs on disk at the run's
// precision (store.BytesPerWeight). Hypotheses are taken to be as long as
// their references (or sources, without one), so it is an estimate: on the
// demo run it is within 15% of what is written.
func (r *run) expectedAttentionBytes(n int) int64 {
	enc, dec := r.ckpt.Layers()
	heads := r.ckpt.Heads()
	sel, err := store.ParseSelection(r.cfg.Store)
	if err != nil || heads == 0 {
		return 0
	}
	// layers is how many of a stack's layers the selection keeps.
	layers := func(pass, kind string, stack int) float64 {
		kept := 0
		for l := range stack {
			if sel.Keeps(pass, kind, l, stack) {
				kept++
			}
		}
		return float64(kept * heads)
	}
	tok := r.ckpt.Tokenizer()
	var weights float64
	todo := n
	for c := range r.chunks() {
		if r.chunkDone(c) {
			continue
		}
		exs := r.chunk(c)
		for _, ex := range exs {
			if todo == 0 {
				break
			}
			todo--
			src := float64(tok.SourceLen(ex.Source))
			tgt := src
			if ex.HasReference {
				tgt = float64(tok.TargetLen(ex.Reference))
			}
			weights += layers(store.PassFree, store.KindEncoderSelf, enc) * src * src
			passes := []string{store.PassFree}
			if ex.HasReference {
				passes = append(passes, store.PassForced)
			}
			if r.cfg.DetachedPairs && len(exs) > 1 {
				passes = append(passes, store.PassDetached)
			}
			for _, p := range passes {
				weights += layers(p, store.KindCross, dec)*tgt*src + layers(p, store.KindDecoderSelf, dec)*tgt*tgt
			}
		}
	}
	return int64(weights * store.BytesPerWeight(r.cfg.Precision))
}

// formatBytes writes n bytes as kB, MB or GB (powers of 1000).
func formatBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}
