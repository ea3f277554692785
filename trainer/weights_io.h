/* weights_io.h — model weights and config from a file of either kind tpdiff writes: a training
 * checkpoint (HDF5, trainer/checkpoint.h) or an exported safetensors file (data/safetensors.h, with
 * the resolved config in its metadata under "tpdiff.config"). The kind is told by the file's first
 * bytes (the HDF5 signature), not by its name. */
#ifndef TPDIFF_WEIGHTS_IO_H
#define TPDIFF_WEIGHTS_IO_H

#include <stddef.h>

#include "data/safetensors.h"
#include "model/dit.h"
#include "trainer/config.h"

/* Which weights to take (the `ema` argument below). A checkpoint holds the fp32 master weights and,
 * when train.ema > 0, their EMA; a safetensors file holds one set, named by its "tpdiff.weights"
 * metadata ("ema" or "raw"): asking for the other set is refused. */
#define WEIGHTS_RAW 0
#define WEIGHTS_EMA 1
#define WEIGHTS_EMA_IF_PRESENT (-1) /* EMA when the file has it, else raw */

typedef enum { WEIGHTS_FILE_CHECKPOINT, WEIGHTS_FILE_SAFETENSORS } weights_file_kind;

/* The kind of path (HDF5 signature at byte 0 -> checkpoint, anything else is read as safetensors).
 * 0, or -1 with one line in err when the file cannot be opened. */
int weights_file_kind_of(const char *path, weights_file_kind *kind, char *err, size_t err_size);

/* Reads the resolved config stored in path (a checkpoint, or a safetensors file's "tpdiff.config"
 * metadata) and validates it; cfg->source becomes path. 0, or -1 with one line in err naming the file. */
int weights_read_config(const char *path, tpdiff_config *cfg, char *err, size_t err_size);

/* The training step the weights of path come from (a checkpoint's step, a safetensors file's
 * "tpdiff.step" metadata), or -1 when the file does not say. 0, or -1 with one line in err. */
int weights_read_step(const char *path, long *step, char *err, size_t err_size);

/* Reads the weights of path into host[m->num_floats] in m's registry order. Every registry name must
 * be in the file with exactly its shape and nothing else may be: a message names the file, the
 * parameter and both shapes. ema: WEIGHTS_RAW, WEIGHTS_EMA or WEIGHTS_EMA_IF_PRESENT; *used_ema (may
 * be NULL) says which set was read. 0, or -1 with one line in err. */
int weights_read_host(const char *path, const dit_model *m, int ema, float *host, int *used_ema, char *err,
                      size_t err_size);

/* weights_read_host, then uploads the weights into m (on its backend). 0, or -1 with one line in err. */
int weights_load(const char *path, dit_model *m, int ema, char *err, size_t err_size);

/* Writes host[m->num_floats] (m's registry order) as a safetensors file at path: one tensor per
 * registry entry with its name and shape, in registry order, as dtype; metadata "format": "pt",
 * "tpdiff.config" (cfg as YAML), "tpdiff.weights" ("ema" when ema != 0, else "raw") and, when
 * step >= 0, "tpdiff.step". Atomic (temporary name, fsync, rename). 0, or -1 with one line in err. */
int weights_write_safetensors(const char *path, const dit_model *m, const float *host, const tpdiff_config *cfg,
                              int ema, long step, st_dtype dtype, char *err, size_t err_size);

#endif
