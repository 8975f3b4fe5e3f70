// A few ONNX Runtime C API calls that onnxruntime_go v1.27 does not wrap:
// the library's version before it is initialised, and the plugin execution
// provider calls of ORT >= 1.22 (device enumeration and the EP selection
// policy). See ortshim.go for why the API table is indexed by position.
#ifndef ATTNAUDIT_ORTSHIM_H
#define ATTNAUDIT_ORTSHIM_H

#include <stddef.h>

// shim_open dlopens the library at path and returns its version string
// (owned by the library), or NULL with *err set to dlerror's message.
const char *shim_open(const char *path, const char **err);

// shim_use_api fetches the OrtApi table of the given version from the library
// opened by shim_open. It returns 0 on success.
int shim_use_api(unsigned version);

// shim_count_devices counts the execution-provider devices of hardware type
// device_type (OrtHardwareDeviceType) that registered EP libraries offer.
// It returns an error message to free(), or NULL.
char *shim_count_devices(int device_type, int *count);

// shim_set_ep_policy calls SessionOptionsSetEpSelectionPolicy. It returns an
// error message to free(), or NULL.
char *shim_set_ep_policy(void *session_options, int policy);

#endif
