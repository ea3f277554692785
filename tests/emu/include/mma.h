/* mma.h, as tests/emu sees it: the warp matrix functions (nvcuda::wmma) that attention_bf16.cu uses,
 * 16x16x16 with bf16 operands and fp32 accumulators. The hardware spreads a fragment over the warp
 * in a layout CUDA does not specify, and kernels may only use it through these functions; here
 * every lane holds the whole 16x16 tile, and a store writes the lane's share of it. Each function
 * is warp-wide: it waits for all 32 lanes first (as the real ones must be reached by the whole
 * warp). Pointers must be 256-bit aligned and leading dimensions multiples of 16 bytes, as CUDA
 * requires. */
#ifndef TPDIFF_EMU_MMA_H
#define TPDIFF_EMU_MMA_H

#include <cuda_bf16.h>

#include <type_traits>

#include "tests/emu/emu.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && K == 16, "emu: only the 16x16x16 shape");
  float x[16 * 16]; /* [row][column] of the tile: A is M x K, B is K x N, the accumulator M x N */
};

namespace detail {
/* 16 runs of 16 contiguous elements, ld apart */
inline void check(const void *p, unsigned ld, size_t elem) {
  emu::wmma_check(p, (size_t)ld * elem, (15 * (size_t)ld + 16) * elem);
}
inline float value(const __nv_bfloat16 &v) { return __bfloat162float(v); }
inline float value(const float &v) { return v; }
}  // namespace detail

/* Each lane reads its share (every 32nd element) when it arrives, as the hardware's lanes read
 * theirs, and the warp then pools the shares: the load is no barrier, so the lanes' writes it reads
 * need a __syncwarp before it, or TPDIFF_EMU_ORDER=check sees the race. */
template <class Use, class T, class Layout>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout> &f, const T *p, unsigned ld) {
  detail::check(p, ld, sizeof(T));
  float share[16 * 16];
  for (int e = emu::lane_id(); e < 16 * 16; e += 32) {
    const int r = e / 16, c = e % 16;
    share[e] = detail::value(std::is_same<Layout, col_major>::value ? p[c * ld + r] : p[r * ld + c]);
  }
  emu::wmma_pool_shares(f.x, share);
}

inline void fill_fragment(fragment<accumulator, 16, 16, 16, float> &f, float v) {
  for (float &e : f.x) e = v;
}

template <class LA, class LB>
inline void mma_sync(fragment<accumulator, 16, 16, 16, float> &d,
                     const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA> &a,
                     const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB> &b,
                     const fragment<accumulator, 16, 16, 16, float> &c) {
  emu::warp_collective_sync();
  float out[16 * 16];
  for (int m = 0; m < 16; m++)
    for (int n = 0; n < 16; n++) {
      float acc = c.x[m * 16 + n];
      for (int k = 0; k < 16; k++) acc += a.x[m * 16 + k] * b.x[k * 16 + n]; /* bf16 products: exact in fp32 */
      out[m * 16 + n] = acc;
    }
  for (int i = 0; i < 16 * 16; i++) d.x[i] = out[i];
}

inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &f, unsigned ld, layout_t l) {
  emu::warp_collective_sync();
  detail::check(p, ld, sizeof(float));
  /* each lane stores its share (every 32nd element), as the hardware's lanes store theirs: a lane that
   * reads what another stored must wait for it (__syncwarp), or TPDIFF_EMU_ORDER=check sees the race */
  for (int e = emu::lane_id(); e < 16 * 16; e += 32) {
    const int r = e / 16, c = e % 16;
    (l == mem_row_major ? p[r * ld + c] : p[c * ld + r]) = f.x[e];
  }
}

}  // namespace wmma
}  // namespace nvcuda

#endif
