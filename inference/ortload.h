// What attnaudit asks of the dynamic loader before onnxruntime_go takes
// over: the library's version (so a missing or too-old library gets a clear
// error rather than a bare dlopen failure) and the CUDA libraries ONNX
// Runtime's CUDA provider needs, loaded from where pip put them.
#ifndef ATTNAUDIT_ORTLOAD_H
#define ATTNAUDIT_ORTLOAD_H

// ortload_version dlopens the ONNX Runtime library at path and returns its
// version string (owned by the library), or NULL with *err set to dlerror's
// message. api_version is the ORT_API_VERSION the bindings need; *api_ok is
// set to whether the library provides it.
const char *ortload_version(const char *path, unsigned api_version, int *api_ok, const char **err);

// ortload_global dlopens a library with RTLD_GLOBAL, by path or by soname,
// keeping it loaded so that later loads of libraries that need it by soname
// find it. It returns NULL, or dlerror's message.
const char *ortload_global(const char *name);

#endif
