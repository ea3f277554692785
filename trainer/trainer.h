/* trainer.h — one training run's state and the optimizer step (forward/backward over the
 * microbatches, gradient clipping, AdamW, EMA). Data and noise come from the caller, so the same
 * step serves tpdiff-train, the reference checks and the benchmarks. */
#ifndef TPDIFF_TRAINER_H
#define TPDIFF_TRAINER_H

#include <stddef.h>

#include "model/dit.h"
#include "trainer/config.h"
#include "trainer/optimizer.h"

/* A run that sees this many non-finite steps in a row stops: something is broken, not noisy. */
#define TRAIN_MAX_NONFINITE_IN_A_ROW 8

/* One microbatch of full clean clips with their noise and times (vanilla rectified flow). */
typedef struct {
  const float *x0;  /* [B, C, T, H, W] */
  const float *eps; /* [B, C, T, H, W] */
  const float *t;   /* [B] */
  const int *y;     /* [B] labels, or NULL when unconditional */
  int B;
  int stage;
} rf_microbatch;

typedef struct {
  double loss;      /* mean over the step's microbatches */
  double grad_norm; /* before clipping */
  double lr;
  int skipped; /* 1 when the step was skipped for a non-finite loss or gradient */
} step_stats;

typedef struct {
  tpdiff_config cfg;
  dit_model model;
  dit_acts *acts;
  adamw_state opt;
  float *x_t, *target, *d_out; /* [max clips, clip elems] */
  size_t clip_elems;           /* C·T·H·W at full rate */
  long skipped_steps, nonfinite_in_a_row;
} trainer;

/* Builds the model (DiT init from cfg->train_seed), the activation arena and optimizer state.
 * Returns 0 or -1 with err set. */
int trainer_create(trainer *tr, const tpdiff_config *cfg, char *err, size_t err_size);
void trainer_destroy(trainer *tr);

/* One optimizer step over `count` microbatches (the loss of each is the mean over its clips, and the
 * step's gradient is the mean over microbatches). */
step_stats trainer_step(trainer *tr, const rf_microbatch *mbs, int count);

/* The shape the config describes. */
dit_shape trainer_shape_from_config(const tpdiff_config *cfg);

#endif
