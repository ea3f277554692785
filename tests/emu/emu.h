/* emu.h — runs the CUDA backend (every .cu file of kernels/cuda, compiled with a host compiler against
 * tests/emu/include) on the CPU, so that the test suite checks the backend's own code where no GPU
 * is present: the kernels' tiling, masking, reductions and fragment bookkeeping, and the host code
 * around them (plans, scratch, the bf16 weights copy, the dispatch).
 *
 * Each CUDA thread of a block is a fiber on one OS thread. The lanes of a warp run in turn until
 * each reaches a barrier (__syncthreads, __syncwarp) or a warp-wide instruction (shuffle, ldmatrix,
 * mma.sync, a wmma function); when the whole warp has arrived at a warp-wide instruction, emu
 * carries it out for all lanes at once and lets them go on. A warp runs as far as it can, up to a
 * __syncthreads or its exit, before the next warp starts; when all have arrived, the block goes on.
 * So the order of execution is fixed, results are deterministic, and a warp whose lanes diverge at a
 * warp-wide instruction, or a block that does not all reach a barrier, stops the test with one line
 * instead of hanging. Blocks run one after another. Dynamic shared memory starts as 0xFF bytes
 * (NaN) in every block, and device memory when cudaMalloc returns it, so a read of an element that
 * was never written shows in the output (static __shared__ arrays keep the last block's values).
 *
 * Races. Between two barriers a GPU may run the block's threads in any order, and its blocks too.
 * TPDIFF_EMU_ORDER chooses emu's order: "forward" (the default: blocks and threads by index),
 * "reverse" (both from the last), or "check": every launch runs forward, then again in reverse
 * from the same device memory, and every byte of device memory must come out the same. Two
 * threads that touch the same data between barriers (a missing __syncthreads or __syncwarp), a
 * block that reads another block's output, or a read of shared memory left by an earlier block
 * then make results depend on the order, and the launch stops the test with one line naming the
 * kernel and the first byte that differs. (The backend has no atomics: every result must be the
 * same bits in any order.) A wmma load or store reads or writes each lane's share only, so lanes that
 * read what other lanes wrote need the __syncwarp the hardware needs.
 *
 * Streams (emu_streams.cc): the legacy default stream, on which the backend computes, runs each
 * launch at once; a created stream (comm/nccl_reduce.cu's) queues its work, which goes on whenever
 * emu makes progress, so an NCCL all-reduce (emu_nccl.cc) stays pending until its peers arrive.
 *
 * What it does not model: timing, occupancy, register spills, bank conflicts, interleavings finer
 * than the stretch between two barriers or warp-wide instructions, and default-stream work running
 * behind the host (so a missing event between the default stream and another one goes unseen).
 * The GPU check (tests/gpu/check_gpu.sh) remains the judge of the kernels on hardware. */
#ifndef TPDIFF_EMU_H
#define TPDIFF_EMU_H

#include <stddef.h>
#include <stdint.h>

#include <functional>
#include <tuple>
#include <utility>

#include "cuda_runtime.h"

struct __nv_bfloat16;

namespace emu {

/* PTX instructions (flash_ptx.cuh) */
void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
void ldmatrix_x4(uint32_t (&r)[4], const __nv_bfloat16 *p, bool trans);
uint32_t lds32(const __nv_bfloat16 *p);
void cp_async16(void *smem, const void *gmem);
void cp_async_wait_all();
unsigned char *dynamic_smem();
/* the warp matrix functions (include/mma.h): wait for the whole warp; check a tile's pointer
 * (256-bit aligned), leading dimension (a multiple of 16 bytes) and extent */
void warp_collective_sync();
/* waits for the whole warp; then every lane's tile[e] = the share of lane e % 32 at e (256 floats) */
void wmma_pool_shares(float *tile, const float *share);
int lane_id(); /* the calling thread's lane in its warp */
void wmma_check(const void *p, size_t ld_bytes, size_t extent_bytes);

/* the error of the last refused launch (cudaGetLastError), cleared */
cudaError_t take_launch_error();

/* Runs body() as every thread of every block of the grid, in the order TPDIFF_EMU_ORDER chooses;
 * records a launch error (cudaGetLastError) where the configuration is one the GPU would refuse. */
void run_grid(const void *kernel, const char *name, dim3 grid, dim3 block, size_t smem_bytes,
              const std::function<void()> &body);

/* Device memory (emu_runtime.cc): calls fn(pointer, bytes) for every live allocation. */
void for_each_allocation(const std::function<void(unsigned char *, size_t)> &fn);

/* Streams (emu_streams.cc). A step of a stream's work returns true when it is done; one that
 * returns false (waiting for an event or another process) is called again at the next progress. */
using Step = std::function<bool()>;
void stream_enqueue(cudaStream_t stream, Step step); /* stream 0: waits for its events, then runs it */
void streams_progress();                             /* runs every stream's work as far as it can */
void default_stream_wait(); /* before work on stream 0: the events it waits for have completed */

template <class... P>
struct Launcher {
  dim3 grid, block;
  size_t smem;
  const char *name;
  void (*kernel)(P...);
  cudaStream_t stream;
  /* the kernel's own parameter types, so that the arguments convert as at a launch (NULL included) */
  void operator()(P... args) const {
    std::tuple<P...> params(args...); /* by value, as a launch copies them */
    void (*k)(P...) = kernel;
    dim3 g = grid, b = block;
    size_t bytes = smem;
    const char *n = name;
    stream_enqueue(stream, [params, k, g, b, bytes, n] {
      run_grid(reinterpret_cast<const void *>(k), n, g, b, bytes, [&params, k] { std::apply(k, params); });
      return true;
    });
  }
};
template <class... P>
Launcher<P...> launch(dim3 grid, dim3 block, size_t smem, const char *name, void (*kernel)(P...)) {
  return Launcher<P...>{grid, block, smem, name, kernel, nullptr};
}
template <class... P>
Launcher<P...> launch_on(cudaStream_t stream, dim3 grid, dim3 block, size_t smem, const char *name,
                         void (*kernel)(P...)) {
  return Launcher<P...>{grid, block, smem, name, kernel, stream};
}

/* The emulated device's limits and what the launches used (for the test's report) */
struct Stats {
  size_t launches, blocks, max_smem_bytes;
};
Stats stats();
constexpr int kSm80MaxDynamicSmem = 166912; /* bytes a block may opt in to on sm_80 (163 KiB) */
constexpr int kSm90MaxDynamicSmem = 232448; /* on sm_90 (227 KiB) */

}  // namespace emu

#endif
