/* clip_source.h — opens the clips a run trains on, as a clip_source (trainer/batch.h): the
 * built-in synthetic set when data.path is empty. */
#ifndef TPDIFF_CLIP_SOURCE_H
#define TPDIFF_CLIP_SOURCE_H

#include <stddef.h>

#include "trainer/batch.h"
#include "trainer/config.h"

/* 0, or -1 with one line in err (e.g. a data set that cannot be opened). */
int clip_source_open(clip_source *source, const tpdiff_config *cfg, char *err, size_t err_size);
void clip_source_close(clip_source *source);

#endif
