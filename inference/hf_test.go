package inference

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// The Hugging Face families' tests run on tiny random checkpoints that
// `make hf-tiny` builds (export/hf_tiny.py, then export/export_hf.py) into
// ATTNAUDIT_HF_TINY/models/FAMILY and ATTNAUDIT_HF_TINY/export/FAMILY, and
// compare with the model's own transformers code run by
// ATTNAUDIT_HF_PYTHON (export/hf_reference.py). `make test` sets both.
var hfFamilies = []string{"marian", "m2m100", "nllb", "mbart50"}

func hfTiny(t *testing.T) (dir, python string) {
	t.Helper()
	dir, python = os.Getenv("ATTNAUDIT_HF_TINY"), os.Getenv("ATTNAUDIT_HF_PYTHON")
	if dir == "" || python == "" {
		t.Skip("ATTNAUDIT_HF_TINY and ATTNAUDIT_HF_PYTHON unset: `make test` builds the tiny Hugging Face checkpoints and sets them")
	}
	return dir, python
}

type hfReference struct {
	Source  [][]int32 `json:"source"`
	Target  [][]int32 `json:"target"`
	Decoded []string  `json:"decoded"`
	Greedy  [][]int32 `json:"greedy"`
}

// hfRun asks export/hf_reference.py what transformers gives.
func hfRun(t *testing.T, python, modelDir string, req map[string]any) hfReference {
	t.Helper()
	req["model_dir"] = modelDir
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "hf_reference.py")
	cmd.Dir = filepath.Join("..", "export")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hf_reference.py: %v\n%s", err, stderr.String())
	}
	var ref hfReference
	if err := json.Unmarshal(out, &ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

func openHF(t *testing.T, dir, family string) *Checkpoint {
	t.Helper()
	ck, err := OpenCheckpoint(os.DirFS(filepath.Join(dir, "export", family)), ".")
	if err != nil {
		t.Fatal(err)
	}
	return ck
}

// TestHFTokenizerMatchesTransformers: on every line of ../shared/data/ko-en
// (and the hand-written edge cases), each family's source ids (language
// token, pieces, EOS), target ids and decoded text equal the model's own
// transformers tokenizer's.
func TestHFTokenizerMatchesTransformers(t *testing.T) {
	dir, python := hfTiny(t)
	var lines []string
	var where []string
	data := corpus(t)
	files := make([]string, 0, len(data))
	for f := range data {
		files = append(files, f)
	}
	slices.Sort(files)
	for _, f := range files {
		for i, l := range data[f] {
			lines, where = append(lines, l), append(where, f+":"+itoa(i+1))
		}
	}
	for i, l := range append(handWritten, "a </s> b <unk> c <pad>", "__en__ kor_Hang 태그") {
		lines, where = append(lines, l), append(where, "hand-written "+itoa(i+1))
	}
	for _, family := range hfFamilies {
		t.Run(family, func(t *testing.T) {
			ck := openHF(t, dir, family)
			ref := hfRun(t, python, filepath.Join(dir, "models", family), map[string]any{"lines": lines})
			tok := ck.Tokenizer()
			eos := ck.Meta().EosID
			bad := 0
			for i, l := range lines {
				src, _ := tok.Source(l)
				tgt := append(tok.Target(l), eos)
				dec := tok.Decode(ref.Target[i])
				if !slices.Equal(src, ref.Source[i]) || !slices.Equal(tgt, ref.Target[i]) || dec != ref.Decoded[i] {
					bad++
					if bad <= 5 {
						t.Errorf("%s %q:\nsource %v\n  want %v\ntarget %v\n  want %v\ndecoded %q\n   want %q",
							where[i], l, src, ref.Source[i], tgt, ref.Target[i], dec, ref.Decoded[i])
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d lines differ", bad, len(lines))
			}
			t.Logf("%d lines: source, target and decoded text equal transformers'", len(lines))
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestHFParity: ONNX Runtime from Go over the cache against transformers in
// PyTorch with its own cache (parity.json), within 1e-4 on the encoder
// output, the logits and every attention tensor of every step.
func TestHFParity(t *testing.T) {
	dir, _ := hfTiny(t)
	for _, family := range hfFamilies {
		t.Run(family, func(t *testing.T) {
			fx := readParity(t, filepath.Join(dir, "export", family))
			m, err := testRuntime.Load(openHF(t, dir, family))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			parityCached(t, m, fx)
		})
	}
}

// TestHFGreedyMatchesGenerate: attnaudit's greedy search (decoder start,
// forced target-language token, suppressed ids, forced EOS at max-len)
// gives generate()'s tokens on the demo sources.
func TestHFGreedyMatchesGenerate(t *testing.T) {
	dir, python := hfTiny(t)
	sources := []string{"나는 학교에 간다.", "안녕.", "고마워요, 정말로 고마워요!", "오늘 날씨가 아주 좋네요.", "이 책은 누구의 것입니까?"}
	const maxLen = 24
	for _, family := range hfFamilies {
		t.Run(family, func(t *testing.T) {
			ref := hfRun(t, python, filepath.Join(dir, "models", family), map[string]any{"generate": sources, "max_len": maxLen})
			m, err := testRuntime.Load(openHF(t, dir, family))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			reqs := make([]Request, len(sources))
			for i, s := range sources {
				reqs[i] = Request{Source: s}
			}
			res, err := m.TranslateBatch(reqs, DecodeOptions{MaxLen: maxLen})
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if !slices.Equal(r.Free.IDs, ref.Greedy[i]) {
					t.Errorf("%q: attnaudit %v\n  generate() %v", sources[i], r.Free.IDs, ref.Greedy[i])
				}
				if f := m.ck.meta.ForcedBosID; f != nil && (len(r.Free.IDs) == 0 || r.Free.IDs[0] != *f) {
					t.Errorf("%q: first token %v, want the forced %d", sources[i], r.Free.IDs, *f)
				}
			}
		})
	}
}

// TestHFSlicesDecodeAsTheWholeBatch: on the Hugging Face families too, the
// load-time check passes and a batch decoded in slices padded to its
// longest source gives every sentence the whole batch's bits (rows.go).
func TestHFSlicesDecodeAsTheWholeBatch(t *testing.T) {
	dir, _ := hfTiny(t)
	sources := []string{"나는 학교에 간다.", "안녕.", "고마워요, 정말로 고마워요!", "오늘 날씨가 아주 좋네요.", "이 책은 누구의 것입니까?"}
	for _, family := range hfFamilies {
		t.Run(family, func(t *testing.T) {
			m, err := testRuntime.Load(openHF(t, dir, family))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if same, why, err := m.rowsIndependent(); err != nil || !same {
				t.Errorf("rowsIndependent = %v, %q, %v; want true", same, why, err)
			}
			reqs := make([]Request, len(sources))
			for i, src := range sources {
				reqs[i] = Request{Source: src, Reference: "I go to school.", HasReference: i%2 == 0}
			}
			sameInSlices(t, family, m, reqs, DecodeOptions{MaxLen: 16}, [][]int{{0, 3}, {1, 2, 4}, {2}})
		})
	}
}
