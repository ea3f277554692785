/* optim.cu — MSE loss, AdamW and the sum of squares (kernels/cpu/optim.c).
 *
 * Deterministic reductions: a FIXED grid of TCU_REDUCE_BLOCKS x TCU_REDUCE_THREADS threads (a
 * constant, not the device's SM count), each thread accumulating a fixed strided subset in double,
 * a fixed shared-memory tree per block, per-block partials in double, then one block that sums the
 * partials in a fixed order. Same inputs, same bits, on every run and every GPU; no atomics.
 *
 * AdamW follows the CPU operation for operation (bias corrections computed on the host in double,
 * rounded intrinsics so nvcc does not contract into FMAs, IEEE sqrt and division), so parameters
 * and moments match the CPU's bits. In bf16 mode it also writes the weights' bf16 copy. */
#include <math.h>

#include "kernels/cuda/cuda_internal.cuh"

namespace {

/* Fixed-order tree over the block's TCU_REDUCE_THREADS values; the result is valid in thread 0. */
__device__ double block_sum(double v) {
  __shared__ double s[TCU_REDUCE_THREADS];
  s[threadIdx.x] = v;
  __syncthreads();
#pragma unroll
  for (int o = TCU_REDUCE_THREADS / 2; o > 0; o >>= 1) {
    if ((int)threadIdx.x < o) s[threadIdx.x] += s[threadIdx.x + o];
    __syncthreads();
  }
  return s[0];
}

__global__ void __launch_bounds__(TCU_REDUCE_THREADS)
    mse_partial_kernel(float *d_pred, const float *pred, const float *target, size_t n, float g, double *partials) {
  double acc = 0.0;
  for (size_t i = blockIdx.x * (size_t)TCU_REDUCE_THREADS + threadIdx.x; i < n;
       i += (size_t)TCU_REDUCE_BLOCKS * TCU_REDUCE_THREADS) {
    float diff = __fsub_rn(pred[i], target[i]);
    acc += (double)diff * (double)diff; /* exact product of two floats in double */
    d_pred[i] = __fmul_rn(g, diff);     /* d_pred may alias pred: same element, read first */
  }
  double s = block_sum(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

__global__ void __launch_bounds__(TCU_REDUCE_THREADS)
    sum_squares_partial_kernel(const float *x, size_t n, double *partials) {
  double acc = 0.0;
  for (size_t i = blockIdx.x * (size_t)TCU_REDUCE_THREADS + threadIdx.x; i < n;
       i += (size_t)TCU_REDUCE_BLOCKS * TCU_REDUCE_THREADS) {
    double v = (double)x[i];
    acc += v * v;
  }
  double s = block_sum(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

/* One block: thread t sums partials t, t + 256, ... in order, then the tree. */
__global__ void __launch_bounds__(TCU_REDUCE_THREADS) finish_sum_kernel(const double *partials, double *result) {
  double acc = 0.0;
  for (int i = threadIdx.x; i < TCU_REDUCE_BLOCKS; i += TCU_REDUCE_THREADS) acc += partials[i];
  double s = block_sum(acc);
  if (threadIdx.x == 0) *result = s;
}

/* Sums what the partial kernel just wrote and returns it to the host (synchronous copy). NaN with
 * an error recorded on failure, so a broken reduction can never pass for a loss. */
double finish_and_fetch(void) {
  TCU_LAUNCH(1, TCU_REDUCE_THREADS, 0, finish_sum_kernel)(g_tcu.reduce_partials, g_tcu.reduce_result);
  if (!LAUNCH_OK("finish_sum_kernel")) return NAN;
  double host = NAN;
  if (!CUDA_OK(cudaMemcpy(&host, g_tcu.reduce_result, sizeof host, cudaMemcpyDeviceToHost))) return NAN;
  return host;
}

/* param16: bf16 mode's copy of these master weights (master_weights.cu), written from the new fp32
 * value in the same pass; NULL when there is none. */
__global__ void adamw_kernel(float *param, __nv_bfloat16 *param16, const float *grad, float *m, float *v, size_t n,
                             float beta1, float one_minus_beta1, float beta2, float one_minus_beta2, float eps,
                             float step_size, float decay, float bc2_sqrt) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    float g = grad[i];
    /* mi = beta1 m + (1 - beta1) g; vi = beta2 v + (1 - beta2) g g */
    float mi = __fadd_rn(__fmul_rn(beta1, m[i]), __fmul_rn(one_minus_beta1, g));
    float vi = __fadd_rn(__fmul_rn(beta2, v[i]), __fmul_rn(__fmul_rn(one_minus_beta2, g), g));
    m[i] = mi;
    v[i] = vi;
    /* p = p decay - step_size mi / (sqrt(vi) / bc2_sqrt + eps) */
    float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), eps);
    float p = __fsub_rn(__fmul_rn(param[i], decay), __fdiv_rn(__fmul_rn(step_size, mi), denom));
    param[i] = p;
    if (param16) param16[i] = __float2bfloat16_rn(p);
  }
}

}  // namespace

double tcu_mse_loss(float *d_pred, const float *pred, const float *target, size_t n, float grad_scale) {
  if (n == 0) return 0.0 / (double)n; /* the CPU's 0/0 */
  /* g in float exactly as the CPU computes it */
  float g = 2.0f * grad_scale / (float)n;
  TCU_LAUNCH(TCU_REDUCE_BLOCKS, TCU_REDUCE_THREADS, 0, mse_partial_kernel)
  (d_pred, pred, target, n, g, g_tcu.reduce_partials);
  if (!LAUNCH_OK("mse_partial_kernel")) return NAN;
  return finish_and_fetch() / (double)n;
}

double tcu_sum_squares(const float *x, size_t n) {
  if (n == 0) return 0.0;
  TCU_LAUNCH(TCU_REDUCE_BLOCKS, TCU_REDUCE_THREADS, 0, sum_squares_partial_kernel)(x, n, g_tcu.reduce_partials);
  if (!LAUNCH_OK("sum_squares_partial_kernel")) return NAN;
  return finish_and_fetch();
}

void tcu_adamw_step(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                    float eps, float weight_decay, int step) {
  if (n == 0) return;
  /* Bias corrections in double on the host, as the CPU: 1 - beta2^step loses digits in float. */
  float bc1 = (float)(1.0 - pow(beta1, step));
  float bc2_sqrt = (float)sqrt(1.0 - pow(beta2, step));
  volatile float lr_wd = lr * weight_decay; /* volatile: two roundings, as the CPU (no host FMA) */
  float step_size = lr / bc1, decay = 1.0f - lr_wd;
  __nv_bfloat16 *copy = tcu_master_bf16(param, n); /* NULL unless param lies wholly in the master weights */
  TCU_LAUNCH(tcu_grid(n), TCU_THREADS, 0, adamw_kernel)
  (param, copy, grad, m, v, n, beta1, 1.0f - beta1, beta2, 1.0f - beta2, eps, step_size, decay, bc2_sqrt);
  /* a range that only overlaps them: refresh the overlap after the step, as any other write */
  if (LAUNCH_OK("adamw_kernel") && !copy) tcu_master_note_write(param, n * sizeof(float));
}
