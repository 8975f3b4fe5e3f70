package inference

import (
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Where `make ort` and `make ort-gpu` put ONNX Runtime, relative to the
// repository root (found from the working directory or the binary).
const (
	cpuLibRel = "third_party/onnxruntime/libonnxruntime.so.1"
	gpuLibRel = "third_party/onnxruntime-gpu/libonnxruntime.so.1"
	// cudaProviderLib sits next to libonnxruntime.so in every GPU build
	// (release archives and the onnxruntime-gpu wheel alike); a CPU build
	// has none.
	cudaProviderLib = "libonnxruntime_providers_cuda.so"
)

// Library sources, as the log and the manifest name them.
const (
	fromFlag   = "--ort-lib"
	fromEnv    = "ATTNAUDIT_ORT_LIB"
	fromGPUDir = "make ort-gpu"
	fromPip    = "pip onnxruntime-gpu"
	fromCPUDir = "make ort"
)

const fixHint = "run `make ort` (CPU) or `make ort-gpu` (CUDA), `pip install onnxruntime-gpu`, pass --ort-lib PATH, or set ATTNAUDIT_ORT_LIB"

// library is the ONNX Runtime library a Runtime loads and where it came from.
type library struct {
	path, from string
	// passed says why GPU builds were passed over, for the error when
	// CUDA is then asked for.
	passed []string
	// cudaDirs are the lib folders of pip's nvidia-* packages (CUDA
	// runtime, cuBLAS, cuDNN, …) where they are known.
	cudaDirs []string
}

// cudaProvider is the CUDA provider library next to the core library, or
// "" for a CPU build.
func (l library) cudaProvider() string {
	p := filepath.Join(filepath.Dir(l.path), cudaProviderLib)
	if regular(p) {
		return p
	}
	return ""
}

// host is what library discovery looks at, so that tests can fake it.
type host struct {
	gpu    bool     // an NVIDIA device is present
	roots  []string // folders third_party/ is looked for under
	env    func(string) string
	python func() (pythonLibs, error)
}

// pythonLibs is where python3's pip packages keep ONNX Runtime and CUDA.
type pythonLibs struct {
	// ORT is the onnxruntime package folder; "" when it is not installed.
	// onnxruntime and onnxruntime-gpu both install as "onnxruntime".
	ORT string `json:"onnxruntime"`
	// Nvidia lists the lib folders of the nvidia-* packages
	// (nvidia/cublas/lib, nvidia/cudnn/lib, …).
	Nvidia []string `json:"nvidia"`
}

// realHost is this machine.
func realHost() host {
	var roots []string
	if wd, err := os.Getwd(); err == nil {
		roots = append(roots, wd, filepath.Dir(wd))
	}
	if exe, err := os.Executable(); err == nil {
		if exe, err := filepath.EvalSymlinks(exe); err == nil {
			roots = append(roots, filepath.Dir(exe), filepath.Dir(filepath.Dir(exe)))
		}
	}
	return host{gpu: nvidiaDevicePresent(), roots: roots, env: os.Getenv, python: askPython}
}

// nvidiaDevicePresent reports whether the NVIDIA driver exposes a device.
func nvidiaDevicePresent() bool {
	_, err := os.Stat("/dev/nvidiactl")
	return err == nil
}

// pythonQuery finds the packages without importing them (importing
// onnxruntime would load its library into that process for nothing).
const pythonQuery = `import importlib.util as u, json, os
def where(name):
    try:
        s = u.find_spec(name)
    except Exception:
        return []
    return list(s.submodule_search_locations or []) if s else []
ort = where("onnxruntime")
nv = []
for d in where("nvidia"):
    for sub in sorted(os.listdir(d)):
        if os.path.isdir(os.path.join(d, sub, "lib")):
            nv.append(os.path.join(d, sub, "lib"))
print(json.dumps({"onnxruntime": ort[0] if ort else "", "nvidia": nv}))
`

// askPython runs $ATTNAUDIT_PYTHON (default python3) to find pip's
// onnxruntime-gpu and nvidia-* packages.
func askPython() (pythonLibs, error) {
	py := os.Getenv("ATTNAUDIT_PYTHON")
	if py == "" {
		py = "python3"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-c", pythonQuery).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return pythonLibs{}, fmt.Errorf("asking %s where pip put onnxruntime: %w", py, err)
	}
	var p pythonLibs
	if err := json.Unmarshal(out, &p); err != nil {
		return pythonLibs{}, fmt.Errorf("asking %s where pip put onnxruntime: %w", py, err)
	}
	return p, nil
}

// findLibrary picks the ONNX Runtime library, first found wins:
// --ort-lib, $ATTNAUDIT_ORT_LIB, then, when CUDA is wanted and a GPU is
// present, the project's GPU build (make ort-gpu) and a pip-installed
// onnxruntime-gpu found through python3, then the project's CPU build
// (make ort).
func findLibrary(explicit string, wantCUDA bool, h host) (library, error) {
	if explicit != "" {
		return existing(explicit, fromFlag)
	}
	if env := h.env("ATTNAUDIT_ORT_LIB"); env != "" {
		return existing(env, fromEnv)
	}
	var passed, tried []string
	switch {
	case !wantCUDA:
	case !h.gpu:
		passed = append(passed, "no NVIDIA GPU on this machine (no /dev/nvidiactl)")
	default:
		for _, root := range h.roots {
			p := filepath.Join(root, gpuLibRel)
			if regular(p) {
				return library{path: p, from: fromGPUDir}, nil
			}
			tried = append(tried, p)
		}
		passed = append(passed, "no "+gpuLibRel+" (make ort-gpu)")
		lib, why := pipGPUBuild(h)
		if why == "" {
			return lib, nil
		}
		passed = append(passed, why)
	}
	for _, root := range h.roots {
		p := filepath.Join(root, cpuLibRel)
		if regular(p) {
			return library{path: p, from: fromCPUDir, passed: passed}, nil
		}
		tried = append(tried, p)
	}
	looked := strings.Join(tried, ", ")
	if len(passed) > 0 {
		looked += "; " + strings.Join(passed, "; ")
	}
	return library{}, fmt.Errorf("ONNX Runtime library not found (looked for %s): %s", looked, fixHint)
}

// pipGPUBuild looks for the C library inside a pip-installed
// onnxruntime-gpu (onnxruntime/capi/libonnxruntime.so.1.*, shipped in the
// wheel since ORT 1.19). It returns why not when there is none.
func pipGPUBuild(h host) (library, string) {
	py, err := h.python()
	switch {
	case err != nil:
		return library{}, err.Error()
	case py.ORT == "":
		return library{}, "python3 has no onnxruntime-gpu (pip install onnxruntime-gpu)"
	}
	capi := filepath.Join(py.ORT, "capi")
	libs, _ := filepath.Glob(filepath.Join(capi, "libonnxruntime.so.1*"))
	slices.SortFunc(libs, func(a, b string) int { return compareVersions(a, b) })
	if len(libs) == 0 {
		return library{}, fmt.Sprintf("python3's onnxruntime (%s) has no libonnxruntime.so.1.* (onnxruntime-gpu 1.19 or newer has)", py.ORT)
	}
	lib := library{path: libs[len(libs)-1], from: fromPip, cudaDirs: py.Nvidia}
	if lib.cudaProvider() == "" {
		return library{}, fmt.Sprintf("python3's onnxruntime (%s) is a CPU build: no %s (pip install onnxruntime-gpu)", py.ORT, cudaProviderLib)
	}
	return lib, ""
}

var digits = regexp.MustCompile(`\d+`)

// compareVersions orders file names by the numbers in them (….so.1.9 before
// ….so.1.31).
func compareVersions(a, b string) int {
	x, y := digits.FindAllString(a, -1), digits.FindAllString(b, -1)
	for i := 0; i < len(x) && i < len(y); i++ {
		if len(x[i]) != len(y[i]) {
			return len(x[i]) - len(y[i])
		}
		if c := strings.Compare(x[i], y[i]); c != 0 {
			return c
		}
	}
	return len(x) - len(y)
}

func existing(path, from string) (library, error) {
	st, err := os.Stat(path)
	if err != nil {
		return library{}, fmt.Errorf("ONNX Runtime library %s (from %s): %v: %s", path, from, err, fixHint)
	}
	if st.IsDir() {
		return library{}, fmt.Errorf("ONNX Runtime library %s (from %s) is a folder, not libonnxruntime.so: %s", path, from, fixHint)
	}
	return library{path: path, from: from}, nil
}

func regular(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// cudaPackages says where each library the CUDA provider needs comes from.
var cudaPackages = map[string]string{
	"libcuda":     "the NVIDIA driver",
	"libcudart":   "pip nvidia-cuda-runtime, or the CUDA toolkit",
	"libcublas":   "pip nvidia-cublas, or the CUDA toolkit",
	"libcublasLt": "pip nvidia-cublas, or the CUDA toolkit",
	"libcurand":   "pip nvidia-curand, or the CUDA toolkit",
	"libcufft":    "pip nvidia-cufft, or the CUDA toolkit",
	"libcudnn":    "pip nvidia-cudnn-cu13, or cuDNN 9",
	"libnvrtc":    "pip nvidia-cuda-nvrtc, or the CUDA toolkit",
}

// describeMissing names each missing library with where to get it.
func describeMissing(libs []string) string {
	parts := make([]string, len(libs))
	for i, l := range libs {
		base, _, _ := strings.Cut(l, ".so")
		if pkg, ok := cudaPackages[base]; ok {
			parts[i] = fmt.Sprintf("%s (%s)", l, pkg)
		} else {
			parts[i] = l
		}
	}
	return strings.Join(parts, ", ")
}

// cudaFix is the advice that follows a list of missing CUDA libraries.
const cudaFix = "install them with `pip install 'onnxruntime-gpu[cuda,cudnn]'` (attnaudit finds pip's nvidia-* packages through python3) or add their folders to LD_LIBRARY_PATH"

// neededLibraries lists the DT_NEEDED entries of a shared library.
func neededLibraries(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ImportedLibraries()
}

// unloadable returns the names the dynamic loader cannot load, in order.
// Those it can load stay loaded, which is harmless: ONNX Runtime loads
// them next anyway.
func unloadable(names []string) []string {
	var missing []string
	for _, n := range names {
		if loadGlobal(n) != nil {
			missing = append(missing, n)
		}
	}
	return missing
}

// preloadCUDA loads the CUDA libraries in pip's nvidia-* folders with
// RTLD_GLOBAL, as onnxruntime's own Python package does
// (onnxruntime.preload_dlls): the CUDA provider then finds them by soname
// without LD_LIBRARY_PATH. Libraries that need one not loaded yet are
// retried until no more load. It returns how many loaded.
func preloadCUDA(dirs []string) int {
	var todo []string
	for _, d := range dirs {
		fs, _ := filepath.Glob(filepath.Join(d, "lib*.so*"))
		todo = append(todo, fs...)
	}
	loaded := 0
	for progress := true; progress && len(todo) > 0; {
		progress = false
		var again []string
		for _, p := range todo {
			if loadGlobal(p) == nil {
				loaded++
				progress = true
			} else {
				again = append(again, p)
			}
		}
		todo = again
	}
	return loaded
}

var cannotOpen = regexp.MustCompile(`(lib[A-Za-z0-9_+.\-]+?\.so[0-9.]*): cannot open shared object file`)

// missingFromLoader picks the library names out of dlopen messages such as
// "libcublasLt.so.13: cannot open shared object file".
func missingFromLoader(msg string) []string {
	var names []string
	for _, m := range cannotOpen.FindAllStringSubmatch(msg, -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	return names
}
