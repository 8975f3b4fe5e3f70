package inference

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "ortload.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// ortAPIVersion is the ORT_API_VERSION of the onnxruntime_c_api.h that
// onnxruntime_go v1.27 is built against. Asking a library for it fails on
// libraries older than 1.24, which is why 1.24 is the oldest we accept.
const ortAPIVersion = 24

// probeLibrary opens the library and returns its version before
// onnxruntime_go initialises it, so that a missing or too-old library gets
// an error that says how to fix it rather than a bare dlopen failure.
func probeLibrary(path string) (string, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var cerr *C.char
	var ok C.int
	v := C.ortload_version(cpath, C.uint(ortAPIVersion), &ok, &cerr)
	if v == nil {
		return "", errors.New(C.GoString(cerr))
	}
	if ok == 0 {
		return C.GoString(v), fmt.Errorf("it does not provide C API version %d", ortAPIVersion)
	}
	return C.GoString(v), nil
}

// loadGlobal loads a shared library (a path or a soname) into the process
// for good, visible to libraries loaded after it.
func loadGlobal(name string) error {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	if msg := C.ortload_global(cname); msg != nil {
		return errors.New(C.GoString(msg))
	}
	return nil
}
