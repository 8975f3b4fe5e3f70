package inference

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// Options configure ONNX Runtime. The zero value finds the library in the
// usual places and picks CUDA when it can.
type Options struct {
	// LibPath is libonnxruntime.so. Empty: $ATTNAUDIT_ORT_LIB, else
	// third_party/onnxruntime/libonnxruntime.so.1 under the working
	// directory, the executable's directory, or the parent of either.
	LibPath string
	// Provider is "auto" (CUDA when it works, else CPU; empty means auto),
	// "cuda" (an error when CUDA does not work) or "cpu".
	Provider string
	// CUDAPluginPath is libonnxruntime_providers_cuda.so, for a CPU build of
	// ONNX Runtime. Empty: $ATTNAUDIT_ORT_CUDA_PLUGIN, else the file next to
	// the core library. A GPU build of ONNX Runtime needs no plugin.
	CUDAPluginPath string
	// IntraOpThreads bounds ONNX Runtime's threads per session; 0 lets it
	// choose (one per physical core).
	IntraOpThreads int
	// Log receives why "auto" fell back to the CPU. Nil means os.Stderr.
	Log io.Writer
}

// Provider names, as Model.Provider reports them.
const (
	ProviderAuto = "auto"
	ProviderCPU  = "cpu"
	ProviderCUDA = "cuda"
)

// MinORTVersion is the oldest ONNX Runtime the bindings work with.
const MinORTVersion = "1.24"

const defaultLibRel = "third_party/onnxruntime/libonnxruntime.so.1"

// cudaMode says how a session gets CUDA.
type cudaMode int

const (
	cudaNone    cudaMode = iota
	cudaBuiltin          // a GPU build: AppendExecutionProviderCUDA
	cudaPlugin           // a CPU build + the CUDA EP plugin library
)

// Runtime is the process's ONNX Runtime. ONNX Runtime allows one environment
// per process, so there is at most one open Runtime at a time.
type Runtime struct {
	opts     Options
	libPath  string
	cuda     cudaMode
	fallback string // why "auto" uses the CPU; "" when it does not
	log      io.Writer
}

var (
	ortMu      sync.Mutex
	ortVersion string
	ortOpen    bool
)

// ORTVersion is the version of the loaded ONNX Runtime library, "" before
// NewRuntime succeeds.
func ORTVersion() string {
	ortMu.Lock()
	defer ortMu.Unlock()
	return ortVersion
}

// NewRuntime loads ONNX Runtime and decides the execution provider. With
// Provider "cuda" it fails unless CUDA is usable; with "auto" it records why
// not and uses the CPU.
func NewRuntime(opts Options) (*Runtime, error) {
	ortMu.Lock()
	defer ortMu.Unlock()
	if ortOpen || ort.IsInitialized() {
		return nil, errors.New("ONNX Runtime is already initialised in this process: use the open Runtime")
	}
	switch opts.Provider {
	case "":
		opts.Provider = ProviderAuto
	case ProviderAuto, ProviderCPU, ProviderCUDA:
	default:
		return nil, fmt.Errorf("unknown provider %q: want auto, cuda or cpu", opts.Provider)
	}
	if opts.IntraOpThreads < 0 {
		return nil, fmt.Errorf("intra-op threads %d: want 0 (automatic) or more", opts.IntraOpThreads)
	}
	lib, err := findLibrary(opts.LibPath)
	if err != nil {
		return nil, err
	}
	version, err := probeLibrary(lib)
	if err != nil {
		if version != "" {
			return nil, fmt.Errorf("ONNX Runtime %s at %s: %v; attnaudit needs %s or newer: %s", version, lib, err, MinORTVersion, fixHint)
		}
		return nil, fmt.Errorf("loading ONNX Runtime %s: %v: %s", lib, err, fixHint)
	}
	if !versionAtLeast(version, MinORTVersion) {
		return nil, fmt.Errorf("ONNX Runtime %s at %s is too old: attnaudit needs %s or newer: %s", version, lib, MinORTVersion, fixHint)
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return nil, fmt.Errorf("initialising ONNX Runtime %s: %w", lib, err)
	}
	r := &Runtime{opts: opts, libPath: lib, log: opts.Log}
	if r.log == nil {
		r.log = os.Stderr
	}
	switch {
	case opts.Provider == ProviderAuto && !nvidiaDevicePresent():
		// Probing ORT for CUDA on a machine without a GPU only makes it log
		// loader errors; say plainly why the CPU runs instead.
		r.noteFallback(errors.New("no NVIDIA GPU on this machine (no /dev/nvidiactl)"))
	case opts.Provider != ProviderCPU:
		if err := r.setupCUDA(); err != nil {
			if opts.Provider == ProviderCUDA {
				ort.DestroyEnvironment()
				return nil, err
			}
			r.noteFallback(err)
		}
	}
	ortVersion, ortOpen = version, true
	return r, nil
}

const fixHint = "run `make ort`, pass --ort-lib PATH, or set ATTNAUDIT_ORT_LIB"

// findLibrary returns the first ONNX Runtime library of Options.LibPath,
// $ATTNAUDIT_ORT_LIB and the default places.
func findLibrary(explicit string) (string, error) {
	if explicit != "" {
		return existing(explicit, "--ort-lib")
	}
	if env := os.Getenv("ATTNAUDIT_ORT_LIB"); env != "" {
		return existing(env, "ATTNAUDIT_ORT_LIB")
	}
	var dirs []string
	if wd, err := os.Getwd(); err == nil {
		dirs = append(dirs, wd, filepath.Dir(wd))
	}
	if exe, err := os.Executable(); err == nil {
		if exe, err := filepath.EvalSymlinks(exe); err == nil {
			dirs = append(dirs, filepath.Dir(exe), filepath.Dir(filepath.Dir(exe)))
		}
	}
	var tried []string
	for _, d := range dirs {
		p := filepath.Join(d, defaultLibRel)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("ONNX Runtime library not found (looked for %s): %s", strings.Join(tried, ", "), fixHint)
}

func existing(path, from string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("ONNX Runtime library %s (from %s): %v: %s", path, from, err, fixHint)
	}
	if st.IsDir() {
		return "", fmt.Errorf("ONNX Runtime library %s (from %s) is a folder, not libonnxruntime.so: %s", path, from, fixHint)
	}
	return path, nil
}

// versionAtLeast compares dotted versions numerically; a version it cannot
// parse counts as too old.
func versionAtLeast(v, min string) bool {
	a, b := strings.Split(v, "."), strings.Split(min, ".")
	for i := range b {
		if i >= len(a) {
			return false
		}
		x, err1 := strconv.Atoi(a[i])
		y, err2 := strconv.Atoi(b[i])
		if err1 != nil || err2 != nil {
			return false
		}
		if x != y {
			return x > y
		}
	}
	return true
}

// nvidiaDevicePresent reports whether the NVIDIA driver exposes a device.
func nvidiaDevicePresent() bool {
	_, err := os.Stat("/dev/nvidiactl")
	return err == nil
}

// setupCUDA finds out how this library can run CUDA: a GPU build takes
// AppendExecutionProviderCUDA; a CPU build needs the CUDA EP plugin, which
// is registered with the environment here and selected per session.
//
// A plugin named by --cuda-plugin or ATTNAUDIT_ORT_CUDA_PLUGIN is used
// without probing the built-in path first: on a CPU build the probe makes
// ORT's provider bridge load that same library the classic way, and a
// session then run through the plugin crashes (seen with ORT 1.29 on an H200).
func (r *Runtime) setupCUDA() error {
	var builtinErr error
	if r.opts.CUDAPluginPath != "" || os.Getenv("ATTNAUDIT_ORT_CUDA_PLUGIN") != "" {
		builtinErr = errors.New("not tried: a CUDA provider plugin was named")
	} else if builtinErr = probeBuiltinCUDA(); builtinErr == nil {
		r.cuda = cudaBuiltin
		fmt.Fprintln(r.log, "onnxruntime: CUDA through this library's built-in CUDA provider")
		return nil
	}
	plugin, err := r.findCUDAPlugin()
	if err != nil {
		return fmt.Errorf("CUDA unavailable: this ONNX Runtime has no built-in CUDA (%v) and %w", builtinErr, err)
	}
	if err := ort.RegisterExecutionProviderLibrary("CUDA", plugin); err != nil {
		return fmt.Errorf("CUDA unavailable: registering the CUDA provider plugin %s: %w (it needs the CUDA and cuDNN libraries on LD_LIBRARY_PATH)", plugin, err)
	}
	n, err := gpuDevices()
	if err != nil {
		return fmt.Errorf("CUDA unavailable: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("CUDA unavailable: the CUDA provider plugin %s found no GPU", plugin)
	}
	r.cuda = cudaPlugin
	fmt.Fprintf(r.log, "onnxruntime: CUDA through the provider plugin %s (%d GPU)\n", plugin, n)
	return nil
}

// probeBuiltinCUDA reports whether the library was built with CUDA: CPU
// builds refuse AppendExecutionProviderCUDA without needing a model.
func probeBuiltinCUDA() error {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return err
	}
	defer so.Destroy()
	co, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return err
	}
	defer co.Destroy()
	return so.AppendExecutionProviderCUDA(co)
}

func (r *Runtime) findCUDAPlugin() (string, error) {
	const name = "libonnxruntime_providers_cuda.so"
	if p := r.opts.CUDAPluginPath; p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("the CUDA provider plugin (--cuda-plugin) is missing: %v", err)
		}
		return p, nil
	}
	if p := os.Getenv("ATTNAUDIT_ORT_CUDA_PLUGIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("the CUDA provider plugin (ATTNAUDIT_ORT_CUDA_PLUGIN) is missing: %v", err)
		}
		return p, nil
	}
	p := filepath.Join(filepath.Dir(r.libPath), name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no CUDA provider plugin %s next to it (set --cuda-plugin or ATTNAUDIT_ORT_CUDA_PLUGIN)", p)
	}
	return p, nil
}

func (r *Runtime) noteFallback(err error) {
	r.fallback = err.Error()
	fmt.Fprintf(r.log, "onnxruntime: provider auto: using the CPU: %s\n", r.fallback)
}

// Close releases ONNX Runtime. Models loaded from it must be closed first.
// Closing twice is harmless.
func (r *Runtime) Close() error {
	ortMu.Lock()
	defer ortMu.Unlock()
	if !ortOpen {
		return nil
	}
	ortOpen, ortVersion = false, ""
	if err := ort.DestroyEnvironment(); err != nil {
		return fmt.Errorf("closing ONNX Runtime: %w", err)
	}
	return nil
}

// sessionOptions returns options for one session on the given provider.
func (r *Runtime) sessionOptions(cuda bool) (*ort.SessionOptions, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	if err := r.configure(so, cuda); err != nil {
		so.Destroy()
		return nil, err
	}
	return so, nil
}

func (r *Runtime) configure(so *ort.SessionOptions, cuda bool) error {
	if r.opts.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(r.opts.IntraOpThreads); err != nil {
			return err
		}
	}
	if err := so.SetInterOpNumThreads(1); err != nil {
		return err
	}
	// Decoding runs the decoder on ever-changing shapes (batch × prefix
	// length): ORT's CPU arena and memory patterns keep a block for each and
	// grew the resident set to 2 GB on the demo set; plain malloc keeps it
	// bounded by the largest batch.
	if err := so.SetCpuMemArena(false); err != nil {
		return err
	}
	if err := so.SetMemPattern(false); err != nil {
		return err
	}
	if !cuda {
		return nil
	}
	switch r.cuda {
	case cudaBuiltin:
		co, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return err
		}
		defer co.Destroy()
		return so.AppendExecutionProviderCUDA(co)
	case cudaPlugin:
		return preferGPU(so)
	}
	return errors.New("CUDA is not set up")
}
