/* device_math.cuh — device functions the CUDA backend's kernels share: the warp reductions and the
 * CPU's exp/tanh approximations, operation for operation. Plain CUDA C++ (shuffles and correctly
 * rounded intrinsics only), so tests/emu compiles it for the CPU with the kernels that use it. */
#ifndef TPDIFF_DEVICE_MATH_CUH
#define TPDIFF_DEVICE_MATH_CUH

/* ---- warp helpers ------------------------------------------------------------------------------ */

/* Butterfly sum: every lane ends with the same bits (IEEE addition is commutative, so each lane adds
 * the same pairs at each level). */
__device__ __forceinline__ float tcu_warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float tcu_warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/* ---- the CPU's exp/tanh approximations, operation for operation --------------------------------
 * Copies of k_exp_nonpositive and k_tanh (kernels/cpu/cpu_internal.h) with every multiply and add
 * written as a correctly rounded intrinsic, so nvcc cannot contract them into FMAs: the GPU then
 * computes the same bits as the CPU (gcc does not contract in -std=c11 mode), and GELU/softmax
 * differences between the backends come only from summation order. */
__device__ __forceinline__ float tcu_exp_nonpositive(float x) {
  if (x < -87.0f) x = -87.0f;
  const float log2e = 1.44269504088896341f;
  const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
  const float round_magic = 12582912.0f;
  float n = __fsub_rn(__fadd_rn(__fmul_rn(x, log2e), round_magic), round_magic);
  float f = __fsub_rn(x, __fmul_rn(n, ln2_hi));
  f = __fsub_rn(f, __fmul_rn(n, ln2_lo));
  float p = 1.0f / 720.0f;
  p = __fadd_rn(__fmul_rn(p, f), 1.0f / 120.0f);
  p = __fadd_rn(__fmul_rn(p, f), 1.0f / 24.0f);
  p = __fadd_rn(__fmul_rn(p, f), 1.0f / 6.0f);
  p = __fadd_rn(__fmul_rn(p, f), 0.5f);
  p = __fadd_rn(__fmul_rn(p, f), 1.0f);
  p = __fadd_rn(__fmul_rn(p, f), 1.0f);
  return __fmul_rn(p, __int_as_float(((int)n + 127) << 23));
}

__device__ __forceinline__ float tcu_tanh(float u) {
  float a = u < 0 ? -u : u;
  float e = tcu_exp_nonpositive(__fmul_rn(-2.0f, a));
  float t = __fdiv_rn(__fsub_rn(1.0f, e), __fadd_rn(1.0f, e));
  return u < 0 ? -t : t;
}

#endif
