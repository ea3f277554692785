/* train_run.h — a whole training run of one rank: data, steps, logging, samples. */
#ifndef TPDIFF_TRAIN_RUN_H
#define TPDIFF_TRAIN_RUN_H

#include "kernels/backend.h"
#include "trainer/config.h"
#include "trainer/resume.h"
#include "trainer/trainer.h"

/* How this process takes part in a data-parallel job; NULL or {0, 1, NULL, NULL, NULL, NULL} is one process. */
typedef struct {
  int rank, world;       /* the builder draws global microbatches rank · microbatches + micro */
  grad_reduce_fn reduce; /* installed as the trainer's step reduction (comm_grad_reduce) */
  grad_ready_fn ready;   /* and its start during the last backward (comm_grad_ready), or NULL */
  void *reduce_ctx;      /* also passed to agree_max */
  /* the largest of every rank's value (a stop signal), so all ranks stop after the same step */
  int (*agree_max)(void *ctx, int value);
} train_parallel;

/* Runs cfg to the end on backend be, from where `start` says (trainer/resume.h), as rank par->rank of
 * par->world (rank 0 alone writes checkpoints, log.tsv and samples). Returns 0; 1 or 2 after printing
 * one line to stderr; 128 + signal after a SIGTERM/SIGUSR1 stop with its checkpoint written. */
int train_run(const tpdiff_config *cfg, const tpdiff_backend *be, const start_options *start,
              const train_parallel *par);

#endif
