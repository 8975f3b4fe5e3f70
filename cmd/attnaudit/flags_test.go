package main

import (
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
	out := attnaudit(t, "inspect", "--checkpoint", tinyCheckpoint, "--batch-size", "7")
	if !strings.Contains(out, "cross_attn") {
		t.Errorf("inspect output lacks cross_attn:\n%s", out)
	}
	if err := newApp().Run([]string{"attnaudit", "run", "--provider", "tpu"}); err == nil || exitCode(err) != exitUsage {
		t.Errorf("--provider tpu: err %v, exit code %d; want a usage error", err, exitCode(err))
	}
}
