package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The tiny random Hugging Face checkpoints of `make hf-tiny`
// (inference/hf_test.go says how they are made).
func hfTiny(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("ATTNAUDIT_HF_TINY")
	if dir == "" || os.Getenv("ATTNAUDIT_HF_PYTHON") == "" {
		t.Skip("ATTNAUDIT_HF_TINY and ATTNAUDIT_HF_PYTHON unset: `make test` builds the tiny Hugging Face checkpoints and sets them")
	}
	return dir
}

// TestHFFamiliesRunOnTheDemoSet: `attnaudit run` on each exported family
// (Marian, M2M100, NLLB, mBART-50) over the embedded demo set writes a
// complete run with its report.
func TestHFFamiliesRunOnTheDemoSet(t *testing.T) {
	dir := hfTiny(t)
	for _, family := range []string{"marian", "m2m100", "nllb", "mbart50"} {
		t.Run(family, func(t *testing.T) {
			out := t.TempDir()
			run := attnaudit(t, "run", "--checkpoint", filepath.Join(dir, "export", family), "--output-dir", out,
				"--provider", "cpu", "--max-len", "16")
			for _, f := range []string{"manifest.json", "report.html", "head_metrics.parquet", "sentence_metrics.parquet"} {
				if _, err := os.Stat(filepath.Join(run, f)); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestREADMEHuggingFaceSection runs the README's "Audit your own Hugging
// Face model" commands after setup (export, then run) on the tiny random
// Marian checkpoint, as a user would on theirs.
func TestREADMEHuggingFaceSection(t *testing.T) {
	dir := hfTiny(t)
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := regexp.MustCompile(`(?s)## Audit your own Hugging Face model\n(.*?)\n## `).FindSubmatch(readme)
	if section == nil {
		t.Fatal(`README.md has no "Audit your own Hugging Face model" section`)
	}
	var cmds []string
	for _, line := range strings.Split(string(section[1]), "\n") {
		if strings.HasPrefix(line, "    ") && strings.TrimSpace(line) != "" {
			cmds = append(cmds, strings.TrimSpace(strings.SplitN(line, "#", 2)[0]))
		}
	}
	if len(cmds) != 3 || !strings.HasPrefix(cmds[0], "make setup") {
		t.Fatalf("want three commands, setup first; the section has %q", cmds)
	}
	root, _ := filepath.Abs("../..")
	tmp := t.TempDir()
	replacer := strings.NewReplacer(
		"~/models/my-opus-mt", filepath.Join(dir, "models", "marian"),
		"checkpoints/my-opus-mt", filepath.Join(tmp, "checkpoint"),
		"dev.tsv", smallDataset(t, 6),
		"--output-dir runs", "--output-dir "+filepath.Join(tmp, "runs"),
		"bin/attnaudit", binary)
	var lastOut string
	for _, c := range cmds[1:] {
		c = replacer.Replace(c)
		cmd := exec.Command("sh", "-c", c)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", c, err, out)
		}
		lastOut = string(out)
	}
	reports, _ := filepath.Glob(filepath.Join(tmp, "runs", "*", "report.html"))
	if len(reports) != 1 {
		t.Fatalf("want one report.html under %s, found %v\n%s", filepath.Join(tmp, "runs"), reports, lastOut)
	}
}
