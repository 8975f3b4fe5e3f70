package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"attnaudit/inference"
	"attnaudit/pipeline"
	"attnaudit/store"
)

// These tests run the built binary the way users and schedulers do: as a
// process that can be killed, sharded and rerun.

var binary string

func TestMain(m *testing.M) {
	// The binary runs from temporary folders: point it at the repository's
	// ONNX Runtime unless the caller chose one (`make test` does).
	if os.Getenv("ATTNAUDIT_ORT_LIB") == "" {
		lib, _ := filepath.Abs("../../third_party/onnxruntime/libonnxruntime.so.1")
		os.Setenv("ATTNAUDIT_ORT_LIB", lib)
	}
	dir, err := os.MkdirTemp("", "attnaudit-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "attnaudit")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building attnaudit:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const tinyCheckpoint = "../../testdata/checkpoints/tiny"

// smallDataset writes n Korean–English pairs from the demo set as TSV.
func smallDataset(t *testing.T, n int) string {
	t.Helper()
	lines := bytes.Split(demoJSONL(t), []byte("\n"))
	var b strings.Builder
	for _, line := range lines {
		if n == 0 {
			break
		}
		var ex struct{ Source, Reference string }
		if len(line) == 0 || json.Unmarshal(line, &ex) != nil {
			continue
		}
		fmt.Fprintf(&b, "%s\t%s\n", ex.Source, ex.Reference)
		n--
	}
	path := filepath.Join(t.TempDir(), "small.tsv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func demoJSONL(t *testing.T) []byte {
	data, err := os.ReadFile("../../examples/data/demo.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// attnaudit runs the binary to completion and returns its stdout.
func attnaudit(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("attnaudit %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// Small chunks make the runs resumable and shardable at a fine grain.
var smallChunks = []string{"--provider", "cpu", "--chunk-size", "4", "--batch-size", "4", "--max-len", "12"}

func runArgs(cmd, data, out string, extra ...string) []string {
	args := append([]string{cmd, "--checkpoint", tinyCheckpoint, "--data", data, "--output-dir", out}, smallChunks...)
	if cmd == "metrics" || cmd == "report" { // no model: no runtime flags
		args = slices.DeleteFunc(args, func(a string) bool { return a == "--provider" || a == "cpu" })
	}
	return append(args, extra...)
}

// runDigest summarises everything a run holds in Parquet, row by row, so
// two runs can be compared for equality.
func runDigest(t *testing.T, dir string) map[string]string {
	t.Helper()
	digest := map[string]string{}
	h := sha256.New()
	exs, err := store.ReadExamples(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range exs {
		fmt.Fprintf(h, "%d %q %v %v\n", ex.ExampleID, ex.Hypothesis, ex.TgtIDs, ex.TokenLogprobs)
	}
	digest["examples"] = fmt.Sprintf("%d rows %s", len(exs), hex.EncodeToString(h.Sum(nil)))
	h.Reset()
	n := 0
	err = store.ScanAttention(dir, func(a store.Attention) error {
		n++
		fmt.Fprintf(h, "%d %s %s %d %d %v\n", a.ExampleID, a.Pass, a.Kind, a.Layer, a.Head, a.Weights.Data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	digest["attention"] = fmt.Sprintf("%d rows %s", n, hex.EncodeToString(h.Sum(nil)))
	sms, err := store.ReadSentenceMetrics(dir)
	if err != nil {
		t.Fatal(err)
	}
	h.Reset()
	for _, s := range sms {
		fmt.Fprintf(h, "%+v\n", s)
	}
	digest["sentence_metrics"] = fmt.Sprintf("%d rows %s", len(sms), hex.EncodeToString(h.Sum(nil)))
	hms, err := store.ReadHeadMetrics(filepath.Join(dir, store.HeadMetricsStem+".parquet"))
	if err != nil {
		t.Fatal(err)
	}
	h.Reset()
	for _, m := range hms {
		fmt.Fprintf(h, "%+v\n", m)
	}
	digest["head_metrics"] = fmt.Sprintf("%d rows %s", len(hms), hex.EncodeToString(h.Sum(nil)))
	return digest
}

func sameDigest(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for k := range want {
		if got[k] != want[k] {
			t.Errorf("%s: %s differ:\n got  %s\n want %s", what, k, got[k], want[k])
		}
	}
}

// TestKilledRunResumesToTheSameResult kills `run` with SIGKILL part-way
// through inference, reruns the same command, and checks the result equals
// an uninterrupted run.
func TestKilledRunResumesToTheSameResult(t *testing.T) {
	data := smallDataset(t, 24)
	whole := attnaudit(t, runArgs("run", data, t.TempDir())...)
	want := runDigest(t, whole)

	out := t.TempDir()
	cmd := exec.Command(binary, runArgs("run", data, out)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill once the second chunk is on disk: mid-run, with parts written.
	waitForSecondChunk(t, cmd, filepath.Join(out, "*", store.ExamplesPartName(1)))
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	dirs, _ := filepath.Glob(filepath.Join(out, "*"))
	if len(dirs) != 1 {
		t.Fatalf("want one run folder, got %v", dirs)
	}
	if _, err := pipeline.ReadManifest(dirs[0]); err == nil {
		t.Skip("the run finished before it could be killed; nothing to resume")
	}

	resumed := attnaudit(t, runArgs("run", data, out)...)
	if resumed != dirs[0] {
		t.Errorf("rerun went to %s, want the interrupted folder %s", resumed, dirs[0])
	}
	sameDigest(t, "resumed run", runDigest(t, resumed), want)
}

// waitForSecondChunk waits until a file matching pattern (the sign that the
// run's second chunk is on disk) exists; it kills the run and fails the test
// after 2 minutes.
func waitForSecondChunk(t *testing.T, cmd *exec.Cmd, pattern string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if found, _ := filepath.Glob(pattern); len(found) > 0 {
			return
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the run wrote no second chunk within 2 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestShardsEqualTheUnshardedRun runs infer as three shards into one folder,
// then the remaining stages, and compares with an unsharded run row for row.
func TestShardsEqualTheUnshardedRun(t *testing.T) {
	data := smallDataset(t, 20)
	want := runDigest(t, attnaudit(t, runArgs("run", data, t.TempDir())...))

	out := t.TempDir()
	for i := range 3 {
		attnaudit(t, runArgs("infer", data, out, "--shard", fmt.Sprintf("%d/3", i))...)
	}
	dirs, _ := filepath.Glob(filepath.Join(out, "*"))
	if len(dirs) != 1 {
		t.Fatalf("want one run folder, got %v", dirs)
	}
	if _, err := pipeline.ReadManifest(dirs[0]); err != nil {
		t.Fatalf("after all shards: %v", err)
	}
	got := attnaudit(t, runArgs("run", data, out)...)
	sameDigest(t, "sharded run", runDigest(t, got), want)
}

// TestParallelWorkersEqualOneWorker runs the same job with one worker
// (GOMAXPROCS=1: one thread, one chunk written at a time, log-probs row by
// row), with sixteen (GOMAXPROCS=16: sixteen batches decoded at once from
// several chunks, four chunks written while others are translated), with
// three workers of two intra-op threads each, with two such workers and a
// thread left to round examples, and with 32 threads for its 28 batches,
// twice: with its costliest batches cut into slices of rows for 32
// one-thread workers (the log names them), and kept whole (NoSlicesEnv:
// split by their costs, 7 wide workers of three intra-op threads, on
// sessions of their own, and 11 of one). The run folders must hold the
// same rows, and each manifest the split it used.
func TestParallelWorkersEqualOneWorker(t *testing.T) {
	data := smallDataset(t, 40)
	variants := []struct {
		name  string
		procs string
		flags []string
		env   string
		want  inference.Parallelism
	}{
		{"one worker", "1", nil, "", inference.Parallelism{Threads: 1, Workers: 1, IntraOp: 1}},
		{"sixteen workers", "16", nil, "", inference.Parallelism{Threads: 16, Workers: 16, IntraOp: 1}},
		{"three workers × 2", "2", []string{"--threads", "6", "--workers", "3"}, "", inference.Parallelism{Threads: 6, Workers: 3, IntraOp: 2}},
		// The thread the workers leave rounds examples on its own.
		{"two workers × 2 and a rounding helper", "2", []string{"--threads", "5", "--workers", "2"}, "", inference.Parallelism{Threads: 5, Workers: 2, IntraOp: 2}},
		{"fewer batches than threads: slices", "2", []string{"--threads", "32"}, "", inference.Parallelism{Threads: 32, Workers: 32, IntraOp: 1, Slices: true}},
		{"fewer batches than threads: kept whole", "2", []string{"--threads", "32"}, inference.NoSlicesEnv + "=1", inference.Parallelism{Threads: 32, Workers: 18, IntraOp: 1, Wide: 7, WideIntraOp: 3}},
	}
	var want map[string]string
	for _, v := range variants {
		// Chunks of 12 in batches of 3: four translation and four
		// detached-pair batches per chunk, four chunks (the last short).
		args := []string{"run", "--checkpoint", tinyCheckpoint, "--data", data, "--output-dir", t.TempDir(),
			"--provider", "cpu", "--chunk-size", "12", "--batch-size", "3", "--max-len", "12"}
		cmd := exec.Command(binary, append(args, v.flags...)...)
		cmd.Env = append(os.Environ(), "GOMAXPROCS="+v.procs, inference.NoSlicesEnv+"=")
		if v.env != "" {
			cmd.Env = append(cmd.Env, v.env)
		}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\n%s", v.name, err, stderr.String())
		}
		if cut := strings.Contains(stderr.String(), " slices\n"); cut != v.want.Slices {
			t.Errorf("%s: batches cut into slices: %v, want %v\n%s", v.name, cut, v.want.Slices, stderr.String())
		}
		dir := strings.TrimSpace(stdout.String())
		m, err := pipeline.ReadManifest(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Parallelism) != 1 || m.Parallelism[0] != v.want {
			t.Errorf("%s: manifest parallelism %+v, want [%+v]", v.name, m.Parallelism, v.want)
		}
		got := runDigest(t, dir)
		if want == nil {
			want = got
			continue
		}
		sameDigest(t, v.name, got, want)
	}
}

// TestSlicedBatchesEqualOneWorker runs a job of batches of 12 (one per
// chunk of 12, with references and detached pairs) on both tiny
// checkpoints with 16 threads, where each batch is cut into 9 to 11
// slices of one or two rows, padded to their batch's longest source, and
// with one worker: the run folders must hold the same rows.
func TestSlicedBatchesEqualOneWorker(t *testing.T) {
	data := smallDataset(t, 40)
	for _, ck := range []string{tinyCheckpoint, "../../testdata/checkpoints/tiny-c2"} {
		var want map[string]string
		for _, procs := range []string{"1", "2"} {
			cmd := exec.Command(binary, "run", "--checkpoint", ck, "--data", data, "--output-dir", t.TempDir(),
				"--provider", "cpu", "--chunk-size", "12", "--batch-size", "12", "--max-len", "12", "--threads", map[string]string{"1": "1", "2": "16"}[procs])
			cmd.Env = append(os.Environ(), "GOMAXPROCS="+procs, inference.NoSlicesEnv+"=")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s, GOMAXPROCS %s: %v\n%s", ck, procs, err, stderr.String())
			}
			got := runDigest(t, strings.TrimSpace(stdout.String()))
			if procs == "1" {
				want = got
				continue
			}
			if !strings.Contains(stderr.String(), "(12 examples) in ") {
				t.Errorf("%s: no batch of 12 cut into slices:\n%s", ck, stderr.String())
			}
			sameDigest(t, ck+" in slices", got, want)
		}
	}
}

// TestAFakeMetricReachesEveryOutput builds attnaudit with the tag
// attnaudit_fake_metric, whose only change is one extra entry in
// metrics.HeadTable (metrics/table_fake.go), and finds that metric in
// head_metrics.parquet (checked against DuckDB's own max over the stored
// attention), in the run summary and in report.html.
func TestAFakeMetricReachesEveryOutput(t *testing.T) {
	if os.Getenv("ATTNAUDIT_SKIP_DUCKDB") != "" {
		t.Skip("ATTNAUDIT_SKIP_DUCKDB is set")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed; run `make setup` (or set ATTNAUDIT_SKIP_DUCKDB=1)")
	}
	fake := filepath.Join(t.TempDir(), "attnaudit-fake")
	build := exec.Command("go", "build", "-tags", "attnaudit_fake_metric", "-o", fake, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building with the fake metric: %v\n%s", err, out)
	}
	cmd := exec.Command(fake, runArgs("run", smallDataset(t, 6), t.TempDir())...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	dir := strings.TrimSpace(stdout.String())

	sql := strings.NewReplacer("DIR", dir).Replace(`
WITH heads AS (
  SELECT example_id, pass, kind, layer, head, max(w)::DOUBLE AS mx
  FROM (SELECT example_id, pass, kind, layer, head, unnest(weights) AS w FROM attention('DIR'))
  GROUP BY ALL)
SELECT count(*) AS n, max(abs(h.mx - m.fake_max_weight)) AS diff
FROM heads h JOIN read_parquet('DIR/head_metrics.parquet') m USING (example_id, pass, kind, layer, head)`)
	query, _ := json.Marshal([]map[string]string{{"name": "macro", "sql": attentionMacro(t)}, {"name": "fake", "sql": sql}})
	q := exec.Command(node, "../../store/testdata/duckdb/query.mjs")
	q.Stdin = bytes.NewReader(query)
	q.Stderr = &stderr
	out, err := q.Output()
	if err != nil {
		t.Fatalf("duckdb: %v\n%s", err, stderr.String())
	}
	var res struct {
		Fake []map[string]any `json:"fake"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Fake) != 1 {
		t.Fatalf("duckdb output %s: %v", out, err)
	}
	if n, d := fmt.Sprint(res.Fake[0]["n"]), res.Fake[0]["diff"]; n == "0" || d != 0.0 {
		t.Errorf("head_metrics.parquet's fake_max_weight against DuckDB's max over %s heads: largest difference %v", n, d)
	}

	m, err := pipeline.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, l := range m.Summary.Heads {
		if d, ok := l.Metrics["fake_max_weight"]; ok && d.N > 0 {
			found++
		}
	}
	if found == 0 {
		t.Error("fake_max_weight is not in the run summary's per-layer metrics")
	}
	html, err := os.ReadFile(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(html, []byte("fake_max_weight")) {
		t.Error("report.html does not show fake_max_weight")
	}
}

// TestShardIndexFromSchedulerEnvironment checks that "--shard /N" takes its
// index from a Kubernetes Indexed Job.
func TestShardIndexFromSchedulerEnvironment(t *testing.T) {
	t.Setenv("JOB_COMPLETION_INDEX", "1")
	s, err := pipeline.ParseShard("/4")
	if err != nil || s != (pipeline.Shard{Index: 1, Count: 4}) {
		t.Fatalf("ParseShard(/4) = %v, %v", s, err)
	}
	for _, bad := range []string{"4/4", "x/2", "1/0", "-1/2"} {
		if _, err := pipeline.ParseShard(bad); err == nil {
			t.Errorf("ParseShard(%q) accepted", bad)
		}
	}
}

// TestAuditSkipsAndGates audits the shipped checkpoints on a few sentences,
// checks that a second audit skips them all, and that a regression gate
// named by --fail-on exits with code 3.
func TestAuditSkipsAndGates(t *testing.T) {
	data := smallDataset(t, 6)
	out := t.TempDir()
	args := []string{"audit", "--checkpoints", "../../examples/checkpoints/ko-en-small", "--data", data, "--output-dir", out,
		"--provider", "cpu", "--max-len", "20"}
	summaryPath := attnaudit(t, args...)
	var sum pipeline.AuditSummary
	readJSON(t, summaryPath, &sum)
	if len(sum.Runs) != 3 {
		t.Fatalf("audit summary has %d runs, want 3", len(sum.Runs))
	}
	for i, r := range sum.Runs {
		if r.Skipped {
			t.Errorf("first audit skipped %s", r.Checkpoint)
		}
		if i > 0 && r.Epoch <= sum.Runs[i-1].Epoch {
			t.Errorf("runs not in epoch order: %d after %d", r.Epoch, sum.Runs[i-1].Epoch)
		}
	}
	if _, err := os.Stat(sum.Compare); err != nil {
		t.Errorf("compare.html: %v", err)
	}
	// The first checkpoint calibrates the detector thresholds; the later
	// ones are flagged with them.
	first := sum.Runs[0].Run
	for i, r := range sum.Runs {
		m, err := pipeline.ReadManifest(r.Run)
		if err != nil {
			t.Fatal(err)
		}
		if th := m.Summary.Thresholds; th == nil || th.CalibratedOn != first || (i > 0) != (r.ThresholdsFrom == first) {
			t.Errorf("%s: thresholds from %q, calibrated on %+v; want all calibrated on %s", r.Run, r.ThresholdsFrom, th, first)
		}
	}

	readJSON(t, attnaudit(t, args...), &sum)
	for _, r := range sum.Runs {
		if !r.Skipped || !strings.Contains(r.Reason, "already audited") {
			t.Errorf("second audit: %s skipped=%v (%q)", r.Checkpoint, r.Skipped, r.Reason)
		}
	}

	// A damaged part makes its run due again: audit checks the files of
	// the runs it would skip and writes the damaged chunk again.
	damaged := sum.Runs[0].Run
	if err := os.Truncate(filepath.Join(damaged, store.AttentionPartName(0)), 100); err != nil {
		t.Fatal(err)
	}
	readJSON(t, attnaudit(t, args...), &sum)
	if sum.Runs[0].Skipped || !sum.Runs[1].Skipped {
		t.Errorf("audit after damaging %s: skipped %v, %v; want the damaged run redone, the others skipped", damaged, sum.Runs[0].Skipped, sum.Runs[1].Skipped)
	}
	attnaudit(t, "verify", damaged)

	// Gated against the final checkpoint, whose thresholds every run now
	// carries, the first epoch's chrF is a drop and its suspect share a
	// rise (run-relative thresholds flagged the same share everywhere).
	final := sum.Runs[len(sum.Runs)-1].Run
	cmd := exec.Command(binary, append(args, "--baseline", final, "--fail-on", "chrf_drop,suspect_rise", "--chrf-drop", "0")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != exitRegression {
		t.Fatalf("gated audit: exit code %d (%v), want %d\n%s", code, err, exitRegression, stderr.String())
	}
	for _, want := range []string{"corpus chrF", "hallucination-suspect share"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("gated audit does not name the %s regression:\n%s", want, stderr.String())
		}
	}
}

// TestFlagsDoNotDependOnOtherExamples runs a dataset, then the same lines
// with others after them, flagged with the first run's thresholds: every
// free and forced pass of the first lines keeps its flags and reasons.
// (Detached pairs are left out: their references come from other lines.)
func TestFlagsDoNotDependOnOtherExamples(t *testing.T) {
	small, large := smallDataset(t, 8), smallDataset(t, 16)
	base := attnaudit(t, runArgs("run", small, t.TempDir())...)
	grown := attnaudit(t, runArgs("run", large, t.TempDir(), "--thresholds-from", base)...)
	flags := func(dir string) map[string]string {
		sms, err := store.ReadSentenceMetrics(dir)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, s := range sms {
			if s.ExampleID < 8 && s.Pass != store.PassDetached {
				out[fmt.Sprintf("%d %s", s.ExampleID, s.Pass)] = fmt.Sprintf("%v %s", s.Flags, s.Reasons)
			}
		}
		return out
	}
	want, got := flags(base), flags(grown)
	if len(want) != 16 {
		t.Fatalf("%d free and forced passes, want 16", len(want))
	}
	suspects := 0
	for k, w := range want {
		if got[k] != w {
			t.Errorf("example %s: flags %s alone, %s with 8 more examples", k, w, got[k])
		}
		suspects += strings.Count(w, "at or below its threshold")
	}
	if suspects == 0 {
		t.Error("no hallucination suspect among the first lines: the test would miss a moved threshold")
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// attentionMacro is readers/attention.sql, the DuckDB macro attention(run)
// that gives a run's attention weights as probabilities at the default
// (packed) precision.
func attentionMacro(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../readers/attention.sql")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHeadMetricsAgreeWithDuckDB recomputes entropy, first/last mass and
// diagonality (SPEC §5) in SQL, with DuckDB reading attention.parquet
// (through readers/attention.sql, as documented for the default precision), and
// compares them with our head_metrics.parquet: an independent implementation
// over a real run of the shipped checkpoint.
func TestHeadMetricsAgreeWithDuckDB(t *testing.T) {
	if os.Getenv("ATTNAUDIT_SKIP_DUCKDB") != "" {
		t.Skip("ATTNAUDIT_SKIP_DUCKDB is set")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed; run `make setup` (or set ATTNAUDIT_SKIP_DUCKDB=1)")
	}
	data := smallDataset(t, 5)
	dir := attnaudit(t, "run", "--data", data, "--output-dir", t.TempDir(), "--provider", "cpu",
		"--checkpoint", "../../examples/checkpoints/ko-en-small/epoch-027")
	sql := strings.NewReplacer("DIR", dir).Replace(`
WITH cells AS (
  SELECT example_id, pass, kind, layer, head, q_len, k_len,
         unnest(weights)::DOUBLE AS w, generate_subscripts(weights, 1) - 1 AS i
  FROM attention('DIR')),
rows AS (
  SELECT example_id, pass, kind, layer, head, i // k_len AS t,
         -sum(CASE WHEN w > 0 THEN w * ln(w) ELSE 0 END) AS h,
         sum(CASE WHEN i % k_len = 0 THEN w ELSE 0 END) AS first,
         sum(CASE WHEN i % k_len = k_len - 1 THEN w ELSE 0 END) AS last,
         sum(w * (1 - exp(-pow(((i // k_len) + 0.5) / q_len - ((i % k_len) + 0.5) / k_len, 2) / (2 * 0.2 * 0.2)))) AS off
  FROM cells GROUP BY ALL),
heads AS (
  SELECT example_id, pass, kind, layer, head, avg(h) AS entropy, avg(first) AS first_mass,
         avg(last) AS last_mass, 1 - avg(off) AS diagonality
  FROM rows GROUP BY ALL)
SELECT count(*) AS n,
       max(abs(h.entropy - m.entropy)) AS entropy,
       max(abs(h.first_mass - m.first_mass)) AS first_mass,
       max(abs(h.last_mass - m.last_mass)) AS last_mass,
       max(abs(h.diagonality - m.diagonality)) AS diagonality
FROM heads h JOIN read_parquet('DIR/head_metrics.parquet') m USING (example_id, pass, kind, layer, head)`)
	query, _ := json.Marshal([]map[string]string{{"name": "macro", "sql": attentionMacro(t)}, {"name": "diff", "sql": sql}})
	cmd := exec.Command(node, "../../store/testdata/duckdb/query.mjs")
	cmd.Stdin = bytes.NewReader(query)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("duckdb: %v\n%s", err, stderr.String())
	}
	var res struct {
		Diff []map[string]any `json:"diff"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Diff) != 1 {
		t.Fatalf("duckdb output %s: %v", out, err)
	}
	got := res.Diff[0]
	if n := fmt.Sprint(got["n"]); n == "0" {
		t.Fatal("no head rows joined")
	}
	for _, metric := range []string{"entropy", "first_mass", "last_mass", "diagonality"} {
		d, ok := got[metric].(float64)
		if !ok || d > 1e-4 {
			t.Errorf("%s: largest difference from DuckDB's recomputation %v over %v heads, want ≤ 1e-4", metric, got[metric], got["n"])
		}
	}
	t.Logf("DuckDB recomputation over %v head rows: %v", got["n"], got)
}

// TestConcurrentRunsAreRefused starts the same run twice into one folder:
// the second must stop at once with a clear message, and the first finish.
func TestConcurrentRunsAreRefused(t *testing.T) {
	data := smallDataset(t, 24)
	out := t.TempDir()
	first := exec.Command(binary, runArgs("run", data, out)...)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		locks, _ := filepath.Glob(filepath.Join(out, "*", ".lock-shard-0-of-1"))
		if len(locks) > 0 {
			break
		}
		if time.Now().After(deadline) {
			first.Process.Kill()
			t.Fatal("the first run took no lock within a minute")
		}
		time.Sleep(5 * time.Millisecond)
	}
	second := exec.Command(binary, runArgs("run", data, out)...)
	msg, err := second.CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "in use by another attnaudit") {
		t.Errorf("second run: err %v, output:\n%s\nwant it refused as in use", err, msg)
	}
	if err := first.Wait(); err != nil {
		t.Fatalf("first run failed: %v", err)
	}
}

// TestVisualizeWritesTheSeedsFigures checks the seed guide's file names:
// layer -1 resolves to 5 on a 6-layer decoder, and several examples get a
// subfolder each.
func TestVisualizeWritesTheSeedsFigures(t *testing.T) {
	figures := []string{"cross_attention_layer5.png", "cross_attention_multihead_layer5.png", "self_attention_layer5.png"}
	one := t.TempDir()
	attnaudit(t, "visualize", "--checkpoint", tinyCheckpoint, "--input", "안녕하세요. 저는 학생입니다.",
		"--output-dir", one, "--provider", "cpu", "--max-len", "8")
	for _, f := range figures {
		if _, err := os.Stat(filepath.Join(one, f)); err != nil {
			t.Error(err)
		}
	}
	several := t.TempDir()
	attnaudit(t, "visualize", "--checkpoint", tinyCheckpoint, "--num-examples", "2", "--layer", "-1",
		"--output-dir", several, "--provider", "cpu", "--max-len", "8")
	for _, sub := range []string{"example_1", "example_2"} {
		for _, f := range figures {
			if _, err := os.Stat(filepath.Join(several, sub, f)); err != nil {
				t.Error(err)
			}
		}
	}
	cmd := exec.Command(binary, "visualize", "--checkpoint", tinyCheckpoint, "--input", "x", "--layer", "6", "--output-dir", t.TempDir())
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "--layer: layer 6: cross attention has 6 layers") {
		t.Errorf("--layer 6 on a 6-layer decoder: err %v, output %s", err, out)
	}
}

// TestBadLayerFailsBeforeInference: a metrics or report layer the decoder
// does not have stops `run` before its first stage, naming the setting.
func TestBadLayerFailsBeforeInference(t *testing.T) {
	out := t.TempDir()
	cmd := exec.Command(binary, runArgs("run", smallDataset(t, 4), out, "--report-layer", "9")...)
	msg, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "report.report_layer of tiny-random: layer 9: cross attention has 6 layers") {
		t.Errorf("--report-layer 9: %v\n%s", err, msg)
	}
	if parts, _ := filepath.Glob(filepath.Join(out, "*", "*.parquet")); len(parts) > 0 {
		t.Errorf("inference ran before the layer check: %v", parts)
	}
}

// TestStagesRerunByName: `run` skips finished stages, while naming a stage
// runs it again (a new report layer, say) from the same flags.
func TestStagesRerunByName(t *testing.T) {
	data := smallDataset(t, 4)
	out := t.TempDir()
	dir := attnaudit(t, runArgs("run", data, out)...)
	before, err := os.Stat(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	attnaudit(t, runArgs("report", data, out, "--report-layer", "2")...)
	after, err := os.Stat(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	if !after.ModTime().After(before.ModTime()) {
		t.Error("`attnaudit report` did not rewrite report.html")
	}
	attnaudit(t, "metrics", "--run", dir)
	m, err := pipeline.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Stages[pipeline.StageReport]; ok {
		t.Error("after new metrics the manifest still records the old report")
	}
}
