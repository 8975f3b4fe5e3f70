package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"attnaudit/pipeline"
	"attnaudit/store"
)

// shortPositionsCheckpoint copies a test checkpoint with export/
// short_positions.py: its encoder fails inside ONNX Runtime when batch ×
// source length exceeds tokens, and computes the original's outputs
// otherwise.
func shortPositionsCheckpoint(t *testing.T, checkpoint string, tokens int) string {
	t.Helper()
	py := os.Getenv("EXPORT_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	src, err := filepath.Abs(checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(checkpoint)+"-short")
	cmd := exec.Command(py, "short_positions.py", "--checkpoint", src, "--tokens", fmt.Sprint(tokens), "--out", out)
	cmd.Dir = "../../export"
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("short_positions.py (needs %s with onnx and numpy; `make setup` installs them): %v\n%s", py, err, msg)
	}
	return out
}

// longInThirdChunk writes twelve demo pairs as TSV: short ones (at most
// 14 source tokens with EOS), and at line 10, in the third chunk of 4,
// demo-150, 63 tokens: a batch of two holding it has 126 source
// positions, one alone 63.
func longInThirdChunk(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for i, line := range bytes.Split(demoJSONL(t), []byte("\n")) {
		var ex struct{ ID, Source, Reference string }
		if len(line) == 0 || json.Unmarshal(line, &ex) != nil {
			continue
		}
		if i < 12 && i != 9 || i == 149 {
			fmt.Fprintf(&b, "%s\t%s\n", ex.Source, ex.Reference)
		}
		if i == 149 && ex.ID != "demo-150" {
			t.Fatalf("demo.jsonl line 150 is %s, want demo-150", ex.ID)
		}
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	// demo-150 goes to line 10 (example_id 9).
	long := lines[len(lines)-1]
	lines = append(lines[:9], append([]string{long}, lines[9:len(lines)-1]...)...)
	path := filepath.Join(t.TempDir(), "long-in-chunk-2.tsv")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestORTErrorMidRunNamesTheBatch runs a checkpoint whose encoder fails
// inside ONNX Runtime for one batch of the third chunk only, in both
// contracts: `run` exits 1 naming the chunk, the batch, its example ids
// and ONNX Runtime's message; the chunks committed before verify intact
// and no part of the failed chunk lies under a final name; rerun with the
// cause removed (batches of one, which do not change the run folder), it
// resumes in the same folder and equals a run of the unbroken checkpoint.
func TestORTErrorMidRunNamesTheBatch(t *testing.T) {
	data := longInThirdChunk(t)
	for _, ckpt := range []string{tinyCheckpoint, "../../testdata/checkpoints/tiny-c2"} {
		t.Run(filepath.Base(ckpt), func(t *testing.T) {
			broken := shortPositionsCheckpoint(t, ckpt, 64)
			abs, _ := filepath.Abs(broken)
			args := func(batch string) []string {
				return []string{"run", "--checkpoint", abs, "--data", data, "--output-dir", t.TempDir(), "--provider", "cpu",
					"--chunk-size", "4", "--batch-size", batch, "--max-len", "12", "--threads", "1"}
			}
			a := args("2")
			cmd := exec.Command(binary, a...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("run on the broken checkpoint: %v, want exit status 1\n%s", err, stderr.String())
			}
			// The batch of demo-150 (example_id 9, line 10) fails, whether
			// translated or force-decoded as a detached pair first.
			named := regexp.MustCompile(`(?m)^attnaudit: chunk 2(, |: detached pairs: )batch \d+ \(example_id [^)]*\)?[^:]*\b9 \(line-10\)[^:]*\): ` +
				`(encoder\.onnx|encoder_model\.onnx): .*Add node\. Name:'/positions/Add'.*Attempting to broadcast an axis by a dimension other than 1\. 64 by 126`)
			if !named.MatchString(stderr.String()) {
				t.Fatalf("the error does not name chunk 2, the batch, example_id 9 (line-10) and ONNX Runtime's message:\n%s", stderr.String())
			}
			dirs, _ := filepath.Glob(filepath.Join(a[6], "*"))
			if len(dirs) != 1 {
				t.Fatalf("run folders %v, want one", dirs)
			}
			dir := dirs[0]
			if _, err := os.Stat(filepath.Join(dir, pipeline.ManifestName)); err == nil {
				t.Fatal("a failed run wrote its manifest")
			}
			// No half-file looks complete: every part under a final name has
			// its chunk's record, and none is chunk 2's.
			for _, stem := range []string{store.ExamplesStem, store.AttentionStem} {
				parts, _ := store.Parts(dir, stem)
				for _, p := range parts {
					var c int
					fmt.Sscanf(strings.TrimPrefix(filepath.Base(p), stem+"-"), "%05d", &c)
					if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf(".chunk-%05d.json", c))); err != nil || c == 2 {
						t.Errorf("%s lies under its final name without a committed chunk", p)
					}
				}
			}
			if _, err := os.Stat(filepath.Join(dir, ".chunk-00000.json")); err != nil {
				t.Errorf("chunk 0, translated before the failure, is not committed: %v", err)
			}
			v := exec.Command(binary, "verify", dir)
			msg, err := v.CombinedOutput()
			committed := regexp.MustCompile(`incomplete run \(no manifest\.json\).*\(committed chunks intact: ([12]) of ([12])\)`).FindSubmatch(msg)
			if err == nil || committed == nil || string(committed[1]) != string(committed[2]) || strings.Count(string(msg), "verify: ") != 2 {
				t.Errorf("verify of the failed run: %v, want exit 1 saying it is incomplete with its committed chunks intact:\n%s", err, msg)
			}

			// Batches of one have 63 source positions: the cause is gone,
			// and batch_size is not part of the run folder's name.
			a = args("1")
			a[6] = filepath.Dir(dir)
			cmd = exec.Command(binary, a...)
			stderr.Reset()
			cmd.Stderr = &stderr
			got, err := cmd.Output()
			if err != nil {
				t.Fatalf("rerun with --batch-size 1: %v\n%s", err, stderr.String())
			}
			if strings.TrimSpace(string(got)) != dir {
				t.Errorf("rerun went to %s, want %s", got, dir)
			}
			if n := len(committed); n > 0 && !strings.Contains(stderr.String(), fmt.Sprintf("for %d examples", 12-4*atoi(committed[1]))) {
				t.Errorf("the rerun did not resume after the %s committed chunks:\n%s", committed[1], stderr.String())
			}
			attnaudit(t, "verify", dir)
			ckAbs, _ := filepath.Abs(ckpt)
			whole := attnaudit(t, "run", "--checkpoint", ckAbs, "--data", data, "--output-dir", t.TempDir(), "--provider", "cpu",
				"--chunk-size", "4", "--batch-size", "2", "--max-len", "12")
			sameDigest(t, "resumed run of the broken checkpoint", runDigest(t, dir), runDigest(t, whole))
		})
	}
}

func atoi(b []byte) int {
	n := 0
	fmt.Sscan(string(b), &n)
	return n
}
