/* frames.c — frame-axis operators of the temporal pyramid (MATH.md section 2: Down, Dn, Hi, Up, A)
 * and the per-clip three-term combination that forms training inputs, targets and renoised states.
 *
 * Layout: a video is [bc, T, plane] (bc = B·C, plane = H·W); every operator maps whole planes, so
 * the inner loop is a contiguous run of `plane` floats that gcc vectorises. All of them are
 * element-wise after the frame index is fixed, so the result is the same at any thread count. */
#include <math.h>

#include "kernels/cpu/cpu_internal.h"
#include "kernels/kernels.h"

/* Below this many output values a parallel region costs more than it saves (a pass is memory
 * bound: ~1 ns per float). */
#define FRAMES_PARALLEL_MIN 65536

/* The pair operators sum in double: a + b is then exact, so the mean is correctly rounded (and
 * Down(Up(y)) == y bit for bit, with no overflow of a + b near FLT_MAX), and Dn / Hi round once
 * after the scale by 1/sqrt 2 instead of twice. The pass is memory bound, so double costs nothing. */
typedef enum { PAIR_MEAN, PAIR_SUM_NORM, PAIR_DIFF_NORM } pair_op;

static void frames_pair(float *out, const float *in, int bc, int T, int plane, pair_op op) {
  const int Th = T / 2; /* an odd last frame has no partner and is ignored */
  const long rows = (long)bc * Th;
  const double half = 0.5, inv_sqrt2 = 0.70710678118654752440;
#pragma omp parallel for schedule(static) if (rows * plane > FRAMES_PARALLEL_MIN)
  for (long row = 0; row < rows; row++) {
    long clip = row / Th, j = row % Th;
    const float *a = in + ((size_t)clip * T + 2 * (size_t)j) * plane;
    const float *b = a + plane;
    float *o = out + (size_t)row * plane;
    switch (op) {
      case PAIR_MEAN:
        for (int p = 0; p < plane; p++) o[p] = (float)(((double)a[p] + (double)b[p]) * half);
        break;
      case PAIR_SUM_NORM:
        for (int p = 0; p < plane; p++) o[p] = (float)(((double)a[p] + (double)b[p]) * inv_sqrt2);
        break;
      case PAIR_DIFF_NORM:
        for (int p = 0; p < plane; p++) o[p] = (float)(((double)a[p] - (double)b[p]) * inv_sqrt2);
        break;
    }
  }
}

void k_frames_pair_mean(float *out, const float *in, int bc, int T, int plane) {
  frames_pair(out, in, bc, T, plane, PAIR_MEAN);
}

void k_frames_pair_sum_norm(float *out, const float *in, int bc, int T, int plane) {
  frames_pair(out, in, bc, T, plane, PAIR_SUM_NORM);
}

void k_frames_pair_diff_norm(float *out, const float *in, int bc, int T, int plane) {
  frames_pair(out, in, bc, T, plane, PAIR_DIFF_NORM);
}

/* Up and A: output frames 2j and 2j+1 both come from input frame j, with the sign of the second
 * flipped for A. Negation is exact, so both are pure data movement. */
static void frames_spread(float *out, const float *in, int bc, int T, int plane, int antisym) {
  const long rows = (long)bc * T;
#pragma omp parallel for schedule(static) if (2 * rows * plane > FRAMES_PARALLEL_MIN)
  for (long row = 0; row < rows; row++) {
    const float *src = in + (size_t)row * plane;
    float *o0 = out + (size_t)row * 2 * plane; /* clip c, frame j -> output frame row 2(cT + j) */
    float *o1 = o0 + plane;
    if (antisym) {
      for (int p = 0; p < plane; p++) {
        o0[p] = src[p];
        o1[p] = -src[p];
      }
    } else {
      for (int p = 0; p < plane; p++) {
        o0[p] = src[p];
        o1[p] = src[p];
      }
    }
  }
}

void k_frames_repeat(float *out, const float *in, int bc, int T, int plane) { frames_spread(out, in, bc, T, plane, 0); }

void k_frames_antisym(float *out, const float *in, int bc, int T, int plane) {
  frames_spread(out, in, bc, T, plane, 1);
}

/* ---- per-clip three-term combination --------------------------------------------------------- */

/* Work is cut into blocks of this many values, each inside one clip, so a microbatch of few large
 * clips and one of many small clips both spread over the threads; the block also keeps the four
 * specialised loops below free of per-element clip arithmetic. */
#define COMBINE_BLOCK 32768

void k_combine3_per_clip(float *out, const float *x, const float *y, const float *z, const double *c, int B,
                         size_t clip_elems) {
  if (B <= 0 || clip_elems == 0) return;
  const size_t blocks_per_clip = (clip_elems + COMBINE_BLOCK - 1) / COMBINE_BLOCK;
  const long nblocks = (long)((size_t)B * blocks_per_clip);
#pragma omp parallel for schedule(static) if ((size_t)B * clip_elems > FRAMES_PARALLEL_MIN)
  for (long blk = 0; blk < nblocks; blk++) {
    size_t b = (size_t)blk / blocks_per_clip, part = (size_t)blk % blocks_per_clip;
    size_t lo = b * clip_elems + part * COMBINE_BLOCK;
    size_t hi = b * clip_elems + (part + 1 == blocks_per_clip ? clip_elems : (part + 1) * COMBINE_BLOCK);
    /* One rounding of each coefficient per clip, as the contract promises. */
    const float c0 = (float)c[3 * b], c1 = (float)c[3 * b + 1], c2 = (float)c[3 * b + 2];
    /* A y or z term whose (rounded) coefficient is 0 is skipped rather than multiplied by 0: then
     * ((c0 x) + (c1 y)) is returned unchanged (down to the sign of a zero, which + (+0) would
     * flip), so K = 1 is bit-identical to the two-term vanilla formulas, and a NULL or
     * uninitialised scratch (stage 0's S) can never leak a NaN. x is always used, like vanilla. */
    const int use_y = y != NULL && c1 != 0.0f, use_z = z != NULL && c2 != 0.0f;
    if (use_y && use_z) {
      for (size_t i = lo; i < hi; i++) out[i] = ((c0 * x[i]) + (c1 * y[i])) + (c2 * z[i]);
    } else if (use_y) {
      for (size_t i = lo; i < hi; i++) out[i] = (c0 * x[i]) + (c1 * y[i]);
    } else if (use_z) {
      for (size_t i = lo; i < hi; i++) out[i] = (c0 * x[i]) + (c2 * z[i]);
    } else {
      for (size_t i = lo; i < hi; i++) out[i] = c0 * x[i];
    }
  }
}
