/* attention.cu — full multi-head softmax attention, forward and backward, fp32, materialising the
 * probabilities [B, H, N, N] exactly like kernels/cpu/attention.c (same buffers, same contract).
 * This is the first rung: the flash-style bf16 kernel that keeps only the row log-sum-exp comes
 * later and will be checked against this one.
 *
 * GEMMs go to cuBLASLt (tcu_gemm), batched over the H heads of one clip: head h's q, k, v are the
 * columns h·dh.. of the [N, 3D] qkv rows, so consecutive heads sit dh floats apart (the batch
 * stride) with leading dimension 3D; the clips are a loop (their stride, N·3D, differs from the
 * heads'). Softmax and its backward are one warp per row.
 *
 * Column-major view used throughout (see matmul.cu): a row-major [r, c] matrix with row stride ld
 * is the column-major c x r matrix with leading dimension ld. Writing Qc = Q^T (dh x N, ld 3D) etc.:
 *   S^T  = op_T(Kc) · Qc          (N x N; stored row-major S, scaled by 1/sqrt(dh) as alpha)
 *   O^T  = Vc · Pst              (dh x N into out, ld D), Pst = stored P = P^T column-major
 *   dV^T = dOc · op_T(Pst)       (dV = P^T dO)
 *   dP^T = op_T(Vc) · dOc        (dP = dO V^T, one head at a time into `scratch`)
 *   dQ^T = scale Kc · dSst       (dQ = scale dS K)
 *   dK^T = scale Qc · op_T(dSst) (dK = scale dS^T Q) */
#include <math.h>

#include "kernels/cuda/cuda_internal.cuh"

namespace {

constexpr int kWarpsPerBlock = 8;
/* Rows up to 32 x kRegisterLanes long are held in registers (one read of the row); longer rows
 * take three passes over memory (the row then mostly sits in L1/L2). */
constexpr int kRegisterLanes = 32;

/* Row softmax in place, N <= 32 * kRegisterLanes. Same arithmetic as the CPU's softmax_rows:
 * max, e = exp(s - max) with the CPU's exp approximation, sum, then e * (1 / sum). */
__global__ void softmax_rows_registers_kernel(float *s, long long rows, int N) {
  long long row = (long long)blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  int lane = threadIdx.x & 31;
  if (row >= rows) return;
  float *r = s + row * N;
  float v[kRegisterLanes];
  float mx = -INFINITY;
#pragma unroll
  for (int t = 0; t < kRegisterLanes; t++) {
    int j = lane + 32 * t;
    v[t] = j < N ? r[j] : -INFINITY;
    mx = fmaxf(mx, v[t]);
  }
  mx = tcu_warp_max(mx);
  float sum = 0.0f;
#pragma unroll
  for (int t = 0; t < kRegisterLanes; t++) {
    int j = lane + 32 * t;
    float e = j < N ? tcu_exp_nonpositive(__fsub_rn(v[t], mx)) : 0.0f;
    v[t] = e;
    sum = __fadd_rn(sum, e);
  }
  float inv = __fdiv_rn(1.0f, tcu_warp_sum(sum));
#pragma unroll
  for (int t = 0; t < kRegisterLanes; t++) {
    int j = lane + 32 * t;
    if (j < N) r[j] = __fmul_rn(v[t], inv);
  }
}

__global__ void softmax_rows_kernel(float *s, long long rows, int N) {
  long long row = (long long)blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  int lane = threadIdx.x & 31;
  if (row >= rows) return;
  float *r = s + row * N;
  float mx = -INFINITY;
  for (int j = lane; j < N; j += 32) mx = fmaxf(mx, r[j]);
  mx = tcu_warp_max(mx);
  float sum = 0.0f;
  for (int j = lane; j < N; j += 32) {
    float e = tcu_exp_nonpositive(__fsub_rn(r[j], mx));
    r[j] = e;
    sum = __fadd_rn(sum, e);
  }
  float inv = __fdiv_rn(1.0f, tcu_warp_sum(sum));
  for (int j = lane; j < N; j += 32) r[j] = __fmul_rn(r[j], inv);
}

/* Softmax backward in place on one head: ds = p ⊙ (dp - rowsum(p ⊙ dp)). */
__global__ void softmax_backward_rows_kernel(float *ds, const float *p, int N) {
  long long row = (long long)blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  int lane = threadIdx.x & 31;
  if (row >= N) return;
  float *dr = ds + row * N;
  const float *pr = p + row * N;
  float dot = 0.0f;
  for (int j = lane; j < N; j += 32) dot = __fadd_rn(dot, __fmul_rn(pr[j], dr[j]));
  dot = tcu_warp_sum(dot);
  for (int j = lane; j < N; j += 32) dr[j] = __fmul_rn(pr[j], __fsub_rn(dr[j], dot));
}

bool shape_ok(const char *op, int B, int N, int D, int H) {
  if (B < 0 || N < 0 || D < 0 || H <= 0 || D % H != 0) {
    TCU_FAIL("%s: bad shape B=%d N=%d D=%d H=%d (D must be a multiple of H)", op, B, N, D, H);
    return false;
  }
  return true;
}

}  // namespace

size_t tcu_attention_probs_floats(int B, int N, int H) { return (size_t)B * (size_t)H * (size_t)N * (size_t)N; }

/* dP of one head at a time: N·N floats, whatever H (the batched variant would need H·N·N). */
size_t tcu_attention_scratch_floats(int N) { return (size_t)N * (size_t)N; }

void tcu_attention_forward(float *out, float *probs, const float *qkv, int B, int N, int D, int H) {
  if (!shape_ok("attention_forward", B, N, D, H)) return;
  if (B == 0 || N == 0 || D == 0) return;
  const int dh = D / H, ld_qkv = 3 * D;
  const float scale = 1.0f / sqrtf((float)dh);
  const long long nn = (long long)N * N;
  for (int b = 0; b < B; b++) {
    const float *q = qkv + (size_t)b * N * ld_qkv, *k = q + D;
    float *p = probs + (size_t)b * H * nn;
    /* S = scale Q K^T for all heads of clip b */
    if (!tcu_gemm(true, false, N, N, dh, scale, k, ld_qkv, dh, q, ld_qkv, dh, 0.0f, p, N, nn, H, NULL)) return;
  }
  long long rows = (long long)B * H * N;
  unsigned blocks = (unsigned)tcu_ceil_div(rows, kWarpsPerBlock);
  if (N <= 32 * kRegisterLanes)
    softmax_rows_registers_kernel<<<blocks, kWarpsPerBlock * 32>>>(probs, rows, N);
  else
    softmax_rows_kernel<<<blocks, kWarpsPerBlock * 32>>>(probs, rows, N);
  if (!LAUNCH_OK("softmax_rows_kernel")) return;
  for (int b = 0; b < B; b++) {
    const float *v = qkv + (size_t)b * N * ld_qkv + 2 * D;
    const float *p = probs + (size_t)b * H * nn;
    /* O = P V, head h into columns h·dh.. of out */
    if (!tcu_gemm(false, false, dh, N, N, 1.0f, v, ld_qkv, dh, p, N, nn, 0.0f, out + (size_t)b * N * D, D, dh, H, NULL))
      return;
  }
}

void tcu_attention_backward(float *d_qkv, const float *d_out, const float *qkv, const float *probs, float *scratch,
                            int B, int N, int D, int H) {
  if (!shape_ok("attention_backward", B, N, D, H)) return;
  if (B == 0 || N == 0 || D == 0) return;
  const int dh = D / H, ld_qkv = 3 * D;
  const float scale = 1.0f / sqrtf((float)dh);
  const long long nn = (long long)N * N;
  const unsigned blocks = (unsigned)tcu_ceil_div(N, kWarpsPerBlock);
  for (int b = 0; b < B; b++) {
    const float *q = qkv + (size_t)b * N * ld_qkv, *k = q + D, *v = q + 2 * D;
    float *dq = d_qkv + (size_t)b * N * ld_qkv, *dk = dq + D, *dv = dq + 2 * D;
    const float *dout = d_out + (size_t)b * N * D;
    const float *p = probs + (size_t)b * H * nn;
    /* dV = P^T dO, all heads at once */
    if (!tcu_gemm(false, true, dh, N, N, 1.0f, dout, D, dh, p, N, nn, 0.0f, dv, ld_qkv, dh, H, NULL)) return;
    for (int h = 0; h < H; h++) {
      const size_t col = (size_t)h * dh;
      const float *ph = p + (size_t)h * nn;
      /* dP = dO V^T */
      if (!tcu_gemm(true, false, N, N, dh, 1.0f, v + col, ld_qkv, 0, dout + col, D, 0, 0.0f, scratch, N, 0, 1, NULL))
        return;
      softmax_backward_rows_kernel<<<blocks, kWarpsPerBlock * 32>>>(scratch, ph, N);
      if (!LAUNCH_OK("softmax_backward_rows_kernel")) return;
      /* dQ = scale dS K; dK = scale dS^T Q */
      if (!tcu_gemm(false, false, dh, N, N, scale, k + col, ld_qkv, 0, scratch, N, 0, 0.0f, dq + col, ld_qkv, 0, 1,
                    NULL))
        return;
      if (!tcu_gemm(false, true, dh, N, N, scale, q + col, ld_qkv, 0, scratch, N, 0, 0.0f, dk + col, ld_qkv, 0, 1,
                    NULL))
        return;
    }
  }
}
