/* matmul.c — Linear layers (PyTorch layout) on OpenBLAS sgemm. */
#include <cblas.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/cpu/cpu_internal.h"

void k_linear_forward(float *out, const float *in, const float *weight, const float *bias, int M, int K,
                      int N) {
  float beta = 0.0f;
  if (bias) {
    /* Seed the output with the bias and let sgemm accumulate onto it (beta = 1): one pass over
     * out instead of a gemm pass plus a separate bias pass. */
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++) memcpy(out + (size_t)i * N, bias, sizeof(float) * (size_t)N);
    beta = 1.0f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, in, K, weight, K, beta, out, N);
}

void k_linear_backward(float *d_in, float *d_weight, float *d_bias, const float *d_out, const float *in,
                       const float *weight, int M, int K, int N) {
  if (d_in)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.0f, d_out, N, weight, K, 0.0f, d_in, K);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.0f, d_out, N, in, K, 1.0f, d_weight, K);
  if (d_bias) {
    /* Each thread owns a contiguous range of columns and sums them over all rows in row order,
     * so the result does not depend on the thread count. */
#pragma omp parallel
    {
#ifdef _OPENMP
      int nt = omp_get_num_threads(), id = omp_get_thread_num();
#else
      int nt = 1, id = 0;
#endif
      int lo = (int)((long)N * id / nt), hi = (int)((long)N * (id + 1) / nt);
      for (int i = 0; i < M; i++) {
        const float *row = d_out + (size_t)i * N;
        for (int j = lo; j < hi; j++) d_bias[j] += row[j];
      }
    }
  }
}

/* The specification: the Linear, then the GELU. */
void k_linear_gelu_forward(float *pre, float *out, const float *in, const float *weight, const float *bias, int M,
                           int K, int N) {
  k_linear_forward(pre, in, weight, bias, M, K, N);
  k_gelu_forward(out, pre, (size_t)M * (size_t)N);
}

/* The specification: the Linear's backward, then the GELU's, in place on d_pre. */
void k_linear_backward_gelu(float *d_pre, float *d_weight, float *d_bias, const float *d_out, const float *in,
                            const float *weight, const float *pre, int M, int K, int N) {
  k_linear_backward(d_pre, d_weight, d_bias, d_out, in, weight, M, K, N);
  k_gelu_backward(d_pre, d_pre, pre, (size_t)M * (size_t)K);
}
