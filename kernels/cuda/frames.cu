/* frames.cu — frame-axis operators of the temporal pyramid (Down, Dn, Hi, Up, A) and the per-clip
 * three-term combination, twins of kernels/cpu/frames.c with the same arithmetic, so both
 * backends produce the same bits:
 *   - the pair operators add in double (exact), scale in double, round once to float;
 *   - Up and A are data movement (negation is exact);
 *   - combine3 rounds each coefficient to float once per clip (on the host) and evaluates
 *     ((c0 x) + (c1 y)) + (c2 z) with __fmul_rn/__fadd_rn, which nvcc never contracts into an FMA,
 *     skipping a y or z term whose rounded coefficient is 0 exactly as the CPU does.
 * Layout: a video is [bc, T, plane]; rows of `plane` floats are the unit of work (rows in
 * blockIdx.y, the plane in x). */
#include <stdlib.h>

#include "kernels/cuda/cuda_internal.cuh"

namespace {

enum PairOp { PAIR_MEAN, PAIR_SUM_NORM, PAIR_DIFF_NORM };

#define ROW_LOOP(row, rows) for (long long row = blockIdx.y; row < (rows); row += gridDim.y)
#define PLANE_LOOP(p, plane) \
  for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < (plane); p += gridDim.x * blockDim.x)

template <PairOp OP>
__global__ void frames_pair_kernel(float *out, const float *in, long long rows, int T, int Th, int plane) {
  const double half = 0.5, inv_sqrt2 = 0.70710678118654752440;
  ROW_LOOP(row, rows) {
    long long clip = row / Th, j = row % Th;
    const float *a = in + ((size_t)clip * T + 2 * (size_t)j) * plane;
    const float *b = a + plane;
    float *o = out + (size_t)row * plane;
    PLANE_LOOP(p, plane) {
      double s = OP == PAIR_DIFF_NORM ? __dsub_rn((double)a[p], (double)b[p]) : __dadd_rn((double)a[p], (double)b[p]);
      o[p] = (float)__dmul_rn(s, OP == PAIR_MEAN ? half : inv_sqrt2);
    }
  }
}

template <bool ANTISYM>
__global__ void frames_spread_kernel(float *out, const float *in, long long rows, int plane) {
  ROW_LOOP(row, rows) {
    const float *src = in + (size_t)row * plane;
    float *o0 = out + (size_t)row * 2 * plane; /* clip c, frame j -> output frames 2(cT + j), +1 */
    float *o1 = o0 + plane;
    PLANE_LOOP(p, plane) {
      float v = src[p];
      o0[p] = v;
      o1[p] = ANTISYM ? -v : v;
    }
  }
}

dim3 rows_grid(long long rows, int plane) {
  long long gx = tcu_ceil_div(plane, TCU_THREADS);
  if (gx > 16) gx = 16;
  long long gy = rows < 65535 ? rows : 65535;
  return dim3((unsigned)(gx > 0 ? gx : 1), (unsigned)(gy > 0 ? gy : 1));
}

bool frames_shape_ok(const char *op, int bc, int T, int plane) {
  if (bc < 0 || T < 0 || plane < 0) {
    TCU_FAIL("%s: bad shape bc=%d T=%d plane=%d", op, bc, T, plane);
    return false;
  }
  return true;
}

template <PairOp OP>
void frames_pair(const char *name, float *out, const float *in, int bc, int T, int plane) {
  if (!frames_shape_ok(name, bc, T, plane)) return;
  const int Th = T / 2; /* an odd last frame has no partner and is ignored (as on the CPU) */
  long long rows = (long long)bc * Th;
  if (rows == 0 || plane == 0) return;
  TCU_LAUNCH(rows_grid(rows, plane), TCU_THREADS, 0, frames_pair_kernel<OP>)(out, in, rows, T, Th, plane);
  LAUNCH_OK("frames_pair_kernel");
}

template <bool ANTISYM>
void frames_spread(const char *name, float *out, const float *in, int bc, int T, int plane) {
  if (!frames_shape_ok(name, bc, T, plane)) return;
  long long rows = (long long)bc * T;
  if (rows == 0 || plane == 0) return;
  TCU_LAUNCH(rows_grid(rows, plane), TCU_THREADS, 0, frames_spread_kernel<ANTISYM>)(out, in, rows, plane);
  LAUNCH_OK("frames_spread_kernel");
}

/* Clips in blockIdx.y, the clip's elements grid-stride in x. coef holds 3 floats per clip. */
__global__ void combine3_kernel(float *out, const float *x, const float *y, const float *z, const float *coef, int B,
                                size_t clip_elems) {
  for (int b = blockIdx.y; b < B; b += gridDim.y) {
    const float c0 = coef[3 * b], c1 = coef[3 * b + 1], c2 = coef[3 * b + 2];
    const bool use_y = y != NULL && c1 != 0.0f, use_z = z != NULL && c2 != 0.0f;
    const size_t base = (size_t)b * clip_elems;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < clip_elems;
         i += (size_t)gridDim.x * blockDim.x) {
      float r = __fmul_rn(c0, x[base + i]);
      if (use_y) r = __fadd_rn(r, __fmul_rn(c1, y[base + i]));
      if (use_z) r = __fadd_rn(r, __fmul_rn(c2, z[base + i]));
      out[base + i] = r;
    }
  }
}

}  // namespace

void tcu_frames_pair_mean(float *out, const float *in, int bc, int T, int plane) {
  frames_pair<PAIR_MEAN>("frames_pair_mean", out, in, bc, T, plane);
}

void tcu_frames_pair_sum_norm(float *out, const float *in, int bc, int T, int plane) {
  frames_pair<PAIR_SUM_NORM>("frames_pair_sum_norm", out, in, bc, T, plane);
}

void tcu_frames_pair_diff_norm(float *out, const float *in, int bc, int T, int plane) {
  frames_pair<PAIR_DIFF_NORM>("frames_pair_diff_norm", out, in, bc, T, plane);
}

void tcu_frames_repeat(float *out, const float *in, int bc, int T, int plane) {
  frames_spread<false>("frames_repeat", out, in, bc, T, plane);
}

void tcu_frames_antisym(float *out, const float *in, int bc, int T, int plane) {
  frames_spread<true>("frames_antisym", out, in, bc, T, plane);
}

void tcu_combine3_per_clip(float *out, const float *x, const float *y, const float *z, const double *c_host, int B,
                           size_t clip_elems) {
  if (B <= 0 || clip_elems == 0) return;
  /* One rounding of each coefficient per clip, on the host, as the contract promises. */
  float *coef = (float *)tcu_scratch(TCU_SCRATCH_COEF, (size_t)B * 3 * sizeof(float));
  if (!coef) return;
  float small[3 * 64];
  float *host = B <= 64 ? small : (float *)malloc((size_t)B * 3 * sizeof(float));
  if (!host) {
    TCU_FAIL("combine3_per_clip: out of host memory");
    return;
  }
  for (int i = 0; i < 3 * B; i++) host[i] = (float)c_host[i];
  bool ok = CUDA_OK(cudaMemcpy(coef, host, (size_t)B * 3 * sizeof(float), cudaMemcpyHostToDevice));
  if (host != small) free(host);
  if (!ok) return;
  size_t gx = (clip_elems + TCU_THREADS - 1) / TCU_THREADS;
  size_t cap = (size_t)(g_tcu.sm_count > 0 ? g_tcu.sm_count : 132) * 8;
  if (gx > cap) gx = cap;
  dim3 grid((unsigned)gx, (unsigned)(B < 65535 ? B : 65535));
  TCU_LAUNCH(grid, TCU_THREADS, 0, combine3_kernel)(out, x, y, z, coef, B, clip_elems);
  LAUNCH_OK("combine3_kernel");
}
