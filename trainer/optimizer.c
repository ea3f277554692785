/* optimizer.c — AdamW, warm-up schedule, global-norm clipping and EMA, as backend ops. */
#include "trainer/optimizer.h"

#include <math.h>
#include <string.h>

int adamw_create(adamw_state *s, const dit_model *m, int with_ema) {
  const tpdiff_backend *be = m->be;
  memset(s, 0, sizeof *s);
  s->be = be;
  s->n = m->num_floats;
  const size_t bytes = s->n * sizeof(float);
  s->m = be->alloc(bytes);
  s->v = be->alloc(bytes);
  int ok = s->m && s->v && be->fill_zero(s->m, bytes) == 0 && be->fill_zero(s->v, bytes) == 0;
  if (ok && with_ema) {
    s->ema = be->alloc(bytes);
    ok = s->ema && be->copy_device(s->ema, m->weights, bytes) == 0;
  }
  if (!ok) {
    adamw_destroy(s);
    return -1;
  }
  return 0;
}

void adamw_destroy(adamw_state *s) {
  if (s->be) {
    s->be->free(s->m);
    s->be->free(s->v);
    s->be->free(s->ema);
  }
  memset(s, 0, sizeof *s);
}

double lr_at_step(double lr, int warmup, int step) {
  if (warmup <= 0 || step >= warmup) return lr;
  return lr * (double)step / (double)warmup;
}

double grad_global_norm(const tpdiff_backend *be, const float *grads, size_t n) {
  return sqrt(be->sum_squares(grads, n));
}

double grad_clip(const tpdiff_backend *be, float *grads, size_t n, double norm, double max_norm) {
  if (max_norm <= 0) return 1.0;
  double coef = max_norm / (norm + 1e-6);
  if (coef >= 1.0) return 1.0;
  be->scale(grads, (float)coef, n);
  return coef;
}

void adamw_apply(dit_model *m, adamw_state *s, float lr, float weight_decay) {
  s->step++;
  for (int i = 0; i < m->num_params; i++) {
    const dit_param *p = &m->params[i];
    float wd = p->ndim == 2 ? weight_decay : 0.0f;
    m->be->adamw_step(m->weights + p->offset, m->grads + p->offset, s->m + p->offset, s->v + p->offset, p->numel, lr,
                      ADAMW_BETA1, ADAMW_BETA2, ADAMW_EPS, wd, s->step);
  }
}

void ema_update(adamw_state *s, const float *weights, float decay) {
  if (!s->ema) return;
  /* One "clip" of n values with the coefficients (decay, 1 - decay): combine3 rounds each to float
   * once and evaluates (c0 ema) + (c1 w), which is exactly the float expression
   * decay * ema + (1.0f - decay) * w, since both coefficients are already floats. */
  float keep = decay, take = 1.0f - decay;
  const double c[3] = {(double)keep, (double)take, 0.0};
  s->be->combine3_per_clip(s->ema, s->ema, weights, NULL, c, 1, s->n);
}
