package inference

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"
)

func TestFindLibrary(t *testing.T) {
	_, err := findLibrary(filepath.Join(t.TempDir(), "libonnxruntime.so.1"))
	if err == nil || !strings.Contains(err.Error(), "make ort") || !strings.Contains(err.Error(), "ATTNAUDIT_ORT_LIB") ||
		!strings.Contains(err.Error(), "--ort-lib") {
		t.Errorf("missing --ort-lib file: %v", err)
	}
	t.Setenv("ATTNAUDIT_ORT_LIB", t.TempDir())
	if _, err := findLibrary(""); err == nil || !strings.Contains(err.Error(), "is a folder") {
		t.Errorf("ATTNAUDIT_ORT_LIB pointing at a folder: %v", err)
	}
	t.Setenv("ATTNAUDIT_ORT_LIB", "")
	wd, _ := os.Getwd()
	if p, err := findLibrary(""); err != nil || p != filepath.Join(filepath.Dir(wd), defaultLibRel) {
		t.Errorf("default search from %s: %q, %v", wd, p, err)
	}
}

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
// library: it must say why CUDA cannot be used, for each way of getting it.
func TestCUDAUnavailable(t *testing.T) {
	r := &Runtime{libPath: testRuntime.libPath}
	err := r.setupCUDA()
	if err == nil || !strings.Contains(err.Error(), "no built-in CUDA") || !strings.Contains(err.Error(), "libonnxruntime_providers_cuda.so") {
		t.Errorf("CPU build without plugin: %v", err)
	}
	fake := filepath.Join(t.TempDir(), "libonnxruntime_providers_cuda.so")
	if err := os.WriteFile(fake, []byte("not a library"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.opts.CUDAPluginPath = fake
	if err := r.setupCUDA(); err == nil || !strings.Contains(err.Error(), "registering the CUDA provider plugin "+fake) {
		t.Errorf("broken plugin: %v", err)
	}
	r.opts.CUDAPluginPath = filepath.Join(t.TempDir(), "absent.so")
	if err := r.setupCUDA(); err == nil || !strings.Contains(err.Error(), "--cuda-plugin") {
		t.Errorf("absent plugin: %v", err)
	}
}

// TestEPShim calls the shim's C API functions for real: device listing
// (no plugin registered: no GPU) and the selection policy, with which a
// session still opens and runs (on the CPU, there being no GPU).
func TestEPShim(t *testing.T) {
	n, err := gpuDevices()
	if err != nil || n != 0 {
		t.Errorf("gpuDevices() = %d, %v; want 0 GPUs", n, err)
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	if err := preferGPU(so); err != nil {
		t.Fatal(err)
	}
	ck := openTiny(t)
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(ck.encoder, []string{TensorSrcIDs}, []string{TensorMemory}, so)
	so.Destroy()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	var in, out tensors
	add(&in, []int64{100, 200, 3}, 1, 3)
	mem := make([]float32, 3*32)
	add(&out, mem, 1, 3, 32)
	if err := run(s, &in, &out); err != nil {
		t.Fatal(err)
	}
	if mem[0] == 0 && mem[1] == 0 {
		t.Errorf("memory not written")
	}
	if err := preferGPU(&ort.SessionOptions{}); err == nil {
		t.Errorf("destroyed options accepted")
	}
}

// TestShimPositions compiles onnxruntime_go's onnxruntime_c_api.h and checks
// the OrtApi positions and enum values the shim hard-codes.
func TestShimPositions(t *testing.T) {
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/yalue/onnxruntime_go").Output()
	if err != nil {
		t.Fatalf("finding onnxruntime_go: %v", err)
	}
	header := filepath.Join(strings.TrimSpace(string(dir)), "onnxruntime_c_api.h")
	src, err := os.ReadFile("ortshim.c")
	if err != nil {
		t.Fatal(err)
	}
	members := map[string]string{ // shim constant → OrtApi member
		"kGetErrorMessage": "GetErrorMessage", "kCreateEnv": "CreateEnv", "kReleaseEnv": "ReleaseEnv",
		"kReleaseStatus": "ReleaseStatus", "kGetEpDevices": "GetEpDevices",
		"kSessionOptionsSetEpSelectionPolicy": "SessionOptionsSetEpSelectionPolicy",
		"kHardwareDeviceType":                 "HardwareDevice_Type", "kEpDeviceDevice": "EpDevice_Device",
	}
	found := regexp.MustCompile(`(k\w+) = (\d+),`).FindAllStringSubmatch(string(src), -1)
	if len(found) != len(members) {
		t.Fatalf("ortshim.c has %d positions, the test knows %d", len(found), len(members))
	}
	var prog strings.Builder
	prog.WriteString("#include <stdio.h>\n#include <stddef.h>\n#include \"onnxruntime_c_api.h\"\nint main(void) {\n")
	want := map[string]int{}
	for _, f := range found {
		member, ok := members[f[1]]
		if !ok {
			t.Fatalf("ortshim.c position %s unknown to the test", f[1])
		}
		want[member], _ = strconv.Atoi(f[2])
		fmt.Fprintf(&prog, "printf(\"%s %%zu\\n\", offsetof(OrtApi, %s) / sizeof(void *));\n", member, member)
	}
	prog.WriteString(`printf("ORT_API_VERSION %d\n", ORT_API_VERSION);
printf("GPU %d\n", (int)OrtHardwareDeviceType_GPU);
printf("PREFER_GPU %d\n", (int)OrtExecutionProviderDevicePolicy_PREFER_GPU);
return 0; }
`)
	want["ORT_API_VERSION"], want["GPU"], want["PREFER_GPU"] = ortAPIVersion, ortDeviceGPU, ortPolicyPreferGPU
	tmp := t.TempDir()
	if err := os.WriteFile(filepath.Join(tmp, "p.c"), []byte(prog.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	bin := filepath.Join(tmp, "p")
	if out, err := exec.Command(cc, "-I", filepath.Dir(header), "-o", bin, filepath.Join(tmp, "p.c")).CombinedOutput(); err != nil {
		t.Fatalf("compiling against %s: %v\n%s", header, err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, val, _ := strings.Cut(line, " ")
		got, _ := strconv.Atoi(val)
		if want[name] != got {
			t.Errorf("%s: the shim uses %d, %s says %d", name, want[name], filepath.Base(header), got)
		}
		delete(want, name)
	}
	if len(want) > 0 {
		t.Errorf("not checked: %v", want)
	}
}
