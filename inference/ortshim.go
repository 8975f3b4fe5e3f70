package inference

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "ortshim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"reflect"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"
)

// The shim calls the OrtApi function table by position rather than through
// onnxruntime_c_api.h: the header is 470 KB that onnxruntime_go already
// vendors but cgo cannot include from another module, and ONNX Runtime's C
// ABI only ever appends to the table, so a position never changes once
// released. shim_test.go compiles the header onnxruntime_go ships and checks
// every position. ortAPIVersion is that header's ORT_API_VERSION: asking a
// library for it fails on libraries older than 1.24, which is why 1.24 is the
// oldest we accept.
const ortAPIVersion = 24

// OrtHardwareDeviceType_GPU and OrtExecutionProviderDevicePolicy_PREFER_GPU.
const (
	ortDeviceGPU       = 1
	ortPolicyPreferGPU = 3
)

// probeLibrary opens the library and returns its version, before
// onnxruntime_go initialises it, so that a missing or too-old library gets
// an error that says how to fix it rather than a bare dlopen failure.
func probeLibrary(path string) (string, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var cerr *C.char
	v := C.shim_open(cpath, &cerr)
	if v == nil {
		return "", errors.New(C.GoString(cerr))
	}
	if rc := C.shim_use_api(C.uint(ortAPIVersion)); rc != 0 {
		return C.GoString(v), fmt.Errorf("it does not provide C API version %d", ortAPIVersion)
	}
	return C.GoString(v), nil
}

func takeCError(msg *C.char) error {
	if msg == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(msg))
	return errors.New(C.GoString(msg))
}

// gpuDevices counts the GPU devices offered by registered execution-provider
// libraries (the CUDA plugin finds none on a machine without a usable GPU).
func gpuDevices() (int, error) {
	var n C.int
	if err := takeCError(C.shim_count_devices(ortDeviceGPU, &n)); err != nil {
		return 0, fmt.Errorf("listing execution-provider devices: %w", err)
	}
	return int(n), nil
}

// preferGPU sets the EP selection policy PREFER_GPU on the session options,
// which makes a session use a registered plugin EP's GPU device.
func preferGPU(o *ort.SessionOptions) error {
	p, err := sessionOptionsPointer(o)
	if err != nil {
		return err
	}
	if err := takeCError(C.shim_set_ep_policy(p, ortPolicyPreferGPU)); err != nil {
		return fmt.Errorf("SessionOptionsSetEpSelectionPolicy: %w", err)
	}
	return nil
}

// sessionOptionsPointer returns the OrtSessionOptions* inside o.
// onnxruntime_go keeps it in an unexported field and offers no accessor, and
// the alternative, creating sessions through our own cgo, would duplicate
// its whole session and tensor layer. So we read the field, after checking
// the struct still has the one-pointer layout of v1.27; if a future version
// changes it, this returns an error instead of reading garbage.
func sessionOptionsPointer(o *ort.SessionOptions) (unsafe.Pointer, error) {
	t := reflect.TypeFor[ort.SessionOptions]()
	if t.NumField() != 1 || t.Field(0).Name != "o" || t.Field(0).Type.Kind() != reflect.Pointer || t.Field(0).Offset != 0 {
		return nil, errors.New("onnxruntime_go's SessionOptions layout changed: update sessionOptionsPointer")
	}
	p := *(*unsafe.Pointer)(unsafe.Pointer(o))
	if p == nil {
		return nil, errors.New("session options already destroyed")
	}
	return p, nil
}
