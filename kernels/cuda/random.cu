/* random.cu — Philox4x32-10 random numbers, the same streams as kernels/cpu/random.c: element i of
 * (key, stream, first) comes from counter block (first + i) / 4, lane (first + i) % 4, with the
 * counter {block lo, block hi, stream lo, stream hi} and key {key lo, key hi}. Uniforms are exact
 * (integer arithmetic and a power-of-two scale) and so equal the CPU's bits; normals use the same
 * Box-Muller in double (lanes 0,1 from words 0,1, lanes 2,3 from words 2,3), where CUDA's and
 * glibc's double log/sin/cos may differ in the last double bit, which survives the rounding to
 * float only very rarely.
 *
 * One thread per 4-word Philox block (each block yields 4 outputs, so no word is computed twice). */
#include "kernels/cuda/cuda_internal.cuh"

namespace {

__device__ __forceinline__ void philox4x32_10(uint32_t ctr[4], uint32_t k0, uint32_t k1) {
#pragma unroll
  for (int r = 0; r < 10; r++) {
    uint32_t hi0 = __umulhi(0xD2511F53u, ctr[0]), lo0 = 0xD2511F53u * ctr[0];
    uint32_t hi1 = __umulhi(0xCD9E8D57u, ctr[2]), lo1 = 0xCD9E8D57u * ctr[2];
    uint32_t c0 = hi1 ^ ctr[1] ^ k0, c2 = hi0 ^ ctr[3] ^ k1;
    ctr[0] = c0;
    ctr[1] = lo1;
    ctr[2] = c2;
    ctr[3] = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

/* (0, 1]: never 0, so log() in Box-Muller is finite. */
__device__ __forceinline__ float uniform_open0(uint32_t x) {
  return __fmul_rn(__fadd_rn((float)(x >> 8), 1.0f), 1.0f / 16777216.0f);
}

template <bool NORMAL>
__global__ void philox_fill_kernel(float *out, size_t n, uint64_t key, uint64_t stream, uint64_t first) {
  const uint64_t first_block = first / 4, last_block = (first + n - 1) / 4;
  const uint64_t blocks = last_block - first_block + 1;
  for (uint64_t t = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; t < blocks;
       t += (uint64_t)gridDim.x * blockDim.x) {
    const uint64_t block = first_block + t;
    uint32_t r[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
    philox4x32_10(r, (uint32_t)key, (uint32_t)(key >> 32));
    float v[4];
    if (NORMAL) {
#pragma unroll
      for (int pair = 0; pair < 2; pair++) {
        double u1 = uniform_open0(r[2 * pair]), u2 = uniform_open0(r[2 * pair + 1]);
        double radius = sqrt(-2.0 * log(u1)), angle = 6.283185307179586 * u2;
        v[2 * pair] = (float)(radius * cos(angle));
        v[2 * pair + 1] = (float)(radius * sin(angle));
      }
    } else {
#pragma unroll
      for (int lane = 0; lane < 4; lane++) v[lane] = (float)(r[lane] >> 8) * (1.0f / 16777216.0f);
    }
#pragma unroll
    for (int lane = 0; lane < 4; lane++) {
      uint64_t idx = block * 4 + (uint64_t)lane;
      if (idx >= first && idx - first < n) out[idx - first] = v[lane];
    }
  }
}

template <bool NORMAL>
void philox_fill(float *out, size_t n, uint64_t key, uint64_t stream, uint64_t first) {
  if (n == 0) return;
  size_t blocks = (size_t)((first + n - 1) / 4 - first / 4 + 1);
  TCU_LAUNCH(tcu_grid(blocks), TCU_THREADS, 0, philox_fill_kernel<NORMAL>)(out, n, key, stream, first);
  LAUNCH_OK("philox_fill_kernel");
}

}  // namespace

void tcu_fill_normal(float *out, size_t n, uint64_t key, uint64_t stream, uint64_t first) {
  philox_fill<true>(out, n, key, stream, first);
}

void tcu_fill_uniform(float *out, size_t n, uint64_t key, uint64_t stream, uint64_t first) {
  philox_fill<false>(out, n, key, stream, first);
}
