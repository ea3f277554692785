/* own_sgemm.c — a plain C cblas_sgemm for the GPU check programs on machines without OpenBLAS
 * (CHECK_OWN_CBLAS=1: tests/gpu/check_gpu.sh writes the cblas.h shim it compiles against). Only
 * built in that case; the CPU reference is then slow but exact to fp32 rounding. */
#include <cblas.h> /* the shim tests/gpu/check_gpu.sh writes */
#include <stddef.h>
#include <stdlib.h>

/* Row-major C = alpha op(A) op(B) + beta C in plain C, parallel over rows of C when called outside
 * a parallel region (the CPU attention calls it per head inside one). Only a reference: slow but
 * exact to fp32 rounding. */
void cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta, const enum CBLAS_TRANSPOSE tb,
                 const int M, const int N, const int K, const float alpha, const float *A, const int lda,
                 const float *B, const int ldb, const float beta, float *C, const int ldc) {
  if (order != CblasRowMajor) abort();
#pragma omp parallel for schedule(static) if ((long)M * N * K > (1L << 20))
  for (int i = 0; i < M; i++) {
    float *c = C + (size_t)i * ldc;
    for (int j = 0; j < N; j++) c[j] = beta == 0.0f ? 0.0f : beta * c[j];
    if (tb == CblasNoTrans) {
      for (int p = 0; p < K; p++) {
        float a = alpha * (ta == CblasNoTrans ? A[(size_t)i * lda + p] : A[(size_t)p * lda + i]);
        const float *b = B + (size_t)p * ldb;
        for (int j = 0; j < N; j++) c[j] += a * b[j];
      }
    } else {
      for (int j = 0; j < N; j++) {
        const float *b = B + (size_t)j * ldb;
        float s = 0.0f;
        if (ta == CblasNoTrans) {
          /* four independent partial sums: the compiler may not reassociate one chain, and a
           * dependent add chain would make this reference the slowest part of the run */
          const float *a = A + (size_t)i * lda;
          float s4[4] = {0.0f, 0.0f, 0.0f, 0.0f};
          int p = 0;
          for (; p + 4 <= K; p += 4)
            for (int u = 0; u < 4; u++) s4[u] += a[p + u] * b[p + u];
          for (; p < K; p++) s4[0] += a[p] * b[p];
          s = (s4[0] + s4[1]) + (s4[2] + s4[3]);
        } else {
          for (int p = 0; p < K; p++) s += A[(size_t)p * lda + i] * b[p];
        }
        c[j] += alpha * s;
      }
    }
  }
}
