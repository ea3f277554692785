/* kernels/cuda/cuda_internal.cuh, as tests/emu sees it: what the flash attention sources take from
 * the real one (errors, the launch helpers, the scratch buffers, the device math, the attention ops'
 * declarations), with TCU_LAUNCH and TCU_DYNAMIC_SMEM running a kernel on emu's fibers. Kept to the same names and meanings as the real header. */
#ifndef TPDIFF_CUDA_INTERNAL_CUH
#define TPDIFF_CUDA_INTERNAL_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "tests/emu/emu.h"

void tcu_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define TCU_FAIL(...) tcu_fail(__FILE__, __LINE__, __VA_ARGS__)
bool tcu_cuda_ok(cudaError_t err, const char *what, const char *file, int line);
#define CUDA_OK(call) tcu_cuda_ok((call), #call, __FILE__, __LINE__)
#define LAUNCH_OK(name) tcu_cuda_ok(cudaGetLastError(), "launch of " name, __FILE__, __LINE__)

struct tcu_device_state {
  int sm_count;
  int bf16;
};
extern tcu_device_state g_tcu;

enum tcu_scratch_slot {
  TCU_SCRATCH_COLSUM = 0,
  TCU_SCRATCH_INDEX,
  TCU_SCRATCH_COEF,
  TCU_SCRATCH_ATTENTION,
  TCU_SCRATCH_BF16_IN,
  TCU_SCRATCH_BF16_W,
  TCU_SCRATCH_BF16_DOUT,
  TCU_SCRATCH_SLOTS
};
void *tcu_scratch(tcu_scratch_slot slot, size_t bytes);

#define TCU_THREADS 256
static inline unsigned tcu_grid(size_t n, unsigned threads = TCU_THREADS) {
  size_t want = (n + threads - 1) / threads;
  size_t cap = (size_t)(g_tcu.sm_count > 0 ? g_tcu.sm_count : 132) * 16;
  if (want > cap) want = cap;
  return (unsigned)(want > 0 ? want : 1);
}
static inline long long tcu_ceil_div(long long a, long long b) { return (a + b - 1) / b; }

#define TCU_LAUNCH(grid, block, smem, ...) emu::launch((grid), (block), (smem), __VA_ARGS__)
#define TCU_DYNAMIC_SMEM(name) unsigned char *name = emu::dynamic_smem()

/* the real warp reductions and exp/tanh approximations */
#include "kernels/cuda/device_math.cuh"

/* the ops of the attention files (attention.cu, attention_bf16.cu) */
size_t tcu_attention_scratch_need(int B, int N, int D, int H);
void tcu_attention_forward(float *out, float *probs, const float *qkv, int B, int N, int D, int H);
void tcu_attention_backward(float *d_qkv, const float *d_out, const float *qkv, const float *out, const float *probs,
                            float *scratch, int B, int N, int D, int H);
size_t tcu_attention_probs_floats(int B, int N, int H);
bool tcu_attention_forward_bf16(float *out, float *lse, const float *qkv, int B, int N, int D, int H, int padded_dh,
                                float scale);
size_t tcu_attention_scratch_floats(int N);

#endif
