/* train_run.h — a whole training run of one rank: data, steps, logging, samples. */
#ifndef TPDIFF_TRAIN_RUN_H
#define TPDIFF_TRAIN_RUN_H

#include "kernels/backend.h"
#include "trainer/config.h"
#include "trainer/trainer.h"

/* How this process takes part in a data-parallel job; NULL or {0, 1, NULL, NULL} is one process. */
typedef struct {
  int rank, world;       /* the builder draws global microbatches rank · microbatches + micro */
  grad_reduce_fn reduce; /* installed as the trainer's step reduction (comm_grad_reduce) */
  void *reduce_ctx;
} train_parallel;

/* Runs cfg to the end on backend be, as rank par->rank of par->world (only rank 0 writes samples).
 * Returns 0, or 1 after printing one line to stderr. */
int train_run(const tpdiff_config *cfg, const tpdiff_backend *be, const train_parallel *par);

#endif
