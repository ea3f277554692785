/* trainer.h — one training run's state and the optimizer step (forward/backward over the
 * microbatches, gradient clipping, AdamW, EMA) on a compute backend. Microbatches come from a
 * callback in host memory and are uploaded, so the same step serves tpdiff-train, the reference
 * checks and the benchmarks, on the CPU or the GPU. */
#ifndef TPDIFF_TRAINER_H
#define TPDIFF_TRAINER_H

#include <stddef.h>

#include "kernels/backend.h"
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
  char error[1024];
} step_stats;

/* Backend memory a run needs, planned before anything large is allocated. */
typedef struct {
  int stages;
  size_t stage_acts_bytes[PYRAMID_MAX_STAGES]; /* activation arena for stage k's largest microbatch */
  int stage_clips[PYRAMID_MAX_STAGES];
  size_t arena_bytes;  /* the arena: the largest stage's (one arena serves every stage) */
  size_t state_bytes;  /* weights, gradients, AdamW moments, EMA (and in bf16 mode the weights' bf16 copy) */
  size_t batch_bytes;  /* the microbatch buffers (X, eps, x_t, target, d_out, scratch) */
  size_t scratch_bytes; /* the backend's own buffers (bf16 casts, attention operands): the largest stage's */
  size_t sample_bytes; /* a sampling round's state and videos (sample.count videos; there is one at the end) */
  size_t total_bytes;  /* all of the above */
  size_t free_bytes, device_bytes; /* the backend's memory_info before the plan (0 when unknown) */
} trainer_memory_plan;

/* Reduces one step across data-parallel ranks (comm/ supplies it; trainer/ knows nothing of MPI).
 * Called once per step after the backward of every microbatch and before the gradient norm, on every
 * rank: replaces grads [count] (backend memory) by their mean over ranks and stats [stat_count] (host)
 * by their sum over ranks. 0, or -1 with one line in err. */
typedef int (*grad_reduce_fn)(void *ctx, float *grads, size_t count, double *stats, int stat_count, char *err,
                              size_t err_size);

/* Optional companion of grad_reduce_fn (same ctx): during the backward of the step's last microbatch,
 * grads [from_offset, count) are final and their reduction may start while the backward of the
 * earlier layers runs (model/dit.h grads_done). grad_reduce_fn still follows and completes it. */
typedef void (*grad_ready_fn)(void *ctx, float *grads, size_t count, size_t from_offset);

typedef struct {
  tpdiff_config cfg;
  const tpdiff_backend *be;
  grad_reduce_fn reduce; /* NULL: a single process */
  grad_ready_fn ready;   /* NULL: the reduction starts after the backward */
  void *reduce_ctx; /* where the model, the optimizer and the step run */
  pyramid_schedule schedule;
  dit_model model;
  dit_acts *acts;
  adamw_state opt;
  trainer_memory_plan plan;
  /* backend memory [largest microbatch, full-clip equivalents]: the uploaded microbatch (X, eps) and
   * what the step derives from it */
  float *X, *eps, *x_t, *target, *d_out, *scratch;
  long skipped_steps, nonfinite_in_a_row;
} trainer;

/* Builds the schedule, the model on backend be (DiT init from train.seed), the activation arena
 * (sized for every stage's microbatch, batch_clips_for_stage) and optimizer state. Refuses, before
 * allocating the arena, a plan larger than the backend's free memory. 0 or -1 with one line in err. */
int trainer_create(trainer *tr, const tpdiff_config *cfg, const tpdiff_backend *be, char *err, size_t err_size);
void trainer_destroy(trainer *tr);
/* trainer_create's memory refusal alone, so that a caller can refuse before it writes anything: the
 * model's weights and gradients are allocated on be for the check and freed again. 0, or -1 with the
 * same one line as trainer_create's. */
int trainer_check_fits(const tpdiff_config *cfg, const tpdiff_backend *be, char *err, size_t err_size);

/* One optimizer step over `count` microbatches from next() (host memory, uploaded here). Each
 * microbatch's loss is the mean over its clips; the step's gradient is the mean over microbatches
 * (and, with tr->reduce set, over ranks: every rank then holds the same gradient, and the stats are
 * the whole step's, every rank's microbatches).
 * A backend failure fails the step (st.failed, with the backend's line in st.error). */
step_stats trainer_step(trainer *tr, int count, microbatch_fn next, void *ctx);

/* The model shape and schedule the config describes (0, or -1 with err set for the schedule). */
dit_shape trainer_shape_from_config(const tpdiff_config *cfg);
/* The memory plan of cfg for model m: only m's registry and backend are used (a dit_create'd model,
 * nothing else allocated), so a plan can be printed for a config that will not fit. free_bytes and
 * device_bytes stay 0. */
void trainer_plan(const tpdiff_config *cfg, const dit_model *m, trainer_memory_plan *p);
/* train.recompute as the arena's mode. */
dit_recompute trainer_recompute(const tpdiff_config *cfg);
int trainer_schedule_from_config(const tpdiff_config *cfg, pyramid_schedule *p, char *err, size_t err_size);

#endif
