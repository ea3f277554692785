/* backend_loader.c — finds and loads the CUDA backend (libtpdiff_cuda.so) with dlopen, so the
 * binaries have no CUDA link dependency and still run where there is no GPU, no driver or no
 * library: every failure becomes one line in `err`, never a crash.
 *
 * Search order (backend.h): the `library` argument alone when given; else $TPDIFF_CUDA_LIB, then
 * <dir of the running binary>/../build/lib/libtpdiff_cuda.so, <dir>/../lib/libtpdiff_cuda.so, then
 * plain "libtpdiff_cuda.so" through the dynamic loader's own path. */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/backend.h"

#define LIB_NAME "libtpdiff_cuda.so"

/* Folder of the running binary (no trailing slash), from /proc/self/exe; "" when unknown. */
static void binary_dir(char *dir, size_t size) {
  dir[0] = '\0';
  char path[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) return;
  path[n] = '\0';
  char *slash = strrchr(path, '/');
  if (!slash) return;
  *slash = '\0';
  snprintf(dir, size, "%s", path);
}

/* Loads one candidate. Returns the table, or NULL with the reason in err. */
static const tpdiff_backend *try_library(const char *path, char *err, size_t err_size) {
  dlerror();
  void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char *why = dlerror();
    snprintf(err, err_size, "cannot load %s: %s", path, why ? why : "unknown dlopen error");
    return NULL;
  }
  /* The handle is never closed: the library's static CUDA runtime registers exit handlers, and
   * unloading it under them is a known source of crashes at exit. */
  dlerror();
  void *sym = dlsym(handle, TPDIFF_CUDA_BACKEND_SYMBOL);
  const char *sym_err = dlerror();
  if (!sym || sym_err) {
    snprintf(err, err_size, "%s has no symbol %s (%s)", path, TPDIFF_CUDA_BACKEND_SYMBOL, sym_err ? sym_err : "null");
    return NULL;
  }
  tpdiff_cuda_backend_fn entry;
  /* dlsym returns an object pointer; copying its bytes is the portable way to get the function. */
  memcpy(&entry, &sym, sizeof entry);
  char why[512] = "";
  const tpdiff_backend *table = entry(why, sizeof why);
  if (!table) {
    snprintf(err, err_size, "%s", why[0] ? why : "the CUDA backend found no usable GPU");
    return NULL;
  }
  if (table->abi != TPDIFF_BACKEND_ABI) {
    snprintf(err, err_size, "%s speaks backend ABI %d, this binary %d: rebuild both with make", path, table->abi,
             TPDIFF_BACKEND_ABI);
    return NULL;
  }
  /* Every entry must be filled: a missing op would crash on first use instead of failing here. */
#define REQUIRE(field)                                                                    \
  if (!table->field) {                                                                    \
    snprintf(err, err_size, "%s: backend table lacks %s (stale library?)", path, #field); \
    return NULL;                                                                          \
  }
  /* clang-format off */
  REQUIRE(name) REQUIRE(device) REQUIRE(alloc) REQUIRE(free) REQUIRE(copy_to_device) REQUIRE(copy_to_host)
  REQUIRE(copy_device) REQUIRE(fill_zero) REQUIRE(synchronize) REQUIRE(memory_info) REQUIRE(last_error) REQUIRE(set_precision)
  REQUIRE(set_master_weights) REQUIRE(scratch_bytes)
  REQUIRE(linear_forward) REQUIRE(linear_gelu_forward)
  REQUIRE(linear_backward) REQUIRE(linear_backward_gelu) REQUIRE(layernorm_modulate_forward) REQUIRE(layernorm_modulate_backward)
  REQUIRE(gelu_forward) REQUIRE(gelu_backward) REQUIRE(silu_forward) REQUIRE(silu_backward)
  REQUIRE(gated_residual_forward) REQUIRE(gated_residual_backward) REQUIRE(add_rows_broadcast) REQUIRE(add)
  REQUIRE(scale) REQUIRE(attention_forward) REQUIRE(attention_backward) REQUIRE(attention_probs_floats)
  REQUIRE(attention_scratch_floats) REQUIRE(patchify) REQUIRE(unpatchify) REQUIRE(sincos_table)
  REQUIRE(embedding_add) REQUIRE(embedding_backward) REQUIRE(mse_loss) REQUIRE(adamw_step) REQUIRE(sum_squares)
  REQUIRE(frames_pair_mean) REQUIRE(frames_pair_sum_norm) REQUIRE(frames_pair_diff_norm) REQUIRE(frames_repeat)
  REQUIRE(frames_antisym) REQUIRE(combine3_per_clip) REQUIRE(fill_normal) REQUIRE(fill_uniform)
  /* clang-format on */
#undef REQUIRE
                                              return table;
}

const tpdiff_backend *tpdiff_load_cuda_backend(const char *library, char *err, size_t err_size) {
  char local_err[768];
  if (!err || err_size == 0) {
    err = local_err;
    err_size = sizeof local_err;
  }
  err[0] = '\0';
  if (library && *library) {
    char why[768];
    const tpdiff_backend *table = try_library(library, why, sizeof why);
    if (!table) snprintf(err, err_size, "CUDA backend: %s", why);
    return table;
  }

  char candidates[4][PATH_MAX + 64];
  int count = 0;
  const char *env = getenv("TPDIFF_CUDA_LIB");
  if (env && *env) snprintf(candidates[count++], sizeof candidates[0], "%s", env);
  char dir[PATH_MAX];
  binary_dir(dir, sizeof dir);
  if (dir[0]) {
    snprintf(candidates[count++], sizeof candidates[0], "%s/../build/lib/%s", dir, LIB_NAME);
    snprintf(candidates[count++], sizeof candidates[0], "%s/../lib/%s", dir, LIB_NAME);
  }
  snprintf(candidates[count++], sizeof candidates[0], "%s", LIB_NAME);

  /* The first failure of a library that exists is the one worth reporting (no GPU, missing
   * cuBLASLt, ...); "not found" only when no candidate exists at all. */
  for (int i = 0; i < count; i++) {
    int from_env = env && *env && i == 0;
    int is_file_path = strchr(candidates[i], '/') != NULL;
    if (is_file_path && access(candidates[i], F_OK) != 0) {
      if (from_env) {
        snprintf(err, err_size, "CUDA backend: TPDIFF_CUDA_LIB=%s does not exist", candidates[i]);
        return NULL;
      }
      continue;
    }
    char why[768];
    const tpdiff_backend *table = try_library(candidates[i], why, sizeof why);
    if (table) return table;
    /* the loader path: "not found" is no failure of an existing library */
    if (!is_file_path && strstr(why, LIB_NAME ": cannot open shared object file")) break;
    /* A library that exists but failed (no GPU, missing cuBLASLt, ...) is the answer: the other
     * candidates would only say the same. */
    snprintf(err, err_size, "CUDA backend: %s", why);
    return NULL;
  }
  snprintf(err, err_size,
           "CUDA backend: %s not found (looked in $TPDIFF_CUDA_LIB, %s/../build/lib, %s/../lib and the loader path; "
           "make builds it where nvcc exists)",
           LIB_NAME, dir[0] ? dir : "<binary dir>", dir[0] ? dir : "<binary dir>");
  return NULL;
}
