/* check_kernels.c — every op of the CUDA backend's table against its CPU twin (kernels/cpu, the
 * executable specification), on fresh random inputs, for small odd shapes and one realistic size.
 *
 * A plain C program: no CUDA headers or libraries. It loads libtpdiff_cuda.so with
 * tpdiff_load_cuda_backend() (dlopen), like the binaries do.
 *
 * For each case: inputs come from k_fill_normal on the host; the CPU op runs on host copies; the
 * inputs are uploaded; every output the op must OVERWRITE is poisoned first (0xFF bytes = NaN, so an
 * element the GPU forgets to write can never pass), every buffer it must ACCUMULATE into gets the
 * same known values on both sides; the GPU op runs, its error state is checked, the outputs come
 * back and are compared normwise: err = max|gpu - cpu| / max|cpu| (NaN or Inf never passes), and
 * the count of elements whose bits differ is printed beside it. Limits: 0 (bit for bit) for data
 * movement, the frame operators and combine3; 1e-6 for element-wise math written to give the CPU's
 * bits (GELU, AdamW, gated residual, the MSE gradient) and for normals (CUDA's double libm); 1e-5
 * for SiLU (CUDA's expf) and for anything that sums (matmuls, layernorm, token sums); 1e-4 for
 * attention's backward (explained at the case); 1e-9 for the double-accumulated scalars. The
 * reductions that feed parameter gradients and the loss also run twice and must give the same bits
 * (determinism: exact resume depends on it).
 *
 *   check_kernels [--lib PATH] [--only NAME] [--cpu] [--quick] [--no-timing]
 *     --lib PATH   the backend library (default: the loader's search, backend.h)
 *     --only NAME  run only the cases whose op name contains NAME
 *     --cpu        check the CPU backend's table instead (tests this program where there is no GPU)
 *     --quick      the small shapes only (no realistic sizes, so no timing table)
 *
 * Output: one `PASS <op> <shape> err=...` / `FAIL ...` line per comparison, a table of the slowest
 * ops (GPU time, median of 5 runs after a warm-up, each timed with clock_gettime around the op and
 * a synchronize), then `N passed, N failed` last. Exit 0 when all passed, 1 when any failed, 3 with
 * one line when no GPU backend could be loaded. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/backend.h"
#include "kernels/kernels.h"

/* The fallback sgemm for GPU machines without OpenBLAS (CHECK_OWN_CBLAS=1) is tests/gpu/own_sgemm.c. */

/* ---- bookkeeping ------------------------------------------------------------------------------ */

static const tpdiff_backend *dev; /* the backend under test */
static int passed, failed;
static const char *only; /* --only */
static int timing_on = 1;
static int quick; /* --quick: skip the realistic sizes */

#define MAX_TIMINGS 128
typedef struct {
  char label[128];
  double gpu_us, cpu_us;
} timing_row;
static timing_row timings[MAX_TIMINGS];
static int n_timings;

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static int selected(const char *op) { return !only || strstr(op, only) != NULL; }

static void print_timings(void);

/* Summary line last; exit 1 when anything failed. */
static void finish(void) {
  print_timings();
  printf("%d passed, %d failed\n", passed, failed);
  fflush(stdout);
  exit(failed ? 1 : 0);
}

/* A failure of the harness's own allocations/copies: after it (typically a broken CUDA context)
 * nothing further can be trusted, so report and stop instead of cascading. */
static void infra_fail(const char *op, const char *what) {
  const char *e = dev->last_error();
  printf("FAIL %s: %s failed: %s\n", op, what, e && e[0] ? e : "(no error recorded)");
  printf("stopping: the backend cannot continue after this error\n");
  failed++;
  finish();
}

/* After a GPU op: synchronize and read the error state. 0 and a FAIL line when the op failed; a
 * failed synchronize means the context is gone, so stop. */
static int op_ok(const char *op, const char *shape) {
  int rc = dev->synchronize();
  const char *e = dev->last_error();
  if (rc == 0 && !(e && e[0])) return 1;
  printf("FAIL %s %s: backend error: %s\n", op, shape, e && e[0] ? e : "synchronize failed");
  failed++;
  if (rc != 0) {
    printf("stopping: the device context is unusable after %s\n", op);
    finish();
  }
  return 0;
}

/* Normwise relative error; NaN/Inf in `got` (where `want` is finite) gives +Inf. `exact_out`
 * receives the number of elements whose bits differ. */
static double rel_err(const float *got, const float *want, size_t n, size_t *differ_out) {
  double num = 0.0, den = 0.0;
  size_t differ = 0;
  for (size_t i = 0; i < n; i++) {
    double g = got[i], w = want[i];
    if (memcmp(&got[i], &want[i], sizeof(float)) != 0) differ++;
    if (!isfinite(g) && isfinite(w)) {
      num = INFINITY;
      continue;
    }
    double d = fabs(g - w);
    if (d > num) num = d;
    if (fabs(w) > den) den = fabs(w);
  }
  if (differ_out) *differ_out = differ;
  if (num == 0.0) return 0.0;
  return num / (den > 0.0 ? den : 1.0);
}

static void report(const char *op, const char *shape, double err, double limit, size_t differ, size_t n) {
  int ok = isfinite(err) && err <= limit;
  printf("%s %s %s err=%.3g limit=%.0e bits-differ=%zu/%zu\n", ok ? "PASS" : "FAIL", op, shape, err, limit, differ, n);
  if (ok)
    passed++;
  else
    failed++;
}

static void compare(const char *op, const char *shape, const float *got, const float *want, size_t n, double limit) {
  size_t differ = 0;
  double err = rel_err(got, want, n, &differ);
  report(op, shape, err, limit, differ, n);
}

static void compare_scalar(const char *op, const char *shape, double got, double want, double limit) {
  double err = got == want ? 0.0 : fabs(got - want) / (fabs(want) > 0.0 ? fabs(want) : 1.0);
  if (!isfinite(got)) err = INFINITY;
  int ok = isfinite(err) && err <= limit;
  printf("%s %s %s err=%.3g limit=%.0e gpu=%.17g cpu=%.17g\n", ok ? "PASS" : "FAIL", op, shape, err, limit, got, want);
  if (ok)
    passed++;
  else
    failed++;
}

/* Two GPU runs of the same op on the same inputs must give the same bits. */
static void compare_bits(const char *op, const char *shape, const void *a, const void *b, size_t bytes) {
  int ok = memcmp(a, b, bytes) == 0;
  printf("%s %s.deterministic %s %s\n", ok ? "PASS" : "FAIL", op, shape,
         ok ? "same bits on a second run" : "bits changed between two runs");
  if (ok)
    passed++;
  else
    failed++;
}

static void record_timing(const char *op, const char *shape, double gpu_us, double cpu_us) {
  if (n_timings >= MAX_TIMINGS) return;
  snprintf(timings[n_timings].label, sizeof timings[0].label, "%.40s %.80s", op, shape);
  timings[n_timings].gpu_us = gpu_us;
  timings[n_timings].cpu_us = cpu_us;
  n_timings++;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Time `call` on the device: one warm-up, then the median of 5 runs, each op + synchronize. The
 * op's outputs are garbage afterwards (accumulators keep accumulating): always after the checks. */
#define TIME_OP(op, shape, cpu_us, call)       \
  do {                                         \
    if (timing_on) {                           \
      double t_[5];                            \
      call;                                    \
      if (!op_ok(op, shape)) break;            \
      for (int r_ = 0; r_ < 5; r_++) {         \
        double t0_ = now_us();                 \
        call;                                  \
        dev->synchronize();                    \
        t_[r_] = now_us() - t0_;               \
      }                                        \
      if (!op_ok(op, shape)) break;            \
      qsort(t_, 5, sizeof t_[0], cmp_double);  \
      record_timing(op, shape, t_[2], cpu_us); \
    }                                          \
  } while (0)

static int cmp_timing(const void *a, const void *b) {
  double x = ((const timing_row *)a)->gpu_us, y = ((const timing_row *)b)->gpu_us;
  return x < y ? 1 : x > y ? -1 : 0; /* slowest first */
}

static void print_timings(void) {
  if (n_timings == 0) return;
  qsort(timings, (size_t)n_timings, sizeof timings[0], cmp_timing);
  int show = n_timings < 16 ? n_timings : 16;
  printf("\nslowest ops (device %s; median of 5, us; cpu = one run of the CPU twin here)\n", dev->device);
  printf("  %-58s %12s %12s\n", "op shape", "gpu_us", "cpu_us");
  for (int i = 0; i < show; i++)
    printf("  %-58s %12.1f %12.1f\n", timings[i].label, timings[i].gpu_us, timings[i].cpu_us);
  printf("\n");
}

/* ---- host and device buffers ------------------------------------------------------------------ */

static uint64_t next_stream = 1000;

/* Uninitialised: every use is a CPU op's output or is overwritten at once. */
static float *host_alloc(size_t n) {
  float *x = malloc((n ? n : 1) * sizeof(float));
  if (!x) {
    printf("FAIL host allocation of %zu floats\n", n);
    failed++;
    finish();
  }
  return x;
}

/* n normal(0, scale) + offset values from a fresh Philox stream. */
static float *host_random(size_t n, float scale, float offset) {
  float *x = host_alloc(n);
  k_fill_normal(x, n, 20240601, next_stream++, 0);
  for (size_t i = 0; i < n; i++) x[i] = x[i] * scale + offset;
  return x;
}

static float *host_copy(const float *src, size_t n) {
  float *x = host_alloc(n);
  memcpy(x, src, n * sizeof(float));
  return x;
}

static void *dev_alloc_bytes(const char *op, size_t bytes) {
  void *p = dev->alloc(bytes ? bytes : 4);
  if (!p) infra_fail(op, "alloc");
  return p;
}

static float *dev_upload(const char *op, const float *host, size_t n) {
  float *d = dev_alloc_bytes(op, n * sizeof(float));
  if (n && dev->copy_to_device(d, host, n * sizeof(float)) != 0) infra_fail(op, "copy_to_device");
  return d;
}

/* A device buffer of n floats, every byte 0xFF (a NaN): what an op must overwrite. */
static float *dev_poison(const char *op, size_t n) {
  float *h = host_alloc(n);
  memset(h, 0xFF, n * sizeof(float));
  float *d = dev_upload(op, h, n);
  free(h);
  return d;
}

static float *dev_download(const char *op, const float *d, size_t n) {
  float *h = host_alloc(n);
  if (n && dev->copy_to_host(h, d, n * sizeof(float)) != 0) infra_fail(op, "copy_to_host");
  return h;
}

static void dev_set(const char *op, float *d, const float *host, size_t n) {
  if (n && dev->copy_to_device(d, host, n * sizeof(float)) != 0) infra_fail(op, "copy_to_device");
}

/* ---- linear ------------------------------------------------------------------------------------- */

static void check_linear(int M, int K, int N, int with_bias, int with_din, int timed) {
  if (!selected("linear")) return;
  char shape[96];
  snprintf(shape, sizeof shape, "M=%d K=%d N=%d%s%s", M, K, N, with_bias ? "" : " no-bias", with_din ? "" : " no-d_in");
  const size_t nin = (size_t)M * K, nw = (size_t)N * K, nout = (size_t)M * N;
  float *in = host_random(nin, 1.0f, 0.0f), *w = host_random(nw, 1.0f / sqrtf((float)K), 0.0f);
  float *bias = host_random((size_t)N, 0.5f, 0.0f);
  float *d_out = host_random(nout, 1.0f, 0.0f);
  float *dw0 = host_random(nw, 1.0f, 0.0f), *db0 = host_random((size_t)N, 1.0f, 0.0f);

  /* forward */
  float *out_cpu = host_alloc(nout);
  double t0 = now_us();
  k_linear_forward(out_cpu, in, w, with_bias ? bias : NULL, M, K, N);
  double cpu_fwd = now_us() - t0;
  float *in_dev = dev_upload("linear_forward", in, nin), *w_dev = dev_upload("linear_forward", w, nw);
  float *bias_dev = dev_upload("linear_forward", bias, (size_t)N);
  float *out_dev = dev_poison("linear_forward", nout);
  dev->linear_forward(out_dev, in_dev, w_dev, with_bias ? bias_dev : NULL, M, K, N);
  if (op_ok("linear_forward", shape)) {
    float *got = dev_download("linear_forward", out_dev, nout);
    compare("linear_forward", shape, got, out_cpu, nout, 1e-5);
    free(got);
    if (timed)
      TIME_OP("linear_forward", shape, cpu_fwd,
              dev->linear_forward(out_dev, in_dev, w_dev, with_bias ? bias_dev : NULL, M, K, N));
  }

  /* backward: d_in overwritten, d_weight and d_bias accumulated onto known values */
  const size_t nd_in = (size_t)M * K;
  float *din_cpu = with_din ? host_alloc(nd_in) : NULL;
  float *dw_cpu = host_copy(dw0, nw), *db_cpu = host_copy(db0, (size_t)N);
  t0 = now_us();
  k_linear_backward(din_cpu, dw_cpu, with_bias ? db_cpu : NULL, d_out, in, w, M, K, N);
  double cpu_bwd = now_us() - t0;
  float *dout_dev = dev_upload("linear_backward", d_out, nout);
  float *din_dev = dev_poison("linear_backward", nd_in);
  float *dw_dev = dev_upload("linear_backward", dw0, nw), *db_dev = dev_upload("linear_backward", db0, (size_t)N);
  dev->linear_backward(with_din ? din_dev : NULL, dw_dev, with_bias ? db_dev : NULL, dout_dev, in_dev, w_dev, M, K, N);
  if (op_ok("linear_backward", shape)) {
    char what[128];
    float *dw_got = dev_download("linear_backward", dw_dev, nw);
    float *db_got = dev_download("linear_backward", db_dev, (size_t)N);
    if (with_din) {
      float *got = dev_download("linear_backward", din_dev, nd_in);
      snprintf(what, sizeof what, "%s d_in", shape);
      compare("linear_backward", what, got, din_cpu, nd_in, 1e-5);
      free(got);
    }
    snprintf(what, sizeof what, "%s d_weight", shape);
    compare("linear_backward", what, dw_got, dw_cpu, nw, 1e-5);
    snprintf(what, sizeof what, "%s d_bias%s", shape, with_bias ? "" : "(untouched)");
    /* without a bias gradient the buffer must keep its known values */
    compare("linear_backward", what, db_got, with_bias ? db_cpu : db0, (size_t)N, 1e-5);
    /* determinism of the accumulated gradients */
    dev_set("linear_backward", dw_dev, dw0, nw);
    dev_set("linear_backward", db_dev, db0, (size_t)N);
    dev->linear_backward(with_din ? din_dev : NULL, dw_dev, with_bias ? db_dev : NULL, dout_dev, in_dev, w_dev, M, K,
                         N);
    if (op_ok("linear_backward", shape)) {
      float *dw2 = dev_download("linear_backward", dw_dev, nw),
            *db2 = dev_download("linear_backward", db_dev, (size_t)N);
      snprintf(what, sizeof what, "%s d_weight", shape);
      compare_bits("linear_backward", what, dw2, dw_got, nw * sizeof(float));
      snprintf(what, sizeof what, "%s d_bias", shape);
      compare_bits("linear_backward", what, db2, db_got, (size_t)N * sizeof(float));
      free(dw2);
      free(db2);
    }
    free(dw_got);
    free(db_got);
    if (timed)
      TIME_OP("linear_backward", shape, cpu_bwd,
              dev->linear_backward(with_din ? din_dev : NULL, dw_dev, with_bias ? db_dev : NULL, dout_dev, in_dev,
                                   w_dev, M, K, N));
  }
  dev->free(in_dev);
  dev->free(w_dev);
  dev->free(bias_dev);
  dev->free(out_dev);
  dev->free(dout_dev);
  dev->free(din_dev);
  dev->free(dw_dev);
  dev->free(db_dev);
  free(in);
  free(w);
  free(bias);
  free(d_out);
  free(dw0);
  free(db0);
  free(out_cpu);
  free(din_cpu);
  free(dw_cpu);
  free(db_cpu);
}

/* ---- layernorm + modulate ---------------------------------------------------------------------- */

/* Conditioning rows are [B, 6D] (the adaLN output); shift and scale are read in place at column
 * offsets 3D and 4D with row stride 6D, as the model does. */
static void check_layernorm(int B, int N, int D, int timed) {
  if (!selected("layernorm")) return;
  char shape[96];
  snprintf(shape, sizeof shape, "B=%d N=%d D=%d", B, N, D);
  const int stride = 6 * D;
  const size_t nx = (size_t)B * N * D, nrows = (size_t)B * N, ncond = (size_t)B * stride;
  float *x = host_random(nx, 2.0f, 0.5f), *cond = host_random(ncond, 0.3f, 0.0f);
  float *out_cpu = host_alloc(nx), *mean_cpu = host_alloc(nrows), *rstd_cpu = host_alloc(nrows);
  double t0 = now_us();
  k_layernorm_modulate_forward(out_cpu, mean_cpu, rstd_cpu, x, cond + 3 * D, cond + 4 * D, stride, B, N, D, 1e-6f);
  double cpu_fwd = now_us() - t0;

  float *x_dev = dev_upload("layernorm_forward", x, nx), *cond_dev = dev_upload("layernorm_forward", cond, ncond);
  float *out_dev = dev_poison("layernorm_forward", nx), *mean_dev = dev_poison("layernorm_forward", nrows);
  float *rstd_dev = dev_poison("layernorm_forward", nrows);
  dev->layernorm_modulate_forward(out_dev, mean_dev, rstd_dev, x_dev, cond_dev + 3 * D, cond_dev + 4 * D, stride, B, N,
                                  D, 1e-6f);
  if (op_ok("layernorm_forward", shape)) {
    char what[128];
    float *got = dev_download("layernorm_forward", out_dev, nx);
    snprintf(what, sizeof what, "%s out", shape);
    compare("layernorm_forward", what, got, out_cpu, nx, 1e-5);
    free(got);
    got = dev_download("layernorm_forward", mean_dev, nrows);
    snprintf(what, sizeof what, "%s mean", shape);
    compare("layernorm_forward", what, got, mean_cpu, nrows, 1e-5);
    free(got);
    got = dev_download("layernorm_forward", rstd_dev, nrows);
    snprintf(what, sizeof what, "%s rstd", shape);
    compare("layernorm_forward", what, got, rstd_cpu, nrows, 1e-5);
    free(got);
    if (timed)
      TIME_OP("layernorm_forward", shape, cpu_fwd,
              dev->layernorm_modulate_forward(out_dev, mean_dev, rstd_dev, x_dev, cond_dev + 3 * D, cond_dev + 4 * D,
                                              stride, B, N, D, 1e-6f));
  }

  /* backward: d_x accumulates; d_shift/d_scale accumulate into a [B, 6D] gradient buffer whose other
   * columns must stay untouched. The saved statistics are the CPU's (the same input on both sides). */
  float *d_out = host_random(nx, 1.0f, 0.0f), *dx0 = host_random(nx, 1.0f, 0.0f);
  float *dcond0 = host_random(ncond, 1.0f, 0.0f);
  float *dx_cpu = host_copy(dx0, nx), *dcond_cpu = host_copy(dcond0, ncond);
  t0 = now_us();
  k_layernorm_modulate_backward(dx_cpu, dcond_cpu + 3 * D, dcond_cpu + 4 * D, d_out, x, mean_cpu, rstd_cpu,
                                cond + 4 * D, stride, B, N, D);
  double cpu_bwd = now_us() - t0;
  float *dout_dev = dev_upload("layernorm_backward", d_out, nx), *dx_dev = dev_upload("layernorm_backward", dx0, nx);
  float *dcond_dev = dev_upload("layernorm_backward", dcond0, ncond);
  dev_set("layernorm_backward", mean_dev, mean_cpu, nrows);
  dev_set("layernorm_backward", rstd_dev, rstd_cpu, nrows);
  dev->layernorm_modulate_backward(dx_dev, dcond_dev + 3 * D, dcond_dev + 4 * D, dout_dev, x_dev, mean_dev, rstd_dev,
                                   cond_dev + 4 * D, stride, B, N, D);
  if (op_ok("layernorm_backward", shape)) {
    char what[128];
    float *dx_got = dev_download("layernorm_backward", dx_dev, nx);
    float *dcond_got = dev_download("layernorm_backward", dcond_dev, ncond);
    snprintf(what, sizeof what, "%s d_x", shape);
    compare("layernorm_backward", what, dx_got, dx_cpu, nx, 1e-5);
    snprintf(what, sizeof what, "%s d_shift,d_scale", shape);
    compare("layernorm_backward", what, dcond_got, dcond_cpu, ncond, 1e-5);
    dev_set("layernorm_backward", dx_dev, dx0, nx);
    dev_set("layernorm_backward", dcond_dev, dcond0, ncond);
    dev->layernorm_modulate_backward(dx_dev, dcond_dev + 3 * D, dcond_dev + 4 * D, dout_dev, x_dev, mean_dev, rstd_dev,
                                     cond_dev + 4 * D, stride, B, N, D);
    if (op_ok("layernorm_backward", shape)) {
      float *again = dev_download("layernorm_backward", dcond_dev, ncond);
      snprintf(what, sizeof what, "%s d_shift,d_scale", shape);
      compare_bits("layernorm_backward", what, again, dcond_got, ncond * sizeof(float));
      free(again);
    }
    free(dx_got);
    free(dcond_got);
    if (timed)
      TIME_OP("layernorm_backward", shape, cpu_bwd,
              dev->layernorm_modulate_backward(dx_dev, dcond_dev + 3 * D, dcond_dev + 4 * D, dout_dev, x_dev, mean_dev,
                                               rstd_dev, cond_dev + 4 * D, stride, B, N, D));
  }
  dev->free(x_dev);
  dev->free(cond_dev);
  dev->free(out_dev);
  dev->free(mean_dev);
  dev->free(rstd_dev);
  dev->free(dout_dev);
  dev->free(dx_dev);
  dev->free(dcond_dev);
  free(x);
  free(cond);
  free(out_cpu);
  free(mean_cpu);
  free(rstd_cpu);
  free(d_out);
  free(dx0);
  free(dcond0);
  free(dx_cpu);
  free(dcond_cpu);
}

/* ---- element-wise activations ------------------------------------------------------------------- */

typedef void (*unary_fn)(float *out, const float *in, size_t n);
typedef void (*unary_bwd_fn)(float *d_in, const float *d_out, const float *in, size_t n);

/* GELU and SiLU: forward into a fresh buffer and in place (out == in is allowed), backward likewise
 * (d_in == d_out allowed). GELU is written to give the CPU's bits (limit 1e-6); SiLU goes through
 * CUDA's expf (2 ulp) instead of glibc's (limit 1e-5). */
static void check_activation(const char *name, unary_fn cpu_fwd, unary_fn gpu_fwd, unary_bwd_fn cpu_bwd,
                             unary_bwd_fn gpu_bwd, size_t n, int in_place, int timed) {
  const double limit = strcmp(name, "silu") == 0 ? 1e-5 : 1e-6;
  if (!selected(name)) return;
  char shape[96], op[64];
  snprintf(shape, sizeof shape, "n=%zu%s", n, in_place ? " in-place" : "");
  float *in = host_random(n, 3.0f, 0.0f), *d_out = host_random(n, 1.0f, 0.0f);
  float *out_cpu = host_alloc(n), *din_cpu = host_alloc(n);
  double t0 = now_us();
  cpu_fwd(out_cpu, in, n);
  double cpu_f = now_us() - t0;
  t0 = now_us();
  cpu_bwd(din_cpu, d_out, in, n);
  double cpu_b = now_us() - t0;

  snprintf(op, sizeof op, "%s_forward", name);
  float *in_dev = dev_upload(op, in, n);
  float *out_dev = in_place ? in_dev : dev_poison(op, n);
  gpu_fwd(out_dev, in_dev, n);
  if (op_ok(op, shape)) {
    float *got = dev_download(op, out_dev, n);
    compare(op, shape, got, out_cpu, n, limit);
    free(got);
    if (timed && !in_place) TIME_OP(op, shape, cpu_f, gpu_fwd(out_dev, in_dev, n));
  }
  if (in_place) dev_set(op, in_dev, in, n);

  snprintf(op, sizeof op, "%s_backward", name);
  float *dout_dev = dev_upload(op, d_out, n);
  float *din_dev = in_place ? dout_dev : dev_poison(op, n);
  gpu_bwd(din_dev, dout_dev, in_dev, n);
  if (op_ok(op, shape)) {
    float *got = dev_download(op, din_dev, n);
    compare(op, shape, got, din_cpu, n, limit);
    free(got);
    if (timed && !in_place) TIME_OP(op, shape, cpu_b, gpu_bwd(din_dev, dout_dev, in_dev, n));
  }
  dev->free(in_dev);
  if (!in_place) dev->free(out_dev);
  dev->free(dout_dev);
  if (!in_place) dev->free(din_dev);
  free(in);
  free(d_out);
  free(out_cpu);
  free(din_cpu);
}

/* ---- gated residual --------------------------------------------------------------------------- */

static void check_gated_residual(int B, int N, int D, int alias, int timed) {
  if (!selected("gated_residual")) return;
  char shape[96];
  snprintf(shape, sizeof shape, "B=%d N=%d D=%d%s", B, N, D, alias ? " out=x" : "");
  const int stride = 6 * D;
  const size_t n = (size_t)B * N * D, ncond = (size_t)B * stride;
  float *x = host_random(n, 1.0f, 0.0f), *f = host_random(n, 1.0f, 0.0f), *cond = host_random(ncond, 0.5f, 0.0f);
  float *out_cpu = host_alloc(n);
  double t0 = now_us();
  k_gated_residual_forward(out_cpu, x, f, cond + 2 * D, stride, B, N, D);
  double cpu_f = now_us() - t0;
  float *x_dev = dev_upload("gated_residual_forward", x, n), *f_dev = dev_upload("gated_residual_forward", f, n);
  float *cond_dev = dev_upload("gated_residual_forward", cond, ncond);
  float *out_dev = alias ? x_dev : dev_poison("gated_residual_forward", n);
  dev->gated_residual_forward(out_dev, x_dev, f_dev, cond_dev + 2 * D, stride, B, N, D);
  if (op_ok("gated_residual_forward", shape)) {
    float *got = dev_download("gated_residual_forward", out_dev, n);
    compare("gated_residual_forward", shape, got, out_cpu, n, 1e-6);
    free(got);
    if (timed && !alias)
      TIME_OP("gated_residual_forward", shape, cpu_f,
              dev->gated_residual_forward(out_dev, x_dev, f_dev, cond_dev + 2 * D, stride, B, N, D));
  }

  if (!alias) {
    float *d_out = host_random(n, 1.0f, 0.0f), *dcond0 = host_random(ncond, 1.0f, 0.0f);
    float *df_cpu = host_alloc(n), *dcond_cpu = host_copy(dcond0, ncond);
    t0 = now_us();
    k_gated_residual_backward(df_cpu, dcond_cpu + 2 * D, d_out, f, cond + 2 * D, stride, B, N, D);
    double cpu_b = now_us() - t0;
    float *dout_dev = dev_upload("gated_residual_backward", d_out, n);
    float *df_dev = dev_poison("gated_residual_backward", n);
    float *dcond_dev = dev_upload("gated_residual_backward", dcond0, ncond);
    dev->gated_residual_backward(df_dev, dcond_dev + 2 * D, dout_dev, f_dev, cond_dev + 2 * D, stride, B, N, D);
    if (op_ok("gated_residual_backward", shape)) {
      char what[128];
      float *got = dev_download("gated_residual_backward", df_dev, n);
      float *dc_got = dev_download("gated_residual_backward", dcond_dev, ncond);
      snprintf(what, sizeof what, "%s d_f", shape);
      compare("gated_residual_backward", what, got, df_cpu, n, 1e-6);
      snprintf(what, sizeof what, "%s d_gate", shape);
      compare("gated_residual_backward", what, dc_got, dcond_cpu, ncond, 1e-5);
      dev_set("gated_residual_backward", dcond_dev, dcond0, ncond);
      dev->gated_residual_backward(df_dev, dcond_dev + 2 * D, dout_dev, f_dev, cond_dev + 2 * D, stride, B, N, D);
      if (op_ok("gated_residual_backward", shape)) {
        float *again = dev_download("gated_residual_backward", dcond_dev, ncond);
        compare_bits("gated_residual_backward", what, again, dc_got, ncond * sizeof(float));
        free(again);
      }
      free(got);
      free(dc_got);
      if (timed)
        TIME_OP("gated_residual_backward", shape, cpu_b,
                dev->gated_residual_backward(df_dev, dcond_dev + 2 * D, dout_dev, f_dev, cond_dev + 2 * D, stride, B, N,
                                             D));
    }
    dev->free(dout_dev);
    dev->free(df_dev);
    dev->free(dcond_dev);
    free(d_out);
    free(dcond0);
    free(df_cpu);
    free(dcond_cpu);
  }
  dev->free(x_dev);
  dev->free(f_dev);
  dev->free(cond_dev);
  if (!alias) dev->free(out_dev);
  free(x);
  free(f);
  free(cond);
  free(out_cpu);
}

/* ---- add_rows_broadcast, add, scale ------------------------------------------------------------ */

static void check_adds(int B, int N, int D, int timed) {
  char shape[96];
  snprintf(shape, sizeof shape, "B=%d N=%d D=%d", B, N, D);
  const size_t n = (size_t)B * N * D;
  if (selected("add_rows_broadcast")) {
    float *x = host_random(n, 1.0f, 0.0f), *rows = host_random((size_t)N * D, 1.0f, 0.0f);
    float *want = host_copy(x, n);
    double t0 = now_us();
    k_add_rows_broadcast(want, rows, B, N, D);
    double cpu = now_us() - t0;
    float *x_dev = dev_upload("add_rows_broadcast", x, n),
          *rows_dev = dev_upload("add_rows_broadcast", rows, (size_t)N * D);
    dev->add_rows_broadcast(x_dev, rows_dev, B, N, D);
    if (op_ok("add_rows_broadcast", shape)) {
      float *got = dev_download("add_rows_broadcast", x_dev, n);
      compare("add_rows_broadcast", shape, got, want, n, 0.0);
      free(got);
      if (timed) TIME_OP("add_rows_broadcast", shape, cpu, dev->add_rows_broadcast(x_dev, rows_dev, B, N, D));
    }
    dev->free(x_dev);
    dev->free(rows_dev);
    free(x);
    free(rows);
    free(want);
  }
  if (selected("add")) {
    for (int alias = 0; alias < 2; alias++) {
      char s2[112];
      snprintf(s2, sizeof s2, "n=%zu%s", n, alias ? " out=a" : "");
      float *a = host_random(n, 1.0f, 0.0f), *b = host_random(n, 1.0f, 0.0f), *want = host_alloc(n);
      double t0 = now_us();
      k_add(want, a, b, n);
      double cpu = now_us() - t0;
      float *a_dev = dev_upload("add", a, n), *b_dev = dev_upload("add", b, n);
      float *out_dev = alias ? a_dev : dev_poison("add", n);
      dev->add(out_dev, a_dev, b_dev, n);
      if (op_ok("add", s2)) {
        float *got = dev_download("add", out_dev, n);
        compare("add", s2, got, want, n, 0.0);
        free(got);
        if (timed && !alias) TIME_OP("add", s2, cpu, dev->add(out_dev, a_dev, b_dev, n));
      }
      dev->free(a_dev);
      dev->free(b_dev);
      if (!alias) dev->free(out_dev);
      free(a);
      free(b);
      free(want);
    }
  }
  if (selected("scale")) {
    char s2[112];
    snprintf(s2, sizeof s2, "n=%zu", n);
    float *x = host_random(n, 1.0f, 0.0f), *want = host_copy(x, n);
    double t0 = now_us();
    k_scale(want, 0.37f, n);
    double cpu = now_us() - t0;
    float *x_dev = dev_upload("scale", x, n);
    dev->scale(x_dev, 0.37f, n);
    if (op_ok("scale", s2)) {
      float *got = dev_download("scale", x_dev, n);
      compare("scale", s2, got, want, n, 0.0);
      free(got);
      if (timed) TIME_OP("scale", s2, cpu, dev->scale(x_dev, 1.0f, n));
    }
    dev->free(x_dev);
    free(x);
    free(want);
  }
}

/* ---- attention ----------------------------------------------------------------------------------- */

static void check_attention(int B, int N, int D, int H, int timed) {
  if (!selected("attention")) return;
  char shape[96];
  snprintf(shape, sizeof shape, "B=%d N=%d D=%d H=%d", B, N, D, H);
  const size_t nqkv = (size_t)B * N * 3 * D, nout = (size_t)B * N * D;
  const size_t nprobs_cpu = (size_t)B * H * N * N;
  const size_t nprobs_dev = dev->attention_probs_floats(B, N, H);
  /* this rung stores the probabilities like the CPU; a backend that stores something else (the
   * flash-style log-sum-exp) is checked through out and d_qkv only */
  const int probs_comparable = nprobs_dev == nprobs_cpu;
  float *qkv = host_random(nqkv, 1.0f, 0.0f);
  float *out_cpu = host_alloc(nout), *probs_cpu = host_alloc(nprobs_cpu);
  double t0 = now_us();
  k_attention_forward(out_cpu, probs_cpu, qkv, B, N, D, H);
  double cpu_f = now_us() - t0;
  float *qkv_dev = dev_upload("attention_forward", qkv, nqkv);
  float *out_dev = dev_poison("attention_forward", nout), *probs_dev = dev_poison("attention_forward", nprobs_dev);
  dev->attention_forward(out_dev, probs_dev, qkv_dev, B, N, D, H);
  /* Forward limit 1e-5: q·kᵀ sums dh products, softmax uses the CPU's own exp approximation, P·V
   * sums N products; only summation order differs. */
  if (op_ok("attention_forward", shape)) {
    char what[128];
    float *got = dev_download("attention_forward", out_dev, nout);
    snprintf(what, sizeof what, "%s out", shape);
    compare("attention_forward", what, got, out_cpu, nout, 1e-5);
    free(got);
    if (probs_comparable) {
      got = dev_download("attention_forward", probs_dev, nprobs_cpu);
      snprintf(what, sizeof what, "%s probs", shape);
      compare("attention_forward", what, got, probs_cpu, nprobs_cpu, 1e-5);
      free(got);
    }
    if (timed)
      TIME_OP("attention_forward", shape, cpu_f, dev->attention_forward(out_dev, probs_dev, qkv_dev, B, N, D, H));
  }

  float *d_out = host_random(nout, 1.0f, 0.0f), *dqkv_cpu = host_alloc(nqkv);
  float *scratch_cpu = host_alloc(k_attention_scratch_floats(N));
  t0 = now_us();
  k_attention_backward(dqkv_cpu, d_out, qkv, probs_cpu, scratch_cpu, B, N, D, H);
  double cpu_b = now_us() - t0;
  float *dout_dev = dev_upload("attention_backward", d_out, nout), *dqkv_dev = dev_poison("attention_backward", nqkv);
  float *scratch_dev = dev_poison("attention_backward", dev->attention_scratch_floats(N));
  /* Feed the CPU's probabilities so the backward is checked on its own; a backend that stores
   * something else gets its own forward's output. */
  if (probs_comparable) dev_set("attention_backward", probs_dev, probs_cpu, nprobs_cpu);
  dev->attention_backward(dqkv_dev, dout_dev, qkv_dev, probs_dev, scratch_dev, B, N, D, H);
  /* Backward limit 1e-4: dS = P ∘ (dP − rowsum(P ∘ dP)) subtracts two nearly equal sums of N terms
   * (the row's dot product is close to every dP), so the fp32 summation-order differences of the
   * GEMMs (~1e-7 relative to |dP|) are amplified relative to |dS|, then summed again over N in dQ
   * and dK. Bugs give errors of order 1. */
  if (op_ok("attention_backward", shape)) {
    char what[128];
    float *got = dev_download("attention_backward", dqkv_dev, nqkv);
    snprintf(what, sizeof what, "%s d_qkv", shape);
    compare("attention_backward", what, got, dqkv_cpu, nqkv, 1e-4);
    free(got);
    if (timed)
      TIME_OP("attention_backward", shape, cpu_b,
              dev->attention_backward(dqkv_dev, dout_dev, qkv_dev, probs_dev, scratch_dev, B, N, D, H));
  }
  dev->free(qkv_dev);
  dev->free(out_dev);
  dev->free(probs_dev);
  dev->free(dout_dev);
  dev->free(dqkv_dev);
  dev->free(scratch_dev);
  free(qkv);
  free(out_cpu);
  free(probs_cpu);
  free(d_out);
  free(dqkv_cpu);
  free(scratch_cpu);
}

/* ---- patches ---------------------------------------------------------------------------------------- */

static void check_patchify(int B, int C, int T, int H, int W, int p, int timed) {
  char shape[96];
  snprintf(shape, sizeof shape, "B=%d C=%d T=%d H=%d W=%d p=%d", B, C, T, H, W, p);
  const size_t n = (size_t)B * C * T * H * W; /* H, W multiples of p: tokens hold every value */
  if (selected("patchify")) {
    float *x = host_random(n, 1.0f, 0.0f), *want = host_alloc(n);
    double t0 = now_us();
    k_patchify(want, x, B, C, T, H, W, p);
    double cpu = now_us() - t0;
    float *x_dev = dev_upload("patchify", x, n), *tok_dev = dev_poison("patchify", n);
    dev->patchify(tok_dev, x_dev, B, C, T, H, W, p);
    if (op_ok("patchify", shape)) {
      float *got = dev_download("patchify", tok_dev, n);
      compare("patchify", shape, got, want, n, 0.0);
      free(got);
      if (timed) TIME_OP("patchify", shape, cpu, dev->patchify(tok_dev, x_dev, B, C, T, H, W, p));
    }
    dev->free(x_dev);
    dev->free(tok_dev);
    free(x);
    free(want);
  }
  if (selected("unpatchify")) {
    float *tok = host_random(n, 1.0f, 0.0f), *want = host_alloc(n);
    double t0 = now_us();
    k_unpatchify(want, tok, B, C, T, H, W, p);
    double cpu = now_us() - t0;
    float *tok_dev = dev_upload("unpatchify", tok, n), *x_dev = dev_poison("unpatchify", n);
    dev->unpatchify(x_dev, tok_dev, B, C, T, H, W, p);
    if (op_ok("unpatchify", shape)) {
      float *got = dev_download("unpatchify", x_dev, n);
      compare("unpatchify", shape, got, want, n, 0.0);
      free(got);
      if (timed) TIME_OP("unpatchify", shape, cpu, dev->unpatchify(x_dev, tok_dev, B, C, T, H, W, p));
    }
    dev->free(x_dev);
    dev->free(tok_dev);
    free(tok);
    free(want);
  }
}

/* ---- tables and embeddings ----------------------------------------------------------------------- */

static void check_sincos(int n, int d) {
  if (!selected("sincos_table")) return;
  char shape[96];
  snprintf(shape, sizeof shape, "n=%d d=%d", n, d);
  double *pos = malloc((size_t)n * sizeof(double));
  for (int i = 0; i < n; i++)
    pos[i] = (i % 3 == 0) ? 1000.0 * i / (double)n : 4.0 * i + 1.5; /* 1000 t and m j + (m-1)/2 */
  float *want = host_alloc((size_t)n * d);
  k_sincos_table(want, pos, n, d);
  float *out_dev = dev_poison("sincos_table", (size_t)n * d);
  dev->sincos_table(out_dev, pos, n, d);
  if (op_ok("sincos_table", shape)) {
    float *got = dev_download("sincos_table", out_dev, (size_t)n * d);
    compare("sincos_table", shape, got, want, (size_t)n * d, 0.0);
    free(got);
  }
  dev->free(out_dev);
  free(pos);
  free(want);
}

static void check_embedding(int B, int D, int rows) {
  char shape[96];
  snprintf(shape, sizeof shape, "B=%d D=%d rows=%d", B, D, rows);
  int *index = malloc((size_t)B * sizeof(int));
  for (int b = 0; b < B; b++) index[b] = (b * 5 + 3) % rows;
  if (B > 2) index[B - 1] = index[0]; /* a repeated row: the backward must add both, in order */
  const size_t ntab = (size_t)rows * D, nrow = (size_t)B * D;
  if (selected("embedding_add")) {
    float *table = host_random(ntab, 1.0f, 0.0f), *out0 = host_random(nrow, 1.0f, 0.0f), *want = host_copy(out0, nrow);
    k_embedding_add(want, table, index, B, D);
    float *tab_dev = dev_upload("embedding_add", table, ntab), *out_dev = dev_upload("embedding_add", out0, nrow);
    dev->embedding_add(out_dev, tab_dev, index, B, D);
    if (op_ok("embedding_add", shape)) {
      float *got = dev_download("embedding_add", out_dev, nrow);
      compare("embedding_add", shape, got, want, nrow, 0.0);
      free(got);
    }
    dev->free(tab_dev);
    dev->free(out_dev);
    free(table);
    free(out0);
    free(want);
  }
  if (selected("embedding_backward")) {
    float *dtab0 = host_random(ntab, 1.0f, 0.0f), *d_out = host_random(nrow, 1.0f, 0.0f),
          *want = host_copy(dtab0, ntab);
    k_embedding_backward(want, d_out, index, B, D);
    float *dtab_dev = dev_upload("embedding_backward", dtab0, ntab),
          *dout_dev = dev_upload("embedding_backward", d_out, nrow);
    dev->embedding_backward(dtab_dev, dout_dev, index, B, D);
    if (op_ok("embedding_backward", shape)) {
      float *got = dev_download("embedding_backward", dtab_dev, ntab);
      compare("embedding_backward", shape, got, want, ntab, 0.0);
      free(got);
    }
    dev->free(dtab_dev);
    dev->free(dout_dev);
    free(dtab0);
    free(d_out);
    free(want);
  }
  free(index);
}

/* ---- loss, optimizer, norms ----------------------------------------------------------------------- */

static void check_mse(size_t n, int timed) {
  if (!selected("mse_loss")) return;
  char shape[96];
  snprintf(shape, sizeof shape, "n=%zu", n);
  float *pred = host_random(n, 1.0f, 0.1f), *target = host_random(n, 1.0f, 0.0f), *grad_cpu = host_alloc(n);
  double t0 = now_us();
  double loss_cpu = k_mse_loss(grad_cpu, pred, target, n, 0.75f);
  double cpu = now_us() - t0;
  float *pred_dev = dev_upload("mse_loss", pred, n), *target_dev = dev_upload("mse_loss", target, n);
  float *grad_dev = dev_poison("mse_loss", n);
  double loss = dev->mse_loss(grad_dev, pred_dev, target_dev, n, 0.75f);
  if (op_ok("mse_loss", shape)) {
    char what[128];
    /* double accumulation on both sides: only summation order differs (~1e-16 n) */
    snprintf(what, sizeof what, "%s loss", shape);
    compare_scalar("mse_loss", what, loss, loss_cpu, 1e-9);
    float *got = dev_download("mse_loss", grad_dev, n);
    snprintf(what, sizeof what, "%s d_pred", shape);
    compare("mse_loss", what, got, grad_cpu, n, 1e-6);
    free(got);
    double again = dev->mse_loss(grad_dev, pred_dev, target_dev, n, 0.75f);
    if (op_ok("mse_loss", shape)) {
      snprintf(what, sizeof what, "%s loss", shape);
      compare_bits("mse_loss", what, &again, &loss, sizeof loss);
    }
    if (timed) TIME_OP("mse_loss", shape, cpu, (void)dev->mse_loss(grad_dev, pred_dev, target_dev, n, 0.75f));
  }
  dev->free(pred_dev);
  dev->free(target_dev);
  dev->free(grad_dev);
  free(pred);
  free(target);
  free(grad_cpu);
}

static void check_sum_squares(size_t n, int timed) {
  if (!selected("sum_squares")) return;
  char shape[96];
  snprintf(shape, sizeof shape, "n=%zu", n);
  float *x = host_random(n, 0.01f, 0.0f);
  double t0 = now_us();
  double want = k_sum_squares(x, n);
  double cpu = now_us() - t0;
  float *x_dev = dev_upload("sum_squares", x, n);
  double got = dev->sum_squares(x_dev, n);
  if (op_ok("sum_squares", shape)) {
    compare_scalar("sum_squares", shape, got, want, 1e-9);
    double again = dev->sum_squares(x_dev, n);
    if (op_ok("sum_squares", shape)) compare_bits("sum_squares", shape, &again, &got, sizeof got);
    if (timed) TIME_OP("sum_squares", shape, cpu, (void)dev->sum_squares(x_dev, n));
  }
  dev->free(x_dev);
  free(x);
}

static void check_adamw(size_t n, int timed) {
  if (!selected("adamw")) return;
  char shape[96];
  snprintf(shape, sizeof shape, "n=%zu step=10", n);
  float *param = host_random(n, 0.05f, 0.0f), *grad = host_random(n, 0.01f, 0.0f), *m = host_random(n, 0.001f, 0.0f);
  float *v = host_random(n, 1.0f, 0.0f);
  for (size_t i = 0; i < n; i++) v[i] = v[i] * v[i] * 1e-5f; /* second moments are >= 0 */
  float *p_cpu = host_copy(param, n), *m_cpu = host_copy(m, n), *v_cpu = host_copy(v, n);
  double t0 = now_us();
  k_adamw_step(p_cpu, grad, m_cpu, v_cpu, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 10);
  double cpu = now_us() - t0;
  float *p_dev = dev_upload("adamw_step", param, n), *g_dev = dev_upload("adamw_step", grad, n);
  float *m_dev = dev_upload("adamw_step", m, n), *v_dev = dev_upload("adamw_step", v, n);
  dev->adamw_step(p_dev, g_dev, m_dev, v_dev, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 10);
  /* elementwise, written to give the CPU's bits: limit 1e-6 */
  if (op_ok("adamw_step", shape)) {
    char what[128];
    float *got = dev_download("adamw_step", p_dev, n);
    snprintf(what, sizeof what, "%s param", shape);
    compare("adamw_step", what, got, p_cpu, n, 1e-6);
    free(got);
    got = dev_download("adamw_step", m_dev, n);
    snprintf(what, sizeof what, "%s m", shape);
    compare("adamw_step", what, got, m_cpu, n, 1e-6);
    free(got);
    got = dev_download("adamw_step", v_dev, n);
    snprintf(what, sizeof what, "%s v", shape);
    compare("adamw_step", what, got, v_cpu, n, 1e-6);
    free(got);
    if (timed)
      TIME_OP("adamw_step", shape, cpu,
              dev->adamw_step(p_dev, g_dev, m_dev, v_dev, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 10));
  }
  dev->free(p_dev);
  dev->free(g_dev);
  dev->free(m_dev);
  dev->free(v_dev);
  free(param);
  free(grad);
  free(m);
  free(v);
  free(p_cpu);
  free(m_cpu);
  free(v_cpu);
}

/* ---- frame-axis operators and combine3 ----------------------------------------------------------- */

typedef void (*frames_fn)(float *out, const float *in, int bc, int T, int plane);

/* Built to match the CPU's bits (double pair sums, data movement): limit 0. */
static void check_frames_op(const char *name, frames_fn cpu_fn, frames_fn dev_fn, int spread, int bc, int T, int plane,
                            int timed) {
  if (!selected(name)) return;
  char shape[96];
  snprintf(shape, sizeof shape, "bc=%d T=%d plane=%d", bc, T, plane);
  const size_t nin = (size_t)bc * T * plane;
  const size_t nout = spread ? 2 * nin : (size_t)bc * (T / 2) * plane;
  float *in = host_random(nin, 1.0f, 0.0f), *want = host_alloc(nout);
  double t0 = now_us();
  cpu_fn(want, in, bc, T, plane);
  double cpu = now_us() - t0;
  float *in_dev = dev_upload(name, in, nin), *out_dev = dev_poison(name, nout);
  dev_fn(out_dev, in_dev, bc, T, plane);
  if (op_ok(name, shape)) {
    float *got = dev_download(name, out_dev, nout);
    compare(name, shape, got, want, nout, 0.0);
    free(got);
    if (timed) TIME_OP(name, shape, cpu, dev_fn(out_dev, in_dev, bc, T, plane));
  }
  dev->free(in_dev);
  dev->free(out_dev);
  free(in);
  free(want);
}

static void check_frames(int bc, int T, int plane, int timed) {
  check_frames_op("frames_pair_mean", k_frames_pair_mean, dev->frames_pair_mean, 0, bc, T, plane, timed);
  check_frames_op("frames_pair_sum_norm", k_frames_pair_sum_norm, dev->frames_pair_sum_norm, 0, bc, T, plane, timed);
  check_frames_op("frames_pair_diff_norm", k_frames_pair_diff_norm, dev->frames_pair_diff_norm, 0, bc, T, plane, timed);
  check_frames_op("frames_repeat", k_frames_repeat, dev->frames_repeat, 1, bc, T, plane, timed);
  check_frames_op("frames_antisym", k_frames_antisym, dev->frames_antisym, 1, bc, T, plane, timed);
}

/* Variants: 0 all three terms; 1 z NULL (c2 = 0 everywhere); 2 y NULL (c1 = 0) and a clip with
 * c2 = 0; 3 out aliases x. Bit for bit (the contract's evaluation order). */
static void check_combine3(int B, size_t clip_elems, int variant, int timed) {
  if (!selected("combine3")) return;
  static const char *names[] = {"xyz", "z=NULL", "y=NULL", "out=x"};
  char shape[96];
  snprintf(shape, sizeof shape, "B=%d clip=%zu %s", B, clip_elems, names[variant]);
  const size_t n = (size_t)B * clip_elems;
  float *x = host_random(n, 1.0f, 0.0f), *y = host_random(n, 1.0f, 0.0f), *z = host_random(n, 1.0f, 0.0f);
  double *c = malloc((size_t)B * 3 * sizeof(double));
  for (int b = 0; b < B; b++) {
    c[3 * b] = 0.7 + 0.1 * b + 1e-9; /* not representable in float: rounded once */
    c[3 * b + 1] = variant == 2 ? 0.0 : -0.3 * (b + 1) / 3.0;
    c[3 * b + 2] = variant == 1 ? 0.0 : (variant == 2 && b == 0 ? 0.0 : 0.5437 / (b + 1));
  }
  const float *y_arg = variant == 2 ? NULL : y, *z_arg = variant == 1 ? NULL : z;
  float *want = variant == 3 ? host_copy(x, n) : host_alloc(n);
  double t0 = now_us();
  k_combine3_per_clip(want, variant == 3 ? want : x, y_arg, z_arg, c, B, clip_elems);
  double cpu = now_us() - t0;
  float *x_dev = dev_upload("combine3_per_clip", x, n), *y_dev = dev_upload("combine3_per_clip", y, n);
  float *z_dev = dev_upload("combine3_per_clip", z, n);
  float *out_dev = variant == 3 ? x_dev : dev_poison("combine3_per_clip", n);
  dev->combine3_per_clip(out_dev, x_dev, variant == 2 ? NULL : y_dev, variant == 1 ? NULL : z_dev, c, B, clip_elems);
  if (op_ok("combine3_per_clip", shape)) {
    float *got = dev_download("combine3_per_clip", out_dev, n);
    compare("combine3_per_clip", shape, got, want, n, 0.0);
    free(got);
    if (timed && variant == 0)
      TIME_OP("combine3_per_clip", shape, cpu, dev->combine3_per_clip(out_dev, x_dev, y_dev, z_dev, c, B, clip_elems));
  }
  dev->free(x_dev);
  dev->free(y_dev);
  dev->free(z_dev);
  if (variant != 3) dev->free(out_dev);
  free(x);
  free(y);
  free(z);
  free(c);
  free(want);
}

/* ---- random numbers ------------------------------------------------------------------------------ */

static void check_random(size_t n, uint64_t first, int timed) {
  char shape[96];
  const uint64_t key = 0x9E3779B97F4A7C15ull, stream = 0x0123456789ABCDEFull;
  snprintf(shape, sizeof shape, "n=%zu first=%llu", n, (unsigned long long)first);
  for (int normal = 0; normal < 2; normal++) {
    const char *op = normal ? "fill_normal" : "fill_uniform";
    if (!selected(op)) continue;
    float *want = host_alloc(n);
    double t0 = now_us();
    if (normal)
      k_fill_normal(want, n, key, stream, first);
    else
      k_fill_uniform(want, n, key, stream, first);
    double cpu = now_us() - t0;
    float *out_dev = dev_poison(op, n);
    if (normal)
      dev->fill_normal(out_dev, n, key, stream, first);
    else
      dev->fill_uniform(out_dev, n, key, stream, first);
    if (op_ok(op, shape)) {
      float *got = dev_download(op, out_dev, n);
      /* uniforms are integer arithmetic: exact; normals: CUDA's double log/sin/cos may differ from
       * glibc's in the last double bit, which reaches the float only rarely */
      compare(op, shape, got, want, n, normal ? 1e-6 : 0.0);
      free(got);
      if (timed) {
        if (normal)
          TIME_OP(op, shape, cpu, dev->fill_normal(out_dev, n, key, stream, first));
        else
          TIME_OP(op, shape, cpu, dev->fill_uniform(out_dev, n, key, stream, first));
      }
    }
    dev->free(out_dev);
    free(want);
  }
}

/* ---- memory_info -------------------------------------------------------------------------------- */

/* The numbers callers plan memory with: both known, free <= total, and an allocation of 64 MiB
 * lowers the free count (within what other processes may do meanwhile, so only a loose check). */
static void check_memory_info(void) {
  if (!selected("memory_info")) return;
  size_t free0 = 0, total = 0, free1 = 0, total1 = 0;
  int rc = dev->memory_info(&free0, &total);
  int ok = rc == 0 && total > 0 && free0 <= total;
  const size_t bytes = (size_t)64 << 20;
  void *p = ok ? dev->alloc(bytes) : NULL;
  if (p) {
    dev->fill_zero(p, bytes); /* touch it: a CPU page counts as used only once written */
    ok = dev->memory_info(&free1, &total1) == 0 && total1 == total && free1 <= total1;
    dev->free(p);
  } else {
    ok = 0;
  }
  printf("%s memory_info free=%.1f MiB total=%.1f MiB (after a 64 MiB alloc: free=%.1f MiB)\n", ok ? "PASS" : "FAIL",
         free0 / 1048576.0, total / 1048576.0, free1 / 1048576.0);
  if (ok)
    passed++;
  else
    failed++;
  (void)dev->last_error();
}

/* ---- main ---------------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
  const char *lib = NULL;
  int use_cpu = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--lib") && i + 1 < argc)
      lib = argv[++i];
    else if (!strcmp(argv[i], "--only") && i + 1 < argc)
      only = argv[++i];
    else if (!strcmp(argv[i], "--cpu"))
      use_cpu = 1;
    else if (!strcmp(argv[i], "--no-timing"))
      timing_on = 0;
    else if (!strcmp(argv[i], "--quick"))
      quick = 1;
    else {
      fprintf(stderr, "usage: %s [--lib PATH] [--only NAME] [--cpu] [--quick] [--no-timing]\n", argv[0]);
      return 2;
    }
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (use_cpu) {
    dev = tpdiff_cpu_backend();
  } else {
    char err[1024];
    dev = tpdiff_load_cuda_backend(lib, err, sizeof err);
    if (!dev) {
      printf("check_kernels: no GPU backend: %s\n", err);
      return 3;
    }
  }
  printf("backend %s on %s; CPU reference with %d threads\n", dev->name, dev->device, k_num_threads());

  /* cheap and exact first, so a broken build shows on the simplest op; realistic sizes (timed)
   * after the small odd shapes of each op */
  check_memory_info();
  check_random(1001, 3, 0);
  if (!quick) check_random(10000001, 1ull << 33, 1);
  check_adds(2, 17, 12, 0);
  if (!quick) check_adds(2, 2048, 768, 1);
  check_patchify(2, 3, 3, 10, 6, 2, 0);
  if (!quick) check_patchify(4, 3, 16, 64, 64, 4, 1);
  check_sincos(17, 12);
  if (!quick) check_sincos(4096, 768);
  check_embedding(5, 12, 7);
  if (!quick) check_embedding(64, 768, 1001);
  check_frames(3, 5, 35, 0);
  if (!quick) check_frames(12, 16, 4096, 1);
  for (int variant = 0; variant < 4; variant++) check_combine3(3, 1001, variant, 0);
  if (!quick) {
    check_combine3(4, (size_t)3 * 16 * 4096, 0, 1);
    check_combine3(4, (size_t)3 * 16 * 4096, 3, 0);
  }

  const size_t small = 1001, mlp_hidden = (size_t)4096 * 3072, cond = (size_t)64 * 768;
  check_activation("gelu", k_gelu_forward, dev->gelu_forward, k_gelu_backward, dev->gelu_backward, small, 0, 0);
  check_activation("gelu", k_gelu_forward, dev->gelu_forward, k_gelu_backward, dev->gelu_backward, small, 1, 0);
  if (!quick)
    check_activation("gelu", k_gelu_forward, dev->gelu_forward, k_gelu_backward, dev->gelu_backward, mlp_hidden, 0, 1);
  check_activation("silu", k_silu_forward, dev->silu_forward, k_silu_backward, dev->silu_backward, small, 0, 0);
  check_activation("silu", k_silu_forward, dev->silu_forward, k_silu_backward, dev->silu_backward, small, 1, 0);
  if (!quick)
    check_activation("silu", k_silu_forward, dev->silu_forward, k_silu_backward, dev->silu_backward, cond, 0, 1);
  check_gated_residual(2, 17, 12, 0, 0);
  check_gated_residual(2, 17, 12, 1, 0);
  check_gated_residual(3, 5, 33, 0, 0);
  if (!quick) check_gated_residual(2, 2048, 768, 0, 1);
  check_layernorm(2, 17, 12, 0);
  check_layernorm(3, 5, 33, 0);
  if (!quick) check_layernorm(2, 2048, 768, 1);
  check_mse(small, 0);
  if (!quick) check_mse((size_t)4 * 3 * 16 * 64 * 64, 1);
  check_sum_squares(small, 0);
  if (!quick) check_sum_squares(10000003, 1);
  check_adamw(small, 0);
  if (!quick) check_adamw(10000003, 1);

  check_linear(17, 12, 20, 1, 1, 0);
  check_linear(33, 7, 5, 0, 1, 0);
  check_linear(5, 3, 1, 1, 0, 0);
  if (!quick) {
    check_linear(4096, 768, 768, 1, 1, 1);  /* attention projection */
    check_linear(4096, 768, 3072, 1, 1, 1); /* MLP fc1 */
    check_linear(4096, 3072, 768, 1, 1, 1); /* MLP fc2 */
  }

  check_attention(1, 17, 12, 3, 0);
  check_attention(2, 33, 20, 2, 0);
  check_attention(1, 1100, 64, 4, 0); /* N > 1024: the softmax path that re-reads rows */
  if (!quick) check_attention(2, 1024, 768, 12, 1);

  finish();
  return 0;
}
