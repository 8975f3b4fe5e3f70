package inference

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
)

// A sentence's decoding depends on the rows beside it only through
// padding. ONNX Runtime's CPU kernels, as measured (bench/RESULTS.md,
// 2026-12-08), compute a row's outputs in the same order whatever the
// number of rows, and the finished rows that leave the batch change only
// that number; what the other rows change is how far each source is
// padded (the longest source) and how far a forced pass's target is. So
// the decoder keeps the batch's source length for the whole search (no
// shortening as the long sources finish), and a forced pass pads each
// target by its own length (forcedLength): then a sentence decoded in any
// subset of its batch, padded to the batch's longest source
// (TranslateSlice), gives the same bits as in the whole batch.
//
// That is what lets a run of fewer batches than threads cut its costliest
// batches into slices of rows for one-thread workers (Parallelism.Slices,
// CutBatches) without changing its output. Kernels are not bound to it,
// so it is checked on the model's own sessions at load (rowsIndependent);
// where it fails, wide workers take the costliest batches instead
// (fitBatches).

// SourceTokens is how many tokens the source has with its special tokens:
// the padding of a batch whose longest source it is.
func (m *Model) SourceTokens(src string) int {
	ids, _ := m.tok.Source(src)
	return len(ids)
}

// rowsIndependent decodes six probe sentences, half with references, as
// one batch and again in slices padded to the batch's longest source
// (greedy, five tokens), and reports whether every result is the same,
// bit for bit (the first difference when not). About 20 ms.
func (m *Model) rowsIndependent() (bool, string, error) { return m.probeSlices(probeMaxLen) }

// probeMaxLen bounds the probe's translations: five tokens, EOS included.
const probeMaxLen = 5

// probeSlices is rowsIndependent with the slices decoded to at most
// sliceMaxLen tokens (tests give them fewer than the whole batch, a
// difference the comparison must catch).
func (m *Model) probeSlices(sliceMaxLen int) (bool, string, error) {
	srcs, refs := probeSentences()
	srcIDs, srcPieces, err := m.tokenizeSources(srcs)
	if err != nil {
		return false, "", fmt.Errorf("probing row independence: %w", err)
	}
	refIDs := make([][]int32, len(refs))
	for i, r := range refs {
		if r != "" {
			refIDs[i] = m.tok.Target(r)
		}
	}
	padTo := 0
	for _, ids := range srcIDs {
		padTo = max(padTo, len(ids))
	}
	decode := func(h *Model, rows []int, pad int, opts DecodeOptions) ([]Result, error) {
		s, p, r := make([][]int32, len(rows)), make([][]string, len(rows)), make([][]int32, len(rows))
		for k, i := range rows {
			s[k], p[k], r[k] = srcIDs[i], srcPieces[i], refIDs[i]
		}
		out := make([]Result, len(rows))
		err := h.translateIDs(s, p, r, pad, opts, func(res Result) {
			k := res.Index
			res.Index = rows[k]
			out[k] = res
		})
		if err != nil {
			return nil, fmt.Errorf("probing row independence: %w", err)
		}
		return out, nil
	}
	all := make([]int, len(srcs))
	for i := range all {
		all[i] = i
	}
	// The whole batch, and slices of three rows and of one (matrix-vector
	// products), each on a handle of its own, at once: most of the time is
	// ONNX Runtime's per-call overhead on one thread.
	parts := [][]int{all, all[:3], {4}}
	results := make([][]Result, len(parts))
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, rows := range parts {
		h, pad, opts := m, 0, DecodeOptions{MaxLen: probeMaxLen}
		if i > 0 {
			h, pad, opts = m.handle(), padTo, DecodeOptions{MaxLen: sliceMaxLen}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = decode(h, rows, pad, opts)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return false, "", err
	}
	for p, rows := range parts[1:] {
		for k, i := range rows {
			if !reflect.DeepEqual(results[p+1][k], results[0][i]) {
				return false, fmt.Sprintf("probe sentence %d decoded among rows %v differs from the whole batch", i, rows), nil
			}
		}
	}
	return true, "", nil
}

// probeSentences are rowsIndependent's sources, of 2 to 14 words, and
// references for every other one: words of two scripts, so that any
// tokenizer makes tokens of them.
func probeSentences() (srcs, refs []string) {
	words := strings.Fields("나는 학교에 간다 the cat sat on a mat 오늘 날씨가 좋습니다 and then 기계 번역은 흥미로운 연구 주제입니다 we went home 1 2 3")
	for i := range 6 {
		n := 2 + (5*i)%13
		var w []string
		for j := range n {
			w = append(w, words[(3*i+j)%len(words)])
		}
		srcs = append(srcs, strings.Join(w, " "))
		ref := ""
		if i%2 == 0 {
			ref = strings.Join(w[:max(1, n/2)], " ")
		}
		refs = append(refs, ref)
	}
	return srcs, refs
}

// CutBatches says into how many slices to cut each batch of a job, given
// each one's cost (as for fitBatches) and rows (0 or 1: not to be cut):
// all 1 unless the plan slices (Slices) and the job has fewer batches
// than workers. Then a batch costlier than a worker's share of the whole
// job is cut into slices of about half that share, at most one a row: on
// 16 cores at batch 64 the three batches of the longest sources bound the
// run, and the 64 longest sources in batches of 8 took at most a fifth of
// their time as one batch on one thread (bench/RESULTS.md). The other
// batches stay whole: a slice decodes less per call, a small loss on one
// core that idle cores pay for.
func (p Parallelism) CutBatches(costs, rows []int) []int {
	cuts := make([]int, len(costs))
	total := 0
	for i, c := range costs {
		cuts[i] = 1
		total += c
	}
	if !p.Slices || len(costs) >= p.Workers || total == 0 {
		return cuts
	}
	share := float64(total) / float64(p.Workers)
	for i, c := range costs {
		if float64(c) > share && rows[i] > 1 {
			cuts[i] = min(int(math.Ceil(2*float64(c)/share)), rows[i], p.Workers)
		}
	}
	return cuts
}
