/* attention_flash.cu — bf16 mode's attention forward, FlashAttention-2 style: the operand repack
 * into padded bf16 (attention_flash.cuh), and the forward kernel, which attention_flash_bwd.cu also
 * runs (with a different epilogue) to recompute O for D_i = dO_i · O_i.
 *
 * One block = 4 warps = 64 query rows of one (clip, head); warp w owns query rows 16w..16w+15 for
 * the whole kernel (with TPDIFF_ATTN=flash-wide 128 rows, two 16-row m-tiles a warp: see
 * flash_fwd_kernel). Per 64-key tile: S = Q K^T by mma.m16n8k16 into fp32 registers (16 rows x 64
 * keys: 8 accumulator tiles per warp), the online softmax on those registers (the row max and sum
 * are quad shuffles: a row lives in the 4 lanes of a group), P rounded to bf16 straight into A
 * fragments, O = alpha O + P V by mma into fp32 registers. Nothing of S, P or O goes through shared
 * memory; the only shared traffic is the Q tile and the K/V tiles, which are double-buffered with
 * cp.async: the copy of tile t+1 is in flight while tile t is multiplied, and one __syncthreads per
 * tile both publishes tile t and frees the buffer tile t+1 goes into.
 *
 * Numbers: the exponentials are exp2f of log2e-prescaled scores (the hardware's ex2, ~2 ulp; the
 * P rounding to bf16, 2^-9, dominates anyway); the row sum l adds the bf16-rounded P, so O is
 * normalised by exactly the weights the tensor cores multiplied. lse = (m + log2 l) ln 2, fp32. Keys
 * past N are masked to -inf (the padded rows are zeros, whose scores would otherwise be 0); every
 * tile holds at least one real key, so the running max is finite after the first tile. */
#include <math.h>

#include "kernels/cuda/attention_flash.cuh"
#include "kernels/cuda/cuda_internal.cuh"

namespace {

using namespace flash;

/* Shared memory: Q (MT tiles of kBlockRows rows), then two stages of K and V, kTileRows rows each. */
template <int DH, int MT>
struct FwdSmem {
  static constexpr size_t tile = (size_t)kTileRows * Row<DH>::bytes_per_row;
  static constexpr size_t bytes = (MT + 4) * tile;
};

/* grid-stride over B*H*Npad*DH destination elements */
__global__ void repack_kernel(__nv_bfloat16 *dst, const float *src, long long src_ld, int col0, int N, int Npad, int H,
                              int dh, int DH, long long total) {
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += stride) {
    const int d = (int)(e % DH);
    const long long row = e / DH; /* (b*H + h)*Npad + n */
    const int n = (int)(row % Npad);
    const long long bh = row / Npad;
    const int h = (int)(bh % H);
    const long long b = bh / H;
    float x = 0.0f;
    if (n < N && d < dh) x = src[(b * N + n) * src_ld + col0 + (long long)h * dh + d];
    dst[e] = __float2bfloat16_rn(x);
  }
}

struct FwdArgs {
  const __nv_bfloat16 *q, *k, *v, *dout; /* padded bf16 operands; dout only with DSUM */
  float *out, *lse, *dsum;               /* out unused with DSUM, dsum unused without */
  int N, Npad, D, H;
  float scale_log2; /* softmax scale times log2(e) */
};

/* grid (ceil(Npad / (kBlockRows MT)), B*H), kThreads threads, FwdSmem<DH, MT>::bytes of dynamic shared
 * memory. DSUM: the epilogue stores D_i = dO_i · O_i and lse_i instead of O_i and lse_i. Loads: the
 * fragment loads (attention_flash.cuh). MT: query m-tiles (16 rows each) per warp; m-tile mt of warp w
 * holds the block's rows 16 (mt kWarps + w) .. +15. With MT = 2 every K/V fragment loaded from shared
 * memory feeds two products instead of one, and each warp has two independent softmax chains to
 * interleave. A row's arithmetic does not depend on MT (the same products, sums and order), so the
 * bits do not either. */
template <int DH, bool DSUM, class Loads, int MT>
__global__ void __launch_bounds__(kThreads) flash_fwd_kernel(FwdArgs a) {
  constexpr int ld = Row<DH>::ld, KT = kTileRows, NT = KT / 8, ND = DH / 8;
  TCU_DYNAMIC_SMEM(smem);
  __nv_bfloat16 *qs = reinterpret_cast<__nv_bfloat16 *>(smem);
  /* stage s: K at stages + s * stage, V after it (pointer arithmetic, not an array of pointers, which
   * a runtime index would put in local memory) */
  __nv_bfloat16 *stages = qs + MT * kBlockRows * ld;
  constexpr int stage = 2 * kTileRows * ld;

  const int bh = blockIdx.y, b = bh / a.H, h = bh % a.H, dh = a.D / a.H;
  const int q0 = blockIdx.x * kBlockRows * MT, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane >> 2, t = lane & 3;
  const size_t head = (size_t)bh * a.Npad * DH;
  const int ntiles = a.Npad / KT;

  if constexpr (MT == 1) {
    tile_async<DH>(qs, a.q + head + (size_t)q0 * DH, kBlockRows);
  } else {
    /* the last block of a head may reach past Npad (a multiple of kBlockRows only): its rows there
     * are zeros, computed on and never stored */
    const int qrows = min(MT * kBlockRows, a.Npad - q0);
    tile_async<DH>(qs, a.q + head + (size_t)q0 * DH, qrows);
    for (int c = qrows * ld / 8 + threadIdx.x; c < MT * kBlockRows * ld / 8; c += kThreads)
      reinterpret_cast<uint4 *>(qs)[c] = make_uint4(0, 0, 0, 0);
  }
  tile_async<DH>(stages, a.k + head, KT);
  tile_async<DH>(stages + KT * ld, a.v + head, KT);
  cp_async_commit();

  float o[MT][ND][4];
  float m[MT][2], l[MT][2]; /* running max of rows g and g+8 (log2 units); this lane's part of the
                               running sum (its 2 of every 8 keys) */
#pragma unroll
  for (int mt = 0; mt < MT; mt++) {
#pragma unroll
    for (int n = 0; n < ND; n++) o[mt][n][0] = o[mt][n][1] = o[mt][n][2] = o[mt][n][3] = 0.0f;
    m[mt][0] = m[mt][1] = -INFINITY;
    l[mt][0] = l[mt][1] = 0.0f;
  }

  for (int it = 0; it < ntiles; it++) {
    const int buf = it & 1, k0 = it * KT;
    cp_async_wait_all();
    __syncthreads(); /* tile it is visible to all; every warp is past tile it-1, so buf^1 is free */
    if (it + 1 < ntiles) {
      __nv_bfloat16 *next = stages + (buf ^ 1) * stage;
      tile_async<DH>(next, a.k + head + (size_t)(k0 + KT) * DH, KT);
      tile_async<DH>(next + KT * ld, a.v + head + (size_t)(k0 + KT) * DH, KT);
      cp_async_commit();
    }
    const __nv_bfloat16 *ks = stages + buf * stage, *vs = ks + KT * ld;

    float s[MT][NT][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
      for (int j = 0; j < NT; j++) s[mt][j][0] = s[mt][j][1] = s[mt][j][2] = s[mt][j][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < DH / 16; kk++) {
      uint32_t qa[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; mt++) Loads::load_a(qa[mt], qs, ld, 16 * (mt * kWarps + warp), 16 * kk, lane);
      mma_rows_are_n<NT, MT, Loads>(s, qa, ks, ld, 16 * kk, lane);
    }

    /* per m-tile: scale into log2 units, mask keys past N, row max over the tile; P = exp2(s - m)
     * rounded to bf16, packed as the A fragments of P V (two key tiles each) */
    uint32_t p[MT][NT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
      float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int j = 0; j < NT; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int key = k0 + 8 * j + 2 * t + (e & 1);
          s[mt][j][e] = key < a.N ? s[mt][j][e] * a.scale_log2 : -INFINITY;
          mx[e >> 1] = fmaxf(mx[e >> 1], s[mt][j][e]);
        }
      float alpha[2];
#pragma unroll
      for (int r = 0; r < 2; r++) {
        const float m_new = fmaxf(m[mt][r], quad_max(mx[r])); /* finite: the tile holds a real key */
        alpha[r] = exp2f(m[mt][r] - m_new);                   /* 0 on the first tile (m = -inf) */
        m[mt][r] = m_new;
        l[mt][r] *= alpha[r];
      }
#pragma unroll
      for (int j = 0; j < NT; j++) {
        p[mt][j][0] = pack_bf16(exp2f(s[mt][j][0] - m[mt][0]), exp2f(s[mt][j][1] - m[mt][0]));
        p[mt][j][1] = pack_bf16(exp2f(s[mt][j][2] - m[mt][1]), exp2f(s[mt][j][3] - m[mt][1]));
        const float2 r0 = unpack_bf16(p[mt][j][0]), r1 = unpack_bf16(p[mt][j][1]);
        l[mt][0] += r0.x + r0.y;
        l[mt][1] += r1.x + r1.y;
      }
#pragma unroll
      for (int n = 0; n < ND; n++) {
        o[mt][n][0] *= alpha[0];
        o[mt][n][1] *= alpha[0];
        o[mt][n][2] *= alpha[1];
        o[mt][n][3] *= alpha[1];
      }
    }
#pragma unroll
    for (int kk = 0; kk < KT / 16; kk++) {
      uint32_t pa[MT][4];
      c_pairs_as_a<MT, NT>(pa, p, kk);
      mma_rows_are_k<ND, MT, Loads>(o, pa, vs, ld, 16 * kk, lane);
    }
  }

  /* epilogue: rows g and g+8 of each of this warp's m-tiles */
#pragma unroll
  for (int mt = 0; mt < MT; mt++)
#pragma unroll
    for (int r = 0; r < 2; r++) {
      const float lsum = quad_sum(l[mt][r]);
      const float inv = 1.0f / lsum;
      const int i = q0 + 16 * (mt * kWarps + warp) + g + 8 * r;
      float part = 0.0f;
      /* rows past Npad (MT > 1's last block) have no dO rows to read */
      const bool real_row = MT == 1 || i < a.Npad;
#pragma unroll
      for (int n = 0; n < ND; n++)
#pragma unroll
        for (int c = 0; c < 2; c++) {
          const int d = 8 * n + 2 * t + c;
          const float val = o[mt][n][2 * r + c] * inv;
          if (DSUM) {
            /* dO's padded rows and columns are zeros: no bounds test needed for the sum */
            if (real_row) part += val * __bfloat162float(a.dout[head + (size_t)i * DH + d]);
          } else if (i < a.N && d < dh) {
            a.out[((size_t)b * a.N + i) * a.D + (size_t)h * dh + d] = val;
          }
        }
      if (DSUM) part = quad_sum(part);
      if (t == 0 && i < a.N) {
        a.lse[(size_t)bh * a.N + i] = (m[mt][r] + log2f(lsum)) * kLn2;
        if (DSUM) a.dsum[(size_t)bh * a.N + i] = part;
      }
    }
}

template <int DH, bool DSUM, class Loads, int MT>
bool launch_fwd(const FwdArgs &a, int BH) {
  const size_t bytes = FwdSmem<DH, MT>::bytes;
  /* above 48 KiB of dynamic shared memory must be asked for, once per kernel */
  static bool configured = false;
  if (!configured) {
    if (!CUDA_OK(cudaFuncSetAttribute(flash_fwd_kernel<DH, DSUM, Loads, MT>,
                                      cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes)))
      return false;
    configured = true;
  }
  dim3 grid((unsigned)tcu_ceil_div(a.Npad, MT * kBlockRows), (unsigned)BH);
  TCU_LAUNCH(grid, kThreads, bytes, flash_fwd_kernel<DH, DSUM, Loads, MT>)(a);
  return LAUNCH_OK("flash_fwd_kernel");
}

template <bool DSUM, class Loads, int MT>
bool dispatch_fwd(const FwdArgs &a, int BH, int DH) {
  switch (DH) {
    case 16: return launch_fwd<16, DSUM, Loads, MT>(a, BH);
    case 32: return launch_fwd<32, DSUM, Loads, MT>(a, BH);
    case 64: return launch_fwd<64, DSUM, Loads, MT>(a, BH);
    case 80: return launch_fwd<80, DSUM, Loads, MT>(a, BH);
    /* two m-tiles of 128-column accumulators (128 registers for O alone) would spill */
    default: return launch_fwd<128, DSUM, Loads, 1>(a, BH);
  }
}

template <bool DSUM>
bool dispatch_variant(const FwdArgs &a, int BH, int DH, FlashVariant variant) {
  switch (variant) {
    case kFlashScalar: return dispatch_fwd<DSUM, ScalarLoads, 1>(a, BH, DH);
    case kFlashWide: return dispatch_fwd<DSUM, LdmatrixLoads, 2>(a, BH, DH);
    default: return dispatch_fwd<DSUM, LdmatrixLoads, 1>(a, BH, DH);
  }
}

}  // namespace

bool flash_repack(__nv_bfloat16 *dst, const float *src, long long src_ld, int col0, int B, int N, int H, int dh,
                  int DH) {
  const int Npad = flash::padded_rows(N);
  const long long total = (long long)B * H * Npad * DH;
  TCU_LAUNCH(tcu_grid((size_t)total), TCU_THREADS, 0, repack_kernel)(dst, src, src_ld, col0, N, Npad, H, dh, DH,
                                                                     total);
  return LAUNCH_OK("repack_kernel");
}

bool flash_forward_padded(float *out, float *lse, float *dsum, const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                          const __nv_bfloat16 *v, const __nv_bfloat16 *dout, int B, int N, int D, int H, int DH,
                          float scale, FlashVariant variant) {
  FwdArgs a;
  a.q = q;
  a.k = k;
  a.v = v;
  a.dout = dout;
  a.out = out;
  a.lse = lse;
  a.dsum = dsum;
  a.N = N;
  a.Npad = flash::padded_rows(N);
  a.D = D;
  a.H = H;
  a.scale_log2 = scale * flash::kLog2e;
  return dout ? dispatch_variant<true>(a, B * H, DH, variant) : dispatch_variant<false>(a, B * H, DH, variant);
}

bool tcu_attention_forward_flash(float *out, float *lse, const float *qkv, int B, int N, int D, int H, int DH,
                                 float scale, FlashVariant variant) {
  const int dh = D / H;
  const size_t operand = (size_t)B * H * flash::padded_rows(N) * DH; /* bf16 elements of one of q, k, v */
  __nv_bfloat16 *q = (__nv_bfloat16 *)tcu_scratch(TCU_SCRATCH_ATTENTION, 3 * operand * sizeof(__nv_bfloat16));
  if (!q) return false;
  __nv_bfloat16 *k = q + operand, *v = k + operand;
  const long long ld = 3LL * D;
  if (!flash_repack(q, qkv, ld, 0, B, N, H, dh, DH) || !flash_repack(k, qkv, ld, D, B, N, H, dh, DH) ||
      !flash_repack(v, qkv, ld, 2 * D, B, N, H, dh, DH))
    return false;
  return flash_forward_padded(out, lse, NULL, q, k, v, NULL, B, N, D, H, DH, scale, variant);
}
