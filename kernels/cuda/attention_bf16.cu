/* attention_bf16.cu — the earlier attention forward of bf16 mode (TPDIFF_ATTN=simple): flash-style
 * like attention.cu (output and row log-sum-exp only, nothing N x N in memory), but Q, K, V tiles
 * are loaded as bf16 and both products, S = Q K^T and P V, run on tensor cores (wmma 16x16x16, bf16
 * in, fp32 accumulate).
 *
 * One block = 4 warps = 64 query rows of one (clip, head); warp w owns rows 16w..16w+15 of every
 * per-row buffer, so after the block-wide loads of a K/V tile the warps only synchronise with
 * themselves. Per 64-key tile, warp w: S (fp32) into shared memory by wmma; the online softmax in
 * SIMT, two lanes per row (fp32 max, sum and rescale; P rounded to bf16 once, and the row sum l
 * adds the rounded values, so the normalisation matches what the tensor cores multiply); P V by
 * wmma into a shared fp32 buffer; then O = alpha O + P V per row in SIMT (the rescale needs the row
 * of each element, which wmma's accumulator fragments do not expose). Head columns past dh and
 * keys or queries past N are zeros; keys past N never enter the softmax.
 *
 * This is bf16 mode's forward only under TPDIFF_ATTN=simple (attention.cu); the default is the
 * FlashAttention-2 kernel of attention_flash.cu. Its backward partner is the fp32 kernels of
 * attention.cu, which in bf16 mode recompute the row statistics in fp32 instead of reading this
 * forward's log-sum-exp (whose row sums add bf16-rounded P). */
#include <cuda_bf16.h>
#include <math.h>
#include <mma.h>

#include "kernels/cuda/cuda_internal.cuh"

namespace {

using namespace nvcuda;

constexpr int kWarps = 4;
constexpr int kRows = 16 * kWarps; /* query rows per block */
constexpr int kKeys = 64;          /* keys per tile */

/* Shared-memory layout (row strides padded: wmma needs multiples of 8 bf16 / 4 floats, and the pad
 * moves consecutive rows to other banks). */
template <int DH>
struct Smem {
  static constexpr int ld_h = DH + 8;    /* q, k, v rows (bf16) */
  static constexpr int ld_s = kKeys + 4; /* s rows (fp32) */
  static constexpr int ld_p = kKeys + 8; /* p rows (bf16) */
  static constexpr int ld_o = DH + 4;    /* o and pv rows (fp32) */
  static constexpr size_t q = 0;
  static constexpr size_t k = q + sizeof(__nv_bfloat16) * kRows * ld_h;
  static constexpr size_t v = k + sizeof(__nv_bfloat16) * kKeys * ld_h;
  static constexpr size_t s = v + sizeof(__nv_bfloat16) * kKeys * ld_h;
  static constexpr size_t p = s + sizeof(float) * kRows * ld_s;
  static constexpr size_t o = p + sizeof(__nv_bfloat16) * kRows * ld_p;
  static constexpr size_t pv = o + sizeof(float) * kRows * ld_o;
  static constexpr size_t bytes = pv + sizeof(float) * kRows * ld_o;
};

/* rows [first, first + count) of one head's columns into tile[count][ld] as bf16, zero past dh and N */
__device__ void load_bf16(__nv_bfloat16 *tile, int ld, int count, int DH, const float *base, long long row_stride,
                          int first, int N, int dh) {
  for (int e = threadIdx.x; e < count * DH; e += blockDim.x) {
    const int r = e / DH, d = e % DH, row = first + r;
    tile[r * ld + d] = __float2bfloat16_rn((row < N && d < dh) ? base[(long long)row * row_stride + d] : 0.0f);
  }
}

/* grid (ceil(N / kRows), B*H), kWarps*32 threads, Smem<DH>::bytes of dynamic shared memory */
template <int DH>
__global__ void __launch_bounds__(kWarps * 32)
    flash_forward_bf16_kernel(float *out, float *lse, const float *qkv, int N, int D, int H, float scale) {
  using L = Smem<DH>;
  TCU_DYNAMIC_SMEM(smem);
  __nv_bfloat16 *qs = (__nv_bfloat16 *)(smem + L::q), *ks = (__nv_bfloat16 *)(smem + L::k);
  __nv_bfloat16 *vs = (__nv_bfloat16 *)(smem + L::v), *ps = (__nv_bfloat16 *)(smem + L::p);
  float *ss = (float *)(smem + L::s), *os = (float *)(smem + L::o), *pvs = (float *)(smem + L::pv);

  const int bh = blockIdx.y, b = bh / H, h = bh % H, dh = D / H;
  const long long ld = 3LL * D;
  const float *clip = qkv + (long long)b * N * ld;
  const int q0 = blockIdx.x * kRows, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  /* SIMT work: lane pair (2r, 2r+1) owns row 16 warp + r; `half` picks keys or columns */
  const int row = 16 * warp + lane / 2, half = lane % 2;

  load_bf16(qs, L::ld_h, kRows, DH, clip + h * dh, ld, q0, N, dh);
  for (int d = half * (DH / 2); d < (half + 1) * (DH / 2); d++) os[row * L::ld_o + d] = 0.0f;
  float m = -INFINITY, l = 0.0f;

  for (int k0 = 0; k0 < N; k0 += kKeys) {
    __syncthreads(); /* every warp is done with the previous K/V tile */
    load_bf16(ks, L::ld_h, kKeys, DH, clip + D + h * dh, ld, k0, N, dh);
    load_bf16(vs, L::ld_h, kKeys, DH, clip + 2 * D + h * dh, ld, k0, N, dh);
    __syncthreads();

    /* S[16 rows, 64 keys] = Q K^T: K's rows are the columns of B (col_major view of ks) */
    for (int nb = 0; nb < kKeys / 16; nb++) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.0f);
      for (int kk = 0; kk < DH / 16; kk++) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> bk;
        wmma::load_matrix_sync(a, qs + 16 * warp * L::ld_h + 16 * kk, L::ld_h);
        wmma::load_matrix_sync(bk, ks + 16 * nb * L::ld_h + 16 * kk, L::ld_h);
        wmma::mma_sync(acc, a, bk, acc);
      }
      wmma::store_matrix_sync(ss + 16 * warp * L::ld_s + 16 * nb, acc, L::ld_s, wmma::mem_row_major);
    }
    __syncwarp();

    /* online softmax of this row's tile: each lane of the pair takes 32 of the 64 keys */
    const int jn = min(kKeys, N - k0), j0 = half * (kKeys / 2);
    float tile_max = -INFINITY;
    for (int j = j0; j < j0 + kKeys / 2; j++)
      if (j < jn) tile_max = fmaxf(tile_max, ss[row * L::ld_s + j] * scale);
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    const float m_new = fmaxf(m, tile_max); /* finite: the tile holds at least one key */
    const float alpha = tcu_exp_nonpositive(m - m_new);
    float sum = 0.0f;
    for (int j = j0; j < j0 + kKeys / 2; j++) {
      __nv_bfloat16 pj = __float2bfloat16_rn(0.0f);
      if (j < jn) pj = __float2bfloat16_rn(tcu_exp_nonpositive(ss[row * L::ld_s + j] * scale - m_new));
      ps[row * L::ld_p + j] = pj;
      sum += __bfloat162float(pj);
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    l = l * alpha + sum;
    m = m_new;
    __syncwarp();

    /* PV[16 rows, DH] = P V */
    for (int db = 0; db < DH / 16; db++) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.0f);
      for (int kb = 0; kb < kKeys / 16; kb++) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> bv;
        wmma::load_matrix_sync(a, ps + 16 * warp * L::ld_p + 16 * kb, L::ld_p);
        wmma::load_matrix_sync(bv, vs + 16 * kb * L::ld_h + 16 * db, L::ld_h);
        wmma::mma_sync(acc, a, bv, acc);
      }
      wmma::store_matrix_sync(pvs + 16 * warp * L::ld_o + 16 * db, acc, L::ld_o, wmma::mem_row_major);
    }
    __syncwarp();
    for (int d = half * (DH / 2); d < (half + 1) * (DH / 2); d++)
      os[row * L::ld_o + d] = os[row * L::ld_o + d] * alpha + pvs[row * L::ld_o + d];
    __syncwarp();
  }

  const int i = q0 + row;
  if (i >= N) return;
  const float inv = 1.0f / l;
  float *orow = out + ((long long)b * N + i) * D + h * dh;
  for (int d = half * (DH / 2); d < (half + 1) * (DH / 2); d++)
    if (d < dh) orow[d] = os[row * L::ld_o + d] * inv;
  if (half == 0) lse[(long long)bh * N + i] = m + logf(l);
}

template <int DH>
bool launch(float *out, float *lse, const float *qkv, int B, int N, int D, int H, float scale) {
  const size_t bytes = Smem<DH>::bytes;
  /* more than the default 48 KiB of dynamic shared memory must be asked for, once per kernel */
  static bool configured = false;
  if (!configured) {
    if (!CUDA_OK(cudaFuncSetAttribute(flash_forward_bf16_kernel<DH>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      (int)bytes)))
      return false;
    configured = true;
  }
  dim3 grid((unsigned)tcu_ceil_div(N, kRows), (unsigned)(B * H));
  TCU_LAUNCH(grid, kWarps * 32, bytes, flash_forward_bf16_kernel<DH>)(out, lse, qkv, N, D, H, scale);
  return LAUNCH_OK("flash_forward_bf16_kernel");
}

}  // namespace

bool tcu_attention_forward_bf16(float *out, float *lse, const float *qkv, int B, int N, int D, int H, int padded_dh,
                                float scale) {
  switch (padded_dh) {
    case 16: return launch<16>(out, lse, qkv, B, N, D, H, scale);
    case 32: return launch<32>(out, lse, qkv, B, N, D, H, scale);
    case 64: return launch<64>(out, lse, qkv, B, N, D, H, scale);
    default: return launch<128>(out, lse, qkv, B, N, D, H, scale);
  }
}
