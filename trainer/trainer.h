/* trainer.h — one training run's state and the optimizer step (forward/backward over the
 * microbatches, gradient clipping, AdamW, EMA). Microbatches come from a callback, so the same
 * step serves tpdiff-train, the reference checks and the benchmarks. */
#ifndef TPDIFF_TRAINER_H
#define TPDIFF_TRAINER_H

#include <stddef.h>

#include "model/dit.h"
#include "model/pyramid.h"
#include "trainer/batch.h"
#include "trainer/config.h"
#include "trainer/optimizer.h"

/* A run that sees this many non-finite steps in a row stops: something is broken, not noisy. */
#define TRAIN_MAX_NONFINITE_IN_A_ROW 8

/* Supplies microbatch `micro` of the current step; 0, or -1 with err set. */
typedef int (*microbatch_fn)(void *ctx, int micro, stage_microbatch *out, char *err, size_t err_size);

typedef struct {
  double loss;      /* mean over the step's microbatches */
  double grad_norm; /* before clipping */
  double lr;
  int skipped;                                 /* the step was skipped: non-finite loss or gradient */
  int failed;                                  /* the microbatch source failed; error holds why */
  double stage_loss_sum[PYRAMID_MAX_STAGES];   /* per-stage sums of microbatch losses */
  int stage_count[PYRAMID_MAX_STAGES];         /* microbatches per stage */
  long clips;                                  /* clips processed */
  long tokens;                                 /* tokens processed (sum over microbatches of B · N_k) */
  char error[256];
} step_stats;

typedef struct {
  tpdiff_config cfg;
  pyramid_schedule schedule;
  dit_model model;
  dit_acts *acts;
  adamw_state opt;
  float *x_t, *target, *d_out, *scratch; /* [largest microbatch, full-clip equivalents] */
  long skipped_steps, nonfinite_in_a_row;
} trainer;

/* Builds the schedule, the model (DiT init from train.seed), the activation arena (sized for every
 * stage's microbatch, batch_clips_for_stage) and optimizer state. 0 or -1 with err set. */
int trainer_create(trainer *tr, const tpdiff_config *cfg, char *err, size_t err_size);
void trainer_destroy(trainer *tr);

/* One optimizer step over `count` microbatches from next(). Each microbatch's loss is the mean over
 * its clips; the step's gradient is the mean over microbatches. */
step_stats trainer_step(trainer *tr, int count, microbatch_fn next, void *ctx);

/* The model shape and schedule the config describes (0, or -1 with err set for the schedule). */
dit_shape trainer_shape_from_config(const tpdiff_config *cfg);
int trainer_schedule_from_config(const tpdiff_config *cfg, pyramid_schedule *p, char *err, size_t err_size);

#endif
