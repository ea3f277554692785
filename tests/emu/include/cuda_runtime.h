/* cuda_runtime.h, as tests/emu sees it: the part of the CUDA language and runtime API that the CUDA
 * backend (kernels/cuda) uses, for a host compiler. Placed before the real CUDA headers on the
 * include path of the emulator build only. Threads, blocks, barriers and warp-wide instructions are
 * carried out by tests/emu/emu.cc; "device" memory is host memory. */
#ifndef TPDIFF_EMU_CUDA_RUNTIME_H
#define TPDIFF_EMU_CUDA_RUNTIME_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

/* correctly rounded single operations: the host's, with contraction into FMA off (-ffp-contract=off) */
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((uint64_t)a * b) >> 32); }
inline float __int_as_float(int i) {
  float f;
  memcpy(&f, &i, sizeof f);
  return f;
}

/* ---- runtime API -------------------------------------------------------------------------------- */

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorLaunchFailure = 4,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
};
typedef cudaError_t cudaError;
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
};
struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  int major, minor;
  int multiProcessorCount;
};

cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device);
cudaError_t cudaMalloc(void **ptr, size_t bytes);
template <class T>
inline cudaError_t cudaMalloc(T **ptr, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void **>(ptr), bytes);
}
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemset(void *ptr, int value, size_t bytes);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaGetLastError();
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);

/* Streams and events (tests/emu/emu_streams.cc). The legacy default stream (0) runs its work at
 * once, after the events it was made to wait for; a created stream runs its work in order as far as
 * it can whenever the emulator makes progress (every launch, cudaEventQuery, ncclCommGetAsyncError),
 * so work that waits on another process (an NCCL all-reduce) stays pending as on a GPU. */
typedef struct emu_stream *cudaStream_t;
typedef struct emu_event *cudaEvent_t;
#define cudaStreamDefault 0x0u
#define cudaStreamNonBlocking 0x1u
#define cudaEventDefault 0x0u
#define cudaEventDisableTiming 0x2u
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = 0);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags = 0);
cudaError_t cudaEventQuery(cudaEvent_t event);

/* ---- the language: thread indices, barriers, shuffles ----------------------------------------- */

namespace emu {
const uint3 &thread_idx();
const uint3 &block_idx();
const dim3 &block_dim();
const dim3 &grid_dim();
void syncthreads();
void syncwarp();
float shfl_xor(float v, int lane_mask);
double shfl_xor(double v, int lane_mask);
cudaError_t set_max_dynamic_smem(const void *kernel, int bytes);
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
/* the kernels pass the full warp; emu checks that all 32 lanes take part */
inline float __shfl_xor_sync(unsigned mask, float v, int lane_mask) {
  (void)mask;
  return emu::shfl_xor(v, lane_mask);
}
inline double __shfl_xor_sync(unsigned mask, double v, int lane_mask) {
  (void)mask;
  return emu::shfl_xor(v, lane_mask);
}

template <class K>
inline cudaError_t cudaFuncSetAttribute(K *kernel, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaErrorInvalidValue;
  return emu::set_max_dynamic_smem(reinterpret_cast<const void *>(kernel), value);
}

/* kernels/cuda/cuda_internal.cuh's launch and shared-memory macros, emu's way */
/* the kernel's name goes along for emu's messages */
#define TCU_LAUNCH(grid, block, smem, ...) emu::launch((grid), (block), (smem), #__VA_ARGS__, __VA_ARGS__)
#define TCU_LAUNCH_STREAM(grid, block, smem, stream, ...) \
  emu::launch_on((stream), (grid), (block), (smem), #__VA_ARGS__, __VA_ARGS__)
#define TCU_DYNAMIC_SMEM(name) unsigned char *name = emu::dynamic_smem()

#include "tests/emu/emu.h"

#endif
