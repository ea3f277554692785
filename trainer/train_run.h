/* train_run.h — a whole single-process training run: data, steps, logging, samples. */
#ifndef TPDIFF_TRAIN_RUN_H
#define TPDIFF_TRAIN_RUN_H

#include "kernels/backend.h"
#include "trainer/config.h"
#include "trainer/resume.h"

/* Runs cfg to the end on backend be, from where `start` says (trainer/resume.h). Returns 0; 1 or 2
 * after printing one line to stderr; 128 + signal after a SIGTERM/SIGUSR1 stop with its checkpoint
 * written. */
int train_run(const tpdiff_config *cfg, const tpdiff_backend *be, const start_options *start);

#endif
