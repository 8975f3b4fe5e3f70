package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"attnaudit/pipeline"
	"attnaudit/store"
)

// TestVerifyNamesDamagedPartsAndRunRedoesThem truncates one part of a
// finished run and removes another: verify fails naming both, the same
// run command writes those chunks again, and the result equals the
// original run.
func TestVerifyNamesDamagedPartsAndRunRedoesThem(t *testing.T) {
	data := smallDataset(t, 12)
	out := t.TempDir()
	dir := attnaudit(t, runArgs("run", data, out)...)
	want := runDigest(t, dir)
	attnaudit(t, "verify", dir)

	truncated := filepath.Join(dir, store.AttentionPartName(1))
	info, err := os.Stat(truncated)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(truncated, info.Size()/2); err != nil {
		t.Fatal(err)
	}
	removed := filepath.Join(dir, store.ExamplesPartName(2))
	if err := os.Remove(removed); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "verify", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitError {
		t.Fatalf("verify of a damaged run: %v, want exit %d\n%s", err, exitError, stderr.String())
	}
	for _, want := range []string{truncated + ": damaged", removed + ": missing"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("verify's message lacks %q:\n%s", want, stderr.String())
		}
	}

	if again := attnaudit(t, runArgs("run", data, out)...); again != dir {
		t.Fatalf("rerun went to %s, want %s", again, dir)
	}
	attnaudit(t, "verify", dir)
	sameDigest(t, "redone run", runDigest(t, dir), want)
}

// TestSIGTERMStopsBetweenChunksAndRerunResumes sends SIGTERM, what
// Kubernetes sends on preemption, part-way through inference: the run
// exits with exitInterrupted, leaves no temporary file and only whole,
// recorded parts, and the same command resumes it to the uninterrupted
// result.
func TestSIGTERMStopsBetweenChunksAndRerunResumes(t *testing.T) {
	data := smallDataset(t, 72) // 18 chunks: at most 8 are in flight when chunk 1 is done
	want := runDigest(t, attnaudit(t, runArgs("run", data, t.TempDir())...))

	out := t.TempDir()
	cmd := exec.Command(binary, runArgs("run", data, out)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitForSecondChunk(t, cmd, filepath.Join(out, "*", ".chunk-00001.json"))
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	dirs, _ := filepath.Glob(filepath.Join(out, "*"))
	if len(dirs) != 1 {
		t.Fatalf("want one run folder, got %v", dirs)
	}
	dir := dirs[0]
	if _, merr := pipeline.ReadManifest(dir); merr == nil {
		t.Skip("the run finished before SIGTERM reached it; nothing to resume")
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitInterrupted {
		t.Fatalf("run after SIGTERM: %v, want exit %d\n%s", err, exitInterrupted, stderr.String())
	}
	if !strings.Contains(stderr.String(), "infer: stopping") {
		t.Errorf("no stop message:\n%s", stderr.String())
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, ".*.tmp-*")); len(tmp) > 0 {
		t.Errorf("temporary files left behind: %v", tmp)
	}
	// Every part under a final name reads.
	for _, stem := range []string{store.AttentionStem, store.ExamplesStem} {
		parts, _ := store.Parts(dir, stem)
		for _, p := range parts {
			if _, err := store.FileRows(p); err != nil {
				t.Errorf("a part left by the stopped run does not read: %v", err)
			}
		}
	}

	if resumed := attnaudit(t, runArgs("run", data, out)...); resumed != dir {
		t.Errorf("rerun went to %s, want %s", resumed, dir)
	}
	attnaudit(t, "verify", dir)
	sameDigest(t, "resumed run", runDigest(t, dir), want)
}
