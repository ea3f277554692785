/* attention_flash.cuh — what attention_flash.cu (forward) and attention_flash_bwd.cu (backward) share:
 * the tile geometry, the bf16 operand layout in backend scratch, and the warp-level building blocks
 * of bf16 mode's FlashAttention-2 kernels (mma.sync m16n8k16 with fp32 accumulators, its fragment
 * loads from shared memory, cp.async; the instructions themselves are flash_ptx.cuh, which
 * tests/emu replaces to run the kernels on the CPU), plus the host entry points that attention.cu
 * dispatches to.
 *
 * Operand layout: before any tile is read, q, k, v (and in the backward dO) are converted once to
 * bf16 in a head-major, zero-padded copy: head (b, h) owns rows [0, Npad) of DH bf16 each, Npad = N
 * rounded up to kTileRows and DH = the head dimension padded to 16/32/64/80/128. So every tile is a
 * contiguous run of 16-byte chunks (cp.async needs 16-byte aligned sources), padded head columns
 * contribute zero products, and padded rows only need masking in the softmax.
 *
 * Fragment layout of mma.m16n8k16 (PTX ISA, "Matrix fragments for mma.m16n8k16"), with
 * g = lane / 4 and t = lane % 4:
 *   A 16x16 (row major): a[0] = (row g,   cols 2t, 2t+1), a[1] = (row g+8, cols 2t, 2t+1),
 *                        a[2] = (row g,   cols 2t+8, 2t+9), a[3] = (row g+8, cols 2t+8, 2t+9);
 *   B 16x8 (k x n):      b[0] = (k 2t, 2t+1; n g),          b[1] = (k 2t+8, 2t+9; n g);
 *   C 16x8 fp32:         c[0], c[1] = (row g, cols 2t, 2t+1), c[2], c[3] = (row g+8, cols 2t, 2t+1);
 * the lower-numbered element of a pair sits in the low 16 bits. Two C tiles side by side (cols 0-7
 * and 8-15) are therefore exactly the A fragment of a 16x16 operand: softmax probabilities and
 * dS go from the accumulators of one product into the next product without leaving registers. */
#ifndef TPDIFF_ATTENTION_FLASH_CUH
#define TPDIFF_ATTENTION_FLASH_CUH

#include <cuda_bf16.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cuda/flash_fragments.h"
#include "kernels/cuda/flash_ptx.cuh"

namespace flash {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kBlockRows = 16 * kWarps; /* rows a block owns: queries (forward, dQ) or keys (dK/dV) */
constexpr int kTileRows = 64;           /* rows per streamed K/V tile; Npad is a multiple of it */
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

/* bf16 elements per shared-memory row: DH + 8 makes consecutive rows start 4 banks apart, so the
 * 8 rows x 4 words of one fragment load hit 32 different banks, and keeps rows 16-byte aligned. */
template <int DH>
struct Row {
  static constexpr int ld = DH + 8;
  static constexpr int bytes_per_row = ld * 2;
};

inline int padded_rows(int N) { return (N + kTileRows - 1) / kTileRows * kTileRows; }
/* A block's rows are a whole number of tiles: the kernels size their Q (or K/V) part in tiles, and
 * with MT m-tiles a warp the last block of a head reaches at most (MT - 1) tiles past Npad. */
static_assert(kBlockRows == kTileRows, "a block's rows must be one streamed tile");

/* ---- warp-level pieces ------------------------------------------------------------------------ */

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi); /* .x (low half) = lo */
  uint32_t u;
  memcpy(&u, &v, sizeof u);
  return u;
}
/* The two bf16 values of a packed pair back as floats (what the tensor cores will multiply). */
__device__ __forceinline__ float2 unpack_bf16(uint32_t u) {
  __nv_bfloat162 v;
  memcpy(&v, &u, sizeof u);
  return __bfloat1622float2(v);
}

/* The fragment loads come in two variants with the same fragments (so the same bits), chosen at run
 * time (TPDIFF_ATTN=flash or flash-scalar, attention.cu) so that one build can check and time both
 * side by side. Each is a struct of static functions, passed to the kernels as a template argument:
 *
 *   load_a(a, tile, ld, r0, c0, lane): the A fragment of rows [r0, r0+16) x cols [c0, c0+16) of a
 *     row-major smem tile;
 *   load_b2_rows_are_n(b, tile, ld, n0, k0, lane): the B fragments of two n tiles, b = {b0, b1 of
 *     n0 .. n0+7, b0, b1 of n0+8 .. n0+15}, with B[k][n] = tile[n0 + n][k0 + k] (the smem rows are
 *     B's columns: K in Q K^T, ...);
 *   load_b2_rows_are_k(b, tile, ld, k0, n0, lane): the same two n tiles with B[k][n] =
 *     tile[k0 + k][n0 + n] (the smem rows are B's rows: V in P V, ...). */

/* ldmatrix.x4 (the default): one instruction loads a whole 16x16 block for the warp (four 8x8
 * matrices, each lane naming one 16-byte row). Which lane names which row is flash_fragments.h,
 * tested on the CPU against this header's fragment layout. With ld = DH + 8, the 8 rows of a matrix
 * fall in 8 different groups of 4 banks: no conflicts (tested there too). .trans turns the smem rows
 * of load_b2_rows_are_k into the column pairs the fragment holds. */
struct LdmatrixLoads {
  static __device__ __forceinline__ void load_a(uint32_t (&a)[4], const __nv_bfloat16 *tile, int ld, int r0, int c0,
                                                int lane) {
    ldsm_x4(a, tile + (r0 + flash_ldsm_a_row(lane)) * ld + c0 + flash_ldsm_a_col(lane));
  }
  static __device__ __forceinline__ void load_b2_rows_are_n(uint32_t (&b)[4], const __nv_bfloat16 *tile, int ld,
                                                            int n0, int k0, int lane) {
    ldsm_x4(b, tile + (n0 + flash_ldsm_b_rows_n_row(lane)) * ld + k0 + flash_ldsm_b_rows_n_col(lane));
  }
  static __device__ __forceinline__ void load_b2_rows_are_k(uint32_t (&b)[4], const __nv_bfloat16 *tile, int ld,
                                                            int k0, int n0, int lane) {
    ldsm_x4_trans(b, tile + (k0 + flash_ldsm_b_rows_k_row(lane)) * ld + n0 + flash_ldsm_b_rows_k_col(lane));
  }
};

/* The loads the kernels had before ldmatrix (TPDIFF_ATTN=flash-scalar): one 32-bit (or two 16-bit)
 * shared load per register, read straight off the fragment layout above; 4 to 8 times the load
 * instructions. Kept as the plainer twin that tells a fault of the ldmatrix lane maps from one in
 * the rest of the kernels. */
struct ScalarLoads {
  static __device__ __forceinline__ void load_a(uint32_t (&a)[4], const __nv_bfloat16 *tile, int ld, int r0, int c0,
                                                int lane) {
    const int g = lane >> 2, t = lane & 3;
    const __nv_bfloat16 *p = tile + (r0 + g) * ld + c0 + 2 * t;
    a[0] = lds32(p);
    a[1] = lds32(p + 8 * ld);
    a[2] = lds32(p + 8);
    a[3] = lds32(p + 8 * ld + 8);
  }
  static __device__ __forceinline__ void load_b2_rows_are_n(uint32_t (&b)[4], const __nv_bfloat16 *tile, int ld,
                                                            int n0, int k0, int lane) {
    const int g = lane >> 2, t = lane & 3;
    for (int j = 0; j < 2; j++) {
      const __nv_bfloat16 *p = tile + (n0 + 8 * j + g) * ld + k0 + 2 * t;
      b[2 * j] = lds32(p);
      b[2 * j + 1] = lds32(p + 8);
    }
  }
  static __device__ __forceinline__ void load_b2_rows_are_k(uint32_t (&b)[4], const __nv_bfloat16 *tile, int ld,
                                                            int k0, int n0, int lane) {
    const int g = lane >> 2, t = lane & 3;
    for (int j = 0; j < 2; j++) {
      const unsigned short *p = reinterpret_cast<const unsigned short *>(tile) + (k0 + 2 * t) * ld + n0 + 8 * j + g;
      b[2 * j] = (uint32_t)p[0] | ((uint32_t)p[ld] << 16);
      b[2 * j + 1] = (uint32_t)p[8 * ld] | ((uint32_t)p[9 * ld] << 16);
    }
  }
};

/* c[j] += a B_j over NT tiles of 8 columns n (NT even): B[k][n] = tile[8 j + n][k0 + k], the smem rows
 * being B's columns (K in Q K^T, Q in K Q^T, ...). */
template <int NT, class Loads>
__device__ __forceinline__ void mma_rows_are_n(float (&c)[NT][4], const uint32_t (&a)[4], const __nv_bfloat16 *tile,
                                               int ld, int k0, int lane) {
#pragma unroll
  for (int j = 0; j < NT; j += 2) {
    uint32_t b[4];
    Loads::load_b2_rows_are_n(b, tile, ld, 8 * j, k0, lane);
    mma_bf16(c[j], a, b[0], b[1]);
    mma_bf16(c[j + 1], a, b[2], b[3]);
  }
}

/* c[n] += a B_n over ND tiles of 8 columns n (ND even): B[k][n] = tile[k0 + k][8 n + ...], the smem rows
 * being B's rows (V in P V, K in dS K, ...). */
template <int ND, class Loads>
__device__ __forceinline__ void mma_rows_are_k(float (&c)[ND][4], const uint32_t (&a)[4], const __nv_bfloat16 *tile,
                                               int ld, int k0, int lane) {
#pragma unroll
  for (int n = 0; n < ND; n += 2) {
    uint32_t b[4];
    Loads::load_b2_rows_are_k(b, tile, ld, k0, 8 * n, lane);
    mma_bf16(c[n], a, b[0], b[1]);
    mma_bf16(c[n + 1], a, b[2], b[3]);
  }
}

/* The same two products for MT A fragments at once (MT m-tiles of 16 rows): every B fragment loaded
 * feeds MT products, so shared-memory loads per product fall by MT. */
template <int NT, int MT, class Loads>
__device__ __forceinline__ void mma_rows_are_n(float (&c)[MT][NT][4], const uint32_t (&a)[MT][4],
                                               const __nv_bfloat16 *tile, int ld, int k0, int lane) {
#pragma unroll
  for (int j = 0; j < NT; j += 2) {
    uint32_t b[4];
    Loads::load_b2_rows_are_n(b, tile, ld, 8 * j, k0, lane);
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
      mma_bf16(c[mt][j], a[mt], b[0], b[1]);
      mma_bf16(c[mt][j + 1], a[mt], b[2], b[3]);
    }
  }
}

template <int ND, int MT, class Loads>
__device__ __forceinline__ void mma_rows_are_k(float (&c)[MT][ND][4], const uint32_t (&a)[MT][4],
                                               const __nv_bfloat16 *tile, int ld, int k0, int lane) {
#pragma unroll
  for (int n = 0; n < ND; n += 2) {
    uint32_t b[4];
    Loads::load_b2_rows_are_k(b, tile, ld, k0, 8 * n, lane);
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
      mma_bf16(c[mt][n], a[mt], b[0], b[1]);
      mma_bf16(c[mt][n + 1], a[mt], b[2], b[3]);
    }
  }
}

/* The A fragments (k = 16 kk .. 16 kk + 15) of MT m-tiles whose values sit in packed C-tile pairs
 * c[mt][j] = {rows g, rows g+8} of columns 8 j .. 8 j + 7 (P or dS): two C tiles side by side are one
 * A fragment (see the layouts above). */
template <int MT, int NT>
__device__ __forceinline__ void c_pairs_as_a(uint32_t (&a)[MT][4], const uint32_t (&c)[MT][NT][2], int kk) {
#pragma unroll
  for (int mt = 0; mt < MT; mt++) {
    a[mt][0] = c[mt][2 * kk][0];
    a[mt][1] = c[mt][2 * kk][1];
    a[mt][2] = c[mt][2 * kk + 1][0];
    a[mt][3] = c[mt][2 * kk + 1][1];
  }
}

/* ---- tiles ---------------------------------------------------------------------------------------- */

/* Starts copying `rows` contiguous rows of DH bf16 (one tile of the padded operand) into a smem tile
 * with Row<DH>::ld elements per row; every thread of the block takes part. */
template <int DH>
__device__ __forceinline__ void tile_async(__nv_bfloat16 *tile, const __nv_bfloat16 *src, int rows) {
  constexpr int chunks_per_row = DH / 8; /* 16-byte chunks */
  for (int c = threadIdx.x; c < rows * chunks_per_row; c += kThreads) {
    const int r = c / chunks_per_row, col = (c % chunks_per_row) * 8;
    cp_async16(tile + r * Row<DH>::ld + col, src + (size_t)r * DH + col);
  }
}

/* Quad reductions: the 4 lanes of a group hold one row of a C fragment. Both orders give every lane
 * the same bits. */
__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

}  // namespace flash

/* ---- host entry points (bf16 mode; attention.cu checks the shapes first) ----------------------- */

/* Converts rows of one of q/k/v (columns col0 + h*dh .. of rows with src_ld floats) or of dO into the
 * padded bf16 layout above: dst[(b*H + h)*Npad + n][d], zero for n >= N or d >= dh. */
bool flash_repack(__nv_bfloat16 *dst, const float *src, long long src_ld, int col0, int B, int N, int H, int dh,
                  int DH);

/* The flash kernels' variants (TPDIFF_ATTN, attention.cu), all giving the same bits: kFlashLdmatrix
 * (the default) loads fragments with ldmatrix; kFlashScalar with plain loads (ScalarLoads); kFlashWide
 * as kFlashLdmatrix, with two query m-tiles per warp (MT = 2) in the forward (head dimensions up to
 * 80) and the dQ kernel (up to 64); its dK/dV kernel is kFlashLdmatrix's. */
enum FlashVariant { kFlashLdmatrix, kFlashScalar, kFlashWide };

/* Forward: out [B, N, D] (fp32) and lse [B*H*N] (natural log) from the padded bf16 q, k, v. With
 * dout (padded bf16 dO) given, writes instead dsum[(b*H + h)*N + i] = dO_i · O_i and lse, and not out. */
bool flash_forward_padded(float *out, float *lse, float *dsum, const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                          const __nv_bfloat16 *v, const __nv_bfloat16 *dout, int B, int N, int D, int H, int DH,
                          float scale, FlashVariant variant);

/* The whole bf16-mode forward: repack into backend scratch, then flash_forward_padded. */
bool tcu_attention_forward_flash(float *out, float *lse, const float *qkv, int B, int N, int D, int H, int DH,
                                 float scale, FlashVariant variant);
/* The whole bf16-mode backward (attention_flash_bwd.cu): d_qkv [B, N, 3D] overwritten. out [B, N, D]
 * and lse [B*H*N] are the flash forward's output and row log-sum-exp of this qkv; both NULL: the
 * backward recomputes them with the forward kernel (one forward's work more). */
bool tcu_attention_backward_flash(float *d_qkv, const float *d_out, const float *qkv, const float *out,
                                  const float *lse, int B, int N, int D, int H, int DH, float scale,
                                  FlashVariant variant);

#endif
