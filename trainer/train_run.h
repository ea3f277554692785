/* train_run.h — a whole single-process training run: data, steps, logging, samples. */
#ifndef TPDIFF_TRAIN_RUN_H
#define TPDIFF_TRAIN_RUN_H

#include "kernels/backend.h"
#include "trainer/config.h"

/* Runs cfg to the end on backend be. Returns 0, or 1 after printing one line to stderr. */
int train_run(const tpdiff_config *cfg, const tpdiff_backend *be);

#endif
