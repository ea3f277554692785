/* check_kernels_mlp.c — the check_kernels cases of the DiT MLP's fused ops: linear_gelu_forward (the
 * first Linear with the GELU after it) against its CPU twin (k_linear_forward then k_gelu_forward),
 * in fp32 and in bf16, in bf16 once with the GELU as its own kernel (the default) and once in
 * cuBLASLt's GELU_AUX_BIAS epilogue (TPDIFF_GELU=epilogue); and linear_backward_gelu, the backward of
 * the second Linear together with the GELU before it, against its CPU twin (k_linear_backward then
 * k_gelu_backward) in fp32 and in bf16, in bf16 once with gelu' as the separate kernel (the default)
 * and once in cuBLASLt's DGELU epilogue (TPDIFF_DGELU=epilogue). Both variants of each are timed side
 * by side at base's shape. The harness is check_kernels.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "kernels/kernels.h"
#include "tests/gpu/check_kernels.h"

/* One run of the device op into freshly set buffers; compares d_pre, d_weight, d_bias with the CPU's.
 * Returns d_pre as downloaded (caller frees), or NULL when the op failed. */
static float *run_and_compare(const char *shape, float *dpre_dev, float *dw_dev, float *db_dev, const float *dw0,
                              const float *db0, const float *dout_dev, const float *in_dev, const float *w_dev,
                              const float *pre_dev, const float *dpre_cpu, const float *dw_cpu, const float *db_cpu,
                              int M, int K, int N, double lim) {
  const char *op = "linear_backward_gelu";
  const size_t nw = (size_t)N * K, npre = (size_t)M * K;
  dev_set(op, dw_dev, dw0, nw);
  dev_set(op, db_dev, db0, (size_t)N);
  dev->linear_backward_gelu(dpre_dev, dw_dev, db_dev, dout_dev, in_dev, w_dev, pre_dev, M, K, N);
  if (!op_ok(op, shape)) return NULL;
  float *dpre = dev_download(op, dpre_dev, npre), *dw = dev_download(op, dw_dev, nw);
  float *db = dev_download(op, db_dev, (size_t)N);
  char what[160];
  snprintf(what, sizeof what, "%s d_pre", shape);
  compare(op, what, dpre, dpre_cpu, npre, lim);
  snprintf(what, sizeof what, "%s d_weight", shape);
  compare(op, what, dw, dw_cpu, nw, lim);
  snprintf(what, sizeof what, "%s d_bias", shape);
  compare(op, what, db, db_cpu, (size_t)N, 1e-5); /* summed from the fp32 d_out in both modes */
  free(dw);
  free(db);
  return dpre;
}

void check_linear_gelu(int M, int K, int N, int timed) {
  if (!selected("linear")) return;
  const char *op = "linear_backward_gelu";
  char shape[96];
  snprintf(shape, sizeof shape, "M=%d K=%d N=%d%s", M, K, N, bf16_mode ? " bf16 dgelu=kernel" : "");
  /* as check_linear's limits: bf16 operands of the d_in product, fp32 everywhere else; gelu' is
   * bounded (|gelu'| < 1.13), so it keeps the product's relative error */
  const double lim = bf16_mode ? 1e-2 : 1e-5;
  const size_t npre = (size_t)M * K, nw = (size_t)N * K, nout = (size_t)M * N;
  /* pre ~ normal(0, 2): gelu's bend and both of its tails */
  float *pre = host_random(npre, 2.0f, 0.0f), *in = host_alloc(npre);
  k_gelu_forward(in, pre, npre);
  float *w = host_random(nw, 1.0f / sqrtf((float)K), 0.0f), *d_out = host_random(nout, 1.0f, 0.0f);
  float *dw0 = host_random(nw, 1.0f, 0.0f), *db0 = host_random((size_t)N, 1.0f, 0.0f);
  float *dpre_cpu = host_alloc(npre), *dw_cpu = host_copy(dw0, nw), *db_cpu = host_copy(db0, (size_t)N);
  double t0 = now_us();
  k_linear_backward_gelu(dpre_cpu, dw_cpu, db_cpu, d_out, in, w, pre, M, K, N);
  double cpu_us = now_us() - t0;

  float *pre_dev = dev_upload(op, pre, npre), *in_dev = dev_upload(op, in, npre), *w_dev = dev_upload(op, w, nw);
  float *dout_dev = dev_upload(op, d_out, nout), *dpre_dev = dev_poison(op, npre);
  float *dw_dev = dev_upload(op, dw0, nw), *db_dev = dev_upload(op, db0, (size_t)N);

  float *first = run_and_compare(shape, dpre_dev, dw_dev, db_dev, dw0, db0, dout_dev, in_dev, w_dev, pre_dev, dpre_cpu,
                                 dw_cpu, db_cpu, M, K, N, lim);
  if (first) {
    /* the same bits on a second run (poisoned again, so an element the op skips shows) */
    float *poison = host_alloc(npre);
    for (size_t i = 0; i < npre; i++) poison[i] = NAN;
    dev_set(op, dpre_dev, poison, npre);
    free(poison);
    dev->linear_backward_gelu(dpre_dev, dw_dev, db_dev, dout_dev, in_dev, w_dev, pre_dev, M, K, N);
    if (op_ok(op, shape)) {
      float *again = dev_download(op, dpre_dev, npre);
      char what[160];
      snprintf(what, sizeof what, "%s d_pre", shape);
      compare_bits(op, what, again, first, npre * sizeof(float));
      free(again);
    }
    if (timed)
      TIME_OP(op, shape, cpu_us,
              dev->linear_backward_gelu(dpre_dev, dw_dev, db_dev, dout_dev, in_dev, w_dev, pre_dev, M, K, N));
  }
  if (bf16_mode) {
    /* gelu' in cuBLASLt's DGELU epilogue (K not a multiple of 8: the kernel still runs): also within
     * the limits, and timed beside the kernel */
    setenv("TPDIFF_DGELU", "epilogue", 1);
    char kshape[128];
    snprintf(kshape, sizeof kshape, "M=%d K=%d N=%d bf16 dgelu=epilogue", M, K, N);
    float *second = run_and_compare(kshape, dpre_dev, dw_dev, db_dev, dw0, db0, dout_dev, in_dev, w_dev, pre_dev,
                                    dpre_cpu, dw_cpu, db_cpu, M, K, N, lim);
    if (second && timed)
      TIME_OP(op, kshape, cpu_us,
              dev->linear_backward_gelu(dpre_dev, dw_dev, db_dev, dout_dev, in_dev, w_dev, pre_dev, M, K, N));
    free(second);
    unsetenv("TPDIFF_DGELU");
  }
  free(first);
  dev->free(pre_dev);
  dev->free(in_dev);
  dev->free(w_dev);
  dev->free(dout_dev);
  dev->free(dpre_dev);
  dev->free(dw_dev);
  dev->free(db_dev);
  free(pre);
  free(in);
  free(w);
  free(d_out);
  free(dw0);
  free(db0);
  free(dpre_cpu);
  free(dw_cpu);
  free(db_cpu);
}

/* ---- linear_gelu_forward ------------------------------------------------------------------------ */

/* linear_gelu_forward into freshly poisoned pre and out (so an element the op skips shows), compared
 * with the CPU's; then the same bits on a second run, and with `timed` the device time. */
static void run_gelu_forward(const char *shape, float *pre_dev, float *out_dev, const float *in_dev,
                             const float *w_dev, const float *b_dev, const float *pre_cpu, const float *out_cpu,
                             int M, int K, int N, double lim, double cpu_us, int timed) {
  const char *op = "linear_gelu_forward";
  const size_t n = (size_t)M * N;
  float *poison = host_alloc(n);
  for (size_t i = 0; i < n; i++) poison[i] = NAN;
  dev_set(op, pre_dev, poison, n);
  dev_set(op, out_dev, poison, n);
  dev->linear_gelu_forward(pre_dev, out_dev, in_dev, w_dev, b_dev, M, K, N);
  if (op_ok(op, shape)) {
    float *pre = dev_download(op, pre_dev, n), *out = dev_download(op, out_dev, n);
    char what[160];
    snprintf(what, sizeof what, "%s pre", shape);
    compare(op, what, pre, pre_cpu, n, lim);
    snprintf(what, sizeof what, "%s out", shape);
    compare(op, what, out, out_cpu, n, lim);
    dev_set(op, out_dev, poison, n);
    dev->linear_gelu_forward(pre_dev, out_dev, in_dev, w_dev, b_dev, M, K, N);
    if (op_ok(op, shape)) {
      float *again = dev_download(op, out_dev, n);
      compare_bits(op, what, again, out, n * sizeof(float));
      free(again);
    }
    if (timed) TIME_OP(op, shape, cpu_us, dev->linear_gelu_forward(pre_dev, out_dev, in_dev, w_dev, b_dev, M, K, N));
    free(pre);
    free(out);
  }
  free(poison);
}

void check_linear_gelu_forward(int M, int K, int N, int timed) {
  if (!selected("linear")) return;
  const char *op = "linear_gelu_forward";
  char shape[128];
  snprintf(shape, sizeof shape, "M=%d K=%d N=%d%s", M, K, N, bf16_mode ? " bf16 gelu=kernel" : "");
  /* as check_linear's limits: a bf16 product (pre) in bf16 mode, fp32 everywhere else; |gelu'| < 1.13
   * keeps pre's relative error in out */
  const double lim = bf16_mode ? 1e-2 : 1e-5;
  const size_t nin = (size_t)M * K, nw = (size_t)N * K, n = (size_t)M * N;
  /* weights at 2/sqrt(K): pre ~ normal(0, 2), through gelu's bend and into both of its tails */
  float *in = host_random(nin, 1.0f, 0.0f), *w = host_random(nw, 2.0f / sqrtf((float)K), 0.0f);
  float *bias = host_random((size_t)N, 0.5f, 0.0f);
  float *pre_cpu = host_alloc(n), *out_cpu = host_alloc(n);
  double t0 = now_us();
  k_linear_gelu_forward(pre_cpu, out_cpu, in, w, bias, M, K, N);
  double cpu_us = now_us() - t0;
  float *in_dev = dev_upload(op, in, nin), *w_dev = dev_upload(op, w, nw), *b_dev = dev_upload(op, bias, (size_t)N);
  float *pre_dev = dev_poison(op, n), *out_dev = dev_poison(op, n);
  run_gelu_forward(shape, pre_dev, out_dev, in_dev, w_dev, b_dev, pre_cpu, out_cpu, M, K, N, lim, cpu_us, timed);
  if (bf16_mode) {
    /* the GELU in cuBLASLt's epilogue (N not a multiple of 8: the kernel still runs, with no notice) */
    setenv("TPDIFF_GELU", "epilogue", 1);
    snprintf(shape, sizeof shape, "M=%d K=%d N=%d bf16 gelu=epilogue", M, K, N);
    run_gelu_forward(shape, pre_dev, out_dev, in_dev, w_dev, b_dev, pre_cpu, out_cpu, M, K, N, lim, cpu_us, timed);
    unsetenv("TPDIFF_GELU");
  }
  dev->free(in_dev);
  dev->free(w_dev);
  dev->free(b_dev);
  dev->free(pre_dev);
  dev->free(out_dev);
  free(in);
  free(w);
  free(bias);
  free(pre_cpu);
  free(out_cpu);
}

/* ---- the variables that choose where the GELU runs ----------------------------------------------- */

typedef struct {
  float *a, *w, *dout, *pre, *out, *dpre, *dw; /* device buffers of the shape below */
  int M, K, N;
} mlp_call;

static void run_gelu_fwd(void *ctx) {
  mlp_call *c = ctx;
  dev->linear_gelu_forward(c->pre, c->out, c->a, c->w, NULL, c->M, c->K, c->N);
}

static void run_gelu_bwd(void *ctx) {
  mlp_call *c = ctx;
  dev->linear_backward_gelu(c->dpre, c->dw, NULL, c->dout, c->a, c->w, c->a, c->M, c->K, c->N);
}

/* With var=fused the op fails with one line naming "var=fused" and `expect` (a valid value), and it
 * runs again once var is unset. */
static void check_refused(const char *op, const char *var, const char *expect, void (*run)(void *), void *ctx) {
  char named[64], what[96];
  snprintf(named, sizeof named, "%s=fused", var);
  setenv(var, "fused", 1);
  run(ctx);
  int rc = dev->synchronize();
  const char *e = dev->last_error();
  int ok = rc == 0 && e && strstr(e, named) && strstr(e, expect) && !strchr(e, '\n');
  printf("%s %s %s refused in %s: \"%s\"\n", ok ? "PASS" : "FAIL", op, named, bf16_mode ? "bf16" : "fp32",
         e ? e : "");
  ok ? passed++ : failed++;
  unsetenv(var);
  run(ctx);
  snprintf(what, sizeof what, "%s unset after a refused value", var);
  ok = op_ok(op, what);
  printf("%s %s runs again with %s unset\n", ok ? "PASS" : "FAIL", op, var);
  ok ? passed++ : failed++;
}

/* TPDIFF_GELU (forward) and TPDIFF_DGELU (backward) with a value that is neither "kernel" nor
 * "epilogue" fail their op with one line naming the variable, in either precision (fp32 never uses
 * the epilogues, but a typo must not pass unnoticed), and the op works again once it is unset. The
 * CPU backend reads neither variable. */
void check_gelu_switches(void) {
  if (!selected("linear") || !strcmp(dev->name, "cpu")) return;
  const char *op = "linear_gelu";
  const int M = 16, K = 16, N = 8; /* multiples of 8: both epilogues are asked for */
  float *a = host_random((size_t)M * K, 1.0f, 0.0f), *w = host_random((size_t)N * K, 0.3f, 0.0f);
  float *d_out = host_random((size_t)M * N, 1.0f, 0.0f);
  mlp_call c = {dev_upload(op, a, (size_t)M * K),     dev_upload(op, w, (size_t)N * K),
                dev_upload(op, d_out, (size_t)M * N), dev_poison(op, (size_t)M * N),
                dev_poison(op, (size_t)M * N),        dev_poison(op, (size_t)M * K),
                dev_poison(op, (size_t)N * K),        M,
                K,                                    N};
  check_refused("linear_gelu_forward", "TPDIFF_GELU", "epilogue", run_gelu_fwd, &c);
  check_refused("linear_backward_gelu", "TPDIFF_DGELU", "epilogue", run_gelu_bwd, &c);
  float *bufs[] = {c.a, c.w, c.dout, c.pre, c.out, c.dpre, c.dw};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) dev->free(bufs[i]);
  free(a);
  free(w);
  free(d_out);
}
