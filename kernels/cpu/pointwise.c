/* pointwise.c — GELU (tanh form), SiLU, gated residual, broadcast adds and scaling. */
#include <math.h>

#include "kernels/kernels.h"
#include "kernels/cpu/cpu_internal.h"

#define GELU_C 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f

void k_gelu_forward(float *out, const float *in, size_t n) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    float x = in[i];
    out[i] = 0.5f * x * (1.0f + k_tanh(GELU_C * (x + GELU_A * x * x * x)));
  }
}

void k_gelu_backward(float *d_in, const float *d_out, const float *in, size_t n) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    float x = in[i];
    float u = GELU_C * (x + GELU_A * x * x * x);
    float th = k_tanh(u);
    float du = GELU_C * (1.0f + 3.0f * GELU_A * x * x);
    d_in[i] = d_out[i] * (0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du);
  }
}

void k_silu_forward(float *out, const float *in, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) out[i] = in[i] / (1.0f + expf(-in[i]));
}

void k_silu_backward(float *d_in, const float *d_out, const float *in, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    float s = 1.0f / (1.0f + expf(-in[i]));
    d_in[i] = d_out[i] * s * (1.0f + in[i] * (1.0f - s));
  }
}

void k_gated_residual_forward(float *out, const float *x, const float *f, const float *gate, int gate_stride,
                              int B, int N, int D) {
#pragma omp parallel for schedule(static)
  for (long row = 0; row < (long)B * N; row++) {
    const float *g = gate + (size_t)(row / N) * gate_stride;
    for (int d = 0; d < D; d++) out[row * D + d] = x[row * D + d] + g[d] * f[row * D + d];
  }
}

void k_gated_residual_backward(float *d_f, float *d_gate, const float *d_out, const float *f, const float *gate,
                               int gate_stride, int B, int N, int D) {
#pragma omp parallel for schedule(static)
  for (long row = 0; row < (long)B * N; row++) {
    const float *g = gate + (size_t)(row / N) * gate_stride;
    for (int d = 0; d < D; d++) d_f[row * D + d] = d_out[row * D + d] * g[d];
  }
  /* Channel-split token sums: deterministic whatever the thread count. */
  for (int b = 0; b < B; b++) {
    float *dg = d_gate + (size_t)b * gate_stride;
#pragma omp parallel
    {
#ifdef _OPENMP
      int nt = omp_get_num_threads(), id = omp_get_thread_num();
#else
      int nt = 1, id = 0;
#endif
      int lo = (int)((long)D * id / nt), hi = (int)((long)D * (id + 1) / nt);
      float acc[hi - lo + 1];
      for (int d = lo; d < hi; d++) acc[d - lo] = 0.0f;
      for (int n = 0; n < N; n++) {
        long row = (long)b * N + n;
        for (int d = lo; d < hi; d++) acc[d - lo] += d_out[row * D + d] * f[row * D + d];
      }
      for (int d = lo; d < hi; d++) dg[d] += acc[d - lo];
    }
  }
}

void k_add_rows_broadcast(float *x, const float *rows, int B, int N, int D) {
#pragma omp parallel for schedule(static)
  for (long row = 0; row < (long)B * N; row++) {
    const float *r = rows + (row % N) * D;
    for (int d = 0; d < D; d++) x[row * D + d] += r[d];
  }
}

void k_add(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void k_scale(float *x, float s, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) x[i] *= s;
}
