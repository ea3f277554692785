/* attention.c — full multi-head softmax attention, forward and backward, on OpenBLAS sgemm.
 *
 * Work is split over (clip, head) pairs with OpenMP; each pair runs its GEMMs single-threaded
 * (OpenBLAS's OpenMP build does so inside a parallel region) and its softmax while the N x N tile
 * is still in cache. The probabilities are kept for the backward (B·H·N² floats): on the CPU
 * configs this fits easily and saves recomputing q·kᵀ; the GPU backend uses a flash-style kernel
 * that stores only the row log-sum-exp instead. */
#include <cblas.h>
#include <math.h>

#include "kernels/kernels.h"
#include "kernels/cpu/cpu_internal.h"

static void softmax_rows(float *s, int N) {
  for (int i = 0; i < N; i++) {
    float *row = s + (size_t)i * N;
    float mx = row[0];
    for (int j = 1; j < N; j++) mx = row[j] > mx ? row[j] : mx;
    float sum = 0.0f;
    for (int j = 0; j < N; j++) {
      float e = k_exp_nonpositive(row[j] - mx);
      row[j] = e;
      sum += e;
    }
    float inv = 1.0f / sum;
    for (int j = 0; j < N; j++) row[j] *= inv;
  }
}

void k_attention_forward(float *out, float *probs, const float *qkv, int B, int N, int D, int H) {
  int dh = D / H;
  float scale = 1.0f / sqrtf((float)dh);
#pragma omp parallel for schedule(dynamic, 1)
  for (int bh = 0; bh < B * H; bh++) {
    int b = bh / H, h = bh % H;
    const float *q = qkv + (size_t)b * N * 3 * D + (size_t)h * dh;
    const float *k = q + D, *v = q + 2 * D;
    float *p = probs + (size_t)bh * N * N;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, dh, scale, q, 3 * D, k, 3 * D, 0.0f, p, N);
    softmax_rows(p, N);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, dh, N, 1.0f, p, N, v, 3 * D, 0.0f,
                out + (size_t)b * N * D + (size_t)h * dh, D);
  }
}

size_t k_attention_scratch_floats(int N) { return (size_t)N * N * (size_t)k_num_threads(); }

void k_attention_backward(float *d_qkv, const float *d_out, const float *qkv, const float *out, const float *probs,
                          float *scratch, int B, int N, int D, int H) {
  (void)out; /* the stored probabilities hold all the backward needs */
  int dh = D / H;
  float scale = 1.0f / sqrtf((float)dh);
#pragma omp parallel for schedule(dynamic, 1)
  for (int bh = 0; bh < B * H; bh++) {
    int b = bh / H, h = bh % H;
    size_t qoff = (size_t)b * N * 3 * D + (size_t)h * dh;
    const float *q = qkv + qoff, *k = q + D, *v = q + 2 * D;
    float *dq = d_qkv + qoff, *dk = dq + D, *dv = dq + 2 * D;
    const float *p = probs + (size_t)bh * N * N;
    const float *dout = d_out + (size_t)b * N * D + (size_t)h * dh;
    float *ds = scratch + (size_t)k_thread_id() * N * N;
    /* dV = Pᵀ dO; dP = dO Vᵀ */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, dh, N, 1.0f, p, N, dout, D, 0.0f, dv, 3 * D);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, dh, 1.0f, dout, D, v, 3 * D, 0.0f, ds, N);
    /* softmax backward in place: dS = P ∘ (dP − rowsum(P ∘ dP)) */
    for (int i = 0; i < N; i++) {
      float *dsr = ds + (size_t)i * N;
      const float *pr = p + (size_t)i * N;
      float dot = 0.0f;
      for (int j = 0; j < N; j++) dot += pr[j] * dsr[j];
      for (int j = 0; j < N; j++) dsr[j] = pr[j] * (dsr[j] - dot);
    }
    /* dQ = scale dS K; dK = scale dSᵀ Q */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, dh, N, scale, ds, N, k, 3 * D, 0.0f, dq, 3 * D);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, dh, N, scale, ds, N, q, 3 * D, 0.0f, dk, 3 * D);
  }
}
