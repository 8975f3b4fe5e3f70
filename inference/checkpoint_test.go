package inference

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"testing/fstest"
)

func TestOpenCheckpoint(t *testing.T) {
	ck := openTiny(t)
	m := ck.Meta()
	if m.Contract != 1 || m.Name != "tiny-random" || m.BosID != 2 || m.EosID != 3 || m.PadID != 0 || m.MaxPositions != 512 {
		t.Errorf("meta %+v", m)
	}
	if m.TrainLoss != nil {
		t.Errorf("train_loss null read as %v", *m.TrainLoss)
	}
	if _, ok := m.Extra["d_model"]; !ok {
		t.Errorf("unknown field d_model not kept: %v", m.Extra)
	}
	if _, ok := m.Extra["name"]; ok {
		t.Errorf("known field name in Extra")
	}
	if !json.Valid(ck.MetaJSON()) {
		t.Errorf("MetaJSON not JSON: %s", ck.MetaJSON())
	}
	if enc, dec := ck.Layers(); enc != 6 || dec != 6 || ck.Heads() != 8 {
		t.Errorf("layers %d/%d heads %d, want 6/6 and 8", enc, dec, ck.Heads())
	}
	if ck.MaxSourceTokens() != 511 {
		t.Errorf("MaxSourceTokens %d, want 511", ck.MaxSourceTokens())
	}
	if err := ck.RequireAttention(TensorEncoderSelf, TensorDecoderSelf, TensorCross); err != nil {
		t.Error(err)
	}
}

func TestCheckpointHash(t *testing.T) {
	a := openTiny(t)
	fsys := tinyFiles(t)
	b, err := OpenCheckpoint(fsys, "ck")
	if err != nil {
		t.Fatal(err)
	}
	if a.Hash() != b.Hash() || len(a.Hash()) != 64 {
		t.Errorf("the same files hash to %s on disk and %s in memory", a.Hash(), b.Hash())
	}
	meta := readFS(t, fsys, "ck/"+MetaFile)
	fsys["ck/"+MetaFile] = &fstest.MapFile{Data: bytes.Replace(meta, []byte(`"epoch": 0`), []byte(`"epoch": 1`), 1)}
	c, err := OpenCheckpoint(fsys, "ck")
	if err != nil {
		t.Fatal(err)
	}
	if c.Hash() == a.Hash() || c.Meta().Epoch != 1 {
		t.Errorf("editing checkpoint.json kept hash %s (epoch %d)", c.Hash(), c.Meta().Epoch)
	}
}

// TestContractErrors breaks the tiny checkpoint in one way at a time; each
// error must name the file and what is wrong.
func TestContractErrors(t *testing.T) {
	base := tinyFiles(t)
	enc, dec := readFS(t, base, "ck/"+EncoderFile), readFS(t, base, "ck/"+DecoderFile)
	meta := readFS(t, base, "ck/"+MetaFile)
	editMeta := func(f func(map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(meta, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	cases := []struct {
		name  string
		files map[string][]byte // nil data removes the file
		want  []string
	}{
		{"no decoder", map[string][]byte{DecoderFile: nil}, []string{"decoder.onnx missing"}},
		{"no tokenizer", map[string][]byte{TokenizerFile: nil}, []string{"tokenizer.model missing"}},
		{"contract 2", map[string][]byte{MetaFile: editMeta(func(m map[string]any) { m["contract"] = 2 })},
			[]string{"checkpoint.json", "contract 2"}},
		{"no eos_id", map[string][]byte{MetaFile: editMeta(func(m map[string]any) { delete(m, "eos_id") })},
			[]string{"checkpoint.json", `"eos_id" missing`}},
		{"pad_id past vocab", map[string][]byte{MetaFile: editMeta(func(m map[string]any) { m["pad_id"] = 99999 })},
			[]string{"pad_id 99999", "tokenizer.model"}},
		{"bad JSON", map[string][]byte{MetaFile: []byte("{")}, []string{"checkpoint.json"}},
		{"not a tokenizer", map[string][]byte{TokenizerFile: []byte("hello")}, []string{"tokenizer.model"}},
		{"graphs swapped", map[string][]byte{EncoderFile: dec, DecoderFile: enc},
			[]string{"encoder.onnx", "unexpected input tgt_ids"}},
		{"no logits", map[string][]byte{DecoderFile: editGraph(t, dec, nil, TensorLogits)},
			[]string{"decoder.onnx: output logits missing"}},
		{"no memory", map[string][]byte{EncoderFile: editGraph(t, enc, nil, TensorMemory)},
			[]string{"encoder.onnx: output memory missing"}},
		{"logits has the rank of cross_attn", map[string][]byte{DecoderFile: editGraph(t, dec,
			map[string]string{TensorLogits: TensorCross, TensorCross: TensorLogits})},
			[]string{"decoder.onnx: output logits has wrong rank 5"}},
		{"renamed input", map[string][]byte{EncoderFile: editGraph(t, enc, map[string]string{TensorSrcIDs: "input_ids"})},
			[]string{"encoder.onnx: input src_ids missing", "input_ids"}},
		{"not ONNX", map[string][]byte{EncoderFile: []byte("not a model")}, []string{"encoder.onnx"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { openFails(t, base, c.files, c.want) })
	}
}

// TestMissingAttention: a checkpoint without an attention output still
// translates; asking for the tensor names it.
func TestMissingAttention(t *testing.T) {
	fsys := tinyFiles(t)
	fsys["ck/"+DecoderFile] = &fstest.MapFile{Data: editGraph(t, readFS(t, fsys, "ck/"+DecoderFile), nil, TensorCross)}
	fsys["ck/"+EncoderFile] = &fstest.MapFile{Data: editGraph(t, readFS(t, fsys, "ck/"+EncoderFile), nil, TensorEncoderSelf)}
	ck, err := OpenCheckpoint(fsys, "ck")
	if err != nil {
		t.Fatal(err)
	}
	if err := ck.RequireAttention(TensorDecoderSelf); err != nil {
		t.Errorf("decoder self-attention is there: %v", err)
	}
	err = ck.RequireAttention(TensorDecoderSelf, TensorCross)
	var missing *MissingAttentionError
	if !errors.As(err, &missing) || missing.Tensor != TensorCross || missing.File != DecoderFile ||
		!strings.Contains(err.Error(), "Attention weights not found") || !strings.Contains(err.Error(), "cross_attn") {
		t.Errorf("RequireAttention(cross_attn) = %v", err)
	}
	if err := ck.RequireAttention(TensorEncoderSelf); err == nil || !strings.Contains(err.Error(), "encoder.onnx has no output encoder_self_attn") {
		t.Errorf("RequireAttention(encoder_self_attn) = %v", err)
	}
	var desc bytes.Buffer
	if err := ck.Describe(&desc); err != nil || !strings.Contains(desc.String(), "decoder.onnx has no output cross_attn") {
		t.Errorf("Describe does not report the missing output (err %v):\n%s", err, desc.String())
	}

	m, err := testRuntime.Load(ck)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	reqs := []Request{{Source: "나는 학교에 간다.", Reference: "I go to school.", HasReference: true}}
	got, err := m.TranslateBatch(reqs, DecodeOptions{MaxLen: 8})
	if err != nil {
		t.Fatal(err)
	}
	want, err := loadTiny(t).TranslateBatch(reqs, DecodeOptions{MaxLen: 8})
	if err != nil {
		t.Fatal(err)
	}
	r := got[0]
	if r.EncoderSelf != nil || r.Free.Cross != nil || r.Forced.Cross != nil {
		t.Errorf("missing tensors are not nil")
	}
	if r.Free.DecoderSelf == nil || r.Forced.DecoderSelf == nil {
		t.Errorf("decoder self-attention missing")
	}
	if r.Hypothesis != want[0].Hypothesis || !equalIDs(r.Free.IDs, want[0].Free.IDs) {
		t.Errorf("translation without the attention outputs %v differs from the full model's %v", r.Free.IDs, want[0].Free.IDs)
	}
	closeSlices(t, "forced logprobs", r.Forced.Logprobs, want[0].Forced.Logprobs, 1e-5)
}

func TestDescribe(t *testing.T) {
	var b bytes.Buffer
	if err := openTiny(t).Describe(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, w := range []string{
		"tiny-random", "encoder.onnx", "input   src_ids", "output  encoder_self_attn", "[6, ?, 8, ?, ?]",
		"output  cross_attn", "layers      encoder 6, decoder 6", "heads       8", "d_model     32",
		"vocab       4000", "bos 2 <s>, eos 3 </s>, pad 0 <pad>", `"random_init": true`,
	} {
		if !strings.Contains(out, w) {
			t.Errorf("Describe lacks %q:\n%s", w, out)
		}
	}
}

func TestOpenCheckpointFromFolder(t *testing.T) {
	if _, err := OpenCheckpoint(os.DirFS(t.TempDir()), "."); err == nil || !strings.Contains(err.Error(), "checkpoint.json missing") {
		t.Errorf("empty folder: %v", err)
	}
}

// openFails opens base with files replaced (nil: removed) under ck/ and
// checks that OpenCheckpoint refuses it with an error holding every want.
func openFails(t *testing.T, base fstest.MapFS, files map[string][]byte, want []string) {
	t.Helper()
	fsys := fstest.MapFS{}
	for k, v := range base {
		fsys[k] = v
	}
	for f, data := range files {
		if data == nil {
			delete(fsys, "ck/"+f)
		} else {
			fsys["ck/"+f] = &fstest.MapFile{Data: data}
		}
	}
	_, err := OpenCheckpoint(fsys, "ck")
	if err == nil {
		t.Fatal("the checkpoint opened")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}
