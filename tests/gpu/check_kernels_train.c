/* check_kernels_train.c — the check_kernels cases of the training step's other ops, each backend op
 * against its CPU twin: the MSE loss, sum of squares and AdamW, the frame-axis operators and combine3
 * of the temporal pyramid, the Philox random numbers, and memory_info. The harness (comparisons,
 * timing, buffers) is check_kernels.c; the limits and the method are in its first comment. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "kernels/kernels.h"
#include "tests/gpu/check_kernels.h"

/* ---- loss, optimizer, norms ----------------------------------------------------------------------- */

void check_mse(size_t n, int timed) {
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

void check_sum_squares(size_t n, int timed) {
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

void check_adamw(size_t n, int timed) {
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

void check_frames(int bc, int T, int plane, int timed) {
  check_frames_op("frames_pair_mean", k_frames_pair_mean, dev->frames_pair_mean, 0, bc, T, plane, timed);
  check_frames_op("frames_pair_sum_norm", k_frames_pair_sum_norm, dev->frames_pair_sum_norm, 0, bc, T, plane, timed);
  check_frames_op("frames_pair_diff_norm", k_frames_pair_diff_norm, dev->frames_pair_diff_norm, 0, bc, T, plane, timed);
  check_frames_op("frames_repeat", k_frames_repeat, dev->frames_repeat, 1, bc, T, plane, timed);
  check_frames_op("frames_antisym", k_frames_antisym, dev->frames_antisym, 1, bc, T, plane, timed);
}

/* Variants: 0 all three terms; 1 z NULL (c2 = 0 everywhere); 2 y NULL (c1 = 0) and a clip with
 * c2 = 0; 3 out aliases x. Bit for bit (the contract's evaluation order). */
void check_combine3(int B, size_t clip_elems, int variant, int timed) {
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

void check_random(size_t n, uint64_t first, int timed) {
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
void check_memory_info(void) {
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
