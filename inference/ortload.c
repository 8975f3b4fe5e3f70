#include "ortload.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stddef.h>

typedef struct {
  const void *(*GetApi)(uint32_t version);
  const char *(*GetVersionString)(void);
} ApiBase;

const char *ortload_version(const char *path, unsigned api_version, int *api_ok, const char **err) {
  *api_ok = 0;
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
  // The handle stays open: onnxruntime_go opens the same file next, and the
  // version string belongs to the library.
  *api_ok = get_base()->GetApi(api_version) != NULL;
  return get_base()->GetVersionString();
}

const char *ortload_global(const char *name) {
  return dlopen(name, RTLD_NOW | RTLD_GLOBAL) ? NULL : dlerror();
}
