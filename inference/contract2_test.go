package inference

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"attnaudit/examples"
)

// TestParityCached steps ONNX Runtime through the fixture's target one
// position at a time over the cache, and runs the teacher-forced
// decoder_model.onnx over it whole; both must give PyTorch's outputs from
// decoding with its cache (parity.json), on every row, to the fixture's
// tolerance.
func TestParityCached(t *testing.T) {
	for _, dir := range []string{tinyDir2, filepath.Join("..", examples.CheckpointsDir, "epoch-027")} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			fx := readParity(t, dir)
			ck, err := OpenCheckpoint(os.DirFS(dir), ".")
			if err != nil {
				t.Fatal(err)
			}
			m, err := testRuntime.Load(ck)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			parityCached(t, m, fx)
		})
	}
}

func parityCached(t *testing.T, m *Model, fx parityFixture) {
	src := fx.Inputs[TensorInputIDs]
	n, S := src.Shape[0], src.Shape[1]
	ids := make([][]int32, n)
	for i := range n {
		row := src.Data[i*S : (i+1)*S]
		for _, x := range row {
			if x != float64(m.ck.meta.PadID) {
				ids[i] = append(ids[i], int32(x))
			}
		}
	}
	e, err := m.encode(ids, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := func(name string) []float32 { return fx.Outputs[name].float32s() }
	closeSlices(t, TensorLastHidden, e.mem, want(TensorLastHidden), fx.Atol)
	closeSlices(t, TensorEncoderSelf, e.attn, want(TensorEncoderSelf), fx.Atol)
	// Value-vector norms: the fixtures made since they were exported have
	// them, and the checkpoint must then return them.
	for _, name := range []string{TensorEncoderValueNorms, TensorCrossValueNorms} {
		got := e.encNorms
		if name == TensorCrossValueNorms {
			got = e.crossNorms
		}
		if _, ok := fx.Outputs[name]; ok != m.io.has[name] {
			t.Errorf("%s: in the fixture %v, exported %v", name, ok, m.io.has[name])
		} else if ok {
			closeSlices(t, name, got, want(name), fx.Atol)
		}
	}

	tgt := fx.Inputs["decoder_input_ids"]
	T := tgt.Shape[1]
	L, H, V := m.io.decLayers, m.io.heads, m.io.vocab
	logits, dself, cross := want(TensorLogits), want(TensorDecoderSelf), want(TensorCross)
	rows := []int{}
	for i := range n {
		rows = append(rows, i)
	}
	c := m.newCache(e, rows)
	var parents []int
	for step := range T {
		toks := make([]int32, n)
		for r := range n {
			toks[r] = int32(tgt.Data[r*T+step])
		}
		out, err := c.advance(parents, toks)
		if err != nil {
			t.Fatal(err)
		}
		parents = rows
		for r := range n {
			what := fmt.Sprintf("cached step %d row %d", step, r)
			closeSlices(t, what+" logits", out.logits[r*V:(r+1)*V], logits[(r*T+step)*V:(r*T+step+1)*V], fx.Atol)
			for l := range L {
				for h := range H {
					got := out.dself[((l*n+r)*H+h)*(step+1):][:step+1]
					at := (((l*n+r)*H+h)*T + step) * T
					closeSlices(t, fmt.Sprintf("%s decoder self layer %d head %d", what, l, h), got, dself[at:at+step+1], fx.Atol)
					got = out.cross[((l*n+r)*H+h)*S:][:S]
					at = (((l*n+r)*H+h)*T + step) * S
					closeSlices(t, fmt.Sprintf("%s cross layer %d head %d", what, l, h), got, cross[at:at+S], fx.Atol)
				}
			}
		}
	}

	tgtIDs := make([]int64, len(tgt.Data))
	for i, x := range tgt.Data {
		tgtIDs[i] = int64(x)
	}
	mem, srcIDs, S2 := m.rows(e, rows)
	gotLogits, gotSelf, gotCross, err := m.decode(true, n, T, tgtIDs, mem, srcIDs, S2)
	if err != nil {
		t.Fatal(err)
	}
	closeSlices(t, "teacher-forced logits", gotLogits, logits, fx.Atol)
	closeSlices(t, "teacher-forced decoder self", gotSelf, dself, fx.Atol)
	closeSlices(t, "teacher-forced cross", gotCross, cross, fx.Atol)
}

// compareResults asserts that two runs of the same weights give the same
// hypotheses and, within tol, the same log-probabilities and attention.
func compareResults(t *testing.T, what string, a, b []Result, tol float64) {
	t.Helper()
	for i := range a {
		w := fmt.Sprintf("%s, example %d", what, i)
		if a[i].Hypothesis != b[i].Hypothesis || !equalIDs(a[i].Free.IDs, b[i].Free.IDs) {
			t.Errorf("%s: hypothesis %v vs %v", w, a[i].Free.IDs, b[i].Free.IDs)
			continue
		}
		closeMatrices(t, w+" encoder self", a[i].EncoderSelf, b[i].EncoderSelf, tol)
		passes := [][2]*Pass{{&a[i].Free, &b[i].Free}}
		if (a[i].Forced == nil) != (b[i].Forced == nil) {
			t.Errorf("%s: forced pass in one run only", w)
		} else if a[i].Forced != nil {
			passes = append(passes, [2]*Pass{a[i].Forced, b[i].Forced})
		}
		for k, p := range passes {
			pw := fmt.Sprintf("%s pass %d", w, k)
			if !equalIDs(p[0].IDs, p[1].IDs) {
				t.Errorf("%s: %v vs %v", pw, p[0].IDs, p[1].IDs)
				continue
			}
			closeSlices(t, pw+" logprobs", p[0].Logprobs, p[1].Logprobs, tol)
			closeMatrices(t, pw+" decoder self", p[0].DecoderSelf, p[1].DecoderSelf, tol)
			closeMatrices(t, pw+" cross", p[0].Cross, p[1].Cross, tol)
		}
	}
}

// demoRequests is the embedded demo set as requests.
func demoRequests(t testing.TB) []Request {
	t.Helper()
	var reqs []Request
	for _, line := range strings.Split(string(examples.DemoData), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var ex struct{ Source, Reference string }
		if err := json.Unmarshal([]byte(line), &ex); err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, Request{Source: ex.Source, Reference: ex.Reference, HasReference: ex.Reference != ""})
	}
	return reqs
}

// translateAll translates reqs in batches of size bs.
func translateAll(t testing.TB, m *Model, reqs []Request, bs int, opts DecodeOptions) []Result {
	t.Helper()
	var out []Result
	for at := 0; at < len(reqs); at += bs {
		res, err := m.TranslateBatch(reqs[at:min(at+bs, len(reqs))], opts)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res...)
	}
	return out
}

// TestContractsAgree: the tiny weights as contract 1 and as contract 2
// translate the demo set alike (greedy and beam, which reorders the cache),
// and store the same attention within 1e-4.
func TestContractsAgree(t *testing.T) {
	reqs := demoRequests(t)
	c1, c2 := loadTiny(t), loadTiny2(t)
	for _, opts := range []DecodeOptions{{MaxLen: 24}, {Beam: 3, MaxLen: 16, RepetitionPenalty: 1.2}} {
		subset := reqs
		if opts.Beam > 0 {
			subset = reqs[:48]
		}
		a := translateAll(t, c1, subset, 16, opts)
		b := translateAll(t, c2, subset, 16, opts)
		compareResults(t, fmt.Sprintf("tiny %+v", opts), a, b, 1e-4)
	}
}

// TestShippedContractsAgree is the same on the shipped final checkpoint:
// it is contract 2, and export/convert.py writes its weights back as
// contract 1 into a temporary folder (so this needs the exporter's Python:
// torch, onnx, sentencepiece). Every stored attention value of the demo
// set must agree within 1e-4.
func TestShippedContractsAgree(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the conversion and the contract-1 decoding")
	}
	py := os.Getenv("EXPORT_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	if err := exec.Command(py, "-c", "import torch, onnx, sentencepiece").Run(); err != nil {
		t.Skipf("%s cannot import torch, onnx and sentencepiece (%v): the exporter is needed to write contract 1", py, err)
	}
	shipped, err := filepath.Abs(filepath.Join("..", examples.CheckpointsDir, "epoch-027"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "c1")
	cmd := exec.Command(py, "convert.py", "--checkpoint", shipped, "--contract", "1", "--out", dir)
	cmd.Dir = filepath.Join("..", "export")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("converting %s to contract 1: %v\n%s", shipped, err, out)
	}
	load := func(dir string, contract int) *Model {
		ck, err := OpenCheckpoint(os.DirFS(dir), ".")
		if err != nil {
			t.Fatal(err)
		}
		if ck.Contract() != contract {
			t.Fatalf("%s is contract %d, want %d", dir, ck.Contract(), contract)
		}
		m, err := testRuntime.Load(ck)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	c1, c2 := load(dir, 1), load(shipped, 2)
	reqs := demoRequests(t)
	opts := DecodeOptions{}
	compareResults(t, "epoch-027 greedy", translateAll(t, c1, reqs, 32, opts), translateAll(t, c2, reqs, 32, opts), 1e-4)
	opts = DecodeOptions{Beam: 4}
	compareResults(t, "epoch-027 beam 4", translateAll(t, c1, reqs[:32], 16, opts), translateAll(t, c2, reqs[:32], 16, opts), 1e-4)
}

// tiny2Files reads the contract-2 tiny checkpoint into a MapFS that tests
// can edit.
func tiny2Files(t testing.TB) fstest.MapFS {
	t.Helper()
	fsys := fstest.MapFS{}
	for _, f := range contractFiles[2] {
		b, err := os.ReadFile(filepath.Join(tinyDir2, f))
		if err != nil {
			t.Fatal(err)
		}
		fsys["ck/"+f] = &fstest.MapFile{Data: b}
	}
	return fsys
}

// TestMalformedCache breaks the contract-2 cache one way at a time; the
// error must name the file and the tensor.
func TestMalformedCache(t *testing.T) {
	base := tiny2Files(t)
	dec, past := readFS(t, base, "ck/"+DecoderModelFile), readFS(t, base, "ck/"+DecoderWithPastFile)
	other, err := os.ReadFile(filepath.Join("..", examples.CheckpointsDir, "epoch-027", DecoderWithPastFile))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		files map[string][]byte
		want  []string
	}{
		{"no cache at all", map[string][]byte{DecoderModelFile: editGraph(t, dec, nil, cacheNames(PresentName, 6, cacheParts...)...)},
			[]string{DecoderModelFile, "present.0.decoder.key missing"}},
		{"a present missing", map[string][]byte{DecoderModelFile: editGraph(t, dec, nil, "present.3.encoder.value")},
			[]string{DecoderModelFile, "output present.3.encoder.value missing"}},
		{"a past renamed", map[string][]byte{DecoderWithPastFile: editGraph(t, past, map[string]string{"past_key_values.2.decoder.value": "past_key_values.2.decoder.val"})},
			[]string{DecoderWithPastFile, "past_key_values.2.decoder.value missing"}},
		{"a present of the with-past decoder missing", map[string][]byte{DecoderWithPastFile: editGraph(t, past, nil, "present.5.decoder.key")},
			[]string{DecoderWithPastFile, "output present.5.decoder.key missing"}},
		{"cache shapes differ", map[string][]byte{DecoderWithPastFile: other},
			[]string{DecoderWithPastFile, "input past_key_values.0.decoder.key has shape [?, 8, ?, 10]", "[batch, 8, positions, 4]"}},
		{"attention in one decoder only", map[string][]byte{DecoderWithPastFile: editGraph(t, past, nil, TensorCross)},
			[]string{DecoderWithPastFile, "output cross_attn missing", DecoderModelFile}},
		{"missing file", map[string][]byte{DecoderWithPastFile: nil},
			[]string{"contract 2", DecoderWithPastFile + " missing"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { openFails(t, base, c.files, c.want) })
	}
}

func TestContract2Meta(t *testing.T) {
	base := tiny2Files(t)
	meta := readFS(t, base, "ck/"+MetaFile)
	fsys := fstest.MapFS{}
	for k, v := range base {
		fsys[k] = v
	}
	for _, c := range []struct{ old, new, want string }{
		{`"forced_bos_token_id": null`, `"forced_bos_token_id": 99999`, "forced_bos_token_id 99999 is outside"},
		{`"forced_bos_token_id": null`, `"forced_bos_token_id": -1`, "forced_bos_token_id -1 is negative"},
		{`"forced_bos_token_id": null`, `"forced_bos_token_id": 7, "contract": 1`, "needs contract 2"},
		{`"forced_bos_token_id": null`, `"forced_bos_token_id": null, "suppress_token_ids": [99999]`, "suppress_token_ids: 99999 is outside"},
	} {
		fsys["ck/"+MetaFile] = &fstest.MapFile{Data: []byte(strings.Replace(string(meta), c.old, c.new, 1))}
		if _, err := OpenCheckpoint(fsys, "ck"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.new, err, c.want)
		}
	}
	fsys["ck/"+MetaFile] = &fstest.MapFile{Data: []byte(strings.Replace(string(meta), `"forced_bos_token_id": null`, `"forced_bos_token_id": 7`, 1))}
	if _, err := OpenCheckpoint(fsys, "ck"); err != nil {
		t.Errorf("forced BOS in contract 2: %v", err)
	}
	fsys["ck/"+MetaFile] = &fstest.MapFile{Data: []byte(strings.Replace(string(meta), `"contract": 2`, `"contract": 3`, 1))}
	if _, err := OpenCheckpoint(fsys, "ck"); err == nil || !strings.Contains(err.Error(), "contract 3") {
		t.Errorf("contract 3: %v", err)
	}
}

func TestDescribeContract2(t *testing.T) {
	ck, err := OpenCheckpoint(os.DirFS(tinyDir2), ".")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := ck.Describe(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"(contract 2)", EncoderModelFile, DecoderModelFile, DecoderWithPastFile,
		"24 cache tensors", "past_key_values.{0..5}.{decoder,encoder}.{key,value} [?, 8, ?, 4]",
		"present.{0..5}.{decoder}.{key,value}",
		"cache       Optimum seq2seq: 6 layers",
		"attention   encoder_self_attn", "attention   cross_attn         (decoder_model.onnx and decoder_with_past_model.onnx, one row per cached step)",
		`"decoder_start_token_id": 2`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Describe lacks %q:\n%s", want, out)
		}
	}
	var missing *MissingAttentionError
	fsys := tiny2Files(t)
	for _, f := range []string{DecoderModelFile, DecoderWithPastFile} {
		fsys["ck/"+f] = &fstest.MapFile{Data: editGraph(t, readFS(t, fsys, "ck/"+f), nil, TensorDecoderSelf)}
	}
	ck, err = OpenCheckpoint(fsys, "ck")
	if err != nil {
		t.Fatal(err)
	}
	if err := ck.RequireAttention(TensorDecoderSelf); !errors.As(err, &missing) || missing.File != DecoderModelFile {
		t.Errorf("RequireAttention: %v", err)
	}
}

// TestCacheReorder: after rows leave and others are duplicated (as beams
// sharing a parent), each cache row decodes as its source would alone,
// padded like the batch, bit for bit (rows.go); the encoder half keeps the
// batch's source positions when the longest source leaves.
func TestCacheReorder(t *testing.T) {
	m := loadTiny2(t)
	m.mu.Lock()
	defer m.mu.Unlock()
	// Row 1, the longest source, leaves.
	srcs := []string{testSentences[0].Source, testSentences[4].Source, testSentences[1].Source}
	ids, _, err := m.tokenizeSources(srcs)
	if err != nil {
		t.Fatal(err)
	}
	start := m.ck.decoderStart()
	// Decode rows 0..2 two steps, then continue rows [2, 2, 0] (row 1 leaves).
	steps := [][]int32{{start, start, start}, {11, 12, 13}, {21, 22, 23}}
	parents := [][]int{nil, {0, 1, 2}, {2, 2, 0}}
	type rowOut struct{ logits, self, cross []float32 }
	capture := func(out stepOut, r int, k int) rowOut {
		v := m.io.vocab
		rows := m.record(out, r, k)
		return rowOut{slices.Clone(out.logits[r*v : (r+1)*v]), rows.self, rows.cross}
	}
	e, err := m.encode(ids, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := m.newCache(e, []int{0, 1, 2})
	var last stepOut
	for s := range steps {
		if last, err = c.advance(parents[s], steps[s]); err != nil {
			t.Fatal(err)
		}
	}
	if longest := max(len(ids[2]), len(ids[0])); c.S != e.S || longest >= e.S || last.n != 3 {
		t.Errorf("after the reorder: %d rows, %d source positions; want 3 and the batch's %d (the rows left need %d)", last.n, c.S, e.S, longest)
	}
	got := make([]rowOut, 3)
	for r, src := range []int{2, 2, 0} {
		got[r] = capture(last, r, len(ids[src]))
	}
	// The same paths, each source alone.
	for r, path := range []struct {
		src  int
		toks []int32
	}{{2, []int32{start, 13, 21}}, {2, []int32{start, 13, 22}}, {0, []int32{start, 11, 23}}} {
		one, err := m.encode([][]int32{ids[path.src]}, e.S)
		if err != nil {
			t.Fatal(err)
		}
		alone := m.newCache(one, []int{0})
		var out stepOut
		var par []int
		for _, tok := range path.toks {
			if out, err = alone.advance(par, []int32{tok}); err != nil {
				t.Fatal(err)
			}
			par = []int{0}
		}
		want := capture(out, 0, len(ids[path.src]))
		what := fmt.Sprintf("row %d", r)
		closeSlices(t, what+" logits", got[r].logits, want.logits, 0)
		closeSlices(t, what+" decoder self", got[r].self, want.self, 0)
		closeSlices(t, what+" cross", got[r].cross, want.cross, 0)
	}
}
