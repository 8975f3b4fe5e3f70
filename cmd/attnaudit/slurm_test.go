package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSlurmArrayEqualsTheUnshardedRun starts a one-node Slurm cluster on
// this machine (docs/scale/slurm-localhost.sh: munged, slurmctld and slurmd
// from Debian's packages), runs docs/scale/slurm-array.sh as a user would,
// so that sbatch queues its array over 3 shards and the finalize job that
// depends on it, waits for both, and compares the run folder with an
// unsharded run row for row.
//
// It needs root and the packages `make setup` installs; without them it
// skips, unless ATTNAUDIT_REQUIRE_SLURM is set (CI sets it), where it fails.
func TestSlurmArrayEqualsTheUnshardedRun(t *testing.T) {
	missing := ""
	for _, tool := range []string{"munged", "slurmctld", "slurmd", "sbatch", "scontrol"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing += " " + tool
		}
	}
	switch {
	case os.Getuid() != 0:
		missing = "root (slurmd runs jobs as their user)"
	case missing != "":
		missing = "Slurm's programs:" + missing + " (make setup installs munge, slurmctld, slurmd and slurm-client)"
	}
	if missing != "" {
		if os.Getenv("ATTNAUDIT_REQUIRE_SLURM") != "" {
			t.Fatalf("ATTNAUDIT_REQUIRE_SLURM is set but this machine lacks %s", missing)
		}
		t.Skipf("no Slurm cluster possible here: needs %s", missing)
	}

	scale, err := filepath.Abs("../../docs/scale")
	if err != nil {
		t.Fatal(err)
	}
	// A short folder: munge's socket path must fit in 108 bytes.
	cluster, err := os.MkdirTemp("", "slurm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command(filepath.Join(scale, "slurm-localhost.sh"), "stop", cluster).Run()
		os.RemoveAll(cluster)
	})
	if out, err := exec.Command(filepath.Join(scale, "slurm-localhost.sh"), "start", cluster).CombinedOutput(); err != nil {
		t.Fatalf("starting the cluster: %v\n%s", err, out)
	}
	t.Setenv("SLURM_CONF", filepath.Join(cluster, "slurm.conf"))
	slurmLogs := func() string {
		var b strings.Builder
		logs, _ := filepath.Glob(filepath.Join(cluster, "*.log"))
		for _, l := range logs {
			data, _ := os.ReadFile(l)
			fmt.Fprintf(&b, "== %s\n%s\n", l, lastLines(string(data), 15))
		}
		return b.String()
	}

	data := smallDataset(t, 20)
	work := t.TempDir()
	config := filepath.Join(work, "nightly.yaml")
	if err := os.WriteFile(config, []byte("chunk_size: 4\nmax_len: 12\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	checkpoint, err := filepath.Abs(tinyCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	runs := filepath.Join(work, "runs")

	submit := exec.Command(filepath.Join(scale, "slurm-array.sh"))
	submit.Dir = work
	submit.Env = append(os.Environ(),
		"PATH="+filepath.Dir(binary)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"SHARDS=3", "PROVIDER=cpu", "BATCH_SIZE=4",
		"CHECKPOINT="+checkpoint, "DATA="+data, "RUNS="+runs, "CONFIG="+config)
	out, err := submit.CombinedOutput()
	if err != nil {
		t.Fatalf("slurm-array.sh: %v\n%s\n%s", err, out, slurmLogs())
	}
	ids := regexp.MustCompile(`(?m)^array (\d+)\nfinalize (\d+)$`).FindStringSubmatch(string(out))
	if ids == nil {
		t.Fatalf("slurm-array.sh printed no job ids:\n%s", out)
	}
	array, finalize := ids[1], ids[2]

	jobLogs := func() string {
		var b strings.Builder
		logs, _ := filepath.Glob(filepath.Join(work, "attnaudit-*.log"))
		for _, l := range logs {
			data, _ := os.ReadFile(l)
			fmt.Fprintf(&b, "== %s\n%s\n", filepath.Base(l), lastLines(string(data), 15))
		}
		return b.String()
	}
	state := waitForSlurmJob(t, finalize, 5*time.Minute)
	if state != "COMPLETED" {
		t.Fatalf("the finalize job ended %s\n%s%s", state, jobLogs(), slurmLogs())
	}
	// Every array task completed, and each ran its own shard.
	tasks, err := exec.Command("scontrol", "show", "job", "-o", array).Output()
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(tasks), "JobState=COMPLETED"); n != 3 {
		t.Errorf("want 3 completed array tasks, got:\n%s", tasks)
	}
	logs := jobLogs()
	for i := range 3 {
		if !strings.Contains(logs, fmt.Sprintf("shard %d/3", i)) {
			t.Errorf("no array task ran shard %d/3:\n%s", i, logs)
		}
	}

	dirs, _ := filepath.Glob(filepath.Join(runs, "*", "manifest.json"))
	if len(dirs) != 1 {
		t.Fatalf("want one finished run folder under %s, got %v\n%s", runs, dirs, logs)
	}
	got := filepath.Dir(dirs[0])
	if _, err := os.Stat(filepath.Join(runs, "compare.html")); err != nil {
		t.Errorf("the finalize job wrote no compare.html: %v", err)
	}
	whole := attnaudit(t, "run", "--checkpoint", checkpoint, "--data", data, "--output-dir", t.TempDir(),
		"--config", config, "--batch-size", "4", "--provider", "cpu")
	if filepath.Base(whole) != filepath.Base(got) {
		t.Errorf("Slurm's run folder is %s, the unsharded run's %s", filepath.Base(got), filepath.Base(whole))
	}
	sameDigest(t, "Slurm run", runDigest(t, got), runDigest(t, whole))
}

// waitForSlurmJob polls scontrol until job id reaches a final state and
// returns it; it fails the test after limit.
func waitForSlurmJob(t *testing.T, id string, limit time.Duration) string {
	t.Helper()
	state := regexp.MustCompile(`JobState=(\S+)`)
	deadline := time.Now().Add(limit)
	last := ""
	for time.Now().Before(deadline) {
		out, err := exec.Command("scontrol", "show", "job", "-o", id).CombinedOutput()
		if err != nil {
			t.Fatalf("scontrol show job %s: %v\n%s", id, err, out)
		}
		if m := state.FindSubmatch(out); m != nil {
			last = string(m[1])
			switch last {
			case "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED":
			default:
				return last
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("job %s still %s after %v", id, last, limit)
	return ""
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
