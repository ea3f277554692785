/* attention.cu — full (non-causal) multi-head softmax attention, forward and backward, flash style:
 * the N x N score matrix is never stored. The forward keeps only the output and, per (clip, head,
 * query row), the log-sum-exp of the scaled scores, lse_i = log sum_j exp(s_ij); that is what
 * `probs` holds on this backend (B*H*N floats, attention_probs_floats). The backward recomputes the
 * scores tile by tile (FlashAttention-2): P_ij = exp(s_ij - lse_i), dP_ij = dO_i · v_j,
 * dS_ij = P_ij (dP_ij - D_i) with D_i = rowsum(dO ∘ O)_i, dQ = scale dS K, dK = scale dS^T Q,
 * dV = P^T dO.
 *
 * D_i comes from the forward's output (attention_backward's `out`) in the first pass of the dQ
 * kernel, or, when the caller passes none, from O_i recomputed there: one extra forward's worth of
 * arithmetic. Backend scratch: 2*B*H*N floats (D, and bf16 mode's recomputed lse). dQ (one block per query tile) and dK/dV (one block per key tile)
 * are separate kernels, so every output element is written by exactly one thread and summed in a
 * fixed order: no atomics, the same bits on every run.
 *
 * fp32 SIMT in shared memory, chosen for being right over being fast: TPR threads share one row
 * (query row in the forward and the dQ pass, key row in the dK/dV pass); each owns DH/TPR of its
 * head-dimension columns in registers (float4 chunks r, r+TPR, ... so the TPR threads of a row read
 * adjacent 16-byte words of a shared row: no bank conflicts) and a dot product is a butterfly over
 * the TPR lanes (every lane gets the same bits, so per-row control flow stays uniform). The head
 * dimension is padded with zeros to the kernel's DH (16, 32, 64 or 128). Exponentials are the CPU's
 * own approximation (tcu_exp_nonpositive), so the GPU and CPU differ only in summation order.
 *
 * bf16 mode runs FlashAttention-2 kernels on tensor cores (attention_flash.cu, attention_flash_bwd.cu).
 * TPDIFF_ATTN, read at every call so that a failure on a GPU can be bypassed without a rebuild and
 * the variants timed side by side in one process: "flash" (the default) loads the tensor cores'
 * operands with ldmatrix; "flash-scalar" runs the same kernels with one shared load per register
 * (the same bits); "flash-wide" gives each warp of the forward and of the dQ kernel two query
 * m-tiles (the same bits);
 * "simple" the earlier bf16-mode pair: attention_bf16.cu's wmma forward and, for the
 * backward, these fp32 kernels with the row statistics recomputed in fp32 (RECOMPUTE). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/attention_flash.cuh"
#include "kernels/cuda/cuda_internal.cuh"

namespace {

constexpr int kRows = 64; /* query rows per block (forward, dQ), key rows per block (dK/dV) */
constexpr int kTile = 32; /* key rows per shared tile (forward, dQ), query rows (dK/dV) */
constexpr int kMaxHeadDim = 128;

template <int DH>
struct Geometry {
  static constexpr int tpr = DH >= 128 ? 4 : 2; /* threads per row */
  static constexpr int chunks = DH / tpr / 4;   /* float4 chunks per thread */
  static constexpr int threads = kRows * tpr;
};

__device__ __forceinline__ float row_sum(float v, int tpr) {
  for (int o = 1; o < tpr; o <<= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/* The column of chunk c of lane r: chunks are interleaved over the lanes of a row. */
template <int DH>
__device__ __forceinline__ int chunk_col(int r, int c) {
  return 4 * (r + Geometry<DH>::tpr * c);
}

/* Loads 4 consecutive head columns from global memory, zero past dh (the padding). */
__device__ __forceinline__ float4 load4(const float *row, int col, int dh) {
  float4 v;
  v.x = col + 0 < dh ? row[col + 0] : 0.0f;
  v.y = col + 1 < dh ? row[col + 1] : 0.0f;
  v.z = col + 2 < dh ? row[col + 2] : 0.0f;
  v.w = col + 3 < dh ? row[col + 3] : 0.0f;
  return v;
}
__device__ __forceinline__ void store4(float *row, int col, int dh, float4 v) {
  if (col + 0 < dh) row[col + 0] = v.x;
  if (col + 1 < dh) row[col + 1] = v.y;
  if (col + 2 < dh) row[col + 2] = v.z;
  if (col + 3 < dh) row[col + 3] = v.w;
}
__device__ __forceinline__ float dot4(float4 a, float4 b) { return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w; }
__device__ __forceinline__ void axpy4(float4 &y, float a, float4 x) {
  y.x += a * x.x;
  y.y += a * x.y;
  y.z += a * x.z;
  y.w += a * x.w;
}
__device__ __forceinline__ void scale4(float4 &y, float a) {
  y.x *= a;
  y.y *= a;
  y.z *= a;
  y.w *= a;
}

/* Copies rows [first, first + kTile) of one head's columns (offset `col0` in rows of length ld) into
 * tile[kTile][DH], zero past dh and past N. */
template <int DH>
__device__ void load_tile(float *tile, const float *base, long long ld, int col0, int first, int N, int dh) {
  for (int e = threadIdx.x; e < kTile * DH; e += blockDim.x) {
    const int j = e / DH, d = e % DH, row = first + j;
    tile[e] = (row < N && d < dh) ? base[(long long)row * ld + col0 + d] : 0.0f;
  }
}

template <int DH>
__device__ __forceinline__ float tile_dot(const float4 (&x)[Geometry<DH>::chunks], const float *tile_row, int r) {
  float s = 0.0f;
#pragma unroll
  for (int c = 0; c < Geometry<DH>::chunks; c++)
    s += dot4(x[c], *reinterpret_cast<const float4 *>(tile_row + chunk_col<DH>(r, c)));
  return row_sum(s, Geometry<DH>::tpr);
}

/* grid (ceil(N / kRows), B*H). out[b, i, h*dh..], lse[(b*H + h)*N + i]. */
template <int DH>
__global__ void __launch_bounds__(Geometry<DH>::threads)
    flash_forward_kernel(float *out, float *lse, const float *qkv, int N, int D, int H, float scale) {
  using G = Geometry<DH>;
  __shared__ __align__(16) float ks[kTile * DH];
  __shared__ __align__(16) float vs[kTile * DH];
  const int bh = blockIdx.y, b = bh / H, h = bh % H, dh = D / H;
  const long long ld = 3LL * D;
  const float *clip = qkv + (long long)b * N * ld;
  const int row = threadIdx.x / G::tpr, r = threadIdx.x % G::tpr;
  const int i = blockIdx.x * kRows + row;
  const bool valid = i < N;
  float4 q[G::chunks], o[G::chunks];
#pragma unroll
  for (int c = 0; c < G::chunks; c++) {
    q[c] = valid ? load4(clip + (long long)i * ld + h * dh, chunk_col<DH>(r, c), dh) : make_float4(0, 0, 0, 0);
    o[c] = make_float4(0, 0, 0, 0);
  }
  float m = -INFINITY, l = 0.0f;
  for (int k0 = 0; k0 < N; k0 += kTile) {
    __syncthreads(); /* the previous tile is no longer read */
    load_tile<DH>(ks, clip, ld, D + h * dh, k0, N, dh);
    load_tile<DH>(vs, clip, ld, 2 * D + h * dh, k0, N, dh);
    __syncthreads();
    const int jn = min(kTile, N - k0);
    for (int j = 0; j < jn; j++) {
      const float s = tile_dot<DH>(q, ks + j * DH, r) * scale;
      /* online softmax: a new maximum rescales what was summed so far */
      if (s > m) {
        const float a = tcu_exp_nonpositive(m - s);
        l *= a;
#pragma unroll
        for (int c = 0; c < G::chunks; c++) scale4(o[c], a);
        m = s;
      }
      const float p = tcu_exp_nonpositive(s - m);
      l += p;
#pragma unroll
      for (int c = 0; c < G::chunks; c++)
        axpy4(o[c], p, *reinterpret_cast<const float4 *>(vs + j * DH + chunk_col<DH>(r, c)));
    }
  }
  if (!valid) return;
  const float inv = 1.0f / l;
  float *orow = out + ((long long)b * N + i) * D + h * dh;
#pragma unroll
  for (int c = 0; c < G::chunks; c++) {
    scale4(o[c], inv);
    store4(orow, chunk_col<DH>(r, c), dh, o[c]);
  }
  if (r == 0) lse[(long long)bh * N + i] = m + logf(l);
}

/* grid (ceil(N / kRows), B*H). Pass 1 stores D_i = dO_i · O_i, reading O_i from the forward's
 * output `out` when given, else recomputing it (one forward's work); pass 2 sums
 * dQ_i = scale sum_j dS_ij k_j. RECOMPUTE (bf16 mode, whose forward's lse is bf16-rounded): pass 1
 * is an online softmax that also recomputes lse_i in fp32 and stores it in lse_out, which pass 2
 * and the dK/dV kernel then use (out is ignored); else lse is the forward's and lse_out unused. */
template <int DH, bool RECOMPUTE>
__global__ void __launch_bounds__(Geometry<DH>::threads)
    flash_backward_dq_kernel(float *d_qkv, float *dsum, float *lse_out, const float *d_out, const float *qkv,
                             const float *out, const float *lse, int N, int D, int H, float scale) {
  using G = Geometry<DH>;
  __shared__ __align__(16) float ks[kTile * DH];
  __shared__ __align__(16) float vs[kTile * DH];
  const int bh = blockIdx.y, b = bh / H, h = bh % H, dh = D / H;
  const long long ld = 3LL * D;
  const float *clip = qkv + (long long)b * N * ld;
  const int row = threadIdx.x / G::tpr, r = threadIdx.x % G::tpr;
  const int i = blockIdx.x * kRows + row;
  const bool valid = i < N;
  float4 q[G::chunks], dout[G::chunks], acc[G::chunks];
#pragma unroll
  for (int c = 0; c < G::chunks; c++) {
    const int col = chunk_col<DH>(r, c);
    q[c] = valid ? load4(clip + (long long)i * ld + h * dh, col, dh) : make_float4(0, 0, 0, 0);
    dout[c] = valid ? load4(d_out + ((long long)b * N + i) * D + h * dh, col, dh) : make_float4(0, 0, 0, 0);
    acc[c] = make_float4(0, 0, 0, 0);
  }
  /* an invalid row (past N) is computed on zeros and never stored */
  float li = RECOMPUTE ? 0.0f : valid ? lse[(long long)bh * N + i] : INFINITY;
  float m = -INFINITY, l = 0.0f; /* RECOMPUTE only */
  /* the forward's O_i, when the caller has it: pass 1 is then a load (out is a kernel argument, so
   * the branch is the same for every thread and the loop's __syncthreads stay uniform) */
  const bool have_out = !RECOMPUTE && out != nullptr;
  if (have_out) {
#pragma unroll
    for (int c = 0; c < G::chunks; c++)
      acc[c] = valid ? load4(out + ((long long)b * N + i) * D + h * dh, chunk_col<DH>(r, c), dh)
                     : make_float4(0, 0, 0, 0);
  }
  for (int k0 = 0; k0 < N && !have_out; k0 += kTile) {
    __syncthreads();
    load_tile<DH>(ks, clip, ld, D + h * dh, k0, N, dh);
    load_tile<DH>(vs, clip, ld, 2 * D + h * dh, k0, N, dh);
    __syncthreads();
    const int jn = min(kTile, N - k0);
    for (int j = 0; j < jn; j++) {
      const float s = tile_dot<DH>(q, ks + j * DH, r) * scale;
      if (RECOMPUTE && s > m) { /* as in the forward */
        const float a = tcu_exp_nonpositive(m - s);
        l *= a;
#pragma unroll
        for (int c = 0; c < G::chunks; c++) scale4(acc[c], a);
        m = s;
      }
      const float p = tcu_exp_nonpositive(s - (RECOMPUTE ? m : li));
      if (RECOMPUTE) l += p;
#pragma unroll
      for (int c = 0; c < G::chunks; c++)
        axpy4(acc[c], p, *reinterpret_cast<const float4 *>(vs + j * DH + chunk_col<DH>(r, c)));
    }
  }
  if (RECOMPUTE) {
    li = m + logf(l);
    const float inv = 1.0f / l;
#pragma unroll
    for (int c = 0; c < G::chunks; c++) scale4(acc[c], inv);
    if (valid && r == 0) lse_out[(long long)bh * N + i] = li;
  }
  float partial = 0.0f;
#pragma unroll
  for (int c = 0; c < G::chunks; c++) {
    partial += dot4(dout[c], acc[c]);
    acc[c] = make_float4(0, 0, 0, 0);
  }
  const float di = row_sum(partial, G::tpr);
  if (valid && r == 0) dsum[(long long)bh * N + i] = di;
  for (int k0 = 0; k0 < N; k0 += kTile) {
    __syncthreads();
    load_tile<DH>(ks, clip, ld, D + h * dh, k0, N, dh);
    load_tile<DH>(vs, clip, ld, 2 * D + h * dh, k0, N, dh);
    __syncthreads();
    const int jn = min(kTile, N - k0);
    for (int j = 0; j < jn; j++) {
      const float p = tcu_exp_nonpositive(tile_dot<DH>(q, ks + j * DH, r) * scale - li);
      const float dp = tile_dot<DH>(dout, vs + j * DH, r);
      const float ds = p * (dp - di);
#pragma unroll
      for (int c = 0; c < G::chunks; c++)
        axpy4(acc[c], ds, *reinterpret_cast<const float4 *>(ks + j * DH + chunk_col<DH>(r, c)));
    }
  }
  if (!valid) return;
  float *dq = d_qkv + ((long long)b * N + i) * ld + h * dh;
#pragma unroll
  for (int c = 0; c < G::chunks; c++) {
    scale4(acc[c], scale);
    store4(dq, chunk_col<DH>(r, c), dh, acc[c]);
  }
}

/* grid (ceil(N / kRows), B*H), one key row j per TPR threads: dV_j = sum_i P_ij dO_i,
 * dK_j = scale sum_i dS_ij q_i, over query tiles of kTile rows held in shared memory. */
template <int DH>
__global__ void __launch_bounds__(Geometry<DH>::threads)
    flash_backward_dkv_kernel(float *d_qkv, const float *dsum, const float *d_out, const float *qkv, const float *lse,
                              int N, int D, int H, float scale) {
  using G = Geometry<DH>;
  __shared__ __align__(16) float qs[kTile * DH];
  __shared__ __align__(16) float dos[kTile * DH];
  __shared__ float lse_s[kTile], d_s[kTile];
  const int bh = blockIdx.y, b = bh / H, h = bh % H, dh = D / H;
  const long long ld = 3LL * D;
  const float *clip = qkv + (long long)b * N * ld;
  const float *dclip = d_out + (long long)b * N * D;
  const int row = threadIdx.x / G::tpr, r = threadIdx.x % G::tpr;
  const int j = blockIdx.x * kRows + row;
  const bool valid = j < N;
  float4 k[G::chunks], v[G::chunks], dk[G::chunks], dv[G::chunks];
#pragma unroll
  for (int c = 0; c < G::chunks; c++) {
    const int col = chunk_col<DH>(r, c);
    k[c] = valid ? load4(clip + (long long)j * ld + D + h * dh, col, dh) : make_float4(0, 0, 0, 0);
    v[c] = valid ? load4(clip + (long long)j * ld + 2 * D + h * dh, col, dh) : make_float4(0, 0, 0, 0);
    dk[c] = make_float4(0, 0, 0, 0);
    dv[c] = make_float4(0, 0, 0, 0);
  }
  for (int i0 = 0; i0 < N; i0 += kTile) {
    __syncthreads();
    load_tile<DH>(qs, clip, ld, h * dh, i0, N, dh);
    load_tile<DH>(dos, dclip, D, h * dh, i0, N, dh);
    for (int e = threadIdx.x; e < kTile; e += blockDim.x) {
      const bool in = i0 + e < N;
      lse_s[e] = in ? lse[(long long)bh * N + i0 + e] : INFINITY;
      d_s[e] = in ? dsum[(long long)bh * N + i0 + e] : 0.0f;
    }
    __syncthreads();
    const int in_tile = min(kTile, N - i0);
    for (int i = 0; i < in_tile; i++) {
      const float p = tcu_exp_nonpositive(tile_dot<DH>(k, qs + i * DH, r) * scale - lse_s[i]);
      const float dp = tile_dot<DH>(v, dos + i * DH, r);
      const float ds = p * (dp - d_s[i]);
#pragma unroll
      for (int c = 0; c < G::chunks; c++) {
        const int col = chunk_col<DH>(r, c);
        axpy4(dv[c], p, *reinterpret_cast<const float4 *>(dos + i * DH + col));
        axpy4(dk[c], ds, *reinterpret_cast<const float4 *>(qs + i * DH + col));
      }
    }
  }
  if (!valid) return;
  float *drow = d_qkv + ((long long)b * N + j) * ld + h * dh;
#pragma unroll
  for (int c = 0; c < G::chunks; c++) {
    const int col = chunk_col<DH>(r, c);
    scale4(dk[c], scale);
    store4(drow + D, col, dh, dk[c]);
    store4(drow + 2 * D, col, dh, dv[c]);
  }
}

bool shape_ok(const char *op, int B, int N, int D, int H) {
  if (B < 0 || N < 0 || D < 0 || H <= 0 || D % H != 0) {
    TCU_FAIL("%s: bad shape B=%d N=%d D=%d H=%d (D must be a multiple of H)", op, B, N, D, H);
    return false;
  }
  if (D / H > kMaxHeadDim) {
    TCU_FAIL("%s: head dimension D/H=%d exceeds the flash kernels' %d (B=%d N=%d D=%d H=%d)", op, D / H, kMaxHeadDim,
             B, N, D, H);
    return false;
  }
  if ((long long)B * H > 65535) {
    TCU_FAIL("%s: B*H=%lld exceeds the grid's 65535 (B=%d H=%d)", op, (long long)B * H, B, H);
    return false;
  }
  return true;
}

/* bf16 mode's attention kernels, from TPDIFF_ATTN */
enum Bf16Attention { kAttnInvalid = -1, kAttnFlash, kAttnFlashScalar, kAttnFlashWide, kAttnSimple };

/* kAttnFlash for TPDIFF_ATTN unset, empty or "flash"; kAttnInvalid (error recorded) for an unknown
 * value. */
Bf16Attention bf16_attention(const char *op) {
  const char *v = getenv("TPDIFF_ATTN");
  if (!v || !v[0] || !strcmp(v, "flash")) return kAttnFlash;
  if (!strcmp(v, "flash-scalar")) return kAttnFlashScalar;
  if (!strcmp(v, "flash-wide")) return kAttnFlashWide;
  if (!strcmp(v, "simple")) return kAttnSimple;
  TCU_FAIL("%s: TPDIFF_ATTN=%.40s: expected \"flash\" (the default), \"flash-scalar\", \"flash-wide\" or \"simple\"",
           op, v);
  return kAttnInvalid;
}

/* The flash kernels' variant for a TPDIFF_ATTN choice other than simple */
FlashVariant flash_variant(Bf16Attention kind) {
  return kind == kAttnFlashScalar ? kFlashScalar : kind == kAttnFlashWide ? kFlashWide : kFlashLdmatrix;
}

/* The smallest kernel head dimension that holds dh. */
int padded_head_dim(int dh) { return dh <= 16 ? 16 : dh <= 32 ? 32 : dh <= 64 ? 64 : 128; }
/* The same for the flash (tensor-core) kernels, which also come in 80: a DiT-XL head of 72 (large.yaml,
 * 1152 / 16) then pads to 80 instead of 128, and its attention does 80/128 of the work. */
int flash_head_dim(int dh) { return dh > 64 && dh <= 80 ? 80 : padded_head_dim(dh); }

template <int DH>
bool launch_forward(float *out, float *lse, const float *qkv, int B, int N, int D, int H, float scale) {
  dim3 grid((unsigned)tcu_ceil_div(N, kRows), (unsigned)(B * H));
  TCU_LAUNCH(grid, Geometry<DH>::threads, 0, flash_forward_kernel<DH>)(out, lse, qkv, N, D, H, scale);
  return LAUNCH_OK("flash_forward_kernel");
}

/* dsum: D_i, then (bf16 mode) the recomputed lse_i, B*H*N floats each */
template <int DH>
bool launch_backward(float *d_qkv, float *dsum, const float *d_out, const float *qkv, const float *out,
                     const float *lse, int B, int N, int D, int H, float scale) {
  dim3 grid((unsigned)tcu_ceil_div(N, kRows), (unsigned)(B * H));
  if (g_tcu.bf16) {
    float *lse32 = dsum + (size_t)B * H * N;
    TCU_LAUNCH(grid, Geometry<DH>::threads, 0, flash_backward_dq_kernel<DH, true>)(d_qkv, dsum, lse32, d_out, qkv,
                                                                                  nullptr, lse, N, D, H, scale);
    lse = lse32;
  } else {
    TCU_LAUNCH(grid, Geometry<DH>::threads, 0, flash_backward_dq_kernel<DH, false>)(d_qkv, dsum, NULL, d_out, qkv, out,
                                                                                   lse, N, D, H, scale);
  }
  if (!LAUNCH_OK("flash_backward_dq_kernel")) return false;
  TCU_LAUNCH(grid, Geometry<DH>::threads, 0, flash_backward_dkv_kernel<DH>)(d_qkv, dsum, d_out, qkv, lse, N, D, H,
                                                                            scale);
  return LAUNCH_OK("flash_backward_dkv_kernel");
}

}  // namespace

/* The row log-sum-exp of every (clip, head, query). */
size_t tcu_attention_probs_floats(int B, int N, int H) { return (size_t)B * (size_t)H * (size_t)N; }

/* TCU_SCRATCH_ATTENTION at most, for the precision set now: fp32 (and bf16's simple pair) keeps D_i
 * and lse_i there; the bf16 flash kernels their padded bf16 operands, the backward four of them
 * (q, k, v, dO) and D_i (and lse_i when the caller passes no forward output). */
size_t tcu_attention_scratch_need(int B, int N, int D, int H) {
  if (B <= 0 || N <= 0 || D <= 0 || H <= 0) return 0;
  const size_t rows = (size_t)B * (size_t)H * (size_t)N;
  size_t need = 2 * rows * sizeof(float);
  if (g_tcu.bf16) {
    const size_t operand = (size_t)B * H * flash::padded_rows(N) * flash_head_dim(D / H);
    const size_t flash = 4 * operand * sizeof(__nv_bfloat16) + 2 * rows * sizeof(float);
    if (flash > need) need = flash;
  }
  return need;
}

/* The backward keeps D_i in backend scratch (its size depends on B and H, which this does not get). */
size_t tcu_attention_scratch_floats(int N) {
  (void)N;
  return 1;
}

void tcu_attention_forward(float *out, float *probs, const float *qkv, int B, int N, int D, int H) {
  if (!shape_ok("attention_forward", B, N, D, H)) return;
  if (B == 0 || N == 0 || D == 0) return;
  const int dh = D / H;
  const float scale = 1.0f / sqrtf((float)dh);
  if (g_tcu.bf16) {
    const Bf16Attention kind = bf16_attention("attention_forward");
    if (kind == kAttnSimple) tcu_attention_forward_bf16(out, probs, qkv, B, N, D, H, padded_head_dim(dh), scale);
    if (kind != kAttnSimple && kind != kAttnInvalid)
      tcu_attention_forward_flash(out, probs, qkv, B, N, D, H, flash_head_dim(dh), scale, flash_variant(kind));
    return;
  }
  switch (padded_head_dim(dh)) {
    case 16: launch_forward<16>(out, probs, qkv, B, N, D, H, scale); break;
    case 32: launch_forward<32>(out, probs, qkv, B, N, D, H, scale); break;
    case 64: launch_forward<64>(out, probs, qkv, B, N, D, H, scale); break;
    default: launch_forward<128>(out, probs, qkv, B, N, D, H, scale); break;
  }
}

void tcu_attention_backward(float *d_qkv, const float *d_out, const float *qkv, const float *out, const float *probs,
                            float *scratch, int B, int N, int D, int H) {
  (void)scratch;
  if (!shape_ok("attention_backward", B, N, D, H)) return;
  if (B == 0 || N == 0 || D == 0) return;
  const int dh = D / H;
  const float scale = 1.0f / sqrtf((float)dh);
  if (g_tcu.bf16) {
    const Bf16Attention kind = bf16_attention("attention_backward");
    if (kind == kAttnInvalid) return;
    if (kind != kAttnSimple) {
      /* with the forward's output, its lse (in probs) and D_i = dO_i · O_i come for free */
      tcu_attention_backward_flash(d_qkv, d_out, qkv, out, out ? probs : NULL, B, N, D, H, flash_head_dim(dh), scale,
                                   flash_variant(kind));
      return;
    }
  }
  float *dsum = (float *)tcu_scratch(TCU_SCRATCH_ATTENTION, (size_t)2 * B * H * N * sizeof(float));
  if (!dsum) return;
  switch (padded_head_dim(dh)) {
    case 16: launch_backward<16>(d_qkv, dsum, d_out, qkv, out, probs, B, N, D, H, scale); break;
    case 32: launch_backward<32>(d_qkv, dsum, d_out, qkv, out, probs, B, N, D, H, scale); break;
    case 64: launch_backward<64>(d_qkv, dsum, d_out, qkv, out, probs, B, N, D, H, scale); break;
    default: launch_backward<128>(d_qkv, dsum, d_out, qkv, out, probs, B, N, D, H, scale); break;
  }
}
