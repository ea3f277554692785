/* layernorm.c — layernorm without affine, fused with the adaLN modulate (shift, 1 + scale). */
#include <math.h>

#include "kernels/kernels.h"
#include "kernels/cpu/cpu_internal.h"

void k_layernorm_modulate_forward(float *out, float *mean, float *rstd, const float *x, const float *shift,
                                  const float *scale, int cond_stride, int B, int N, int D, float eps) {
  /* Fused because the normalised row is consumed only by the modulate: one read of x, one write. */
#pragma omp parallel for schedule(static)
  for (long row = 0; row < (long)B * N; row++) {
    int b = (int)(row / N);
    const float *xr = x + row * D;
    float *yr = out + row * D;
    const float *sh = shift + (size_t)b * cond_stride, *sc = scale + (size_t)b * cond_stride;
    float s = 0.0f;
    for (int d = 0; d < D; d++) s += xr[d];
    float mu = s / (float)D;
    float v = 0.0f;
    for (int d = 0; d < D; d++) {
      float c = xr[d] - mu;
      v += c * c;
    }
    float rs = 1.0f / sqrtf(v / (float)D + eps);
    mean[row] = mu;
    rstd[row] = rs;
    for (int d = 0; d < D; d++) yr[d] = (xr[d] - mu) * rs * (1.0f + sc[d]) + sh[d];
  }
}

void k_layernorm_modulate_backward(float *d_x_accumulate, float *d_shift, float *d_scale, const float *d_out,
                                   const float *x, const float *mean, const float *rstd, const float *scale,
                                   int cond_stride, int B, int N, int D) {
#pragma omp parallel for schedule(static)
  for (long row = 0; row < (long)B * N; row++) {
    int b = (int)(row / N);
    const float *xr = x + row * D, *dy = d_out + row * D;
    const float *sc = scale + (size_t)b * cond_stride;
    float *dx = d_x_accumulate + row * D;
    float mu = mean[row], rs = rstd[row];
    float g_mean = 0.0f, gx_mean = 0.0f;
    for (int d = 0; d < D; d++) {
      float g = dy[d] * (1.0f + sc[d]);
      float xh = (xr[d] - mu) * rs;
      g_mean += g;
      gx_mean += g * xh;
    }
    g_mean /= (float)D;
    gx_mean /= (float)D;
    for (int d = 0; d < D; d++) {
      float g = dy[d] * (1.0f + sc[d]);
      float xh = (xr[d] - mu) * rs;
      dx[d] += rs * (g - g_mean - xh * gx_mean);
    }
  }
  /* Shift/scale gradients sum over the clip's tokens; threads split the channels so each sum runs
   * in token order whatever the thread count (deterministic). */
  for (int b = 0; b < B; b++) {
    float *dsh = d_shift + (size_t)b * cond_stride, *dsc = d_scale + (size_t)b * cond_stride;
#pragma omp parallel
    {
#ifdef _OPENMP
      int nt = omp_get_num_threads(), id = omp_get_thread_num();
#else
      int nt = 1, id = 0;
#endif
      int lo = (int)((long)D * id / nt), hi = (int)((long)D * (id + 1) / nt);
      float acc_shift[hi - lo + 1], acc_scale[hi - lo + 1];
      for (int d = lo; d < hi; d++) acc_shift[d - lo] = acc_scale[d - lo] = 0.0f;
      for (int n = 0; n < N; n++) {
        long row = (long)b * N + n;
        const float *xr = x + row * D, *dy = d_out + row * D;
        float mu = mean[row], rs = rstd[row];
        for (int d = lo; d < hi; d++) {
          acc_shift[d - lo] += dy[d];
          acc_scale[d - lo] += dy[d] * (xr[d] - mu) * rs;
        }
      }
      for (int d = lo; d < hi; d++) {
        dsh[d] += acc_shift[d - lo];
        dsc[d] += acc_scale[d - lo];
      }
    }
  }
}
