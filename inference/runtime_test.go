package inference

import (
	"strings"
	"testing"
)

func TestVersionAtLeast(t *testing.T) {
	for _, c := range []struct {
		v    string
		want bool
	}{{"1.30.0", true}, {"1.24.0", true}, {"1.24", true}, {"2.0.0", true}, {"1.23.2", false}, {"1.9.0", false}, {"1", false}, {"dev", false}} {
		if got := versionAtLeast(c.v, MinORTVersion); got != c.want {
			t.Errorf("versionAtLeast(%q, %s) = %v", c.v, MinORTVersion, got)
		}
	}
}

func TestRuntime(t *testing.T) {
	if v := ORTVersion(); !versionAtLeast(v, MinORTVersion) {
		t.Errorf("ORTVersion %q", v)
	}
	if _, err := NewRuntime(Options{}); err == nil || !strings.Contains(err.Error(), "already initialised") {
		t.Errorf("a second runtime: %v", err)
	}
	if m := loadTiny(t); m.Provider() != ProviderCPU {
		t.Errorf("provider %q", m.Provider())
	}
}

// TestCUDAUnavailable runs the CUDA set-up against this machine's CPU-only
// library: it must say that it is a CPU build and how to get a GPU one.
func TestCUDAUnavailable(t *testing.T) {
	r := &Runtime{lib: testRuntime.lib, log: &strings.Builder{}}
	err := r.loadCUDALibraries(fakeHost{}.host())
	if err == nil || !strings.Contains(err.Error(), "is a CPU build") || !strings.Contains(err.Error(), "make ort-gpu") ||
		!strings.Contains(err.Error(), "pip install onnxruntime-gpu") {
		t.Errorf("CPU build: %v", err)
	}
	// The library itself refuses the CUDA provider.
	if err := r.probeCUDA(); err == nil || !strings.HasPrefix(err.Error(), "CUDA unavailable") {
		t.Errorf("probe on a CPU build: %v", err)
	}
	if _, err := newRuntime(Options{Provider: ProviderCUDA}, fakeHost{}.host()); err == nil || !strings.Contains(err.Error(), "no NVIDIA GPU") {
		t.Errorf("provider cuda without a GPU: %v", err)
	}
}
