package inference

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
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
func trainSentencePiece(t testing.TB, text []string, vocab int) string {
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
