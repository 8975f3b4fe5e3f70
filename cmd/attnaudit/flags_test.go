package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// Every setting needs a flag whose help comes from default.yaml, so that a
// key added to the config without a comment there fails here.
func TestEveryConfigKeyHasADocumentedFlag(t *testing.T) {
	seen := map[string]bool{}
	for _, cf := range configFlags("layer") {
		name := cf.flag.Names()[0]
		if seen[name] {
			t.Errorf("flag --%s generated twice", name)
		}
		seen[name] = true
		usage := ""
		if u, ok := cf.flag.(interface{ GetUsage() string }); ok {
			usage = u.GetUsage()
		}
		if strings.TrimSpace(usage) == "" || strings.HasPrefix(usage, " (default") {
			t.Errorf("config key %s (--%s) has no comment in configs/default.yaml", strings.Join(cf.path, "."), name)
		}
	}
	for _, want := range []string{"batch-size", "provider", "fail-on", "metrics-layer", "colormap", "worst-examples"} {
		if !seen[want] {
			t.Errorf("no --%s flag", want)
		}
	}
}

func TestConfigFlagsOverrideDefaults(t *testing.T) {
	out := attnaudit(t, "inspect", "--checkpoint", tinyCheckpoint, "--threads", "1")
	if !strings.Contains(out, "cross_attn") {
		t.Errorf("inspect output lacks cross_attn:\n%s", out)
	}
	if err := newApp().Run([]string{"attnaudit", "run", "--provider", "tpu"}); err == nil || exitCode(err) != exitUsage {
		t.Errorf("--provider tpu: err %v, exit code %d; want a usage error", err, exitCode(err))
	}
}

// TestCommandsCarryOnlyTheirFlags: each command has the settings it reads,
// and a wrong command line (a flag the command does not have, an unknown
// command, a bad value) exits with 2.
func TestCommandsCarryOnlyTheirFlags(t *testing.T) {
	app := newApp()
	has := func(cmd, flag string) bool {
		for _, c := range app.Commands {
			if c.Name != cmd {
				continue
			}
			for _, f := range c.Flags {
				if slices.Contains(f.Names(), flag) {
					return true
				}
			}
		}
		return false
	}
	for _, c := range []struct {
		cmd, flag string
		want      bool
	}{
		{"inspect", "fail-on", false}, {"inspect", "batch-size", false}, {"inspect", "provider", true},
		{"infer", "metrics-layer", false}, {"infer", "worst-examples", false}, {"infer", "batch-size", true},
		{"metrics", "provider", false}, {"metrics", "layer", true}, {"metrics", "batch-size", true},
		{"report", "worst-examples", true}, {"report", "guided-sigma", false},
		{"compare", "fail-on", true}, {"compare", "batch-size", false},
		{"audit", "fail-on", true}, {"audit", "provider", true}, {"run", "fail-on", false},
		{"visualize", "colormap", true}, {"visualize", "guided-sigma", false},
	} {
		if got := has(c.cmd, c.flag); got != c.want {
			t.Errorf("%s --%s: present %v, want %v", c.cmd, c.flag, got, c.want)
		}
	}
	for _, args := range [][]string{{"inspect", "--fail-on", "all"}, {"run", "--no-such-flag"}, {"run", "--provider", "tpu"}} {
		cmd := exec.Command(binary, args...)
		if err := cmd.Run(); cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != exitUsage {
			t.Errorf("attnaudit %v: %v, want exit code %d", args, err, exitUsage)
		}
	}
	cmd := exec.Command(binary, "no-such-command")
	if out, _ := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != exitUsage || !strings.Contains(string(out), "no command") {
		t.Errorf("unknown command: exit %d, %q", cmd.ProcessState.ExitCode(), out)
	}
}
