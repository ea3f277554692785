/* loss_log.h — train.out/log.tsv: one row per optimizer step with the loss, the per-stage losses, the
 * gradient norm and the learning rate at full precision (%.17g), so that two runs can be compared
 * bit for bit. A resumed run keeps the rows up to its checkpoint's step and rewrites the rest, so
 * a run interrupted and resumed leaves the same file as a run that never stopped. */
#ifndef TPDIFF_LOSS_LOG_H
#define TPDIFF_LOSS_LOG_H

#include <stddef.h>
#include <stdio.h>

#include "trainer/trainer.h"

typedef struct {
  FILE *f;
  int stages;
  char path[1100];
} loss_log;

/* Opens dir/log.tsv for a run whose last finished step is `done` (0 for a new run): rows after it
 * are dropped (atomically), a new run starts the file afresh. 0, or -1 with one line in err. */
int loss_log_open(loss_log *log, const char *dir, int stages, long done, char *err, size_t err_size);

/* Appends step's row (flushed). 0, or -1 with one line in err. */
int loss_log_append(loss_log *log, long step, const step_stats *st, char *err, size_t err_size);

void loss_log_close(loss_log *log);

#endif
