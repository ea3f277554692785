/* attention_flash_bwd.cu — bf16 mode's attention backward, FlashAttention-2 style, on the padded bf16
 * operands of attention_flash.cuh:
 *
 *   1. repack q, k, v and dO into bf16 (backend scratch);
 *   2. D_i = dO_i · O_i: from the forward's output and with the forward's lse (the model passes
 *      both: attention_backward's `out` and `probs`), one warp per row; or, when the caller has no
 *      `out`, the forward kernel with its D epilogue, which recomputes O_i and lse_i (the same kernel
 *      on the same operands: the forward's exact O and lse) at the cost of one more forward;
 *   3. dQ: one block per 64 query rows (warp w owns 16; with TPDIFF_ATTN=flash-wide 128 rows, two
 *      16-row m-tiles a warp, at head dimensions up to 64), streaming K/V tiles (double-buffered,
 *      cp.async): S = Q K^T and dP = dO V^T by mma, P = exp2(S scale log2e - lse log2e),
 *      dS = P (dP - D_i) in fp32 registers, dS rounded to bf16 into A fragments, dQ += dS K by mma;
 *   4. dK/dV: one block per 64 key rows (warp w owns 16 keys), streaming Q/dO tiles with their lse
 *      and D: the same products transposed (S^T = K Q^T, dP^T = V dO^T), dV += P^T dO and
 *      dK += dS^T Q by mma.
 * dQ and dK/dV are separate kernels, so every output element is summed by one thread in an order
 * fixed by the shape: no atomics, the same bits on every run. The scale of dQ and dK is applied once
 * to the fp32 sums. Keys past N get P = 0 (their padded rows are zeros, not -inf scores); queries past
 * N get lse = +inf and D = 0, so their P and dS are 0. */
#include <math.h>

#include "kernels/cuda/attention_flash.cuh"
#include "kernels/cuda/cuda_internal.cuh"

namespace {

using namespace flash;

struct BwdArgs {
  const __nv_bfloat16 *q, *k, *v, *dout; /* padded bf16 operands */
  const float *lse, *dsum;               /* [B*H*N], natural log and D_i */
  float *d_qkv;                          /* [B, N, 3D], fp32 */
  int N, Npad, D, H;
  float scale, scale_log2;
};

/* Stores this warp's 16 rows of a head's gradient, acc * mul, into d_qkv [B, N, 3D] at column block
 * `col` (0: dQ, D: dK, 2D: dV): head rows r0 + g and r0 + g + 8 of clip b, head h. Rows past N and
 * padded head columns are not stored. */
template <int ND>
__device__ __forceinline__ void store_rows(const float (&acc)[ND][4], float mul, const BwdArgs &a, int b, int h,
                                           int r0, int col, int lane) {
  const int g = lane >> 2, t = lane & 3, dh = a.D / a.H;
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int i = r0 + g + 8 * r;
    if (i >= a.N) continue;
    float *row = a.d_qkv + ((long long)b * a.N + i) * (3LL * a.D) + col + (long long)h * dh;
#pragma unroll
    for (int n = 0; n < ND; n++)
#pragma unroll
      for (int c = 0; c < 2; c++) {
        const int d = 8 * n + 2 * t + c;
        if (d < dh) row[d] = acc[n][2 * r + c] * mul;
      }
  }
}

/* ---- dQ ------------------------------------------------------------------------------------------ */

/* Shared memory: Q and dO of the block's rows (MT tiles each), then two stages of K and V. */
template <int DH, int MT>
struct DqSmem {
  static constexpr size_t tile = (size_t)kTileRows * Row<DH>::bytes_per_row;
  static constexpr size_t bytes = (2 * MT + 4) * tile;
  /* blocks per SM the registers are held to (__launch_bounds__); see DkvGeometry::min_blocks. Two
   * m-tiles a warp need every register a thread can have. */
  static constexpr int min_blocks = MT > 1 ? 1 : DH <= 64 ? 3 : 2;
};

/* grid (ceil(Npad / (kBlockRows MT)), B*H). MT: query m-tiles per warp, laid out as in the forward
 * (flash_fwd_kernel): m-tile mt of warp w holds the block's rows 16 (mt kWarps + w) .. +15, every K/V
 * fragment feeds MT products, and a row's arithmetic (so its bits) does not depend on MT. */
template <int DH, class Loads, int MT>
__global__ void __launch_bounds__(kThreads, DqSmem<DH, MT>::min_blocks) flash_bwd_dq_kernel(BwdArgs a) {
  constexpr int ld = Row<DH>::ld, KT = kTileRows, NT = KT / 8, ND = DH / 8;
  TCU_DYNAMIC_SMEM(smem);
  __nv_bfloat16 *qs = reinterpret_cast<__nv_bfloat16 *>(smem);
  __nv_bfloat16 *dos = qs + MT * kBlockRows * ld;
  /* stage s: K at stages + s * stage, V after it (pointer arithmetic: an array of pointers indexed
   * at run time would live in local memory) */
  __nv_bfloat16 *stages = dos + MT * kBlockRows * ld;
  constexpr int stage = 2 * KT * ld;

  const int bh = blockIdx.y, b = bh / a.H, h = bh % a.H;
  const int q0 = blockIdx.x * kBlockRows * MT, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane >> 2, t = lane & 3;
  const size_t head = (size_t)bh * a.Npad * DH;
  const int ntiles = a.Npad / KT;

  if constexpr (MT == 1) {
    tile_async<DH>(qs, a.q + head + (size_t)q0 * DH, kBlockRows);
    tile_async<DH>(dos, a.dout + head + (size_t)q0 * DH, kBlockRows);
  } else {
    /* the last block of a head may reach past Npad: zeros there, computed on and never stored */
    const int qrows = min(MT * kBlockRows, a.Npad - q0);
    tile_async<DH>(qs, a.q + head + (size_t)q0 * DH, qrows);
    tile_async<DH>(dos, a.dout + head + (size_t)q0 * DH, qrows);
    for (int c = qrows * ld / 8 + threadIdx.x; c < MT * kBlockRows * ld / 8; c += kThreads) {
      reinterpret_cast<uint4 *>(qs)[c] = make_uint4(0, 0, 0, 0);
      reinterpret_cast<uint4 *>(dos)[c] = make_uint4(0, 0, 0, 0);
    }
  }
  tile_async<DH>(stages, a.k + head, KT);
  tile_async<DH>(stages + KT * ld, a.v + head, KT);
  cp_async_commit();

  /* rows g and g+8 of each m-tile: lse in log2 units and D; rows past N contribute nothing */
  float lse2[MT][2], di[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; mt++)
#pragma unroll
    for (int r = 0; r < 2; r++) {
      const int i = q0 + 16 * (mt * kWarps + warp) + g + 8 * r;
      lse2[mt][r] = i < a.N ? a.lse[(size_t)bh * a.N + i] * kLog2e : INFINITY;
      di[mt][r] = i < a.N ? a.dsum[(size_t)bh * a.N + i] : 0.0f;
    }

  float dq[MT][ND][4];
#pragma unroll
  for (int mt = 0; mt < MT; mt++)
#pragma unroll
    for (int n = 0; n < ND; n++) dq[mt][n][0] = dq[mt][n][1] = dq[mt][n][2] = dq[mt][n][3] = 0.0f;

  for (int it = 0; it < ntiles; it++) {
    const int buf = it & 1, k0 = it * KT;
    cp_async_wait_all();
    __syncthreads(); /* tile it visible; buf^1 free */
    if (it + 1 < ntiles) {
      __nv_bfloat16 *next = stages + (buf ^ 1) * stage;
      tile_async<DH>(next, a.k + head + (size_t)(k0 + KT) * DH, KT);
      tile_async<DH>(next + KT * ld, a.v + head + (size_t)(k0 + KT) * DH, KT);
      cp_async_commit();
    }
    const __nv_bfloat16 *ks = stages + buf * stage, *vs = ks + KT * ld;

    float s[MT][NT][4], dp[MT][NT][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
      for (int j = 0; j < NT; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) s[mt][j][e] = dp[mt][j][e] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < DH / 16; kk++) {
      uint32_t qa[MT][4], da[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; mt++) {
        Loads::load_a(qa[mt], qs, ld, 16 * (mt * kWarps + warp), 16 * kk, lane);
        Loads::load_a(da[mt], dos, ld, 16 * (mt * kWarps + warp), 16 * kk, lane);
      }
      mma_rows_are_n<NT, MT, Loads>(s, qa, ks, ld, 16 * kk, lane);
      mma_rows_are_n<NT, MT, Loads>(dp, da, vs, ld, 16 * kk, lane);
    }
    /* dS = P (dP - D_i), rounded to bf16 as the A fragments of dS K */
    uint32_t ds[MT][NT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
      for (int j = 0; j < NT; j++) {
        float v4[4];
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int key = k0 + 8 * j + 2 * t + (e & 1), r = e >> 1;
          const float p = key < a.N ? exp2f(s[mt][j][e] * a.scale_log2 - lse2[mt][r]) : 0.0f;
          v4[e] = p * (dp[mt][j][e] - di[mt][r]);
        }
        ds[mt][j][0] = pack_bf16(v4[0], v4[1]);
        ds[mt][j][1] = pack_bf16(v4[2], v4[3]);
      }
#pragma unroll
    for (int kk = 0; kk < KT / 16; kk++) {
      uint32_t sa[MT][4];
      c_pairs_as_a<MT, NT>(sa, ds, kk);
      mma_rows_are_k<ND, MT, Loads>(dq, sa, ks, ld, 16 * kk, lane);
    }
  }

#pragma unroll
  for (int mt = 0; mt < MT; mt++) store_rows<ND>(dq[mt], a.scale, a, b, h, q0 + 16 * (mt * kWarps + warp), 0, lane);
}

/* ---- dK, dV -------------------------------------------------------------------------------------- */

/* Query rows per streamed tile: 64, or 32 at head dimension 128, where the dK and dV accumulators
 * (64 registers each) leave no room for 64-query score tiles. */
template <int DH>
struct DkvGeometry {
  static constexpr int QT = DH >= 128 ? 32 : 64;
  static constexpr size_t key_tile = (size_t)kBlockRows * Row<DH>::bytes_per_row;
  static constexpr size_t query_tile = (size_t)QT * Row<DH>::bytes_per_row;
  /* K and V of the block's keys; two stages of Q and dO; two stages of lse and D (floats) */
  static constexpr size_t bytes = 2 * key_tile + 4 * query_tile + 4 * QT * sizeof(float);
  /* Blocks per SM the register budget is held to (__launch_bounds__): at head dimension 64
   * (configs/base.yaml's) 3, so at most 168 registers a thread, where the compiler left alone takes
   * 200 and allows only 2 blocks while shared memory would allow 4. At 16 and 32 four blocks (128
   * registers); at 80 and 128 two, since a tighter cap spills. */
  static constexpr int min_blocks = DH <= 16 ? 4 : DH <= 64 ? 3 : 2;
};

/* grid (Npad / kBlockRows, B*H) */
template <int DH, class Loads>
__global__ void __launch_bounds__(kThreads, DkvGeometry<DH>::min_blocks) flash_bwd_dkv_kernel(BwdArgs a) {
  using G = DkvGeometry<DH>;
  constexpr int ld = Row<DH>::ld, QT = G::QT, NT = QT / 8, ND = DH / 8;
  TCU_DYNAMIC_SMEM(smem);
  __nv_bfloat16 *ks = reinterpret_cast<__nv_bfloat16 *>(smem);
  __nv_bfloat16 *vs = ks + kBlockRows * ld;
  /* stage s: Q at stages + s * stage, dO after it */
  __nv_bfloat16 *stages = vs + kBlockRows * ld;
  constexpr int stage = 2 * QT * ld;
  float *lsest = reinterpret_cast<float *>(stages + 2 * stage); /* [2][QT], log2 units */
  float *dst = lsest + 2 * QT;                                   /* [2][QT] */

  const int bh = blockIdx.y, b = bh / a.H, h = bh % a.H;
  const int j0 = blockIdx.x * kBlockRows, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int t = lane & 3;
  const size_t head = (size_t)bh * a.Npad * DH;
  const int ntiles = a.Npad / QT;
  const float *lse_head = a.lse + (size_t)bh * a.N, *d_head = a.dsum + (size_t)bh * a.N;

  tile_async<DH>(ks, a.k + head + (size_t)j0 * DH, kBlockRows);
  tile_async<DH>(vs, a.v + head + (size_t)j0 * DH, kBlockRows);
  tile_async<DH>(stages, a.q + head, QT);
  tile_async<DH>(stages + QT * ld, a.dout + head, QT);
  cp_async_commit();
  for (int e = threadIdx.x; e < QT; e += kThreads) {
    lsest[e] = e < a.N ? lse_head[e] * kLog2e : INFINITY;
    dst[e] = e < a.N ? d_head[e] : 0.0f;
  }

  float dk[ND][4], dv[ND][4];
#pragma unroll
  for (int n = 0; n < ND; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) dk[n][e] = dv[n][e] = 0.0f;

  for (int it = 0; it < ntiles; it++) {
    const int buf = it & 1, i0 = it * QT;
    cp_async_wait_all();
    __syncthreads(); /* tile it (and its lse, D) visible; buf^1 free */
    if (it + 1 < ntiles) {
      const int n0 = i0 + QT;
      __nv_bfloat16 *next = stages + (buf ^ 1) * stage;
      tile_async<DH>(next, a.q + head + (size_t)n0 * DH, QT);
      tile_async<DH>(next + QT * ld, a.dout + head + (size_t)n0 * DH, QT);
      cp_async_commit();
      for (int e = threadIdx.x; e < QT; e += kThreads) {
        lsest[(buf ^ 1) * QT + e] = n0 + e < a.N ? lse_head[n0 + e] * kLog2e : INFINITY;
        dst[(buf ^ 1) * QT + e] = n0 + e < a.N ? d_head[n0 + e] : 0.0f;
      }
    }
    const __nv_bfloat16 *qs = stages + buf * stage, *dos = qs + QT * ld;
    const float *lse2 = lsest + buf * QT, *dd = dst + buf * QT;

    /* rows: this warp's 16 keys; columns: the tile's QT queries */
    float st[NT][4], dpt[NT][4];
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) st[j][e] = dpt[j][e] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < DH / 16; kk++) {
      uint32_t ka[4], va[4];
      Loads::load_a(ka, ks, ld, 16 * warp, 16 * kk, lane);
      Loads::load_a(va, vs, ld, 16 * warp, 16 * kk, lane);
      mma_rows_are_n<NT, Loads>(st, ka, qs, ld, 16 * kk, lane);
      mma_rows_are_n<NT, Loads>(dpt, va, dos, ld, 16 * kk, lane);
    }
    /* P^T and dS^T, rounded to bf16 as A fragments (k = query). Keys past N need no mask here:
     * their rows are never stored. */
    uint32_t pt[NT][2], dst_frag[NT][2];
#pragma unroll
    for (int j = 0; j < NT; j++) {
      float p4[4], d4[4];
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int col = 8 * j + 2 * t + (e & 1);
        p4[e] = exp2f(st[j][e] * a.scale_log2 - lse2[col]);
        d4[e] = p4[e] * (dpt[j][e] - dd[col]);
      }
      pt[j][0] = pack_bf16(p4[0], p4[1]);
      pt[j][1] = pack_bf16(p4[2], p4[3]);
      dst_frag[j][0] = pack_bf16(d4[0], d4[1]);
      dst_frag[j][1] = pack_bf16(d4[2], d4[3]);
    }
#pragma unroll
    for (int kk = 0; kk < QT / 16; kk++) {
      const uint32_t pa[4] = {pt[2 * kk][0], pt[2 * kk][1], pt[2 * kk + 1][0], pt[2 * kk + 1][1]};
      const uint32_t sa[4] = {dst_frag[2 * kk][0], dst_frag[2 * kk][1], dst_frag[2 * kk + 1][0],
                              dst_frag[2 * kk + 1][1]};
      mma_rows_are_k<ND, Loads>(dv, pa, dos, ld, 16 * kk, lane);
      mma_rows_are_k<ND, Loads>(dk, sa, qs, ld, 16 * kk, lane);
    }
  }

  /* dV is stored unscaled: multiplying by 1 changes no bit */
  store_rows<ND>(dk, a.scale, a, b, h, j0 + 16 * warp, a.D, lane);
  store_rows<ND>(dv, 1.0f, a, b, h, j0 + 16 * warp, 2 * a.D, lane);
}

/* ---- D_i from the forward's output ----------------------------------------------------------------- */

/* D_i = dO_i · O_i from the forward's O (fp32) and the padded bf16 dO that the dQ and dK/dV kernels
 * multiply (the operands the forward kernel's D epilogue would use). One warp per row (b, h, i),
 * lanes over the head's columns, then the butterfly: a fixed order, the same bits every run. */
__global__ void dsum_kernel(float *dsum, const float *out, const __nv_bfloat16 *dout, int N, int Npad, int D, int H,
                            int DH, long long rows) {
  const int lane = threadIdx.x % 32, dh = D / H;
  const long long warps = (long long)gridDim.x * (blockDim.x / 32);
  /* row is the same for the 32 lanes of a warp, so all of them reach the shuffle together */
  for (long long row = blockIdx.x * (long long)(blockDim.x / 32) + threadIdx.x / 32; row < rows; row += warps) {
    const long long bh = row / N, b = bh / H;
    const int i = (int)(row % N), h = (int)(bh % H);
    const float *o = out + (b * N + i) * D + (long long)h * dh;
    const __nv_bfloat16 *g = dout + (bh * Npad + i) * DH;
    float acc = 0.0f;
    for (int d = lane; d < dh; d += 32) acc += o[d] * __bfloat162float(g[d]);
    acc = tcu_warp_sum(acc);
    if (lane == 0) dsum[row] = acc;
  }
}

/* ---- launches ------------------------------------------------------------------------------------ */

template <int DH, class Loads, int MT>
bool launch_bwd(const BwdArgs &a, int BH) {
  static bool configured = false; /* more than 48 KiB of dynamic shared memory, asked for once */
  if (!configured) {
    if (!CUDA_OK(cudaFuncSetAttribute(flash_bwd_dq_kernel<DH, Loads, MT>,
                                      cudaFuncAttributeMaxDynamicSharedMemorySize, (int)DqSmem<DH, MT>::bytes)) ||
        !CUDA_OK(cudaFuncSetAttribute(flash_bwd_dkv_kernel<DH, Loads>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      (int)DkvGeometry<DH>::bytes)))
      return false;
    configured = true;
  }
  dim3 dq_grid((unsigned)tcu_ceil_div(a.Npad, MT * kBlockRows), (unsigned)BH);
  const size_t dq_bytes = DqSmem<DH, MT>::bytes;
  TCU_LAUNCH(dq_grid, kThreads, dq_bytes, flash_bwd_dq_kernel<DH, Loads, MT>)(a);
  if (!LAUNCH_OK("flash_bwd_dq_kernel")) return false;
  dim3 grid((unsigned)(a.Npad / kBlockRows), (unsigned)BH);
  TCU_LAUNCH(grid, kThreads, DkvGeometry<DH>::bytes, flash_bwd_dkv_kernel<DH, Loads>)(a);
  return LAUNCH_OK("flash_bwd_dkv_kernel");
}

/* MT: the dQ kernel's query m-tiles per warp (the dK/dV kernel has one) */
template <class Loads, int MT>
bool dispatch_bwd(const BwdArgs &a, int BH, int DH) {
  switch (DH) {
    case 16: return launch_bwd<16, Loads, MT>(a, BH);
    case 32: return launch_bwd<32, Loads, MT>(a, BH);
    case 64: return launch_bwd<64, Loads, MT>(a, BH);
    /* two m-tiles of dQ accumulators spill past head dimension 64 (sm_90 at 80) */
    case 80: return launch_bwd<80, Loads, 1>(a, BH);
    default: return launch_bwd<128, Loads, 1>(a, BH);
  }
}

}  // namespace

bool tcu_attention_backward_flash(float *d_qkv, const float *d_out, const float *qkv, const float *out,
                                  const float *lse_forward, int B, int N, int D, int H, int DH, float scale,
                                  FlashVariant variant) {
  const int dh = D / H;
  const size_t operand = (size_t)B * H * flash::padded_rows(N) * DH; /* bf16 elements of q, k, v or dO */
  const size_t rows = (size_t)B * H * N;
  const bool have_forward = out && lse_forward;
  /* q, k, v, dO in bf16, then (without the forward's) lse, and D, in fp32 (the bf16 part is a
   * multiple of 16 bytes) */
  unsigned char *base = (unsigned char *)tcu_scratch(
      TCU_SCRATCH_ATTENTION, 4 * operand * sizeof(__nv_bfloat16) + (have_forward ? 1 : 2) * rows * sizeof(float));
  if (!base) return false;
  __nv_bfloat16 *q = (__nv_bfloat16 *)base, *k = q + operand, *v = k + operand, *dout = v + operand;
  float *lse = have_forward ? NULL : (float *)(dout + operand), *dsum = (float *)(dout + operand) + (lse ? rows : 0);
  const long long ld = 3LL * D;
  if (!flash_repack(q, qkv, ld, 0, B, N, H, dh, DH) || !flash_repack(k, qkv, ld, D, B, N, H, dh, DH) ||
      !flash_repack(v, qkv, ld, 2 * D, B, N, H, dh, DH) || !flash_repack(dout, d_out, D, 0, B, N, H, dh, DH))
    return false;
  if (have_forward) {
    /* the forward's lse and O: its P is recomputed exactly from the same bf16 q, k and lse */
    TCU_LAUNCH(tcu_grid(rows * 32), TCU_THREADS, 0, dsum_kernel)(dsum, out, dout, N, flash::padded_rows(N), D, H, DH,
                                                              (long long)rows);
    if (!LAUNCH_OK("dsum_kernel")) return false;
  } else if (!flash_forward_padded(NULL, lse, dsum, q, k, v, dout, B, N, D, H, DH, scale, variant)) {
    return false;
  }
  BwdArgs a;
  a.q = q;
  a.k = k;
  a.v = v;
  a.dout = dout;
  a.lse = have_forward ? lse_forward : lse;
  a.dsum = dsum;
  a.d_qkv = d_qkv;
  a.N = N;
  a.Npad = flash::padded_rows(N);
  a.D = D;
  a.H = H;
  a.scale = scale;
  a.scale_log2 = scale * flash::kLog2e;
  switch (variant) {
    case kFlashScalar: return dispatch_bwd<ScalarLoads, 1>(a, B * H, DH);
    case kFlashWide: return dispatch_bwd<LdmatrixLoads, 2>(a, B * H, DH);
    default: return dispatch_bwd<LdmatrixLoads, 1>(a, B * H, DH);
  }
}
