package inference

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"attnaudit/metrics"
)

func equalIDs(a, b []int32) bool { return slices.Equal(a, b) }

func closeSlices(t testing.TB, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", what, len(got), len(want))
		return
	}
	worst, at := 0.0, -1
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	if worst > tol || math.IsNaN(worst) {
		t.Errorf("%s: |Δ| = %g at %d (%g vs %g), tolerance %g", what, worst, at, got[at], want[at], tol)
	}
}

func closeMatrices(t testing.TB, what string, got, want [][]metrics.Matrix, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d layers, want %d", what, len(got), len(want))
		return
	}
	for l := range got {
		if len(got[l]) != len(want[l]) {
			t.Errorf("%s layer %d: %d heads, want %d", what, l, len(got[l]), len(want[l]))
			continue
		}
		for h := range got[l] {
			g, w := got[l][h], want[l][h]
			if g.Rows != w.Rows || g.Cols != w.Cols {
				t.Errorf("%s layer %d head %d: %d×%d, want %d×%d", what, l, h, g.Rows, g.Cols, w.Rows, w.Cols)
				continue
			}
			closeSlices(t, fmt.Sprintf("%s layer %d head %d", what, l, h), g.Data, w.Data, tol)
		}
	}
}

type parityTensor struct {
	Shape []int     `json:"shape"`
	Data  []float64 `json:"data"`
}

type parityFixture struct {
	Atol    float64                 `json:"atol"`
	Inputs  map[string]parityTensor `json:"inputs"`
	Outputs map[string]parityTensor `json:"outputs"`
}

func (p parityTensor) float32s() []float32 {
	out := make([]float32, len(p.Data))
	for i, x := range p.Data {
		out[i] = float32(x)
	}
	return out
}

// readParity reads a checkpoint's parity.json, whose tolerance must be
// within (0, 1e-4].
func readParity(t *testing.T, dir string) parityFixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "parity.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx parityFixture
	if err := json.Unmarshal(b, &fx); err != nil {
		t.Fatal(err)
	}
	if fx.Atol <= 0 || fx.Atol > 1e-4 {
		t.Fatalf("fixture tolerance %g; want (0, 1e-4]", fx.Atol)
	}
	return fx
}

// TestParity runs the graphs from Go on the fixture's inputs and compares
// every output with PyTorch's.
func TestParity(t *testing.T) {
	fx := readParity(t, tinyDir)
	m := loadTiny(t)
	m.mu.Lock()
	defer m.mu.Unlock()

	src := fx.Inputs[TensorSrcIDs]
	n, S := src.Shape[0], src.Shape[1]
	ids := make([][]int32, n)
	for i := range n {
		row := src.Data[i*S : (i+1)*S]
		k := len(row)
		for k > 0 && row[k-1] == float64(m.ck.meta.PadID) {
			k--
		}
		for _, x := range row[:k] {
			ids[i] = append(ids[i], int32(x))
		}
	}
	e, err := m.encode(ids, 0)
	if err != nil {
		t.Fatal(err)
	}
	if e.S != S {
		t.Fatalf("padded source length %d, fixture %d", e.S, S)
	}
	check := func(name string, got []float32) {
		want := fx.Outputs[name]
		size := 1
		for _, d := range want.Shape {
			size *= d
		}
		if size != len(got) {
			t.Errorf("%s: %d values, fixture shape %v", name, len(got), want.Shape)
			return
		}
		closeSlices(t, name, got, want.float32s(), fx.Atol)
	}
	check(TensorMemory, e.mem)
	check(TensorEncoderSelf, e.attn)

	tgtT := fx.Inputs[TensorTgtIDs]
	T := tgtT.Shape[1]
	tgt := make([]int64, len(tgtT.Data))
	for i, x := range tgtT.Data {
		tgt[i] = int64(x)
	}
	mem, srcIDs, S2 := m.rows(e, []int{0, 1})
	logits, dself, cross, err := m.decode(true, n, T, tgt, mem, srcIDs, S2)
	if err != nil {
		t.Fatal(err)
	}
	check(TensorLogits, logits)
	check(TensorDecoderSelf, dself)
	check(TensorCross, cross)
}

var testSentences = []Request{
	{Source: "나는 학교에 간다.", Reference: "I go to school.", HasReference: true},
	{Source: "안녕.", Reference: "Hi.", HasReference: true},
	{Source: "오늘 날씨가 정말 좋네요. 공원에 산책하러 갈까요?", Reference: "The weather is really nice today. Shall we take a walk in the park?", HasReference: true},
	{Source: "고마워요!"},
	{Source: "그는 어제 서울에서 부산까지 기차를 타고 갔다고 말했다.", Reference: "He said he took the train from Seoul to Busan yesterday.", HasReference: true},
}

func TestGreedyEqualsBeamOne(t *testing.T) {
	for _, m := range tinyModels(t) {
		for _, penalty := range []float32{0, 1.3} {
			opts := DecodeOptions{MaxLen: 24, RepetitionPenalty: penalty}
			greedy, err := m.TranslateBatch(testSentences, opts)
			if err != nil {
				t.Fatal(err)
			}
			opts.Beam = 1
			beam, err := m.TranslateBatch(testSentences, opts)
			if err != nil {
				t.Fatal(err)
			}
			for i := range greedy {
				if !equalIDs(greedy[i].Free.IDs, beam[i].Free.IDs) || greedy[i].Hypothesis != beam[i].Hypothesis {
					t.Errorf("penalty %g, sentence %d: greedy %v, beam 1 %v", penalty, i, greedy[i].Free.IDs, beam[i].Free.IDs)
				}
			}
		}
	}
}

// TestPaddingInvariance: an example translated alone and inside a padded
// batch gets the same tokens, log-probabilities and attention.
func TestPaddingInvariance(t *testing.T) {
	for _, m := range tinyModels(t) {
		for _, beam := range []int{0, 3} {
			opts := DecodeOptions{Beam: beam, MaxLen: 20}
			batch, err := m.TranslateBatch(testSentences, opts)
			if err != nil {
				t.Fatal(err)
			}
			for i, req := range testSentences {
				alone, err := m.TranslateBatch([]Request{req}, opts)
				if err != nil {
					t.Fatal(err)
				}
				a, b := alone[0], batch[i]
				what := fmt.Sprintf("beam %d, sentence %d", beam, i)
				if b.Index != i || !equalIDs(a.SrcIDs, b.SrcIDs) || !slices.Equal(a.SrcPieces, b.SrcPieces) {
					t.Errorf("%s: source %v alone, %v (index %d) in the batch", what, a.SrcIDs, b.SrcIDs, b.Index)
				}
				if !equalIDs(a.Free.IDs, b.Free.IDs) {
					t.Errorf("%s: hypothesis %v alone, %v in the batch", what, a.Free.IDs, b.Free.IDs)
					continue
				}
				closeMatrices(t, what+" encoder self", b.EncoderSelf, a.EncoderSelf, 1e-4)
				passes := [][2]*Pass{{&b.Free, &a.Free}}
				if req.HasReference {
					passes = append(passes, [2]*Pass{b.Forced, a.Forced})
				} else if b.Forced != nil || a.Forced != nil {
					t.Errorf("%s: a forced pass without a reference", what)
				}
				for _, p := range passes {
					if !equalIDs(p[0].IDs, p[1].IDs) {
						t.Errorf("%s: pass over %v in the batch, %v alone", what, p[0].IDs, p[1].IDs)
						continue
					}
					closeSlices(t, what+" logprobs", p[0].Logprobs, p[1].Logprobs, 1e-4)
					closeMatrices(t, what+" decoder self", p[0].DecoderSelf, p[1].DecoderSelf, 1e-4)
					closeMatrices(t, what+" cross", p[0].Cross, p[1].Cross, 1e-4)
				}
			}
		}
	}
}

// TestResultShapes checks the token conventions and that every attention
// row is a distribution (decoder self-attention causal).
func TestResultShapes(t *testing.T) {
	for _, m := range tinyModels(t) {
		res, err := m.TranslateBatch(testSentences, DecodeOptions{Beam: 2, MaxLen: 16})
		if err != nil {
			t.Fatal(err)
		}
		tok, eos := m.tok, m.ck.meta.EosID
		for i, r := range res {
			ids, pieces := tok.Encode(testSentences[i].Source)
			if !equalIDs(r.SrcIDs, append(ids, eos)) || !slices.Equal(r.SrcPieces, append(pieces, "</s>")) {
				t.Errorf("sentence %d: source %v %q", i, r.SrcIDs, r.SrcPieces)
			}
			checkAttention(t, fmt.Sprintf("sentence %d encoder", i), r.EncoderSelf, len(r.SrcIDs), len(r.SrcIDs), false)
			passes := []*Pass{&r.Free}
			if r.Forced != nil {
				refIDs, _ := tok.Encode(testSentences[i].Reference)
				if !equalIDs(r.Forced.IDs, append(refIDs, eos)) {
					t.Errorf("sentence %d: forced pass over %v, reference %v", i, r.Forced.IDs, refIDs)
				}
				passes = append(passes, r.Forced)
			}
			free := r.Free.IDs
			if len(free) == 0 || len(free) > 16 || free[len(free)-1] != eos || slices.Contains(free[:len(free)-1], eos) {
				t.Errorf("sentence %d: free pass tokens %v: want at most 16, one EOS, last", i, free)
			}
			if got := tok.Decode(free); got != r.Hypothesis {
				t.Errorf("sentence %d: hypothesis %q, tokens decode to %q", i, r.Hypothesis, got)
			}
			for k, p := range passes {
				what := fmt.Sprintf("sentence %d pass %d", i, k)
				q := len(p.IDs)
				if len(p.Pieces) != q || len(p.Logprobs) != q {
					t.Errorf("%s: %d ids, %d pieces, %d logprobs", what, q, len(p.Pieces), len(p.Logprobs))
				}
				for _, lp := range p.Logprobs {
					if !(lp <= 0) {
						t.Errorf("%s: log-probability %g", what, lp)
					}
				}
				checkAttention(t, what+" decoder self", p.DecoderSelf, q, q, true)
				checkAttention(t, what+" cross", p.Cross, q, len(r.SrcIDs), false)
			}
		}
	}
}

func checkAttention(t *testing.T, what string, attn [][]metrics.Matrix, rows, cols int, causal bool) {
	t.Helper()
	if len(attn) != 6 {
		t.Errorf("%s: %d layers", what, len(attn))
		return
	}
	for l, heads := range attn {
		if len(heads) != 8 {
			t.Errorf("%s layer %d: %d heads", what, l, len(heads))
		}
		for h, a := range heads {
			if a.Rows != rows || a.Cols != cols || len(a.Data) != rows*cols {
				t.Errorf("%s layer %d head %d: %d×%d (%d values), want %d×%d", what, l, h, a.Rows, a.Cols, len(a.Data), rows, cols)
				continue
			}
			for i := range rows {
				sum := 0.0
				for j, x := range a.Row(i) {
					sum += float64(x)
					if causal && j > i && x != 0 {
						t.Errorf("%s layer %d head %d: row %d attends to later position %d (%g)", what, l, h, i, j, x)
					}
				}
				if math.Abs(sum-1) > 1e-4 {
					t.Errorf("%s layer %d head %d: row %d sums to %g", what, l, h, i, sum)
				}
			}
		}
	}
}

func TestMaxLen(t *testing.T) {
	for _, m := range tinyModels(t) {
		eos := m.ck.meta.EosID
		for _, beam := range []int{0, 2} {
			for _, maxLen := range []int{1, 2, 5} {
				res, err := m.TranslateBatch(testSentences[:2], DecodeOptions{Beam: beam, MaxLen: maxLen})
				if err != nil {
					t.Fatal(err)
				}
				for i, r := range res {
					if n := len(r.Free.IDs); n == 0 || n > maxLen || r.Free.IDs[n-1] != eos {
						t.Errorf("beam %d, max-len %d, sentence %d: tokens %v", beam, maxLen, i, r.Free.IDs)
					}
					if maxLen == 1 && r.Hypothesis != "" {
						t.Errorf("max-len 1 gives hypothesis %q", r.Hypothesis)
					}
				}
			}
		}
		if _, err := m.TranslateBatch(testSentences, DecodeOptions{Beam: -1}); err == nil {
			t.Error("beam -1 accepted")
		}
	}
}

func TestForce(t *testing.T) {
	for _, m := range tinyModels(t) {
		res, err := m.TranslateBatch(testSentences[:3], DecodeOptions{MaxLen: 10})
		if err != nil {
			t.Fatal(err)
		}
		passes, err := m.Force([]string{testSentences[0].Source, testSentences[2].Source}, []string{testSentences[0].Reference, testSentences[2].Reference})
		if err != nil {
			t.Fatal(err)
		}
		for k, i := range []int{0, 2} {
			want := res[i].Forced
			if !equalIDs(passes[k].IDs, want.IDs) {
				t.Fatalf("Force over %v, TranslateBatch's forced pass over %v", passes[k].IDs, want.IDs)
			}
			closeSlices(t, "logprobs", passes[k].Logprobs, want.Logprobs, 1e-4)
			closeMatrices(t, "cross", passes[k].Cross, want.Cross, 1e-4)
		}
		if _, err := m.Force([]string{"a"}, nil); err == nil {
			t.Error("Force with unequal lengths accepted")
		}
	}
}

func TestAdjust(t *testing.T) {
	m := &Model{ck: &Checkpoint{meta: Meta{PadID: 0, BosID: 2, EosID: 3}, suppress: []int32{0, 2}}}
	row := []float32{5, 1, 1, 1, 2, -2, 3}
	m.adjust(row, []int32{4, 5, 4, 1}, 2)
	inf := float32(math.Inf(-1))
	want := []float32{inf, 0.5, inf, 1, 1, -4, 3}
	if !slices.Equal(row, want) {
		t.Errorf("adjust: %v, want %v (each generated token penalised once)", row, want)
	}
	row = []float32{1, 1, 1, 1, 2}
	m.adjust(row, []int32{4}, 1)
	if !slices.Equal(row, []float32{inf, 1, inf, 1, 2}) {
		t.Errorf("penalty 1 changed a logit: %v", row)
	}
}

func TestTopK(t *testing.T) {
	row := []float32{0.5, 2, -1, 2, 7, 0.5}
	got := topK(nil, row, 4)
	var toks []int32
	for _, c := range got {
		toks = append(toks, c.tok)
	}
	if !slices.Equal(toks, []int32{4, 1, 3, 0}) {
		t.Errorf("topK: %v, want [4 1 3 0] (ties to the lower id)", toks)
	}
}

// benchSources are the first lines of the data's Korean side, or the test
// sentences without it.
func benchSources(b *testing.B, n int) []Request {
	reqs := make([]Request, n)
	for i := range reqs {
		reqs[i] = Request{Source: testSentences[i%len(testSentences)].Source}
	}
	if data, err := os.ReadFile(filepath.Join(koenData(), "kpc-jhe", "jhe-koen-dev.ko")); err == nil {
		for i, line := range slices.Collect(splitLines(string(data))) {
			if i == n {
				break
			}
			reqs[i].Source = line
		}
	}
	return reqs
}

func splitLines(s string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for len(s) > 0 {
			i := 0
			for i < len(s) && s[i] != '\n' {
				i++
			}
			if !yield(s[:i]) {
				return
			}
			if i < len(s) {
				i++
			}
			s = s[i:]
		}
	}
}

// BenchmarkTranslate measures greedy translation with attention capture on
// the tiny checkpoint: go test -run ^$ -bench Translate ./inference/
func BenchmarkTranslate(b *testing.B) {
	m := loadTiny(b)
	for _, batch := range []int{1, 32} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			reqs := benchSources(b, batch)
			sentences := 0
			for b.Loop() {
				if _, err := m.TranslateBatch(reqs, DecodeOptions{MaxLen: 64}); err != nil {
					b.Fatal(err)
				}
				sentences += batch
			}
			b.ReportMetric(float64(sentences)/b.Elapsed().Seconds(), "sentences/s")
		})
	}
}

// toyLM is a next-token model over pad 0, unk 1, bos 2, eos 3, A 4, B 5,
// given as log-probabilities of the prefix so far.
func toyLM(probs func(prefix []int32) map[int32]float64) nextLogits {
	return func(rowReq []int, seqs [][]int32, t int) ([]float32, error) {
		const v = 6
		out := make([]float32, len(seqs)*t*v)
		for r, y := range seqs {
			if len(y) != t-1 {
				return nil, fmt.Errorf("row %d holds %d tokens at step %d", r, len(y), t)
			}
			row := out[(r*t+t-1)*v : (r*t+t)*v]
			for j := range row {
				row[j] = -30
			}
			for tok, p := range probs(y) {
				row[tok] = float32(math.Log(p))
			}
		}
		return out, nil
	}
}

func toyModel() *Model {
	return &Model{ck: &Checkpoint{meta: Meta{PadID: 0, BosID: 2, EosID: 3}, suppress: []int32{0, 2}}, io: &contractIO{vocab: 6}}
}

// TestBeamFindsBetterHypothesis: greedy takes A (0.6) and then can only
// end unlikely; beam search keeps B (0.4), which ends with probability 0.99.
// Scores are length-normalised: [B, EOS] scores (ln .4 + ln .99)/2.
func TestBeamFindsBetterHypothesis(t *testing.T) {
	const A, B, eos = 4, 5, 3
	lm := toyLM(func(prefix []int32) map[int32]float64 {
		switch {
		case len(prefix) == 0:
			return map[int32]float64{A: 0.6, B: 0.4}
		case prefix[0] == B:
			return map[int32]float64{eos: 0.99, A: 0.005, B: 0.005}
		default:
			return map[int32]float64{eos: 0.2, A: 0.4, B: 0.4}
		}
	})
	m := toyModel()
	maxLen := []int{4, 4}
	greedy, err := m.greedy(lm, maxLen, 1)
	if err != nil {
		t.Fatal(err)
	}
	beam, err := m.beam(lm, maxLen, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxLen {
		// Greedy: A, then A (ties go to the lower id) until max-len 4
		// leaves room for EOS only.
		if !slices.Equal(greedy[i], []int32{A, A, A}) {
			t.Errorf("greedy %v, want [A A A]", greedy[i])
		}
		if !slices.Equal(beam[i], []int32{B}) {
			t.Errorf("beam 2 %v, want [B]", beam[i])
		}
	}
	one, err := m.beam(lm, maxLen, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(one[0], greedy[0]) {
		t.Errorf("beam 1 %v, greedy %v", one[0], greedy[0])
	}
}

// TestBatchShrinks: finished sequences leave the decoder batch.
func TestBatchShrinks(t *testing.T) {
	const A, eos = 4, 3
	var rows []int
	lm := toyLM(func(prefix []int32) map[int32]float64 {
		return map[int32]float64{A: 0.6, eos: 0.4}
	})
	counting := func(rowReq []int, seqs [][]int32, t int) ([]float32, error) {
		rows = append(rows, len(rowReq))
		return lm(rowReq, seqs, t)
	}
	out, err := toyModel().greedy(counting, []int{2, 4, 3}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rows, []int{3, 2, 1}) {
		t.Errorf("decoder rows per step %v, want [3 2 1]", rows)
	}
	for i, want := range [][]int32{{A}, {A, A, A}, {A, A}} {
		if !slices.Equal(out[i], want) {
			t.Errorf("sequence %d: %v, want %v", i, out[i], want)
		}
	}
}

// TestTranslateEachHandsOutEarly checks TranslateEach against
// TranslateBatch: each result once, equal to TranslateBatch's; with the
// key/value cache and greedy search a sentence comes out when its row ends
// (shorter outputs first, so not in request order here: the length limit
// follows each source), otherwise every result at the end, in order.
func TestTranslateEachHandsOutEarly(t *testing.T) {
	for _, m := range tinyModels(t) {
		for _, beam := range []int{0, 2} {
			opts := DecodeOptions{Beam: beam}
			want, err := m.TranslateBatch(testSentences, opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []Result
			if err := m.TranslateEach(testSentences, opts, func(r Result) { got = append(got, r) }); err != nil {
				t.Fatal(err)
			}
			name := fmt.Sprintf("contract %d, beam %d", m.io.contract, beam)
			if len(got) != len(want) {
				t.Fatalf("%s: %d results handed out, want %d", name, len(got), len(want))
			}
			early := m.io.contract == 2 && beam == 0
			seen, inOrder := make([]bool, len(want)), true
			for k, r := range got {
				if seen[r.Index] {
					t.Fatalf("%s: result %d handed out twice", name, r.Index)
				}
				seen[r.Index] = true
				inOrder = inOrder && r.Index == k
				if !reflect.DeepEqual(r, want[r.Index]) {
					t.Errorf("%s: result %d differs from TranslateBatch's", name, r.Index)
				}
				if early && k > 0 && len(r.Free.IDs) < len(got[k-1].Free.IDs) {
					t.Errorf("%s: result %d (%d tokens) came after a longer one (%d)", name, r.Index, len(r.Free.IDs), len(got[k-1].Free.IDs))
				}
			}
			if inOrder == early {
				t.Errorf("%s: handed out in request order %v, want %v", name, inOrder, !early)
			}
		}
	}
}
