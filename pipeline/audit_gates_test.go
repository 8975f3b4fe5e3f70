package pipeline

import (
	"testing"

	"attnaudit/configs"
)

// Every gate --fail-on accepts has its computation, and no other exists.
func TestEveryGateIsDefinedOnce(t *testing.T) {
	seen := map[string]bool{}
	for _, g := range regressionGates {
		if seen[g.name] {
			t.Errorf("gate %s defined twice", g.name)
		}
		seen[g.name] = true
	}
	for _, name := range configs.Gates() {
		if !seen[name] {
			t.Errorf("gate %s has no computation", name)
		}
		delete(seen, name)
	}
	for name := range seen {
		t.Errorf("gate %s is not accepted by --fail-on", name)
	}
}
