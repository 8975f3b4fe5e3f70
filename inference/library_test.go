package inference

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeHost builds a host over a fake folder layout.
type fakeHost struct {
	gpu    bool
	roots  []string
	env    map[string]string
	python pythonLibs
	pyErr  error
}

func (f fakeHost) host() host {
	return host{gpu: f.gpu, roots: f.roots, env: func(k string) string { return f.env[k] },
		python: func() (pythonLibs, error) { return f.python, f.pyErr }}
}

func touch(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("fake"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFindLibrary walks the discovery order over fake layouts: --ort-lib,
// ATTNAUDIT_ORT_LIB, the project's GPU build when a GPU is present, pip's
// onnxruntime-gpu through python3, then the project's CPU build.
func TestFindLibrary(t *testing.T) {
	root := t.TempDir()
	cpu := filepath.Join(root, cpuLibRel)
	gpu := filepath.Join(root, gpuLibRel)
	site := t.TempDir()
	pip := filepath.Join(site, "onnxruntime", "capi", "libonnxruntime.so.1.31.1")
	touch(t, cpu, gpu, filepath.Join(filepath.Dir(gpu), cudaProviderLib),
		filepath.Join(site, "onnxruntime", "capi", "libonnxruntime.so.1.9.0"), pip,
		filepath.Join(filepath.Dir(pip), cudaProviderLib))
	flagLib, envLib := filepath.Join(t.TempDir(), "a.so"), filepath.Join(t.TempDir(), "b.so")
	touch(t, flagLib, envLib)
	py := pythonLibs{ORT: filepath.Join(site, "onnxruntime"), Nvidia: []string{filepath.Join(site, "nvidia", "cublas", "lib")}}

	for _, c := range []struct {
		name     string
		explicit string
		wantCUDA bool
		h        fakeHost
		path     string
		from     string
	}{
		{"flag first", flagLib, true, fakeHost{gpu: true, roots: []string{root}, env: map[string]string{"ATTNAUDIT_ORT_LIB": envLib}}, flagLib, fromFlag},
		{"then env", "", true, fakeHost{gpu: true, roots: []string{root}, env: map[string]string{"ATTNAUDIT_ORT_LIB": envLib}}, envLib, fromEnv},
		{"project GPU build", "", true, fakeHost{gpu: true, roots: []string{root}, python: py}, gpu, fromGPUDir},
		{"no GPU: CPU build", "", true, fakeHost{roots: []string{root}, python: py}, cpu, fromCPUDir},
		{"provider cpu: CPU build", "", false, fakeHost{gpu: true, roots: []string{root}, python: py}, cpu, fromCPUDir},
		{"pip onnxruntime-gpu, highest version", "", true, fakeHost{gpu: true, roots: []string{t.TempDir(), root + "-none"}, python: py}, pip, fromPip},
	} {
		if c.name == "pip onnxruntime-gpu, highest version" {
			// No project build at all: pip's is the only one.
			c.h.roots = []string{t.TempDir()}
		}
		lib, err := findLibrary(c.explicit, c.wantCUDA, c.h.host())
		if err != nil || lib.path != c.path || lib.from != c.from {
			t.Errorf("%s: got %q from %q, %v; want %q from %q", c.name, lib.path, lib.from, err, c.path, c.from)
		}
	}

	// pip's copy carries the nvidia-* folders for preloading.
	lib, _ := findLibrary("", true, fakeHost{gpu: true, roots: []string{t.TempDir()}, python: py}.host())
	if !slices.Equal(lib.cudaDirs, py.Nvidia) {
		t.Errorf("pip library's CUDA folders %v", lib.cudaDirs)
	}

	// A CPU onnxruntime in python3 is passed over, and the CPU build says why.
	cpuSite := t.TempDir()
	touch(t, filepath.Join(cpuSite, "onnxruntime", "capi", "libonnxruntime.so.1.30.0"))
	cpuRoot := t.TempDir()
	touch(t, filepath.Join(cpuRoot, cpuLibRel))
	lib, err := findLibrary("", true, fakeHost{gpu: true, roots: []string{cpuRoot}, python: pythonLibs{ORT: filepath.Join(cpuSite, "onnxruntime")}}.host())
	if err != nil || lib.from != fromCPUDir || !strings.Contains(strings.Join(lib.passed, "; "), "is a CPU build") {
		t.Errorf("CPU onnxruntime in python3: %+v, %v", lib, err)
	}
	r := &Runtime{lib: lib}
	if err := r.loadCUDALibraries(fakeHost{}.host()); err == nil || !strings.Contains(err.Error(), "no "+gpuLibRel) ||
		!strings.Contains(err.Error(), "python3's onnxruntime") {
		t.Errorf("why no GPU build: %v", err)
	}

	// Nothing anywhere: every place looked at, and how to fix it.
	_, err = findLibrary("", true, fakeHost{gpu: true, roots: []string{t.TempDir()}, pyErr: errors.New("python3: not found")}.host())
	for _, want := range []string{cpuLibRel, gpuLibRel, "python3: not found", "make ort", "make ort-gpu", "pip install onnxruntime-gpu", "--ort-lib", "ATTNAUDIT_ORT_LIB"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("nothing found: %v; want %q in it", err, want)
		}
	}
	if _, err := findLibrary(filepath.Join(t.TempDir(), "x.so"), true, fakeHost{}.host()); err == nil || !strings.Contains(err.Error(), "--ort-lib") {
		t.Errorf("missing --ort-lib file: %v", err)
	}
	if _, err := findLibrary("", false, fakeHost{env: map[string]string{"ATTNAUDIT_ORT_LIB": t.TempDir()}}.host()); err == nil || !strings.Contains(err.Error(), "is a folder") {
		t.Errorf("ATTNAUDIT_ORT_LIB pointing at a folder: %v", err)
	}
	// The real host finds the CPU build from the test's folder (the
	// repository root is its parent), as the CLI does.
	wd, _ := os.Getwd()
	if lib, err := findLibrary("", false, realHost()); err != nil || lib.path != filepath.Join(filepath.Dir(wd), cpuLibRel) {
		t.Errorf("default search from %s: %+v, %v", wd, lib, err)
	}
}

// TestAskPython runs the real query against a fake site-packages.
func TestAskPython(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("no python3")
	}
	site := t.TempDir()
	touch(t, filepath.Join(site, "onnxruntime", "__init__.py"), filepath.Join(site, "nvidia", "cublas", "lib", "libcublas.so.13"),
		filepath.Join(site, "nvidia", "cudnn", "lib", "libcudnn.so.9"), filepath.Join(site, "nvidia", "cudnn", "include", "x.h"))
	t.Setenv("PYTHONPATH", site)
	t.Setenv("ATTNAUDIT_PYTHON", "")
	p, err := askPython()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(site, "nvidia", "cublas", "lib"), filepath.Join(site, "nvidia", "cudnn", "lib")}
	if p.ORT != filepath.Join(site, "onnxruntime") || !slices.Equal(p.Nvidia, want) {
		t.Errorf("askPython: %+v; want onnxruntime in %s and %v", p, site, want)
	}
	t.Setenv("ATTNAUDIT_PYTHON", filepath.Join(site, "no-python"))
	if _, err := askPython(); err == nil || !strings.Contains(err.Error(), "no-python") {
		t.Errorf("missing python: %v", err)
	}
}

// TestCUDALibraries builds a fake GPU layout with the C compiler: a CUDA
// provider library that needs a library the loader cannot find. The error
// must name it; once it sits in a pip-style nvidia/*/lib folder that python3
// reports, it is preloaded and the check passes.
func TestCUDALibraries(t *testing.T) {
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	if _, err := exec.LookPath(cc); err != nil {
		t.Skip("no C compiler")
	}
	dir := t.TempDir()
	stubDir := filepath.Join(dir, "build")
	soname := "libattnaudit_fakecublas.so.13"
	src := filepath.Join(dir, "x.c")
	if err := os.WriteFile(src, []byte("int attnaudit_fake(void) { return 1; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	must := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", cc, args, err, out)
		}
	}
	if err := os.MkdirAll(stubDir, 0o755); err != nil {
		t.Fatal(err)
	}
	must("-shared", "-fPIC", "-o", filepath.Join(stubDir, soname), "-Wl,-soname,"+soname, src)
	ortDir := filepath.Join(dir, "ort")
	touch(t, filepath.Join(ortDir, "libonnxruntime.so.1"))
	must("-shared", "-fPIC", "-o", filepath.Join(ortDir, cudaProviderLib), src, "-L"+stubDir, "-Wl,--no-as-needed", "-l:"+soname)

	var log strings.Builder
	r := &Runtime{lib: library{path: filepath.Join(ortDir, "libonnxruntime.so.1"), from: fromFlag}, log: &log}
	err := r.loadCUDALibraries(fakeHost{pyErr: errors.New("no python")}.host())
	if err == nil || !strings.Contains(err.Error(), soname) || !strings.Contains(err.Error(), "LD_LIBRARY_PATH") ||
		!strings.Contains(err.Error(), "onnxruntime-gpu[cuda,cudnn]") || strings.Contains(err.Error(), "libc.so") {
		t.Fatalf("missing CUDA library: %v", err)
	}

	nv := filepath.Join(dir, "site", "nvidia", "cublas", "lib")
	if err := os.MkdirAll(nv, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(stubDir, soname), filepath.Join(nv, soname)); err != nil {
		t.Fatal(err)
	}
	if err := r.loadCUDALibraries(fakeHost{python: pythonLibs{Nvidia: []string{nv}}}.host()); err != nil {
		t.Fatalf("with pip's folder: %v", err)
	}
	if !strings.Contains(log.String(), "loaded 1 CUDA libraries") {
		t.Errorf("log: %q", log.String())
	}
}

func TestLoaderMessages(t *testing.T) {
	msg := `/onnxruntime/core/session/provider_bridge_ort.cc:1862 onnxruntime::Provider& onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL : Failed to load library libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot open shared object file: No such file or directory`
	got := missingFromLoader(msg)
	if !slices.Equal(got, []string{"libcublasLt.so.13"}) {
		t.Errorf("missingFromLoader: %v", got)
	}
	err := cudaError(errors.New(msg))
	if !strings.Contains(err.Error(), "libcublasLt.so.13 (pip nvidia-cublas, or the CUDA toolkit) missing") {
		t.Errorf("cudaError: %v", err)
	}
	if d := describeMissing([]string{"libcuda.so.1", "libcudnn.so.9", "libfoo.so.2"}); d != "libcuda.so.1 (the NVIDIA driver), libcudnn.so.9 (pip nvidia-cudnn-cu13, or cuDNN 9), libfoo.so.2" {
		t.Errorf("describeMissing: %s", d)
	}
}
