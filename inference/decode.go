package inference

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"attnaudit/internal/parallel"
	"attnaudit/metrics"
)

// Request is one sentence to translate.
type Request struct {
	Source string
	// Reference is the target of the forced pass, when HasReference.
	Reference    string
	HasReference bool
}

// DecodeOptions configure the search.
type DecodeOptions struct {
	// Beam is the beam width; 0 means greedy search. Beam 1 runs beam
	// search with one beam, which finds what greedy search finds.
	Beam int
	// MaxLen is the most target tokens, EOS included; 0 means twice the
	// source tokens plus 10. Either way it is capped by the model's
	// positions (checkpoint.json max_positions).
	MaxLen int
	// RepetitionPenalty θ divides positive logits and multiplies negative
	// ones of tokens already generated (CTRL, Keskar et al. 2019); 0 or 1
	// means none.
	RepetitionPenalty float32
}

// Result is one request's translation and the attention of its passes.
// Attention matrices have padding removed: [layer][head], rows are query
// positions, and a tensor the checkpoint does not export is nil (see
// Checkpoint.RequireAttention).
type Result struct {
	Index     int      // the request's position in the batch
	SrcIDs    []int32  // source pieces' ids, then EOS
	SrcPieces []string // the pieces of SrcIDs
	// EncoderSelf is len(SrcIDs) × len(SrcIDs) per head.
	EncoderSelf [][]metrics.Matrix
	// EncoderValueNorms and CrossValueNorms are the value-vector norms of
	// the encoder's self-attention and the decoder's cross-attention,
	// [layer][head][source position] (TensorEncoderValueNorms); nil when
	// the checkpoint does not export them. Every pass of the example shares
	// them: they depend on the source only.
	EncoderValueNorms, CrossValueNorms [][][]float32
	Hypothesis                         string // the decoded text of Free.IDs
	// Free is the pass over the model's own output: contract 1 runs it
	// teacher-forced after the search, contract 2 assembles it from the
	// rows each cached step returned.
	Free   Pass
	Forced *Pass // teacher-forced over the reference; nil without one
}

// Pass is one decoder pass over a target y_1..y_n. The decoder
// reads [BOS, y_1..y_n]; query row t predicts IDs[t], so IDs is
// [y_1..y_n, EOS] and every row count below is len(IDs).
type Pass struct {
	IDs      []int32
	Pieces   []string
	Logprobs []float32 // log p(IDs[t] | IDs[<t], source), per row
	// DecoderSelf is len(IDs) × len(IDs) per head (causal: zero above the
	// diagonal); Cross is len(IDs) × len(SrcIDs).
	DecoderSelf, Cross [][]metrics.Matrix
}

// TranslateBatch translates a batch: one encoder pass over the padded
// sources, then greedy or beam search. Contract 1 (no key/value cache)
// re-runs the decoder over the growing prefixes of the unfinished sequences
// only, then one teacher-forced decoder pass over each hypothesis captures
// attention and per-token log-probabilities; under the decoder's causal
// mask that is the attention at generation time. Contract 2 decodes one
// position per step against the cache and keeps each step's attention rows
// and log-probability as the free pass (cached.go). Either way one
// teacher-forced pass over each reference makes the forced pass.
func (m *Model) TranslateBatch(reqs []Request, opts DecodeOptions) ([]Result, error) {
	res := make([]Result, len(reqs))
	if err := m.TranslateEach(reqs, opts, func(r Result) { res[r.Index] = r }); err != nil {
		return nil, err
	}
	return res, nil
}

// TranslateEach is TranslateBatch handing each request's result to done as
// soon as it is complete, once per request, on the calling goroutine:
// contract 2's greedy search runs the forced passes first and hands out a
// sentence when its row ends, while the batch's longer sentences are still
// decoded (a caller can store it meanwhile); otherwise every result comes
// at the end, in order. On an error, some results may have been handed out.
func (m *Model) TranslateEach(reqs []Request, opts DecodeOptions, done func(Result)) error {
	return m.TranslateSlice(reqs, 0, opts, done)
}

// TranslateSlice is TranslateEach over some rows of a batch whose longest
// source has padTo tokens (SourceTokens): the sources are padded to it, so
// that each sentence's result is the one the whole batch gives it, bit for
// bit, where the model's rows decode independently (rows.go, checked at
// load when a run would cut batches).
func (m *Model) TranslateSlice(reqs []Request, padTo int, opts DecodeOptions, done func(Result)) error {
	if opts.Beam < 0 || opts.MaxLen < 0 || opts.RepetitionPenalty < 0 {
		return fmt.Errorf("decode options %+v: want beam, max-len and repetition penalty ≥ 0", opts)
	}
	if len(reqs) == 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.enc == nil {
		return errors.New("model is closed")
	}
	srcs := make([]string, len(reqs))
	for i, r := range reqs {
		srcs[i] = r.Source
	}
	srcIDs, srcPieces, err := m.tokenizeSources(srcs)
	if err != nil {
		return err
	}
	refs := make([][]int32, len(reqs))
	for i, r := range reqs {
		if r.HasReference {
			refs[i] = m.tok.Target(r.Reference)
			if err := m.checkTarget(i, "reference", refs[i]); err != nil {
				return err
			}
		}
	}
	return m.translateIDs(srcIDs, srcPieces, refs, padTo, opts, done)
}

// translateIDs is TranslateSlice on token ids: srcIDs with their pieces,
// and refIDs[i] the reference of request i (nil: none).
func (m *Model) translateIDs(srcIDs [][]int32, srcPieces [][]string, refIDs [][]int32, padTo int, opts DecodeOptions, done func(Result)) error {
	e, err := m.encode(srcIDs, padTo)
	if err != nil {
		return err
	}
	res := make([]Result, len(srcIDs))
	enc := m.io
	for i := range srcIDs {
		res[i] = Result{Index: i, SrcIDs: srcIDs[i], SrcPieces: srcPieces[i]}
		n := len(srcIDs[i])
		if e.attn != nil {
			res[i].EncoderSelf = extract(e.attn, enc.encLayers, e.n, enc.heads, e.S, e.S, i, n, n)
		}
		if e.encNorms != nil {
			res[i].EncoderValueNorms = valueNorms(e.encNorms, enc.encLayers, e.n, enc.heads, e.S, i, n)
		}
		if e.crossNorms != nil {
			res[i].CrossValueNorms = valueNorms(e.crossNorms, enc.decLayers, e.n, enc.heads, e.S, i, n)
		}
	}

	maxLen := make([]int, len(srcIDs))
	for i, ids := range srcIDs {
		maxLen[i] = opts.MaxLen
		if maxLen[i] == 0 {
			maxLen[i] = 2*len(ids) + 10
		}
		if p := m.ck.meta.MaxPositions; p > 0 {
			maxLen[i] = min(maxLen[i], p)
		}
	}
	penalty := opts.RepetitionPenalty
	if penalty == 0 {
		penalty = 1
	}
	// The references' forced passes.
	var refReq []int
	var refs [][]int32
	for i, ids := range refIDs {
		if ids != nil {
			refReq, refs = append(refReq, i), append(refs, ids)
		}
	}
	forced := func() error {
		passes, err := m.force(e, refReq, refs)
		if err != nil {
			return err
		}
		for k, i := range refReq {
			res[i].Forced = &passes[k]
		}
		return nil
	}
	switch {
	case m.io.contract == 2 && opts.Beam == 0:
		// Forced first, so that a sentence is complete when its row ends.
		if err := forced(); err != nil {
			return err
		}
		return m.greedyCached(e, maxLen, penalty, func(i int, tr track) {
			res[i].Free = m.pass(tr, e.lens[i])
			res[i].Hypothesis = m.tok.Decode(tr.toks)
			done(res[i])
			res[i] = Result{}
		})
	case m.io.contract == 2:
		tracks, err := m.beamCached(e, maxLen, opts.Beam, penalty)
		if err != nil {
			return err
		}
		for i, tr := range tracks {
			res[i].Free = m.pass(tr, e.lens[i])
			res[i].Hypothesis = m.tok.Decode(tr.toks)
		}
		if err := forced(); err != nil {
			return err
		}
	default:
		// Contract 1: the search, then one batch of forced passes: over
		// each hypothesis (the free pass), then over each reference.
		var hyps [][]int32
		if opts.Beam == 0 {
			hyps, err = m.greedy(m.stepper(e), maxLen, penalty)
		} else {
			hyps, err = m.beam(m.stepper(e), maxLen, opts.Beam, penalty)
		}
		if err != nil {
			return err
		}
		n := len(srcIDs)
		rowReq := make([]int, n, n+len(refReq))
		for i := range rowReq {
			rowReq[i] = i
		}
		passes, err := m.force(e, append(rowReq, refReq...), append(hyps, refs...))
		if err != nil {
			return err
		}
		for i := range n {
			res[i].Free = passes[i]
			res[i].Hypothesis = m.tok.Decode(hyps[i])
		}
		for k, i := range refReq {
			res[i].Forced = &passes[n+k]
		}
	}
	for _, r := range res {
		done(r)
	}
	return nil
}

// Force runs teacher-forced passes of each source with the target of the
// same index (for "detached" pairs, a source forced with another example's
// reference).
func (m *Model) Force(sources, targets []string) ([]Pass, error) {
	if len(sources) != len(targets) {
		return nil, fmt.Errorf("force: %d sources but %d targets", len(sources), len(targets))
	}
	if len(sources) == 0 {
		return nil, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.enc == nil {
		return nil, errors.New("model is closed")
	}
	srcIDs, _, err := m.tokenizeSources(sources)
	if err != nil {
		return nil, err
	}
	rowReq := make([]int, len(targets))
	tgt := make([][]int32, len(targets))
	for i, t := range targets {
		rowReq[i] = i
		tgt[i] = m.tok.Target(t)
		if err := m.checkTarget(i, "target", tgt[i]); err != nil {
			return nil, err
		}
	}
	e, err := m.encode(srcIDs, 0)
	if err != nil {
		return nil, err
	}
	return m.force(e, rowReq, tgt)
}

func (m *Model) tokenizeSources(srcs []string) ([][]int32, [][]string, error) {
	ids := make([][]int32, len(srcs))
	pieces := make([][]string, len(srcs))
	for i, s := range srcs {
		ids[i], pieces[i] = m.tok.Source(s)
		if p := m.ck.meta.MaxPositions; p > 0 && len(ids[i]) > p {
			return nil, nil, fmt.Errorf("request %d: the source has %d tokens with its special tokens; the model takes at most %d", i, len(ids[i]), p)
		}
	}
	return ids, pieces, nil
}

// checkTarget rejects targets longer than the decoder's positions: the
// decoder reads BOS and the target.
func (m *Model) checkTarget(i int, what string, ids []int32) error {
	if p := m.ck.meta.MaxPositions; p > 0 && len(ids)+1 > p {
		return fmt.Errorf("request %d: the %s has %d tokens; the model takes at most %d", i, what, len(ids), p-1)
	}
	return nil
}

// encoded is one encoder pass: n sources right-padded to S.
type encoded struct {
	n, S int
	lens []int
	src  []int64   // n×S
	mem  []float32 // n×S×d_model
	attn []float32 // layers×n×heads×S×S; nil when not exported
	// encNorms and crossNorms are the value-vector norms, layers×n×heads×S;
	// nil when not exported.
	encNorms, crossNorms []float32
}

// encode runs the encoder over the sources ids, right-padded to the
// longest of them or to padTo tokens if longer (a slice of a batch is
// padded like the whole batch: rows.go).
func (m *Model) encode(ids [][]int32, padTo int) (*encoded, error) {
	e := &encoded{n: len(ids), lens: make([]int, len(ids)), S: padTo}
	for i, s := range ids {
		e.lens[i] = len(s)
		e.S = max(e.S, len(s))
	}
	pad := int64(m.ck.meta.PadID)
	e.src = grow(&m.buf.src, e.n*e.S)
	for i, s := range ids {
		row := e.src[i*e.S : (i+1)*e.S]
		for j := range row {
			if j < len(s) {
				row[j] = int64(s[j])
			} else {
				row[j] = pad
			}
		}
	}
	d := m.io.dModel
	e.mem = grow(&m.buf.mem, e.n*e.S*d)
	var in, out tensors
	add(&in, e.src, e.n, e.S)
	if m.io.contract == 2 {
		add(&in, m.sourceMask(e.src), e.n, e.S)
	}
	add(&out, e.mem, e.n, e.S, d)
	if m.io.has[TensorEncoderSelf] {
		l, h := m.io.encLayers, m.io.heads
		e.attn = grow(&m.buf.encAttn, l*e.n*h*e.S*e.S)
		add(&out, e.attn, l, e.n, h, e.S, e.S)
	}
	if m.io.has[TensorEncoderValueNorms] {
		e.encNorms = grow(&m.buf.encNorms, m.io.encLayers*e.n*m.io.heads*e.S)
		add(&out, e.encNorms, m.io.encLayers, e.n, m.io.heads, e.S)
	}
	if m.io.has[TensorCrossValueNorms] {
		e.crossNorms = grow(&m.buf.crossNorms, m.io.decLayers*e.n*m.io.heads*e.S)
		add(&out, e.crossNorms, m.io.decLayers, e.n, m.io.heads, e.S)
	}
	if err := run(m.enc, &in, &out); err != nil {
		file, _, _ := m.io.files()
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return e, nil
}

// rows gathers the memory and source ids of the decoder rows rowReq (each
// an encoded row), padded like the whole batch (encoded.S): a row's
// arithmetic then never depends on which rows decode beside it (rows.go).
func (m *Model) rows(e *encoded, rowReq []int) (mem []float32, src []int64, S int) {
	S = e.S
	identity := len(rowReq) == e.n
	for r, i := range rowReq {
		identity = identity && r == i
	}
	if identity {
		return e.mem, e.src, S
	}
	d := m.io.dModel
	mem = grow(&m.buf.rowMem, len(rowReq)*S*d)
	src = grow(&m.buf.rowSrc, len(rowReq)*S)
	for r, i := range rowReq {
		copy(mem[r*S*d:(r+1)*S*d], e.mem[i*S*d:(i+1)*S*d])
		copy(src[r*S:(r+1)*S], e.src[i*S:(i+1)*S])
	}
	return mem, src, S
}

// decode runs the decoder over n rows of t target tokens; with attention it
// uses the session that also returns the attention outputs.
func (m *Model) decode(attention bool, n, t int, tgt []int64, mem []float32, src []int64, S int) (logits, dself, cross []float32, err error) {
	v, d := m.io.vocab, m.io.dModel
	var in, out tensors
	add(&in, tgt, n, t)
	if m.io.contract == 2 {
		add(&in, m.sourceMask(src), n, S)
		add(&in, mem, n, S, d)
	} else {
		add(&in, mem, n, S, d)
		add(&in, src, n, S)
	}
	logits = grow(&m.buf.logits, n*t*v)
	add(&out, logits, n, t, v)
	sess := m.step
	if attention {
		sess = m.full
		l, h := m.io.decLayers, m.io.heads
		if m.io.has[TensorDecoderSelf] {
			dself = grow(&m.buf.dself, l*n*h*t*t)
			add(&out, dself, l, n, h, t, t)
		}
		if m.io.has[TensorCross] {
			cross = grow(&m.buf.cross, l*n*h*t*S)
			add(&out, cross, l, n, h, t, S)
		}
	}
	if err := run(sess, &in, &out); err != nil {
		_, file, _ := m.io.files()
		return nil, nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	return logits, dself, cross, nil
}

// prefixes fills the decoder input [BOS, y...] for rows that all hold t-1
// generated tokens.
func (m *Model) prefixes(seqs [][]int32, t int) []int64 {
	tgt := grow(&m.buf.tgt, len(seqs)*t)
	bos := int64(m.ck.meta.BosID)
	for r, y := range seqs {
		tgt[r*t] = bos
		for j, tok := range y {
			tgt[r*t+1+j] = int64(tok)
		}
	}
	return tgt
}

// adjust prepares one row of next-token logits for search: padding and BOS
// are never generated, and tokens of prev get the repetition penalty once
// each.
func (m *Model) adjust(row []float32, prev []int32, penalty float32) {
	for _, id := range m.ck.suppress {
		row[id] = float32(math.Inf(-1))
	}
	if penalty == 1 || len(prev) == 0 {
		return
	}
	stamp := grow(&m.buf.stamp, len(row))
	m.buf.stampNow++
	if m.buf.stampNow == 0 { // wrapped: forget old stamps
		clear(stamp)
		m.buf.stampNow = 1
	}
	for _, tok := range prev {
		if stamp[tok] == m.buf.stampNow {
			continue
		}
		stamp[tok] = m.buf.stampNow
		if row[tok] > 0 {
			row[tok] /= penalty
		} else {
			row[tok] *= penalty
		}
	}
}

// nextLogits runs the decoder over rows [BOS, seqs[r]] (each of t-1 tokens)
// against sources rowReq[r], and returns logits [rows, t, vocab].
type nextLogits func(rowReq []int, seqs [][]int32, t int) ([]float32, error)

// stepper is nextLogits for an encoded batch. It gathers the rows' memory
// only when the rows change, i.e. when a sequence finishes.
func (m *Model) stepper(e *encoded) nextLogits {
	var built []int
	var mem []float32
	var src []int64
	var S int
	return func(rowReq []int, seqs [][]int32, t int) ([]float32, error) {
		if !slices.Equal(built, rowReq) {
			mem, src, S = m.rows(e, rowReq)
			built = append(built[:0], rowReq...)
		}
		logits, _, _, err := m.decode(false, len(rowReq), t, m.prefixes(seqs, t), mem, src, S)
		return logits, err
	}
}

// greedy takes each source's most likely next token at each step, until
// EOS or maxLen.
func (m *Model) greedy(next nextLogits, maxLen []int, penalty float32) ([][]int32, error) {
	out := make([][]int32, len(maxLen))
	var active []int
	for i := range maxLen {
		if maxLen[i] > 1 {
			active = append(active, i)
		}
	}
	eos, v := m.ck.meta.EosID, m.io.vocab
	seqs := make([][]int32, 0, len(maxLen))
	for t := 1; len(active) > 0; t++ {
		seqs = seqs[:0]
		for _, i := range active {
			seqs = append(seqs, out[i])
		}
		logits, err := next(active, seqs, t)
		if err != nil {
			return nil, err
		}
		still := active[:0]
		for r, i := range active {
			row := logits[(r*t+t-1)*v : (r*t+t)*v]
			m.adjust(row, out[i], penalty)
			y := argmax(row)
			if y == eos {
				continue
			}
			out[i] = append(out[i], y)
			if len(out[i]) < maxLen[i]-1 {
				still = append(still, i)
			}
		}
		active = still
	}
	return out, nil
}

func argmax(row []float32) int32 {
	best := 0
	for j, x := range row {
		if x > row[best] {
			best = j
		}
	}
	return int32(best)
}

// logSumExp is log Σ exp(row), in float64.
func logSumExp(row []float32) float64 {
	mx := float64(slices.Max(row))
	if math.IsInf(mx, -1) {
		return mx
	}
	var s float64
	for _, x := range row {
		s += math.Exp(float64(x) - mx)
	}
	return mx + math.Log(s)
}

type hypothesis struct {
	toks  []int32
	score float64 // live: summed log-probability; done: that over its length
}

type candidate struct {
	score float64
	beam  int
	tok   int32
	rawLP float32 // contract 2: log p(tok) from the unadjusted logits
}

// better orders candidates: higher score, then lower beam, then lower token,
// so that ties break the same way greedy search's argmax does.
func better(a, b candidate) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	if a.beam != b.beam {
		return a.beam < b.beam
	}
	return a.tok < b.tok
}

// beam runs beam search of width k. Each step, a source's live beams
// propose their 2k best continuations; of the 2k best overall, EOS among
// the first k ends a hypothesis, and the first k others are the next
// beams. A source is done when k hypotheses have ended; at maxLen every
// live beam ends with EOS. The result is the ended hypothesis with the best
// length-normalised score: summed log-probability over its length (EOS
// included).
func (m *Model) beam(next nextLogits, maxLen []int, k int, penalty float32) ([][]int32, error) {
	type state struct {
		live, done []hypothesis
	}
	states := make([]state, len(maxLen))
	for i := range states {
		if maxLen[i] > 1 {
			states[i].live = []hypothesis{{}}
		}
	}
	eos, v := m.ck.meta.EosID, m.io.vocab
	var rowReq []int
	var seqs [][]int32
	var cands, top []candidate
	for t := 1; ; t++ {
		rowReq, seqs = rowReq[:0], seqs[:0]
		for i, st := range states {
			for _, h := range st.live {
				rowReq, seqs = append(rowReq, i), append(seqs, h.toks)
			}
		}
		if len(rowReq) == 0 {
			break
		}
		logits, err := next(rowReq, seqs, t)
		if err != nil {
			return nil, err
		}
		r := 0
		for i := range states {
			st := &states[i]
			if len(st.live) == 0 {
				continue
			}
			last := t == maxLen[i] // every live beam holds maxLen-1 tokens: only EOS may follow
			cands = cands[:0]
			for b, h := range st.live {
				row := logits[((r+b)*t+t-1)*v : ((r+b)*t+t)*v]
				m.adjust(row, h.toks, penalty)
				lse := logSumExp(row)
				if last {
					score := h.score + float64(row[eos]) - lse
					st.done = append(st.done, hypothesis{h.toks, score / float64(len(h.toks)+1)})
					continue
				}
				top = topK(top[:0], row, 2*k)
				for _, c := range top {
					cands = append(cands, candidate{score: h.score + float64(row[c.tok]) - lse, beam: b, tok: c.tok})
				}
			}
			r += len(st.live)
			if last {
				st.live = nil
				continue
			}
			sortCandidates(cands)
			var live []hypothesis
			for rank, c := range cands[:min(2*k, len(cands))] {
				parent := st.live[c.beam].toks
				if c.tok == eos {
					if rank < k {
						st.done = append(st.done, hypothesis{parent, c.score / float64(len(parent)+1)})
					}
					continue
				}
				if len(live) < k {
					toks := append(slices.Clip(parent), c.tok)
					live = append(live, hypothesis{toks, c.score})
				}
			}
			st.live = live
			if len(st.done) >= k {
				st.live = nil
			}
		}
	}
	out := make([][]int32, len(maxLen))
	for i, st := range states {
		if b := bestDone(st.done, func(h hypothesis) float64 { return h.score }); b >= 0 {
			out[i] = st.done[b].toks
		}
	}
	return out, nil
}

// bestDone is the index of the highest-scoring finished hypothesis, the
// first among equals; -1 when none finished. Both beam searches (contract 1
// and the cached one) end with it.
func bestDone[H any](done []H, score func(H) float64) int {
	best := -1
	for j, h := range done {
		if best < 0 || score(h) > score(done[best]) {
			best = j
		}
	}
	return best
}

func sortCandidates(cands []candidate) {
	slices.SortFunc(cands, func(a, b candidate) int {
		if better(a, b) {
			return -1
		}
		if better(b, a) {
			return 1
		}
		return 0
	})
}

// topK returns the k best tokens of row (higher logit, then lower id), in
// order, reusing buf.
func topK(buf []candidate, row []float32, k int) []candidate {
	for j, x := range row {
		c := candidate{score: float64(x), tok: int32(j)}
		if len(buf) == k && !better(c, buf[k-1]) {
			continue
		}
		if len(buf) < k {
			buf = append(buf, c)
		} else {
			buf[k-1] = c
		}
		for p := len(buf) - 1; p > 0 && better(buf[p], buf[p-1]); p-- {
			buf[p], buf[p-1] = buf[p-1], buf[p]
		}
	}
	return buf
}

// force runs one teacher-forced decoder pass: row r reads [BOS, targets[r]]
// against encoded source rowReq[r].
func (m *Model) force(e *encoded, rowReq []int, targets [][]int32) ([]Pass, error) {
	// One padded pass over the whole batch costs batch × longest² in the
	// attention outputs, and one hallucinated hypothesis can be many times
	// longer than the rest: rows go in groups of up to 16, each padded to
	// its own length rounded up to a multiple of forcePad. The padding is
	// the row's own, whichever rows share its pass, so that the row's
	// arithmetic is too (rows.go).
	const group = 16
	order := make([]int, len(targets))
	for i := range order {
		order[i] = i
	}
	padded := func(i int) int { return m.forcedLength(len(targets[i])) }
	slices.SortStableFunc(order, func(a, b int) int { return padded(a) - padded(b) })
	passes := make([]Pass, len(targets))
	for g := 0; g < len(order); {
		end := g + 1
		for end < len(order) && end-g < group && padded(order[end]) == padded(order[g]) {
			end++
		}
		idx := order[g:end]
		g = end
		req, tgt := make([]int, len(idx)), make([][]int32, len(idx))
		for k, i := range idx {
			req[k], tgt[k] = rowReq[i], targets[i]
		}
		out, err := m.forceGroup(e, req, tgt, padded(idx[0]))
		if err != nil {
			return nil, err
		}
		for k, i := range idx {
			passes[i] = out[k]
		}
	}
	return passes, nil
}

// forcePad is the multiple a forced pass's decoder input (BOS and the
// target) is padded to.
const forcePad = 8

// forcedLength is the padded decoder input length of a forced pass over a
// target of n tokens: n+1 (BOS first) rounded up to a multiple of forcePad,
// at most the model's positions (checkTarget keeps n+1 within them).
func (m *Model) forcedLength(n int) int {
	T := (n + forcePad) / forcePad * forcePad
	if p := m.ck.meta.MaxPositions; p > 0 {
		T = min(T, max(p, n+1))
	}
	return T
}

// forceGroup is one teacher-forced decoder pass over the given rows, each
// [BOS, target] padded to T tokens.
func (m *Model) forceGroup(e *encoded, rowReq []int, targets [][]int32, T int) ([]Pass, error) {
	n := len(rowReq)
	mem, src, S := m.rows(e, rowReq)
	tgt := grow(&m.buf.tgt, n*T)
	bos, eos, pad := int64(m.ck.decoderStart()), m.ck.meta.EosID, int64(m.ck.meta.PadID)
	for r, y := range targets {
		row := tgt[r*T : (r+1)*T]
		row[0] = bos
		for j := 1; j < T; j++ {
			if j <= len(y) {
				row[j] = int64(y[j-1])
			} else {
				row[j] = pad
			}
		}
	}
	logits, dself, cross, err := m.decode(true, n, T, tgt, mem, src, S)
	if err != nil {
		return nil, err
	}
	v, l, h := m.io.vocab, m.io.decLayers, m.io.heads
	passes := make([]Pass, n)
	// Rows are independent: a log-softmax over the vocabulary per token and
	// the attention copies. On a GPU this host work is as long as the pass
	// itself, so it is spread over the cores.
	parallel.For(n, m.rowProcs, func(r int) {
		y := targets[r]
		q := len(y) + 1
		ids := append(slices.Clone(y), eos)
		p := Pass{IDs: ids, Pieces: m.tok.Pieces(ids), Logprobs: make([]float32, q)}
		for t, id := range ids {
			row := logits[(r*T+t)*v : (r*T+t+1)*v]
			p.Logprobs[t] = float32(float64(row[id]) - logSumExp(row))
		}
		if dself != nil {
			p.DecoderSelf = extract(dself, l, n, h, T, T, r, q, q)
		}
		if cross != nil {
			p.Cross = extract(cross, l, n, h, T, S, r, q, e.lens[rowReq[r]])
		}
		passes[r] = p
	})
	return passes, nil
}

// extract copies row r's q×k corner of every layer and head out of an
// attention tensor [layers, n, heads, Q, K], into one allocation.
func extract(buf []float32, layers, n, heads, Q, K, r, q, k int) [][]metrics.Matrix {
	return assemble(layers, heads, q, k, func(l, h, t int) []float32 {
		at := ((l*n+r)*heads+h)*Q*K + t*K
		return buf[at : at+k]
	})
}
