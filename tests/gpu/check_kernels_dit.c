/* check_kernels_dit.c — the check_kernels cases of the DiT's layer ops, each backend op against its
 * CPU twin: linear, layernorm + modulate, GELU and SiLU, the gated residual, the broadcast adds,
 * attention, patchify, the sin-cos table and the embedding lookup. The harness (comparisons, timing,
 * buffers) is check_kernels.c; the limits and the method are in its first comment. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "kernels/kernels.h"
#include "tests/gpu/check_kernels.h"
#include "tests/gpu/check_kernels_where.h"

/* ---- linear ------------------------------------------------------------------------------------- */

void check_linear(int M, int K, int N, int with_bias, int with_din, int timed) {
  if (!selected("linear")) return;
  char shape[96];
  snprintf(shape, sizeof shape, "M=%d K=%d N=%d%s%s%s", M, K, N, with_bias ? "" : " no-bias", with_din ? "" : " no-d_in",
           bf16_mode ? " bf16" : "");
  /* bf16: each operand rounded to 8 significant bits (relative error <= 2^-9 ~ 2e-3 per element),
   * products summed in fp32; the normwise error of a K-term sum of random-sign products then stays
   * near 2e-3 of max|out|, so 1e-2 passes it with room while a wrong operand or layout gives ~1. The
   * bias and its gradient stay fp32. */
  const double lim = bf16_mode ? 1e-2 : 1e-5;
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
    compare("linear_forward", shape, got, out_cpu, nout, lim);
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
      compare("linear_backward", what, got, din_cpu, nd_in, lim);
      free(got);
    }
    snprintf(what, sizeof what, "%s d_weight", shape);
    compare("linear_backward", what, dw_got, dw_cpu, nw, lim);
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
void check_layernorm(int B, int N, int D, int timed) {
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

/* GELU and SiLU: forward into a fresh buffer and in place (out == in is allowed), backward likewise
 * (d_in == d_out allowed). GELU is written to give the CPU's bits (limit 1e-6); SiLU goes through
 * CUDA's expf (2 ulp) instead of glibc's (limit 1e-5). */
void check_activation(const char *name, unary_fn cpu_fwd, unary_fn gpu_fwd, unary_bwd_fn cpu_bwd, unary_bwd_fn gpu_bwd,
                      size_t n, int in_place, int timed) {
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

void check_gated_residual(int B, int N, int D, int alias, int timed) {
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

void check_adds(int B, int N, int D, int timed) {
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

/* TPDIFF_ATTN=flash-scalar and flash-wide: the flash kernels with scalar fragment loads, or with two
 * query m-tiles per warp in the forward and dQ, must give the bits of the default (the same products
 * in the same order for every row). Runs `op` once more with TPDIFF_ATTN=flash into a fresh poisoned buffer
 * of n floats and compares with `mine` (downloaded), then restores TPDIFF_ATTN=variant. The run is a
 * callback so the forward and the backward share the comparison. */
typedef void (*attention_run)(float *dst, void *ctx);

/* PASS/FAIL: n values of a variant (mine) against the default's (flash), bit for bit */
static void report_same_bits(const char *op, const char *what, const float *mine, const float *flash, size_t n) {
  size_t differ = 0;
  for (size_t i = 0; i < n; i++) differ += memcmp(&flash[i], &mine[i], sizeof(float)) != 0;
  printf("%s %s %s: the same bits as TPDIFF_ATTN=flash, %zu of %zu values differ (want 0)\n",
         differ == 0 ? "PASS" : "FAIL", op, what, differ, n);
  differ == 0 ? passed++ : failed++;
}

static void check_same_bits_as_flash(const char *op, const char *what, const char *variant, const float *mine,
                                     size_t n, attention_run run, void *ctx) {
  float *dst = dev_poison(op, n);
  setenv("TPDIFF_ATTN", "flash", 1);
  run(dst, ctx);
  setenv("TPDIFF_ATTN", variant, 1);
  if (op_ok(op, what)) {
    float *got = dev_download(op, dst, n);
    report_same_bits(op, what, mine, got, n);
    free(got);
  }
  dev->free(dst);
}

/* After a FAIL line: which rows, columns, heads and parts of [B][N][parts][D] are off (check_kernels_where.h) */
static void explain(const float *got, const float *want, int B, int N, int parts, int D, int H, double limit) {
  where_layout l = {B, N, parts, H, D / H};
  where_counts w;
  where_count(got, want, &l, limit, &w);
  where_print(stdout, &l, got, want, &w);
}

typedef struct {
  float *probs, *scratch;
  const float *qkv, *out, *dout;
  int B, N, D, H;
} attention_call;

static void run_forward(float *dst, void *ctx) {
  attention_call *c = ctx;
  dev->attention_forward(dst, c->probs, c->qkv, c->B, c->N, c->D, c->H);
}

static void run_backward(float *dst, void *ctx) {
  attention_call *c = ctx;
  dev->attention_backward(dst, c->dout, c->qkv, c->out, c->probs, c->scratch, c->B, c->N, c->D, c->H);
}

void check_attention(int B, int N, int D, int H, int timed) {
  if (!selected("attention")) return;
  /* bf16 mode runs the flash kernels (ldmatrix loads; with TPDIFF_ATTN=flash-scalar plain loads,
   * with flash-wide two m-tiles per warp in the forward and dQ) unless TPDIFF_ATTN=simple selects
   * the earlier pair */
  const char *variant = getenv("TPDIFF_ATTN");
  const int simple = bf16_mode && variant && !strcmp(variant, "simple");
  /* a variant of the flash kernels, checked for the default's bits too */
  const int twin = bf16_mode && variant && (!strcmp(variant, "flash-scalar") || !strcmp(variant, "flash-wide"));
  const int flash = bf16_mode && !simple;
  char shape[96];
  snprintf(shape, sizeof shape, "B=%d N=%d D=%d H=%d%s%s", B, N, D, H, bf16_mode ? " bf16-mode" : "",
           simple || twin ? (simple ? " simple" : !strcmp(variant, "flash-scalar") ? " flash-scalar" : " flash-wide")
                          : "");
  const size_t nqkv = (size_t)B * N * 3 * D, nout = (size_t)B * N * D;
  const size_t nprobs_cpu = (size_t)B * H * N * N;
  const size_t nprobs_dev = dev->attention_probs_floats(B, N, H);
  /* the CPU stores the probabilities; a backend that stores something else (CUDA's flash kernels
   * keep the row log-sum-exp, B*H*N floats) is checked through out and d_qkv only, and its backward
   * runs on its own forward's saved state */
  const int probs_comparable = nprobs_dev == nprobs_cpu;
  float *qkv = host_random(nqkv, 1.0f, 0.0f);
  /* bf16 mode: q, k, v already bf16 values, so the CPU computes the function the bf16 kernel does
   * and the comparison measures the kernel (P's rounding, summation order), not the input rounding:
   * on outputs that average ~N values the latter alone reaches ~1e-2 normwise at N = 1100 (measured
   * by emulation in float64), while what remains is ~1e-3. */
  if (bf16_mode) host_round_bf16(qkv, nqkv);
  float *out_cpu = host_alloc(nout), *probs_cpu = host_alloc(nprobs_cpu);
  double t0 = now_us();
  k_attention_forward(out_cpu, probs_cpu, qkv, B, N, D, H);
  double cpu_f = now_us() - t0;
  float *qkv_dev = dev_upload("attention_forward", qkv, nqkv);
  float *out_dev = dev_poison("attention_forward", nout), *probs_dev = dev_poison("attention_forward", nprobs_dev);
  dev->attention_forward(out_dev, probs_dev, qkv_dev, B, N, D, H);
  /* Forward limit 1e-5: q·kᵀ sums dh products, softmax uses the CPU's own exp approximation, P·V
   * sums N products; only summation order differs. bf16 mode: with q, k, v given as bf16 values,
   * P rounded to bf16 (u = 2^-9) moves each product by ~u, averaged over the keys: ~1e-3 normwise,
   * so 1e-2 (both bf16-mode forwards, flash and simple). */
  const double fwd_lim = bf16_mode ? 1e-2 : 1e-5;
  if (op_ok("attention_forward", shape)) {
    char what[192];
    float *got = dev_download("attention_forward", out_dev, nout);
    snprintf(what, sizeof what, "%s out", shape);
    if (!compare("attention_forward", what, got, out_cpu, nout, fwd_lim)) explain(got, out_cpu, B, N, 1, D, H, fwd_lim);
    if (twin) {
      /* into a copy of the lse, so that the backward below gets this variant's forward's; then the
       * two lse (what probs holds for the flash kernels) must agree bit for bit too */
      float *lse_dev = dev_poison("attention_forward", nprobs_dev);
      attention_call c = {lse_dev, NULL, qkv_dev, NULL, NULL, B, N, D, H};
      check_same_bits_as_flash("attention_forward", what, variant, got, nout, run_forward, &c);
      float *lse_flash = dev_download("attention_forward", lse_dev, nprobs_dev);
      float *lse_mine = dev_download("attention_forward", probs_dev, nprobs_dev);
      char lse_what[192];
      snprintf(lse_what, sizeof lse_what, "%s lse", shape);
      report_same_bits("attention_forward", lse_what, lse_mine, lse_flash, nprobs_dev);
      free(lse_flash);
      free(lse_mine);
      dev->free(lse_dev);
    }
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
  if (bf16_mode) host_round_bf16(d_out, nout); /* as q, k, v: the CPU gets the values the kernels multiply */
  float *scratch_cpu = host_alloc(k_attention_scratch_floats(N));
  t0 = now_us();
  k_attention_backward(dqkv_cpu, d_out, qkv, out_cpu, probs_cpu, scratch_cpu, B, N, D, H);
  double cpu_b = now_us() - t0;
  float *dout_dev = dev_upload("attention_backward", d_out, nout), *dqkv_dev = dev_poison("attention_backward", nqkv);
  float *scratch_dev = dev_poison("attention_backward", dev->attention_scratch_floats(N));
  /* Feed the CPU's probabilities so the backward is checked on its own; a backend that stores
   * something else gets its own forward's output and saved state, as the model gives it. */
  if (probs_comparable) dev_set("attention_backward", probs_dev, probs_cpu, nprobs_cpu);
  dev->attention_backward(dqkv_dev, dout_dev, qkv_dev, out_dev, probs_dev, scratch_dev, B, N, D, H);
  /* Backward limit 1e-4: dS = P ∘ (dP − rowsum(P ∘ dP)) subtracts two nearly equal sums of N terms
   * (the row's dot product is close to every dP), so the fp32 summation-order differences of the
   * GEMMs (~1e-7 relative to |dP|) are amplified relative to |dS|, then summed again over N in dQ
   * and dK. Bugs give errors of order 1.
   * bf16 mode (flash): with q, k, v, dO given as bf16 values, S and dP are exact products summed in
   * fp32 and dP − D_i is formed in fp32, so the cancellation above happens before any rounding; what
   * is rounded is P (for dV = Pᵀ dO) and dS (for dQ = dS K, dK = dSᵀ Q), each by at most u = 2^-9
   * relative to itself, in sums of N terms of random sign: the errors average like the terms, about
   * u/2 normwise. D_i = dO_i · O_i takes O from the bf16 forward (~1e-3 off), but a change of D_i
   * moves dQ_i by δD_i times the P-weighted mean of k, small against dQ_i. Emulated in numpy (the
   * kernels' rounding points, against float64) at these shapes: 1.1e-3 to 3.5e-3 on d_qkv, 2.1e-3
   * at base's; so 1e-2, while a wrong fragment index, mask or scale gives errors of order 1. */
  const double bwd_lim = flash ? 1e-2 : 1e-4;
  if (op_ok("attention_backward", shape)) {
    char what[192];
    float *got = dev_download("attention_backward", dqkv_dev, nqkv);
    snprintf(what, sizeof what, "%s d_qkv", shape);
    if (!compare("attention_backward", what, got, dqkv_cpu, nqkv, bwd_lim)) explain(got, dqkv_cpu, B, N, 3, D, H, bwd_lim);
    if (twin) {
      attention_call c = {probs_dev, scratch_dev, qkv_dev, out_dev, dout_dev, B, N, D, H};
      check_same_bits_as_flash("attention_backward", what, variant, got, nqkv, run_backward, &c);
    }
    if (flash) { /* fixed summation order, no atomics: a second run into fresh poison gives the same bits */
      float *again_dev = dev_poison("attention_backward", nqkv);
      dev->attention_backward(again_dev, dout_dev, qkv_dev, out_dev, probs_dev, scratch_dev, B, N, D, H);
      if (op_ok("attention_backward", shape)) {
        float *again = dev_download("attention_backward", again_dev, nqkv);
        compare_bits("attention_backward", what, got, again, nqkv * sizeof(float));
        free(again);
      }
      dev->free(again_dev);
    }
    if (!probs_comparable) {
      /* without the forward's output (out = NULL) the backward recomputes O_i for D_i (and the flash
       * kernels lse too): the same function, checked at the same limit */
      float *rerun_dev = dev_poison("attention_backward", nqkv);
      dev->attention_backward(rerun_dev, dout_dev, qkv_dev, NULL, probs_dev, scratch_dev, B, N, D, H);
      if (op_ok("attention_backward", shape)) {
        float *rerun = dev_download("attention_backward", rerun_dev, nqkv);
        snprintf(what, sizeof what, "%s d_qkv (out = NULL: O recomputed)", shape);
        if (!compare("attention_backward", what, rerun, dqkv_cpu, nqkv, bwd_lim))
          explain(rerun, dqkv_cpu, B, N, 3, D, H, bwd_lim);
        if (twin) { /* the forward's D epilogue in the variant: a wrong D_i moves dQ only a little */
          attention_call c = {probs_dev, scratch_dev, qkv_dev, NULL, dout_dev, B, N, D, H};
          check_same_bits_as_flash("attention_backward", what, variant, rerun, nqkv, run_backward, &c);
        }
        free(rerun);
      }
      dev->free(rerun_dev);
    }
    free(got);
    if (timed) {
      TIME_OP("attention_backward", shape, cpu_b,
              dev->attention_backward(dqkv_dev, dout_dev, qkv_dev, out_dev, probs_dev, scratch_dev, B, N, D, H));
      if (!probs_comparable) {
        char rerun[128];
        snprintf(rerun, sizeof rerun, "%s out=NULL", shape);
        TIME_OP("attention_backward", rerun, cpu_b,
                dev->attention_backward(dqkv_dev, dout_dev, qkv_dev, NULL, probs_dev, scratch_dev, B, N, D, H));
      }
    }
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

/* TPDIFF_ATTN names bf16 mode's attention kernels; a value that is not "flash", "flash-scalar",
 * "flash-wide" or "simple" must make the op fail with one line naming the variable, and the next call
 * (variable unset) succeed. */
void check_attention_switch(void) {
  if (!selected("attention") || !bf16_mode) return;
  const int B = 1, N = 5, D = 8, H = 2;
  float *qkv = host_random((size_t)B * N * 3 * D, 1.0f, 0.0f);
  float *qkv_dev = dev_upload("attention_forward", qkv, (size_t)B * N * 3 * D);
  float *out_dev = dev_poison("attention_forward", (size_t)B * N * D);
  float *probs_dev = dev_poison("attention_forward", dev->attention_probs_floats(B, N, H));
  setenv("TPDIFF_ATTN", "fast", 1);
  dev->attention_forward(out_dev, probs_dev, qkv_dev, B, N, D, H);
  int rc = dev->synchronize();
  const char *e = dev->last_error();
  int ok = rc == 0 && e && strstr(e, "TPDIFF_ATTN=fast") && strstr(e, "flash-scalar") && strstr(e, "flash-wide") && strstr(e, "simple") &&
           !strchr(e, '\n');
  printf("%s attention_forward TPDIFF_ATTN=fast refused: \"%s\"\n", ok ? "PASS" : "FAIL", e ? e : "");
  ok ? passed++ : failed++;
  unsetenv("TPDIFF_ATTN");
  dev->attention_forward(out_dev, probs_dev, qkv_dev, B, N, D, H);
  ok = op_ok("attention_forward", "TPDIFF_ATTN unset after a refused value");
  printf("%s attention_forward runs again with TPDIFF_ATTN unset\n", ok ? "PASS" : "FAIL");
  ok ? passed++ : failed++;
  dev->free(qkv_dev);
  dev->free(out_dev);
  dev->free(probs_dev);
  free(qkv);
}

/* ---- patches ---------------------------------------------------------------------------------------- */

void check_patchify(int B, int C, int T, int H, int W, int p, int timed) {
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

void check_sincos(int n, int d) {
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

void check_embedding(int B, int D, int rows) {
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
