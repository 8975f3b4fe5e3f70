package inference

import (
	"fmt"
	"slices"

	"attnaudit/internal/parallel"
	"attnaudit/metrics"
)

// Contract 2 decodes with the key/value cache: the first step runs
// decoder_model.onnx on the decoder start token and keeps the cache it
// returns (both halves); each later step runs decoder_with_past_model.onnx
// on one new token per row against that cache. Each step's attention
// outputs are the rows of the free pass for the position it read, so the
// pass is assembled from them, with no teacher-forced re-run.

// kvCache holds the cache of the rows being decoded, in the Model's
// buffers: the decoder half is 2·layers tensors [n, heads, T, dim] one
// after another (key then value per layer), the encoder half 2·layers
// tensors [n, heads, S, dim]. Each half has two buffers: a step reads one
// and writes the other, and a reorder copies from one into the other, so
// nothing is allocated once the buffers have grown to the largest batch.
type kvCache struct {
	m         *Model
	e         *encoded
	rows      []int // the encoded source row of each cache row
	S, T      int   // source positions kept; target positions cached
	cur, curX int   // which of kvSelf, kvCross holds the cache
}

// stepOut is one step's outputs for n rows: logits [n, vocab]; the
// attention rows dself [layers, n, heads, T] and cross [layers, n, heads, S]
// (nil when the checkpoint does not export them).
type stepOut struct {
	n, T, S      int
	logits       []float32
	dself, cross []float32
}

func (m *Model) newCache(e *encoded, rows []int) *kvCache {
	return &kvCache{m: m, e: e, rows: slices.Clone(rows)}
}

// advance runs one decoder step. Row r of the step continues cache row
// parents[r] with input token toks[r]; at the first step parents is
// ignored and the rows are those the cache was made with. Parents may
// repeat (beams sharing a prefix) or leave rows out (finished rows leave
// the batch and the cache).
func (c *kvCache) advance(parents []int, toks []int32) (stepOut, error) {
	m := c.m
	L, H, D := m.io.cache.layers, m.io.cache.heads, m.io.cache.dim
	if c.T > 0 && !identity(parents, len(c.rows)) {
		c.reorder(parents)
	}
	n := len(c.rows)
	if len(toks) != n {
		return stepOut{}, fmt.Errorf("decoding step: %d tokens for %d rows", len(toks), n)
	}
	tok := grow(&m.buf.tgt, n)
	for r, y := range toks {
		tok[r] = int64(y)
	}
	var mem []float32
	var src []int64
	if c.T == 0 {
		mem, src, c.S = m.rows(c.e, c.rows)
	} else {
		src = c.sources()
	}
	out := stepOut{n: n, T: c.T + 1, S: c.S}
	v := m.io.vocab
	var in, outs tensors
	add(&in, tok, n, 1)
	add(&in, m.sourceMask(src), n, c.S)
	out.logits = grow(&m.buf.logits, n*v)
	add(&outs, out.logits, n, 1, v)
	selfSize, crossSize := n*H*out.T*D, n*H*c.S*D
	next := grow(&m.buf.kvSelf[1-c.cur], 2*L*selfSize)
	if c.T == 0 {
		add(&in, mem, n, c.S, m.io.dModel)
		cross := grow(&m.buf.kvCross[c.curX], 2*L*crossSize)
		for i := range L {
			for j := range 2 {
				add(&outs, part(next, 2*i+j, selfSize), n, H, out.T, D)
			}
			for j := range 2 {
				add(&outs, part(cross, 2*i+j, crossSize), n, H, c.S, D)
			}
		}
	} else {
		past, cross := m.buf.kvSelf[c.cur], m.buf.kvCross[c.curX]
		pastSize := n * H * c.T * D
		for i := range L {
			for j := range 2 {
				add(&in, part(past, 2*i+j, pastSize), n, H, c.T, D)
			}
			for j := range 2 {
				add(&in, part(cross, 2*i+j, crossSize), n, H, c.S, D)
			}
		}
		for i := range 2 * L {
			add(&outs, part(next, i, selfSize), n, H, out.T, D)
		}
	}
	if m.io.has[TensorDecoderSelf] {
		out.dself = grow(&m.buf.dself, L*n*H*out.T)
		add(&outs, out.dself, L, n, H, 1, out.T)
	}
	if m.io.has[TensorCross] {
		out.cross = grow(&m.buf.cross, L*n*H*c.S)
		add(&outs, out.cross, L, n, H, 1, c.S)
	}
	sess, file := m.past, DecoderWithPastFile
	if c.T == 0 {
		sess, file = m.first, DecoderModelFile
	}
	if err := run(sess, &in, &outs); err != nil {
		return stepOut{}, fmt.Errorf("%s (step %d, %d rows): %w", file, out.T, n, err)
	}
	c.cur, c.T = 1-c.cur, out.T
	return out, nil
}

// part is tensor i of a buffer of equal-sized tensors.
func part(buf []float32, i, size int) []float32 { return buf[i*size : (i+1)*size : (i+1)*size] }

func identity(idx []int, n int) bool {
	if len(idx) != n {
		return false
	}
	for i, x := range idx {
		if x != i {
			return false
		}
	}
	return true
}

// reorder makes row r of the cache a copy of row parents[r], for both
// halves. The source positions stay those of the batch (encoded.S) when
// long sources leave it: a row's arithmetic then never depends on which
// rows decode beside it (rows.go).
func (c *kvCache) reorder(parents []int) {
	m := c.m
	L, H, D := m.io.cache.layers, m.io.cache.heads, m.io.cache.dim
	old := len(c.rows)
	rows := make([]int, len(parents))
	for r, p := range parents {
		rows[r] = c.rows[p]
	}
	n := len(parents)
	gather := func(src []float32, dst *[]float32, positions int) {
		out := grow(dst, 2*L*n*H*positions*D)
		for t := range 2 * L {
			for r, p := range parents {
				for h := range H {
					from := ((t*old+p)*H + h) * positions * D
					to := ((t*n+r)*H + h) * positions * D
					copy(out[to:to+positions*D], src[from:from+positions*D])
				}
			}
		}
	}
	gather(m.buf.kvSelf[c.cur], &m.buf.kvSelf[1-c.cur], c.T)
	gather(m.buf.kvCross[c.curX], &m.buf.kvCross[1-c.curX], c.S)
	c.cur, c.curX, c.rows = 1-c.cur, 1-c.curX, rows
}

// sources gathers the source ids of the cache rows, padded to c.S.
func (c *kvCache) sources() []int64 {
	e := c.e
	src := grow(&c.m.buf.rowSrc, len(c.rows)*c.S)
	for r, i := range c.rows {
		copy(src[r*c.S:(r+1)*c.S], e.src[i*e.S:i*e.S+c.S])
	}
	return src
}

// sourceMask is Optimum's attention_mask for padded source ids: 1 for a
// token, 0 for padding.
func (m *Model) sourceMask(src []int64) []int64 {
	mask := grow(&m.buf.mask, len(src))
	pad := int64(m.ck.meta.PadID)
	for j, id := range src {
		mask[j] = 0
		if id != pad {
			mask[j] = 1
		}
	}
	return mask
}

// track is a hypothesis with its pass so far: one attention row and one
// log-probability per step (the step that read the hypothesis's last
// token, or the start token, and predicted the next).
type track struct {
	toks     []int32
	steps    []*stepRows
	logprobs []float32 // of the token each step chose, from the unadjusted logits
	score    float64   // beam search: as hypothesis.score
}

// stepRows is one step's attention row of one hypothesis: self is
// [layers][heads][t+1] for query position t, cross [layers][heads][k] for
// a source of k tokens.
type stepRows struct {
	self, cross []float32
}

// record copies row r's attention out of a step's outputs.
func (m *Model) record(out stepOut, r, k int) *stepRows {
	L, H := m.io.cache.layers, m.io.heads
	rows := &stepRows{}
	if out.dself != nil {
		rows.self = make([]float32, L*H*out.T)
		for l := range L {
			for h := range H {
				from := ((l*out.n+r)*H + h) * out.T
				copy(rows.self[(l*H+h)*out.T:], out.dself[from:from+out.T])
			}
		}
	}
	if out.cross != nil {
		rows.cross = make([]float32, L*H*k)
		for l := range L {
			for h := range H {
				from := ((l*out.n+r)*H + h) * out.S
				copy(rows.cross[(l*H+h)*k:], out.cross[from:from+k])
			}
		}
	}
	return rows
}

// extend is tr continued by one step: its rows, the chosen token (none for
// EOS) and that token's log-probability.
func (tr track) extend(rows *stepRows, tok int32, eos int32, lp float32) track {
	next := track{
		toks:     tr.toks,
		steps:    append(slices.Clip(tr.steps), rows),
		logprobs: append(slices.Clip(tr.logprobs), lp),
	}
	if tok != eos {
		next.toks = append(slices.Clip(tr.toks), tok)
	}
	return next
}

// pass assembles the free pass of a finished track against a source of k
// tokens: query row t is step t's attention row.
func (m *Model) pass(tr track, k int) Pass {
	ids := append(slices.Clone(tr.toks), m.ck.meta.EosID)
	q := len(ids)
	p := Pass{IDs: ids, Pieces: m.tok.Pieces(ids), Logprobs: tr.logprobs}
	L, H := m.io.cache.layers, m.io.heads
	if m.io.has[TensorDecoderSelf] {
		p.DecoderSelf = assemble(L, H, q, q, func(l, h, t int) []float32 {
			return tr.steps[t].self[(l*H+h)*(t+1) : (l*H+h+1)*(t+1)]
		})
	}
	if m.io.has[TensorCross] {
		p.Cross = assemble(L, H, q, k, func(l, h, t int) []float32 {
			return tr.steps[t].cross[(l*H+h)*k : (l*H+h+1)*k]
		})
	}
	return p
}

// assemble builds q×k matrices per layer and head from rows (each at most
// k long; the rest of a row stays zero), in one allocation.
func assemble(layers, heads, q, k int, row func(l, h, t int) []float32) [][]metrics.Matrix {
	data := make([]float32, layers*heads*q*k)
	out := make([][]metrics.Matrix, layers)
	for l := range layers {
		out[l] = make([]metrics.Matrix, heads)
		for h := range heads {
			at := (l*heads + h) * q * k
			md := data[at : at+q*k : at+q*k]
			for t := range q {
				copy(md[t*k:(t+1)*k], row(l, h, t))
			}
			out[l][h] = metrics.Matrix{Rows: q, Cols: k, Data: md}
		}
	}
	return out
}

// scratch is a copy of a logits row, for adjust to change: the pass's
// log-probabilities come from the unadjusted row, as a teacher-forced
// pass's do.
func (m *Model) scratch(row []float32) []float32 {
	raw := grow(&m.buf.raw, len(row))
	copy(raw, row)
	return raw
}

// greedyCached is greedy search over the cache. A row at its length limit
// (maxLen-1 tokens) gets EOS, from one more step, so that every pass has
// its EOS row as a teacher-forced pass would. Each sentence's track goes
// to finished when its row ends, and is dropped here.
func (m *Model) greedyCached(e *encoded, maxLen []int, penalty float32, finished func(i int, tr track)) error {
	tracks := make([]track, e.n)
	active := make([]int, e.n)
	toks := make([]int32, e.n)
	for i := range active {
		active[i], toks[i] = i, m.ck.decoderStart()
	}
	c := m.newCache(e, active)
	eos, v := m.ck.meta.EosID, m.io.vocab
	var parents []int
	for len(active) > 0 {
		out, err := c.advance(parents, toks)
		if err != nil {
			return err
		}
		// Finished rows leave: the next step continues the others' cache rows.
		// The log-normaliser of every row (an exp per vocabulary entry, the
		// search's main host work) on all cores; the rest is cheap.
		lse := grow(&m.buf.lse, len(active))
		parallel.For(len(active), m.rowProcs, func(r int) { lse[r] = logSumExp(out.logits[r*v : (r+1)*v]) })
		still := active[:0]
		parents, toks = parents[:0], toks[:0]
		for r, i := range active {
			row := out.logits[r*v : (r+1)*v]
			y := eos
			if f := m.ck.meta.ForcedBosID; f != nil && len(tracks[i].toks) == 0 {
				y = *f // generation_config's forced_bos_token_id: the target language
			} else if len(tracks[i].toks) < maxLen[i]-1 {
				adj := m.scratch(row)
				m.adjust(adj, tracks[i].toks, penalty)
				y = argmax(adj)
			}
			tracks[i] = tracks[i].extend(m.record(out, r, e.lens[i]), y, eos, float32(float64(row[y])-lse[r]))
			if y != eos {
				still, parents, toks = append(still, i), append(parents, r), append(toks, y)
			} else {
				finished(i, tracks[i])
				tracks[i] = track{}
			}
		}
		active = still
	}
	return nil
}

// beamCached is beam search (as beam) over the cache: each step, the new
// beams' cache rows are copies of their parents' (the cache is reordered
// by backpointer), and each hypothesis carries its parents' attention rows.
func (m *Model) beamCached(e *encoded, maxLen []int, k int, penalty float32) ([]track, error) {
	type state struct {
		live, done []track
	}
	states := make([]state, len(maxLen))
	rows := make([]int, len(maxLen))
	toks := make([]int32, len(maxLen))
	for i := range states {
		states[i].live = []track{{}}
		rows[i], toks[i] = i, m.ck.decoderStart()
	}
	c := m.newCache(e, rows)
	eos, v := m.ck.meta.EosID, m.io.vocab
	var parents, keep []int
	var cands, top []candidate
	for t := 1; len(toks) > 0; t++ {
		out, err := c.advance(parents, toks)
		if err != nil {
			return nil, err
		}
		parents, toks = parents[:0], toks[:0]
		r := 0
		for i := range states {
			st := &states[i]
			if len(st.live) == 0 {
				continue
			}
			last := t >= maxLen[i] // every live beam holds maxLen-1 tokens: only EOS may follow
			cands = cands[:0]
			rowsOf := make([]*stepRows, len(st.live))
			for b, h := range st.live {
				row := out.logits[(r+b)*v : (r+b+1)*v]
				rowsOf[b] = m.record(out, r+b, e.lens[i])
				rawLSE := logSumExp(row)
				adj := m.scratch(row)
				m.adjust(adj, h.toks, penalty)
				lse := logSumExp(adj)
				if last {
					ended := h.extend(rowsOf[b], eos, eos, float32(float64(row[eos])-rawLSE))
					ended.score = (h.score + float64(adj[eos]) - lse) / float64(len(h.toks)+1)
					st.done = append(st.done, ended)
					continue
				}
				if f := m.ck.meta.ForcedBosID; f != nil && len(h.toks) == 0 {
					// Forced as Hugging Face forces it: every other token's
					// logit is -inf, so the forced one costs nothing.
					cands = append(cands, candidate{h.score, b, *f, float32(float64(row[*f]) - rawLSE)})
					continue
				}
				top = topK(top[:0], adj, 2*k)
				for _, c := range top {
					cands = append(cands, candidate{h.score + float64(adj[c.tok]) - lse, b, c.tok, float32(float64(row[c.tok]) - rawLSE)})
				}
			}
			base := r
			r += len(st.live)
			if last {
				st.live = nil
				continue
			}
			sortCandidates(cands)
			var live []track
			keep = keep[:0]
			for rank, c := range cands[:min(2*k, len(cands))] {
				parent := st.live[c.beam]
				if c.tok == eos {
					if rank < k {
						ended := parent.extend(rowsOf[c.beam], eos, eos, c.rawLP)
						ended.score = c.score / float64(len(parent.toks)+1)
						st.done = append(st.done, ended)
					}
					continue
				}
				if len(live) < k {
					next := parent.extend(rowsOf[c.beam], c.tok, eos, c.rawLP)
					next.score = c.score
					live = append(live, next)
					keep = append(keep, base+c.beam)
				}
			}
			st.live = live
			if len(st.done) >= k {
				st.live = nil
				continue
			}
			for j, p := range keep {
				parents, toks = append(parents, p), append(toks, live[j].toks[len(live[j].toks)-1])
			}
		}
	}
	out := make([]track, len(maxLen))
	for i, st := range states {
		if b := bestDone(st.done, func(h track) float64 { return h.score }); b >= 0 {
			out[i] = st.done[b]
		}
	}
	return out, nil
}
