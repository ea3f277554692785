/* resume.h — where a run starts: a new run, the newest checkpoint of train.out that verifies
 * (automatic resume), a named checkpoint (--resume), or a new run from another run's weights
 * (--init); and the checkpoint writes of a running job (every train.ckpt_every steps, at the end,
 * on SIGTERM/SIGUSR1, before stopping on non-finite steps). */
#ifndef TPDIFF_RESUME_H
#define TPDIFF_RESUME_H

#include <stddef.h>

#include "trainer/checkpoint.h"
#include "trainer/trainer.h"

typedef struct {
  const char *resume; /* --resume PATH, or NULL */
  const char *init;   /* --init PATH, or NULL */
} start_options;

/* Where the run continues. */
typedef struct {
  long first_step;      /* the next step to run (1 for a new run) */
  long stream_position; /* the data stream position where first_step starts */
  int resumed;          /* 1 when the state came from a checkpoint */
  char from[TPDIFF_PATH_MAX + 64];
} start_point;

/* Loads the run's starting state into tr (built from cfg, fresh weights). Automatic resume skips,
 * with one line each on stderr, checkpoints that do not verify; when checkpoints exist but none
 * verifies it refuses rather than overwrite them. 0, or -1 with one line in err. */
int start_run(trainer *tr, const start_options *opt, start_point *sp, char *err, size_t err_size);

/* Writes step's checkpoint of tr into train.out (rows: one per rank of `world`), then prunes to
 * train.keep. 0, or -1 with one line in err (the earlier checkpoints are intact). */
int save_checkpoint(const trainer *tr, long step, long stream_position, int world, char *path_out, size_t path_size,
                    char *err, size_t err_size);

#endif
