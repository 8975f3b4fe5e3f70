#include "ortshim.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct OrtStatus OrtStatus;

typedef struct {
  const void *(*GetApi)(uint32_t version);
  const char *(*GetVersionString)(void);
} ApiBase;

static void *lib;
static void *const *api;

// Positions in the OrtApi table (ORT_API_VERSION 24); ortshim.go explains
// why, and shim_test.go checks them against onnxruntime_c_api.h.
enum {
  kGetErrorMessage = 2,
  kCreateEnv = 3,
  kReleaseEnv = 92,
  kReleaseStatus = 93,
  kGetEpDevices = 303,
  kSessionOptionsSetEpSelectionPolicy = 305,
  kHardwareDeviceType = 307,
  kEpDeviceDevice = 316,
};

typedef const char *(*GetErrorMessageFn)(const OrtStatus *);
typedef OrtStatus *(*CreateEnvFn)(int, const char *, void **);
typedef void (*ReleaseEnvFn)(void *);
typedef void (*ReleaseStatusFn)(OrtStatus *);
typedef OrtStatus *(*GetEpDevicesFn)(const void *, const void *const **, size_t *);
typedef OrtStatus *(*SetEpPolicyFn)(void *, int);
typedef int (*HardwareDeviceTypeFn)(const void *);
typedef const void *(*EpDeviceDeviceFn)(const void *);

const char *shim_open(const char *path, const char **err) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    *err = dlerror();
    return NULL;
  }
  ApiBase *(*get_base)(void) = (ApiBase * (*)(void)) dlsym(h, "OrtGetApiBase");
  if (!get_base) {
    *err = dlerror();
    dlclose(h);
    return NULL;
  }
  if (lib) dlclose(lib);
  lib = h;
  return get_base()->GetVersionString();
}

int shim_use_api(unsigned version) {
  if (!lib) return 1;
  ApiBase *(*get_base)(void) = (ApiBase * (*)(void)) dlsym(lib, "OrtGetApiBase");
  if (!get_base) return 2;
  api = (void *const *)get_base()->GetApi(version);
  return api ? 0 : 3;
}

static char *take_status(OrtStatus *st) {
  char *msg = strdup(((GetErrorMessageFn)api[kGetErrorMessage])(st));
  ((ReleaseStatusFn)api[kReleaseStatus])(st);
  return msg;
}

char *shim_count_devices(int device_type, int *count) {
  *count = 0;
  if (!api) return strdup("ONNX Runtime API not loaded");
  // The environment is a process-wide singleton: CreateEnv returns the one
  // onnxruntime_go created, with its reference count raised.
  void *env = NULL;
  OrtStatus *st = ((CreateEnvFn)api[kCreateEnv])(3, "attnaudit", &env);
  if (st) return take_status(st);
  const void *const *devices = NULL;
  size_t n = 0;
  st = ((GetEpDevicesFn)api[kGetEpDevices])(env, &devices, &n);
  if (st) {
    ((ReleaseEnvFn)api[kReleaseEnv])(env);
    return take_status(st);
  }
  for (size_t i = 0; i < n; i++) {
    const void *hw = ((EpDeviceDeviceFn)api[kEpDeviceDevice])(devices[i]);
    if (hw && ((HardwareDeviceTypeFn)api[kHardwareDeviceType])(hw) == device_type) (*count)++;
  }
  ((ReleaseEnvFn)api[kReleaseEnv])(env);
  return NULL;
}

char *shim_set_ep_policy(void *session_options, int policy) {
  if (!api) return strdup("ONNX Runtime API not loaded");
  OrtStatus *st = ((SetEpPolicyFn)api[kSessionOptionsSetEpSelectionPolicy])(session_options, policy);
  return st ? take_status(st) : NULL;
}
