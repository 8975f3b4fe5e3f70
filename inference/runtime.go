package inference

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// Options configure ONNX Runtime. The zero value finds the library in the
// usual places and picks CUDA when it can.
type Options struct {
	// LibPath is libonnxruntime.so. Empty: $ATTNAUDIT_ORT_LIB, then (when
	// CUDA is wanted and there is a GPU) third_party/onnxruntime-gpu from
	// `make ort-gpu` and a pip-installed onnxruntime-gpu found through
	// python3, then third_party/onnxruntime from `make ort`; third_party is
	// looked for under the working directory, the executable's directory
	// and the parent of either.
	LibPath string
	// Provider is "auto" (CUDA when it works, else CPU; empty means auto),
	// "cuda" (an error when CUDA does not work) or "cpu".
	Provider string
	// CUDADevice is the GPU's index (CUDA provider option device_id).
	CUDADevice int
	// Threads is how many CPU threads inference uses in all (0: every core
	// the process may use) and Workers how many batches are decoded at the
	// same time (0: automatic); PlanParallelism splits them.
	Threads, Workers int
	// Log receives which library and provider are used, and why "auto"
	// fell back to the CPU. Nil means os.Stderr.
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

// Runtime is the process's ONNX Runtime. ONNX Runtime allows one environment
// per process, so there is at most one open Runtime at a time.
type Runtime struct {
	opts     Options
	lib      library
	cuda     bool   // CUDA sessions can be made
	fallback string // why "auto" uses the CPU; "" when it does not
	log      io.Writer
}

var (
	ortMu      sync.Mutex
	ortVersion string
	ortLibrary string
	ortOpen    bool
)

// ORTVersion is the version of the loaded ONNX Runtime library, "" before
// NewRuntime succeeds.
func ORTVersion() string {
	ortMu.Lock()
	defer ortMu.Unlock()
	return ortVersion
}

// ORTLibrary says which ONNX Runtime library is loaded and how it was
// found ("/path/libonnxruntime.so.1 (make ort)"), "" before NewRuntime
// succeeds.
func ORTLibrary() string {
	ortMu.Lock()
	defer ortMu.Unlock()
	return ortLibrary
}

// NewRuntime loads ONNX Runtime and decides the execution provider. With
// Provider "cuda" it fails unless CUDA is usable; with "auto" it records why
// not and uses the CPU.
func NewRuntime(opts Options) (*Runtime, error) {
	return newRuntime(opts, realHost())
}

func newRuntime(opts Options, h host) (*Runtime, error) {
	ortMu.Lock()
	defer ortMu.Unlock()
	switch opts.Provider {
	case "":
		opts.Provider = ProviderAuto
	case ProviderAuto, ProviderCPU, ProviderCUDA:
	default:
		return nil, fmt.Errorf("unknown provider %q: want auto, cuda or cpu", opts.Provider)
	}
	if _, err := PlanParallelism(opts.Threads, opts.Workers, false); err != nil {
		return nil, err
	}
	if opts.CUDADevice < 0 {
		return nil, fmt.Errorf("CUDA device %d: want 0 or more", opts.CUDADevice)
	}
	if opts.Provider == ProviderCUDA && !h.gpu {
		return nil, errors.New("provider cuda: no NVIDIA GPU on this machine (no /dev/nvidiactl); use --provider auto or cpu")
	}
	if ortOpen || ort.IsInitialized() {
		return nil, errors.New("ONNX Runtime is already initialised in this process: use the open Runtime")
	}
	lib, err := findLibrary(opts.LibPath, opts.Provider != ProviderCPU, h)
	if err != nil {
		return nil, err
	}
	version, err := probeLibrary(lib.path)
	if err != nil {
		if version != "" {
			return nil, fmt.Errorf("ONNX Runtime %s at %s: %v; attnaudit needs %s or newer: %s", version, lib.path, err, MinORTVersion, fixHint)
		}
		return nil, fmt.Errorf("loading ONNX Runtime %s (from %s): %v: %s", lib.path, lib.from, err, fixHint)
	}
	if !versionAtLeast(version, MinORTVersion) {
		return nil, fmt.Errorf("ONNX Runtime %s at %s is too old: attnaudit needs %s or newer: %s", version, lib.path, MinORTVersion, fixHint)
	}
	r := &Runtime{opts: opts, lib: lib, log: opts.Log}
	if r.log == nil {
		r.log = os.Stderr
	}
	// The CUDA libraries must be loaded before ONNX Runtime loads its CUDA
	// provider, which happens when the first session options ask for it.
	var cudaErr error
	if opts.Provider != ProviderCPU {
		if !h.gpu {
			cudaErr = errors.New("no NVIDIA GPU on this machine (no /dev/nvidiactl)")
		} else {
			cudaErr = r.loadCUDALibraries(h)
		}
	}
	ort.SetSharedLibraryPath(lib.path)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return nil, fmt.Errorf("initialising ONNX Runtime %s: %w", lib.path, err)
	}
	if opts.Provider != ProviderCPU {
		if cudaErr == nil {
			cudaErr = r.probeCUDA()
		}
		if cudaErr != nil {
			if opts.Provider == ProviderCUDA {
				ort.DestroyEnvironment()
				return nil, cudaErr
			}
			r.noteFallback(cudaErr)
		} else {
			r.cuda = true
		}
	}
	on := "CPU"
	if r.cuda {
		on = fmt.Sprintf("CUDA device %d", opts.CUDADevice)
	}
	fmt.Fprintf(r.log, "onnxruntime: %s %s (%s) on %s\n", version, lib.path, lib.from, on)
	ortVersion, ortOpen = version, true
	ortLibrary = fmt.Sprintf("%s (%s)", lib.path, lib.from)
	return r, nil
}

// loadCUDALibraries checks that the dynamic loader finds every library the
// CUDA provider needs; where it does not, it loads them from pip's nvidia-*
// packages (found through python3). The error names what is still missing
// and where each comes from.
func (r *Runtime) loadCUDALibraries(h host) error {
	prov := r.lib.cudaProvider()
	if prov == "" {
		msg := fmt.Sprintf("CUDA unavailable: ONNX Runtime at %s (%s) is a CPU build (no %s beside it)", r.lib.path, r.lib.from, cudaProviderLib)
		if len(r.lib.passed) > 0 {
			msg += "; GPU builds: " + strings.Join(r.lib.passed, "; ")
		}
		return errors.New(msg + ": run `make ort-gpu`, `pip install onnxruntime-gpu`, or point --ort-lib at a GPU build")
	}
	needed, err := neededLibraries(prov)
	if err != nil {
		return fmt.Errorf("CUDA unavailable: reading %s: %w", prov, err)
	}
	// cuDNN is loaded by the provider at run time rather than linked; check
	// it with the rest so that pip's copy is preloaded too.
	needed = append(needed, "libcudnn.so.9")
	missing := unloadable(needed)
	if len(missing) == 0 {
		return nil
	}
	dirs := r.lib.cudaDirs
	if len(dirs) == 0 {
		if py, err := h.python(); err == nil {
			dirs = py.Nvidia
		}
	}
	if n := preloadCUDA(dirs); n > 0 {
		fmt.Fprintf(r.log, "onnxruntime: loaded %d CUDA libraries from pip's nvidia packages (%s)\n", n, strings.Join(dirs, ", "))
		missing = unloadable(missing)
	}
	if len(missing) == 1 && missing[0] == "libcudnn.so.9" {
		fmt.Fprintln(r.log, "onnxruntime: cuDNN 9 (libcudnn.so.9) not found; only operators that use it (convolutions) will fail")
		return nil
	}
	if len(missing) > 0 {
		where := "LD_LIBRARY_PATH and the system's library folders"
		if len(dirs) > 0 {
			where += " and " + strings.Join(dirs, ", ")
		} else {
			where += " (python3 has no nvidia-* packages)"
		}
		return fmt.Errorf("CUDA unavailable: %s needs %s, not found in %s: %s", prov, describeMissing(missing), where, cudaFix)
	}
	return nil
}

// cudaOptions are the CUDA provider options (V2) every session gets.
// arena_extend_strategy kSameAsRequested: decoding runs ever-changing
// shapes, and the default power-of-two growth keeps a block for each.
// use_tf32 0: the audit compares attention across providers and
// checkpoints, so matrix products keep float32 precision.
func (r *Runtime) cudaOptions() map[string]string {
	return map[string]string{
		"device_id":              strconv.Itoa(r.opts.CUDADevice),
		"arena_extend_strategy":  "kSameAsRequested",
		"cudnn_conv_algo_search": "DEFAULT",
		"use_tf32":               "0",
	}
}

// probeCUDA appends the CUDA provider to throw-away session options: that
// loads the provider library, so a CPU build or a missing CUDA library is
// reported now rather than at the first session.
func (r *Runtime) probeCUDA() error {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return err
	}
	defer so.Destroy()
	if err := r.appendCUDA(so); err != nil {
		return err
	}
	return nil
}

func (r *Runtime) appendCUDA(so *ort.SessionOptions) error {
	co, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return fmt.Errorf("CUDA unavailable: %w", err)
	}
	defer co.Destroy()
	if err := co.Update(r.cudaOptions()); err != nil {
		return fmt.Errorf("CUDA unavailable: provider options %v: %w", r.cudaOptions(), err)
	}
	if err := so.AppendExecutionProviderCUDA(co); err != nil {
		return cudaError(err)
	}
	return nil
}

// cudaError explains an error from ONNX Runtime's CUDA provider, naming
// the libraries the loader could not find.
func cudaError(err error) error {
	if missing := missingFromLoader(err.Error()); len(missing) > 0 {
		return fmt.Errorf("CUDA unavailable: %s missing: %s (ONNX Runtime: %w)", describeMissing(missing), cudaFix, err)
	}
	return fmt.Errorf("CUDA unavailable: %w", err)
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
	ortOpen, ortVersion, ortLibrary = false, "", ""
	if err := ort.DestroyEnvironment(); err != nil {
		return fmt.Errorf("closing ONNX Runtime: %w", err)
	}
	return nil
}

// sessionOptions returns options for one session on the given provider,
// with intraOp threads per call.
func (r *Runtime) sessionOptions(cuda bool, intraOp int) (*ort.SessionOptions, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	if err := r.configure(so, cuda, intraOp); err != nil {
		so.Destroy()
		return nil, err
	}
	return so, nil
}

func (r *Runtime) configure(so *ort.SessionOptions, cuda bool, intraOp int) error {
	if err := so.SetIntraOpNumThreads(intraOp); err != nil {
		return err
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
	if !r.cuda {
		return errors.New("CUDA is not set up")
	}
	return r.appendCUDA(so)
}
