/* nccl_check.c — libtpdiff_nccl.so on one GPU as a world of one (a GPU machine; NCCL refuses two
 * ranks on one device, so the several-rank path is exercised on the CPU emulator by
 * tests/mpi/nccl_emu.sh, which also runs this check there, and by real multi-GPU runs): loads the CUDA backend and the NCCL library, makes a gradient with backend ops on
 * the legacy default stream right before the reduction and scales it right after, and checks that the
 * reduction ran between them (the mean over one rank is the gradient itself: bit-identical in fp32,
 * within bf16 rounding, 2^-8 relative, with train.comm_dtype=bf16), in several buckets.
 *
 *   nccl_check [LIBRARY]   (default build/lib/libtpdiff_nccl.so); exit 0 all passed, 1 a check
 *                          failed, 3 no GPU or no library */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm/nccl_api.h"
#include "kernels/backend.h"
#include "tests/unit/test_report.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One reduction of n floats in buckets of bucket floats; bf16 or fp32 on the wire. */
static void check_one(const tpdiff_backend *be, const tpdiff_nccl_api *api, size_t n, size_t bucket, int bf16) {
  char name[160], err[768] = "";
  snprintf(name, sizeof name, "NCCL all-reduce, world of one, %s, %zu floats in buckets of %zu", bf16 ? "bf16" : "fp32",
           n, bucket);
  float *host = malloc(n * sizeof(float)), *back = malloc(n * sizeof(float));
  float *grad = be->alloc(n * sizeof(float));
  if (!host || !back || !grad) {
    failf(name, "out of memory");
    return;
  }
  uint64_t state = 0x9e3779b97f4a7c15ULL;
  for (size_t i = 0; i < n; i++) { /* values over several binades, both signs */
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    host[i] = (float)((double)(state >> 11) / 9007199254740992.0 - 0.5) * ldexpf(1.0f, (int)(i % 17) - 8);
  }
  be->copy_to_device(grad, host, n * sizeof(float));
  be->scale(grad, 2.0f, n); /* queued on stream 0 just before: the reduction must wait for it */
  unsigned char id[TPDIFF_NCCL_ID_BYTES];
  void *s = NULL;
  if (api->unique_id(id, err, sizeof err) == 0) s = api->create(id, 0, 1, bf16, n, bucket, 60.0, err, sizeof err);
  if (!s) {
    failf(name, "%s", err);
    return;
  }
  double t0 = now_s();
  int rc = api->allreduce_mean(s, grad, n, 60.0, err, sizeof err);
  double ms = 1000 * (now_s() - t0);
  be->scale(grad, 0.5f, n); /* queued after: must see the reduced values */
  be->copy_to_host(back, grad, n * sizeof(float));
  api->destroy(s);
  if (rc != 0) {
    failf(name, "%s", err);
  } else {
    double worst = 0;
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) {
      double e = fabs((double)back[i] - (double)host[i]) / fmax(fabs((double)host[i]), 1e-30);
      if (back[i] != host[i]) differ++;
      if (!(e <= worst)) worst = e;
    }
    if (bf16)
      report(name, worst, 1.0 / 256, "%.1f ms, %zu values rounded", ms, differ);
    else
      check(name, differ == 0, "%.1f ms, %zu of %zu values differ (want 0)", ms, differ, n);
  }
  be->free(grad);
  free(host);
  free(back);
}

/* The overlap the trainer uses: the upper half's buckets start (begin) while stream 0 still changes
 * the lower half (the backward of earlier layers), then the lower half's, then finish. Expected:
 * the upper half as it was when it started, the lower half with the change. */
static void check_staged(const tpdiff_backend *be, const tpdiff_nccl_api *api, size_t n, size_t bucket) {
  char name[160], err[768] = "";
  snprintf(name, sizeof name, "NCCL buckets started during the backward (begin, begin, finish), fp32, %zu floats", n);
  float *host = malloc(n * sizeof(float)), *back = malloc(n * sizeof(float));
  float *grad = be->alloc(n * sizeof(float));
  if (!host || !back || !grad) {
    failf(name, "out of memory");
    return;
  }
  for (size_t i = 0; i < n; i++) host[i] = (float)((double)((i * 2654435761u) % 1000003) / 1000003.0 - 0.5);
  be->copy_to_device(grad, host, n * sizeof(float));
  be->scale(grad, 2.0f, n);
  size_t half = (n / 2 / bucket) * bucket; /* the upper buckets start here */
  unsigned char id[TPDIFF_NCCL_ID_BYTES];
  void *s = NULL;
  if (api->unique_id(id, err, sizeof err) == 0) s = api->create(id, 0, 1, 0, n, bucket, 60.0, err, sizeof err);
  int rc = s ? 0 : -1;
  for (size_t off = half; rc == 0 && off < n; off += bucket)
    rc = api->begin(s, grad, off, n - off < bucket ? n - off : bucket, 60.0, err, sizeof err);
  if (rc == 0) be->scale(grad, 3.0f, half); /* stream 0 still working on the lower layers */
  for (size_t off = 0; rc == 0 && off < half; off += bucket)
    rc = api->begin(s, grad, off, bucket, 60.0, err, sizeof err);
  if (rc == 0) rc = api->finish(s, 60.0, err, sizeof err);
  be->scale(grad, 0.5f, n);
  be->copy_to_host(back, grad, n * sizeof(float));
  if (s) api->destroy(s);
  if (rc != 0) {
    failf(name, "%s", err);
  } else {
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) {
      float want = i < half ? ((host[i] * 2.0f) * 3.0f) * 0.5f : (host[i] * 2.0f) * 0.5f;
      differ += back[i] != want;
    }
    check(name, differ == 0, "upper %zu floats started first; %zu of %zu values differ (want 0)", n - half, differ, n);
  }
  be->free(grad);
  free(host);
  free(back);
}

int main(int argc, char **argv) {
  char err[768];
  const tpdiff_backend *be = tpdiff_load_cuda_backend(NULL, err, sizeof err);
  if (!be) {
    printf("nccl_check: no CUDA backend: %s\n", err);
    return 3;
  }
  const char *path = argc > 1 ? argv[1] : "build/lib/libtpdiff_nccl.so";
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  void *sym = lib ? dlsym(lib, TPDIFF_NCCL_API_SYMBOL) : NULL;
  if (!sym) {
    printf("nccl_check: cannot load %s: %s\n", path, dlerror());
    return 3;
  }
  tpdiff_nccl_api_fn entry;
  memcpy(&entry, &sym, sizeof entry);
  const tpdiff_nccl_api *api = entry();
  printf("# %s on %s, NCCL %s\n", path, be->device, api->version());
  check_one(be, api, 10000019, 1 << 20, 0);
  check_one(be, api, 10000019, 1 << 20, 1);
  check_one(be, api, 1000, 6553600, 0); /* one bucket larger than the gradient */
  check_staged(be, api, 10000019, 1 << 20);
  test_summary("nccl_check", NULL);
  return test_exit_code();
}
