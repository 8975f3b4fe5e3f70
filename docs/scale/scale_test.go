// Package scale holds the deployment examples for running attnaudit at
// scale; this test checks their syntax with real parsers, so a broken
// example fails CI rather than a user's cluster.
package scale

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The Kubernetes manifests parse as YAML and name the fields the Indexed Job
// relies on.
func TestKubernetesManifests(t *testing.T) {
	for _, name := range []string{"k8s-indexed-job.yaml", "k8s-finalize-job.yaml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc struct {
				APIVersion string `yaml:"apiVersion"`
				Kind       string `yaml:"kind"`
				Spec       struct {
					CompletionMode string `yaml:"completionMode"`
					Completions    int    `yaml:"completions"`
					Template       struct {
						Spec struct {
							Containers []struct {
								Command []string `yaml:"command"`
								Args    []string `yaml:"args"`
							} `yaml:"containers"`
						} `yaml:"spec"`
					} `yaml:"template"`
				} `yaml:"spec"`
			}
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if doc.APIVersion != "batch/v1" || doc.Kind != "Job" || len(doc.Spec.Template.Spec.Containers) == 0 {
				t.Errorf("%s: want a batch/v1 Job with a container, got %+v", name, doc)
			}
			cmd := strings.Join(append(doc.Spec.Template.Spec.Containers[0].Command, doc.Spec.Template.Spec.Containers[0].Args...), " ")
			if doc.Spec.CompletionMode == "Indexed" && !strings.Contains(cmd, fmt.Sprintf("--shard=/%d", doc.Spec.Completions)) {
				t.Errorf("%s: an Indexed Job of %d completions must pass --shard=/%d so JOB_COMPLETION_INDEX picks the shard",
					name, doc.Spec.Completions, doc.Spec.Completions)
			}
		}
	}
}

// The Slurm scripts and the cron line are valid shell (cmd/attnaudit's
// TestSlurmArrayEqualsTheUnshardedRun runs the Slurm ones).
func TestShellExamples(t *testing.T) {
	for _, name := range []string{"slurm-array.sh", "slurm-localhost.sh"} {
		if out, err := exec.Command("bash", "-n", name).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
	}
	data, err := os.ReadFile("crontab.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 6 {
			t.Fatalf("crontab line needs 5 time fields and a command: %q", line)
		}
		if out, err := exec.Command("bash", "-n", "-c", strings.Join(fields[5:], " ")).CombinedOutput(); err != nil {
			t.Errorf("crontab command: %v\n%s", err, out)
		}
	}
}

// systemd-analyze verifies the unit files where systemd is installed; the
// binary they start does not exist here, which is the one error allowed.
func TestSystemdUnits(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed")
	}
	units, _ := filepath.Glob("attnaudit-nightly.*")
	args := append([]string{"verify"}, units...)
	for i := 1; i < len(args); i++ {
		args[i] = "./" + args[i]
	}
	out, _ := exec.Command("systemd-analyze", args...).CombinedOutput()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" && !strings.Contains(line, "/srv/attnaudit/bin/attnaudit is not executable") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
}
