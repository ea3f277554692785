/* train_run.h — a whole single-process training run: data, steps, logging, samples. */
#ifndef TPDIFF_TRAIN_RUN_H
#define TPDIFF_TRAIN_RUN_H

#include "trainer/config.h"

/* Runs cfg to the end. Returns 0, or 1 after printing one line to stderr. */
int train_run(const tpdiff_config *cfg);

#endif
