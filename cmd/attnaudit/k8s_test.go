package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// k8sJob is what TestKubernetesJobsAsWritten reads of a Job manifest.
type k8sJob struct {
	Spec struct {
		Completions int `yaml:"completions"`
		Template    struct {
			Spec struct {
				Containers []struct {
					Command      []string `yaml:"command"`
					Args         []string `yaml:"args"`
					VolumeMounts []struct {
						Name      string `yaml:"name"`
						MountPath string `yaml:"mountPath"`
					} `yaml:"volumeMounts"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// TestKubernetesJobsAsWritten runs docs/scale's Kubernetes Jobs the way
// their pods would, without a cluster: the Indexed Job's container command
// once per completion index (JOB_COMPLETION_INDEX set, as Kubernetes sets
// it), then the finalize Job's, each with its volume mounts mapped to local
// folders (the checkpoint to the tiny one, the data to 20 demo sentences)
// and --provider=cuda read as cpu. The run must equal an unsharded run row
// for row, so a flag renamed or a shard count out of step with completions
// fails here rather than on a cluster.
func TestKubernetesJobsAsWritten(t *testing.T) {
	root := t.TempDir()
	mounts := map[string]string{"runs": filepath.Join(root, "runs"), "checkpoints": filepath.Join(root, "checkpoints"), "data": filepath.Join(root, "data")}
	for _, d := range mounts {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tiny, err := filepath.Abs(tinyCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(tiny, filepath.Join(mounts["checkpoints"], "latest")); err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfterN(demoJSONL(t), []byte("\n"), 21)
	if err := os.WriteFile(filepath.Join(mounts["data"], "valid.jsonl"), bytes.Join(lines[:20], nil), 0o644); err != nil {
		t.Fatal(err)
	}

	// command returns a Job's container command with its mount paths
	// replaced by the local folders.
	command := func(name string) (argv []string, completions int) {
		data, err := os.ReadFile(filepath.Join("../../docs/scale", name))
		if err != nil {
			t.Fatal(err)
		}
		var job k8sJob
		if err := yaml.Unmarshal(data, &job); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c := job.Spec.Template.Spec.Containers[0]
		argv = append(append([]string(nil), c.Command...), c.Args...)
		for _, m := range c.VolumeMounts {
			local, ok := mounts[m.Name]
			if !ok {
				t.Fatalf("%s: volume %s is not one this test provides", name, m.Name)
			}
			re := regexp.MustCompile(`(^|[\s=])` + regexp.QuoteMeta(m.MountPath) + `(/|\s|$)`)
			for i := range argv {
				argv[i] = re.ReplaceAllString(argv[i], "${1}"+local+"${2}")
			}
		}
		for i := range argv {
			argv[i] = strings.ReplaceAll(argv[i], "--provider=cuda", "--provider=cpu")
		}
		if argv[0] == "attnaudit" {
			argv[0] = binary
		}
		return argv, job.Spec.Completions
	}
	run := func(argv []string, env ...string) {
		t.Helper()
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(append(os.Environ(), "PATH="+filepath.Dir(binary)+string(os.PathListSeparator)+os.Getenv("PATH")), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}

	infer, completions := command("k8s-indexed-job.yaml")
	if completions < 2 {
		t.Fatalf("k8s-indexed-job.yaml: %d completions", completions)
	}
	for i := range completions {
		run(infer, fmt.Sprintf("JOB_COMPLETION_INDEX=%d", i))
	}
	finalize, _ := command("k8s-finalize-job.yaml")
	run(finalize)

	done, _ := filepath.Glob(filepath.Join(mounts["runs"], "*", "manifest.json"))
	if len(done) != 1 {
		t.Fatalf("want one finished run folder, got %v", done)
	}
	if _, err := os.Stat(filepath.Join(mounts["runs"], "compare.html")); err != nil {
		t.Errorf("the finalize Job wrote no compare.html: %v", err)
	}
	whole := attnaudit(t, "run", "--checkpoint", tiny, "--data", filepath.Join(mounts["data"], "valid.jsonl"),
		"--output-dir", t.TempDir(), "--provider", "cpu")
	sameDigest(t, "Kubernetes run", runDigest(t, filepath.Dir(done[0])), runDigest(t, whole))
}
