package inference

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// koenData is ../shared/data/ko-en (SPEC §8), which is not committed with
// the project; ATTNAUDIT_KOEN_DATA points elsewhere.
func koenData() string {
	if d := os.Getenv("ATTNAUDIT_KOEN_DATA"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "shared", "data", "ko-en")
}

// handWritten are lines that exercise the tokenizer's edge cases whether or
// not the corpus is at hand: spaces at the ends and doubled, tabs, a carriage
// return, characters outside the training data (byte fallback), NFKC-foldable
// forms that identity normalisation must keep.
var handWritten = []string{
	"안녕하세요, 세계!",
	" 앞에 공백",
	"뒤에 공백 ",
	"두  칸   공백",
	"탭\t문자",
	"줄 끝\r",
	"이모지 🙂 와 한자 漢字",
	"ﾊﾝｶｸ ｶﾀｶﾅ and ﬁ ligature ① ＡＢＣ",
	"The quick brown fox jumps over the lazy dog.",
	"",
	" ",
	"ㄱㄴㄷ 자모만",
}

// trainSentencePiece trains a tokenizer with the DEVELOPERS.md settings on
// text and returns the model file.
func trainSentencePiece(t testing.TB, text []string, vocab int, override ...string) string {
	t.Helper()
	if _, err := exec.LookPath("spm_train"); err != nil {
		t.Fatalf("spm_train not found (Debian package sentencepiece; `make setup` installs it): %v", err)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "text.txt")
	if err := os.WriteFile(in, []byte(strings.Join(text, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("spm_train", "--input=text.txt", "--model_prefix=spm", "--model_type=bpe",
		"--vocab_size="+strconv.Itoa(vocab), "--character_coverage=0.9995",
		"--normalization_rule_name=identity", "--add_dummy_prefix=false",
		"--remove_extra_whitespaces=false", "--byte_fallback=true",
		"--pad_id=0", "--unk_id=1", "--bos_id=2", "--eos_id=3",
		"--input_sentence_size=0", "--shuffle_input_sentence=false", "--num_threads=1",
		"--max_sentence_length=8192", "--minloglevel=2")
	cmd.Args = append(cmd.Args, override...) // later flags win
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("spm_train: %v\n%s", err, out)
	}
	return filepath.Join(dir, "spm.model")
}

// corpus reads every line of the ko-en data: both sides of the parallel
// files, and columns 1 and 2 of tatoeba's kor.txt. Lines split at '\n'
// only, as spm_encode reads them.
func corpus(t testing.TB) map[string][]string {
	dir := koenData()
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("ko-en data not found at %s (set ATTNAUDIT_KOEN_DATA): %v", dir, err)
	}
	out := map[string][]string{}
	files, _ := filepath.Glob(filepath.Join(dir, "kpc-*", "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[f] = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	b, err := os.ReadFile(filepath.Join(dir, "tatoeba", "kor.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		cols := strings.Split(line, "\t")
		if len(cols) < 2 {
			t.Fatalf("kor.txt:%d: %d columns", i+1, len(cols))
		}
		out["kor.txt column 1"] = append(out["kor.txt column 1"], cols[0])
		out["kor.txt column 2"] = append(out["kor.txt column 2"], cols[1])
	}
	if len(files) == 0 {
		t.Fatalf("no kpc-* files under %s", dir)
	}
	return out
}

// spm runs a SentencePiece command over lines and returns its output lines.
func spm(t testing.TB, lines []string, args ...string) []string {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	// Split at '\n' only: a piece or decoded line may end in '\r'.
	res := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(res) != len(lines) {
		t.Fatalf("%s: %d output lines for %d input lines", strings.Join(args, " "), len(res), len(lines))
	}
	return res
}

func TestTokenizerMatchesSentencePiece(t *testing.T) {
	data := corpus(t)
	// Train on a part of the corpus so that the rest holds characters the
	// model has not seen and byte fallback gets exercised.
	var train []string
	for name, lines := range data {
		if strings.Contains(name, "kor.txt") || strings.Contains(name, ".dev.") {
			train = append(train, lines...)
		}
	}
	slices.Sort(train)
	modelPath := trainSentencePiece(t, train, 4000)
	model, err := os.ReadFile(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := NewTokenizer("tokenizer.model", model)
	if err != nil {
		t.Fatal(err)
	}
	data["hand-written"] = handWritten
	names := make([]string, 0, len(data))
	for name := range data {
		names = append(names, name)
	}
	slices.Sort(names)
	total, bytePieces := 0, 0
	for _, name := range names {
		lines := data[name]
		wantIDs := spm(t, lines, "spm_encode", "--model="+modelPath, "--output_format=id")
		wantPieces := spm(t, lines, "spm_encode", "--model="+modelPath, "--output_format=piece")
		decoded := spm(t, wantIDs, "spm_decode", "--model="+modelPath, "--input_format=id")
		fails := 0
		for i, line := range lines {
			ids, pieces := tok.Encode(line)
			gotIDs := make([]string, len(ids))
			for j, id := range ids {
				gotIDs[j] = strconv.Itoa(int(id))
			}
			for _, p := range pieces {
				if strings.HasPrefix(p, "<0x") {
					bytePieces++
				}
			}
			var problems []string
			if g := strings.Join(gotIDs, " "); g != wantIDs[i] {
				problems = append(problems, fmt.Sprintf("ids %s, spm_encode %s", g, wantIDs[i]))
			}
			if g := strings.Join(pieces, " "); g != wantPieces[i] {
				problems = append(problems, fmt.Sprintf("pieces %s, spm_encode %s", g, wantPieces[i]))
			}
			if tok.Count(line) != len(ids) {
				problems = append(problems, fmt.Sprintf("Count %d, Encode %d", tok.Count(line), len(ids)))
			}
			if g := tok.Decode(ids); g != line || g != decoded[i] {
				problems = append(problems, fmt.Sprintf("decode %q, spm_decode %q", g, decoded[i]))
			}
			if len(problems) > 0 {
				fails++
				if fails <= 5 {
					t.Errorf("%s:%d %q: %s", name, i+1, line, strings.Join(problems, "; "))
				}
			}
		}
		if fails > 5 {
			t.Errorf("%s: %d of %d lines differ", name, fails, len(lines))
		}
		total += len(lines)
	}
	if bytePieces == 0 {
		t.Errorf("no byte-fallback pieces in %d lines: the test does not exercise byte fallback", total)
	}
	t.Logf("%d lines equal to spm_encode/spm_decode (%d byte pieces)", total, bytePieces)
}

// TestTokenizerRejects: a model the Go tokenizer would encode differently
// from SentencePiece is refused, naming the file and the setting.
func TestTokenizerRejects(t *testing.T) {
	var text []string
	for _, r := range testSentences {
		text = append(text, r.Source, r.Reference)
	}
	text = append(text, handWritten...)
	small := []string{"--byte_fallback=false", "--hard_vocab_limit=false"}
	cases := []struct {
		flags []string
		want  string
	}{
		{[]string{"--model_type=unigram"}, "model_type UNIGRAM"},
		{[]string{"--add_dummy_prefix=true"}, "add_dummy_prefix=true"},
		{[]string{"--remove_extra_whitespaces=true"}, "remove_extra_whitespaces=true"},
		{[]string{"--normalization_rule_name=nmt_nfkc"}, "normalisation charsmap"},
		{[]string{"--treat_whitespace_as_suffix=true"}, "treat_whitespace_as_suffix=true"},
	}
	for _, c := range cases {
		model, err := os.ReadFile(trainSentencePiece(t, text, 120, append(small, c.flags...)...))
		if err != nil {
			t.Fatal(err)
		}
		_, err = NewTokenizer("tokenizer.model", model)
		if err == nil || !strings.Contains(err.Error(), "tokenizer.model: ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error naming tokenizer.model and %q", c.flags, err, c.want)
		}
	}
	model, err := os.ReadFile(trainSentencePiece(t, text, 120, small...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewTokenizer("tokenizer.model", model); err != nil {
		t.Errorf("the DEVELOPERS.md settings: %v", err)
	}
}

// TestMergeBuffer is the go-sentencepiece v0.6.0 case withMergeBuffer works
// around: merging "abab" with "ab" concatenates six bytes in a buffer sized
// to the longest piece, four.
func TestMergeBuffer(t *testing.T) {
	piece := func(s string, score float32, typ uint64) []byte {
		var b []byte
		b = protowire.AppendTag(b, spmPiece, protowire.BytesType)
		b = protowire.AppendString(b, s)
		b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(score))
		b = protowire.AppendTag(b, spmPieceType, protowire.VarintType)
		return protowire.AppendVarint(b, typ)
	}
	var model []byte
	for _, p := range [][]byte{
		piece("<unk>", 0, 2), piece("<s>", 0, 3), piece("</s>", 0, 3),
		piece("ab", -1, 1), piece("abab", -2, 1), piece("a", -3, 1), piece("b", -4, 1),
	} {
		model = protowire.AppendTag(model, spmPieces, protowire.BytesType)
		model = protowire.AppendBytes(model, p)
	}
	var spec []byte
	spec = protowire.AppendTag(spec, trainerModelType, protowire.VarintType)
	spec = protowire.AppendVarint(spec, spmBPE)
	model = protowire.AppendTag(model, spmTrainerSpec, protowire.BytesType)
	model = protowire.AppendBytes(model, spec)
	var norm []byte
	for _, f := range []protowire.Number{normAddDummyPrefix, normRemoveWhitespace} {
		norm = protowire.AppendTag(norm, f, protowire.VarintType)
		norm = protowire.AppendVarint(norm, 0)
	}
	model = protowire.AppendTag(model, spmNormalizerSpec, protowire.BytesType)
	model = protowire.AppendBytes(model, norm)

	tok, err := NewTokenizer("hand-made.model", model)
	if err != nil {
		t.Fatal(err)
	}
	ids, pieces := tok.Encode("ababab")
	if !slices.Equal(pieces, []string{"abab", "ab"}) || !slices.Equal(ids, []int32{4, 3}) {
		t.Errorf("ababab: %v %v, want abab ab (4 3)", pieces, ids)
	}
	if tok.VocabSize() != 7 || tok.Decode(ids) != "ababab" {
		t.Errorf("vocab %d (the workaround's piece must not count), decode %q", tok.VocabSize(), tok.Decode(ids))
	}
}
