/* optimizer.c — AdamW, warm-up schedule, global-norm clipping and EMA. */
#include "trainer/optimizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

int adamw_create(adamw_state *s, const dit_model *m, int with_ema) {
  memset(s, 0, sizeof *s);
  s->n = m->num_floats;
  s->m = calloc(s->n, sizeof(float));
  s->v = calloc(s->n, sizeof(float));
  if (with_ema) {
    s->ema = malloc(s->n * sizeof(float));
    if (s->ema) memcpy(s->ema, m->weights, s->n * sizeof(float));
  }
  if (!s->m || !s->v || (with_ema && !s->ema)) {
    adamw_destroy(s);
    return -1;
  }
  return 0;
}

void adamw_destroy(adamw_state *s) {
  free(s->m);
  free(s->v);
  free(s->ema);
  memset(s, 0, sizeof *s);
}

double lr_at_step(double lr, int warmup, int step) {
  if (warmup <= 0 || step >= warmup) return lr;
  return lr * (double)step / (double)warmup;
}

double grad_global_norm(const float *grads, size_t n) { return sqrt(k_sum_squares(grads, n)); }

double grad_clip(float *grads, size_t n, double norm, double max_norm) {
  if (max_norm <= 0) return 1.0;
  double coef = max_norm / (norm + 1e-6);
  if (coef >= 1.0) return 1.0;
  k_scale(grads, (float)coef, n);
  return coef;
}

void adamw_apply(dit_model *m, adamw_state *s, float lr, float weight_decay) {
  s->step++;
  for (int i = 0; i < m->num_params; i++) {
    const dit_param *p = &m->params[i];
    float wd = p->ndim == 2 ? weight_decay : 0.0f;
    k_adamw_step(m->weights + p->offset, m->grads + p->offset, s->m + p->offset, s->v + p->offset, p->numel, lr,
                 ADAMW_BETA1, ADAMW_BETA2, ADAMW_EPS, wd, s->step);
  }
}

void ema_update(adamw_state *s, const float *weights, float decay) {
  if (!s->ema) return;
  float keep = decay, take = 1.0f - decay;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < s->n; i++) s->ema[i] = keep * s->ema[i] + take * weights[i];
}
