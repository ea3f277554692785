/* cuda_runtime.h, as tests/emu sees it: the little of the CUDA language and runtime that the flash
 * attention sources use, for a host compiler. Placed before the real CUDA headers on the include
 * path of the emulator build only. Threads, blocks, barriers and warp collectives are carried out
 * by tests/emu/emu.cc. */
#ifndef TPDIFF_EMU_CUDA_RUNTIME_H
#define TPDIFF_EMU_CUDA_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#define __host__
#define __device__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
/* Blocks run one after another, so a kernel's static shared arrays can be function statics: every
 * thread (fiber) of the running block sees the same ones. */
#define __shared__ static

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};
struct float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }

template <class T>
inline T min(T a, T b) {
  return b < a ? b : a;
}
template <class T>
inline T max(T a, T b) {
  return a < b ? b : a;
}

enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorLaunchFailure = 4 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

/* correctly rounded single operations: the host's, with contraction into FMA off (-ffp-contract=off) */
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __int_as_float(int i) {
  float f;
  __builtin_memcpy(&f, &i, sizeof f);
  return f;
}

namespace emu {
const uint3 &thread_idx();
const uint3 &block_idx();
const dim3 &block_dim();
const dim3 &grid_dim();
void syncthreads();
void syncwarp();
float shfl_xor(float v, int lane_mask);
cudaError_t set_max_dynamic_smem(const void *kernel, int bytes);
cudaError_t last_error(); /* and clears it, as cudaGetLastError does */
}  // namespace emu

#define threadIdx (emu::thread_idx())
#define blockIdx (emu::block_idx())
#define blockDim (emu::block_dim())
#define gridDim (emu::grid_dim())

inline void __syncthreads() { emu::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  (void)mask;
  emu::syncwarp();
}
inline float __shfl_xor_sync(unsigned mask, float v, int lane_mask) {
  (void)mask; /* the kernels pass the full warp; emu checks that all 32 lanes take part */
  return emu::shfl_xor(v, lane_mask);
}

template <class K>
inline cudaError_t cudaFuncSetAttribute(K *kernel, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaErrorInvalidValue;
  return emu::set_max_dynamic_smem(reinterpret_cast<const void *>(kernel), value);
}
inline cudaError_t cudaGetLastError() { return emu::last_error(); }
inline const char *cudaGetErrorString(cudaError_t e) {
  return e == cudaSuccess ? "no error" : e == cudaErrorInvalidValue ? "invalid argument" : "unspecified launch failure";
}

#endif
