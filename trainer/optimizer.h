/* optimizer.h — AdamW over the model's parameter registry, learning-rate schedule, gradient
 * clipping and the EMA of the weights. Moments and EMA live in the model's backend memory and every
 * pass is a backend op, so the step runs where the weights are. */
#ifndef TPDIFF_OPTIMIZER_H
#define TPDIFF_OPTIMIZER_H

#include <stddef.h>

#include "kernels/backend.h"
#include "model/dit.h"

#define ADAMW_BETA1 0.9f
#define ADAMW_BETA2 0.999f
#define ADAMW_EPS 1e-8f

typedef struct {
  const tpdiff_backend *be; /* owner of m, v, ema */
  float *m, *v;             /* first and second moments [num_floats], backend memory */
  float *ema;               /* EMA weights [num_floats], backend memory; NULL when ema decay is 0 */
  size_t n;
  int step; /* optimizer steps taken */
} adamw_state;

/* Allocates zeroed moments (and the EMA, initialised to the current weights) on the model's
 * backend. 0 or -1 (no memory). */
int adamw_create(adamw_state *s, const dit_model *m, int with_ema);
void adamw_destroy(adamw_state *s);

/* Learning rate at optimizer step `step` (1-based): lr * min(1, step / warmup), or lr without warm-up. */
double lr_at_step(double lr, int warmup, int step);

/* Global L2 norm of the gradient buffer grads [n] (backend memory; double accumulation). */
double grad_global_norm(const tpdiff_backend *be, const float *grads, size_t n);
/* Scales the gradients as torch.nn.utils.clip_grad_norm_: by max_norm / (norm + 1e-6) when that is < 1.
 * Returns the factor applied (1 when none). max_norm <= 0 disables. grads is backend memory. */
double grad_clip(const tpdiff_backend *be, float *grads, size_t n, double norm, double max_norm);

/* One AdamW step on every registry tensor; decoupled weight decay only on matrices (ndim == 2),
 * none on biases. Increments s->step. */
void adamw_apply(dit_model *m, adamw_state *s, float lr, float weight_decay);

/* ema = decay * ema + (1 - decay) * weights (weights: backend memory, num_floats). */
void ema_update(adamw_state *s, const float *weights, float decay);

#endif
