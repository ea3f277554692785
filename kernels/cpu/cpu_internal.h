/* cpu_internal.h — helpers shared by the CPU kernels only (not part of kernels.h). */
#ifndef TPDIFF_CPU_INTERNAL_H
#define TPDIFF_CPU_INTERNAL_H

#include <stddef.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Upper bound on OpenMP threads whose partial sums we keep. */
#define K_MAX_THREADS 256

static inline int k_thread_id(void) {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

/* Fast exp for x <= 0 (softmax after max subtraction, tanh below). Range reduction to
 * x = n ln2 + f, |f| <= ln2/2, then a degree-6 polynomial: relative error < 2e-7, at fp32's own
 * rounding of the result. Written without calls or branches so gcc vectorises the loops that use
 * it; glibc's scalar expf costs several times more, and the softmax exp count (B·H·N² per block)
 * is the largest non-GEMM cost of a step. */
static inline float k_exp_nonpositive(float x) {
  if (x < -87.0f) x = -87.0f;
  const float log2e = 1.44269504088896341f;
  const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
  /* round to nearest by the 1.5·2^23 trick: plain adds that vectorise, unlike roundf() */
  const float round_magic = 12582912.0f;
  float n = (x * log2e + round_magic) - round_magic;
  float f = x - n * ln2_hi;
  f = f - n * ln2_lo;
  float p = 1.0f / 720.0f;
  p = p * f + 1.0f / 120.0f;
  p = p * f + 1.0f / 24.0f;
  p = p * f + 1.0f / 6.0f;
  p = p * f + 0.5f;
  p = p * f + 1.0f;
  p = p * f + 1.0f;
  union {
    float f;
    int i;
  } scale;
  scale.i = ((int)n + 127) << 23;
  return p * scale.f;
}

/* tanh through k_exp_nonpositive: sign(u) (1 - e) / (1 + e), e = exp(-2|u|). Absolute error ~1e-7,
 * which is what GELU needs (it uses 1 + tanh); glibc's tanhf (via expm1f) took a tenth of the
 * demo step. */
static inline float k_tanh(float u) {
  float a = u < 0 ? -u : u;
  float e = k_exp_nonpositive(-2.0f * a);
  float t = (1.0f - e) / (1.0f + e);
  return u < 0 ? -t : t;
}

#endif
