/* check_model_train.c — check_model step 2: training steps on the device against the CPU (fp32), or
 * with --bf16 the weights' bf16 copy against per-call casts (see check_model.c). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "kernels/kernels.h"
#include "model/dit.h"
#include "model/dit_internal.h"
#include "model/pyramid.h"
#include "tests/gpu/check_model.h"
#include "trainer/trainer.h"

/* ---- 2: training steps, GPU against CPU ----------------------------------------------------------- */

/* Microbatches of a step: stage (step + micro) mod K, random data and noise from (step, micro). */
typedef struct {
  const trainer *tr;
  long step;
  float *X, *eps, *t;
  int *y;
} step_batches;

static int next_batch(void *ctx, int micro, stage_microbatch *out, char *err, size_t err_size) {
  (void)err, (void)err_size;
  step_batches *sb = ctx;
  const dit_shape *s = &sb->tr->model.shape;
  int stage = (int)((sb->step + micro) % s->stages), B = sb->tr->cfg.train_clips_per_microbatch;
  size_t n = (size_t)B * s->channels * dit_stage_frames(s, stage) * s->height * s->width;
  uint64_t stream = ((uint64_t)sb->step << 8) | (uint64_t)micro;
  k_fill_normal(sb->X, n, 4242, 2 * stream, 0);
  k_fill_normal(sb->eps, n, 4242, 2 * stream + 1, 0);
  k_fill_uniform(sb->t, (size_t)B, 4243, stream, 0);
  for (int b = 0; b < B; b++) sb->t[b] = (float)pyramid_time(&sb->tr->schedule, stage, sb->t[b]);
  for (int b = 0; b < B; b++) sb->y[b] = (int)((sb->step + b) % (s->classes + 1));
  *out = (stage_microbatch){sb->X, sb->eps, sb->t, s->classes > 0 ? sb->y : NULL, B, stage};
  return 0;
}

/* Poisons every device buffer of a trainer that a step must write before reading. */
void poison_trainer(trainer *tr) {
  size_t n = (size_t)tr->model.shape.channels * tr->model.shape.frames * tr->model.shape.height *
             tr->model.shape.width * (size_t)tr->cfg.train_clips_per_microbatch;
  float *buffers[] = {tr->X, tr->eps, tr->x_t, tr->target, tr->d_out, tr->scratch};
  for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) poison(buffers[i], n);
  poison(tr->acts->base, tr->acts->capacity_floats);
}

void check_training(int steps) {
  tpdiff_config cfg;
  config_tiny(&cfg);
  static trainer tr_cpu, tr_dev;
  char err[512];
  if (trainer_create(&tr_cpu, &cfg, ref, err, sizeof err) != 0) {
    printf("FAIL training: trainer on cpu: %s\n", err);
    failed++;
    return;
  }
  if (trainer_create(&tr_dev, &cfg, dev, err, sizeof err) != 0) {
    printf("FAIL training: trainer on %s: %s\n", dev->name, err);
    failed++;
    trainer_destroy(&tr_cpu);
    return;
  }
  poison_trainer(&tr_dev);
  device_ok("training: set-up");
  int B = cfg.train_clips_per_microbatch;
  size_t n = (size_t)B * cfg.data_channels * cfg.data_frames * cfg.data_height * cfg.data_width;
  step_batches sb = {NULL,
                     0,
                     host_alloc(n * sizeof(float)),
                     host_alloc(n * sizeof(float)),
                     host_alloc((size_t)B * sizeof(float)),
                     host_alloc((size_t)B * sizeof(int))};
  double worst_loss = 0.0, worst_norm = 0.0, first_loss = 0.0, last_loss = 0.0;
  long worst_step = 0;
  int skipped = 0;
  for (long step = 1; step <= steps; step++) {
    sb.step = step;
    sb.tr = &tr_cpu;
    step_stats a = trainer_step(&tr_cpu, cfg.train_microbatches, next_batch, &sb);
    sb.tr = &tr_dev;
    step_stats b = trainer_step(&tr_dev, cfg.train_microbatches, next_batch, &sb);
    if (a.failed || b.failed) {
      printf("FAIL training step %ld: %s\n", step, a.failed ? a.error : b.error);
      failed++;
      break;
    }
    skipped += a.skipped + b.skipped;
    double e = scalar_rel_err(b.loss, a.loss), en = scalar_rel_err(b.grad_norm, a.grad_norm);
    if (!(e <= worst_loss)) worst_loss = e, worst_step = step;
    if (!(en <= worst_norm)) worst_norm = en;
    if (step == 1) first_loss = a.loss;
    last_loss = a.loss;
    if (!(e <= 1e-4)) printf("FAIL training step %ld loss err=%.3g gpu=%.9g cpu=%.9g\n", step, e, b.loss, a.loss);
  }
  device_ok("training steps");
  int ok = worst_loss <= 1e-4 && skipped == 0;
  printf(
      "%s training %d steps (tiny, K=3, 2 microbatches/step, AdamW+clip+EMA): max per-step loss err=%.3g at step %ld "
      "limit=1e-04; grad-norm err max %.3g; loss %.5f -> %.5f; %d skipped steps\n",
      ok ? "PASS" : "FAIL", steps, worst_loss, worst_step, worst_norm, first_loss, last_loss, skipped);
  count(ok);

  size_t nf = tr_cpu.model.num_floats;
  float *w_cpu = host_alloc(nf * sizeof(float)), *w_dev = host_alloc(nf * sizeof(float));
  dit_weights_to_host(&tr_cpu.model, w_cpu);
  if (dit_weights_to_host(&tr_dev.model, w_dev) != 0) device_fail("training: weights download");
  double l2 = l2_rel_err(w_dev, w_cpu, nf), mx = max_rel_err(w_dev, w_cpu, nf);
  ok = l2 <= 1e-3;
  printf("%s training final weights: L2 err=%.3g limit=1e-03 (max-norm err %.3g, for information)\n",
         ok ? "PASS" : "FAIL", l2, mx);
  count(ok);
  if (tr_cpu.opt.ema && tr_dev.opt.ema) {
    ref->copy_to_host(w_cpu, tr_cpu.opt.ema, nf * sizeof(float));
    if (dev->copy_to_host(w_dev, tr_dev.opt.ema, nf * sizeof(float)) != 0) device_fail("training: EMA download");
    l2 = l2_rel_err(w_dev, w_cpu, nf), mx = max_rel_err(w_dev, w_cpu, nf);
    ok = l2 <= 1e-3;
    printf("%s training final EMA: L2 err=%.3g limit=1e-03 (max-norm err %.3g)\n", ok ? "PASS" : "FAIL", l2, mx);
    count(ok);
  }
  free(w_cpu);
  free(w_dev);
  free(sb.X);
  free(sb.eps);
  free(sb.t);
  free(sb.y);
  trainer_destroy(&tr_cpu);
  trainer_destroy(&tr_dev);
}

/* ---- 2 (bf16): the weights' bf16 copy against per-call casts ---------------------------------------- */

/* Trains the tiny config for `steps` steps on the device; per-step loss and gradient norm into
 * loss[] and norm[], the final weights into w (host, num_floats). 0, or -1 after a FAIL line. */
static int train_tiny_on_device(int steps, double *loss, double *norm, float **w, size_t *nf) {
  tpdiff_config cfg;
  config_tiny(&cfg);
  snprintf(cfg.train_precision, sizeof cfg.train_precision, "bf16");
  static trainer tr;
  char err[512];
  if (trainer_create(&tr, &cfg, dev, err, sizeof err) != 0) {
    printf("FAIL bf16 weights copy: trainer on %s: %s\n", dev->name, err);
    failed++;
    return -1;
  }
  poison_trainer(&tr);
  int B = cfg.train_clips_per_microbatch, rc = 0;
  size_t n = (size_t)B * cfg.data_channels * cfg.data_frames * cfg.data_height * cfg.data_width;
  step_batches sb = {&tr, 0, host_alloc(n * sizeof(float)), host_alloc(n * sizeof(float)),
                     host_alloc((size_t)B * sizeof(float)), host_alloc((size_t)B * sizeof(int))};
  for (long step = 1; step <= steps && rc == 0; step++) {
    sb.step = step;
    step_stats st = trainer_step(&tr, cfg.train_microbatches, next_batch, &sb);
    if (st.failed) {
      printf("FAIL bf16 weights copy: step %ld: %s\n", step, st.error);
      failed++;
      rc = -1;
    }
    loss[step - 1] = st.loss;
    norm[step - 1] = st.grad_norm;
  }
  device_ok("bf16 weights copy: training");
  *nf = tr.model.num_floats;
  *w = host_alloc(*nf * sizeof(float));
  if (dit_weights_to_host(&tr.model, *w) != 0) device_fail("bf16 weights copy: weights download");
  free(sb.X);
  free(sb.eps);
  free(sb.t);
  free(sb.y);
  trainer_destroy(&tr);
  return rc;
}

/* In bf16 mode the matmuls read the bf16 copy of the master weights that AdamW writes
 * (master_weights.cu); TPDIFF_BF16_WEIGHTS=cast makes every Linear cast its weight per call
 * instead. Both multiply bf16(master weight), so training must give the same bits either way; a copy
 * that went stale after any write (upload, AdamW) would show here as a different loss. */
void check_bf16_weights_copy(int steps) {
  enum { MAX_STEPS = 64 };
  if (steps > MAX_STEPS) steps = MAX_STEPS;
  double loss[2][MAX_STEPS], norm[2][MAX_STEPS];
  float *w[2] = {NULL, NULL};
  size_t nf = 0;
  const char *saved = getenv("TPDIFF_BF16_WEIGHTS");
  unsetenv("TPDIFF_BF16_WEIGHTS");
  int rc = train_tiny_on_device(steps, loss[0], norm[0], &w[0], &nf);
  setenv("TPDIFF_BF16_WEIGHTS", "cast", 1);
  if (rc == 0) rc = train_tiny_on_device(steps, loss[1], norm[1], &w[1], &nf);
  if (saved) setenv("TPDIFF_BF16_WEIGHTS", saved, 1);
  else unsetenv("TPDIFF_BF16_WEIGHTS");
  if (rc == 0) {
    int differ = 0, nonfinite = 0;
    for (int i = 0; i < steps; i++) {
      differ += memcmp(&loss[0][i], &loss[1][i], sizeof(double)) != 0 || memcmp(&norm[0][i], &norm[1][i], sizeof(double)) != 0;
      nonfinite += !isfinite(loss[0][i]);
    }
    size_t wd = 0;
    for (size_t i = 0; i < nf; i++) wd += memcmp(&w[0][i], &w[1][i], sizeof(float)) != 0;
    int ok = differ == 0 && wd == 0 && nonfinite == 0;
    printf("%s bf16 weights copy vs per-call casts: %d steps (tiny, K=3, AdamW+clip+EMA): %d steps with another loss "
           "or gradient norm, %zu of %zu final weights differ, %d non-finite losses; loss %.5f -> %.5f\n",
           ok ? "PASS" : "FAIL", steps, differ, wd, nf, nonfinite, loss[0][0], loss[0][steps - 1]);
    count(ok);
  }
  free(w[0]);
  free(w[1]);
}
