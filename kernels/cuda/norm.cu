/* norm.cu — layernorm without affine fused with the adaLN modulate, forward and backward.
 *
 * One warp per token row: D (64 .. 1152 in the configs) spans a few loads per lane, the row's mean
 * and variance are warp shuffles with no shared memory or block barriers, and the second and third
 * passes over the row hit L1. Fused because the normalised row is consumed only by the modulate:
 * one read of x, one write of out (as on the CPU).
 *
 * The arithmetic follows kernels/cpu/layernorm.c operation for operation (two-pass variance,
 * 1/sqrtf, the same order in the output formula, written with rounded intrinsics so nvcc does not
 * fuse them into FMAs); only the order of the row sums differs. */
#include "kernels/cuda/cuda_internal.cuh"

namespace {

constexpr int kWarpsPerBlock = 8;

__global__ void layernorm_modulate_forward_kernel(float *out, float *mean, float *rstd, const float *x,
                                                  const float *shift, const float *scale, int cond_stride,
                                                  long long rows, int N, int D, float eps) {
  long long row = (long long)blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  int lane = threadIdx.x & 31;
  if (row >= rows) return; /* the whole warp leaves together */
  long long b = row / N;
  const float *xr = x + row * D;
  float *yr = out + row * D;
  const float *sh = shift + b * cond_stride, *sc = scale + b * cond_stride;
  float s = 0.0f;
  for (int d = lane; d < D; d += 32) s += xr[d];
  float mu = __fdiv_rn(tcu_warp_sum(s), (float)D);
  float v = 0.0f;
  for (int d = lane; d < D; d += 32) {
    float c = __fsub_rn(xr[d], mu);
    v = __fadd_rn(v, __fmul_rn(c, c));
  }
  float var = __fdiv_rn(tcu_warp_sum(v), (float)D);
  float rs = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(var, eps)));
  if (lane == 0) {
    mean[row] = mu;
    rstd[row] = rs;
  }
  for (int d = lane; d < D; d += 32)
    yr[d] = __fadd_rn(__fmul_rn(__fmul_rn(__fsub_rn(xr[d], mu), rs), __fadd_rn(1.0f, sc[d])), sh[d]);
}

/* d_x += rs (g - mean(g) - xhat mean(g xhat)), g = d_out (1 + scale): the layernorm backward. */
__global__ void layernorm_modulate_backward_dx_kernel(float *dx, const float *d_out, const float *x, const float *mean,
                                                      const float *rstd, const float *scale, int cond_stride,
                                                      long long rows, int N, int D) {
  long long row = (long long)blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  int lane = threadIdx.x & 31;
  if (row >= rows) return;
  long long b = row / N;
  const float *xr = x + row * D, *dy = d_out + row * D, *sc = scale + b * cond_stride;
  float *dxr = dx + row * D;
  float mu = mean[row], rs = rstd[row];
  float g_sum = 0.0f, gx_sum = 0.0f;
  for (int d = lane; d < D; d += 32) {
    float g = __fmul_rn(dy[d], __fadd_rn(1.0f, sc[d]));
    float xh = __fmul_rn(__fsub_rn(xr[d], mu), rs);
    g_sum = __fadd_rn(g_sum, g);
    gx_sum = __fadd_rn(gx_sum, __fmul_rn(g, xh));
  }
  float g_mean = __fdiv_rn(tcu_warp_sum(g_sum), (float)D);
  float gx_mean = __fdiv_rn(tcu_warp_sum(gx_sum), (float)D);
  for (int d = lane; d < D; d += 32) {
    float g = __fmul_rn(dy[d], __fadd_rn(1.0f, sc[d]));
    float xh = __fmul_rn(__fsub_rn(xr[d], mu), rs);
    float grad = __fmul_rn(rs, __fsub_rn(__fsub_rn(g, g_mean), __fmul_rn(xh, gx_mean)));
    dxr[d] = __fadd_rn(dxr[d], grad);
  }
}

bool check_shape(const char *op, int cond_stride, int B, int N, int D) {
  if (B < 0 || N < 0 || D < 0 || cond_stride < 0) {
    TCU_FAIL("%s: bad shape B=%d N=%d D=%d cond_stride=%d", op, B, N, D, cond_stride);
    return false;
  }
  return true;
}

}  // namespace

void tcu_layernorm_modulate_forward(float *out, float *mean, float *rstd, const float *x, const float *shift,
                                    const float *scale, int cond_stride, int B, int N, int D, float eps) {
  if (!check_shape("layernorm_modulate_forward", cond_stride, B, N, D)) return;
  long long rows = (long long)B * N;
  if (rows == 0 || D == 0) return;
  unsigned blocks = (unsigned)tcu_ceil_div(rows, kWarpsPerBlock);
  TCU_LAUNCH(blocks, kWarpsPerBlock * 32, 0, layernorm_modulate_forward_kernel)
  (out, mean, rstd, x, shift, scale, cond_stride, rows, N, D, eps);
  LAUNCH_OK("layernorm_modulate_forward_kernel");
}

void tcu_layernorm_modulate_backward(float *d_x_accumulate, float *d_shift, float *d_scale, const float *d_out,
                                     const float *x, const float *mean, const float *rstd, const float *scale,
                                     int cond_stride, int B, int N, int D) {
  if (!check_shape("layernorm_modulate_backward", cond_stride, B, N, D)) return;
  long long rows = (long long)B * N;
  if (rows == 0 || D == 0) return;
  unsigned blocks = (unsigned)tcu_ceil_div(rows, kWarpsPerBlock);
  TCU_LAUNCH(blocks, kWarpsPerBlock * 32, 0, layernorm_modulate_backward_dx_kernel)
  (d_x_accumulate, d_out, x, mean, rstd, scale, cond_stride, rows, N, D);
  if (!LAUNCH_OK("layernorm_modulate_backward_dx_kernel")) return;
  /* d_shift += sum_n d_out, d_scale += sum_n d_out xhat: one deterministic pass for both */
  tcu_colsum_source src = {TCU_COLSUM_LAYERNORM, d_out, x, mean, rstd};
  tcu_colsum_accumulate(src, B, N, D, d_shift, d_scale, cond_stride);
}
