/* batch_shards.h — feeds a batch_builder from HDF5 shards (data/loader.h) instead of the in-memory
 * synthetic set: each microbatch's stage level is read directly, prefetched by a reader thread. */
#ifndef TPDIFF_BATCH_SHARDS_H
#define TPDIFF_BATCH_SHARDS_H

#include <stddef.h>

#include "trainer/batch.h"

/* Opens a loader over cfg->data.path whose plan is the builder's own stage draw (microbatch
 * (step, micro) is loader sequence (step - first_step) · microbatches + micro, so its reader thread
 * runs ahead on the right level), starting at step first_step whose first clip is at stream
 * `position` (1 and 0 for a new run; a checkpoint's next step and stream position on resume), and
 * installs it as bb->levels. bb must stay at its address until batch_builder_destroy, which closes
 * the loader. 0, or -1 with one line in err. */
int batch_builder_open_shards(batch_builder *bb, long first_step, long position, char *err, size_t err_size);

/* Clips skipped as unreadable so far (data.on_error=skip); 0 without shards. */
long batch_shards_skipped(const batch_builder *bb);

#endif
