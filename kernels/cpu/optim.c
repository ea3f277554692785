/* optim.c — MSE loss, AdamW and the sum of squares for gradient-norm clipping. */
#include <math.h>

#include "kernels/kernels.h"
#include "kernels/cpu/cpu_internal.h"

/* Deterministic parallel sum: each thread sums a fixed contiguous block, the partials are added in
 * thread order. Same thread count => same bits, which exact resume relies on. */
#define PARALLEL_SUM(n, expr_i, result)                                                                           \
  do {                                                                                                          \
    double partial_[K_MAX_THREADS] = {0};                                                                       \
    int nt_used_ = 1;                                                                                           \
    _Pragma("omp parallel") {                                                                                   \
      int nt_ = 1, id_ = 0;                                                                                     \
      KERNEL_THREAD_IDS(nt_, id_);                                                                              \
      if (nt_ > K_MAX_THREADS) nt_ = K_MAX_THREADS;                                                             \
      if (id_ < nt_) {                                                                                          \
        size_t lo_ = (n) * (size_t)id_ / (size_t)nt_, hi_ = (n) * (size_t)(id_ + 1) / (size_t)nt_;             \
        double acc_ = 0.0;                                                                                      \
        for (size_t i = lo_; i < hi_; i++) acc_ += (expr_i);                                                   \
        partial_[id_] = acc_;                                                                                   \
        if (id_ == 0) nt_used_ = nt_;                                                                           \
      }                                                                                                         \
    }                                                                                                           \
    double sum_ = 0.0;                                                                                          \
    for (int t_ = 0; t_ < nt_used_; t_++) sum_ += partial_[t_];                                                \
    (result) = sum_;                                                                                            \
  } while (0)

#ifdef _OPENMP
#define KERNEL_THREAD_IDS(nt, id) (nt = omp_get_num_threads(), id = omp_get_thread_num())
#else
#define KERNEL_THREAD_IDS(nt, id) (nt = 1, id = 0)
#endif

double k_mse_loss(float *d_pred, const float *pred, const float *target, size_t n, float grad_scale) {
  double sum;
  PARALLEL_SUM(n, (double)(pred[i] - target[i]) * (double)(pred[i] - target[i]), sum);
  float g = 2.0f * grad_scale / (float)n;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) d_pred[i] = g * (pred[i] - target[i]);
  return sum / (double)n;
}

double k_sum_squares(const float *x, size_t n) {
  double sum;
  PARALLEL_SUM(n, (double)x[i] * (double)x[i], sum);
  return sum;
}

void k_adamw_step(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int step) {
  /* Bias corrections in double: 1 - beta2^step loses digits in float for small steps. */
  float bc1 = (float)(1.0 - pow(beta1, step));
  float bc2_sqrt = (float)sqrt(1.0 - pow(beta2, step));
  float step_size = lr / bc1, decay = 1.0f - lr * weight_decay;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    float g = grad[i];
    float mi = beta1 * m[i] + (1.0f - beta1) * g;
    float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * decay - step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
  }
}
