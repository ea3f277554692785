/* shard_internal.h — pieces the shard writer, reader and data-set opener share (not a public API):
 * HDF5 error capture into one line, the 16-bit float type and its conversions, type names for
 * error messages, attribute helpers and the index.json document. */
#ifndef TPDIFF_SHARD_INTERNAL_H
#define TPDIFF_SHARD_INTERNAL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "data/shard.h"

#define SHARD_PATH_BYTES 4096
/* A clip whose level 0 holds more elements than this is refused before anything is allocated (a
 * hostile or broken file can claim any size). 2^31 elements = 2 GiB of uint8. */
#define SHARD_MAX_CLIP_ELEMENTS (1UL << 31)

/* Turns HDF5's automatic error printing off for this thread (every entry point calls it: HDF5 keeps
 * the setting per thread in thread-safe builds). */
void shard_h5_quiet(void);

/* Writes "<prefix>: <innermost HDF5 message>" (or just the prefix when HDF5 recorded nothing) into
 * err, on one line, and clears HDF5's error stack. Call right after the failing HDF5 call, before
 * any other HDF5 call. Returns 1 when the stack mentions a Fletcher32 checksum failure, else 0. */
int shard_h5_error(char *err, size_t err_size, const char *prefix);

/* IEEE binary16, little endian, as h5py defines '<f2' (a copy of F32LE with fields 15/10/5/0/10,
 * size 2, exponent bias 15). The caller closes it. */
hid_t shard_f16_type(void);
uint16_t shard_f32_to_f16(float v); /* round to nearest even; overflow gives +-inf */
float shard_f16_to_f32(uint16_t h);

const char *shard_dtype_name(shard_dtype d);
int shard_dtype_from_name(const char *name); /* -1 when unknown */
size_t shard_dtype_bytes(shard_dtype d);
/* "uint8", "int16", "float16", "float64", "string", ... for an HDF5 type (for messages). */
void shard_h5_type_name(hid_t type, char *out, size_t out_size);
/* The shard dtype an HDF5 element type stores, or -1 when it is none of uint8/float16/float32. */
int shard_dtype_of_h5(hid_t type);

/* Validates a layout's numbers (positive sizes, levels, divisibility, finite scale/shift). */
int shard_layout_check(const shard_layout *l, const char *name, char *err, size_t err_size);

/* Opens an HDF5 file read-only with a clear one-line error for a missing file, a file that is not
 * HDF5 and a file HDF5 refuses (truncated, damaged). */
hid_t shard_h5_open_readonly(const char *path, char *err, size_t err_size);

/* ---- index.json ------------------------------------------------------------------------------ */

typedef struct {
  char format[64];
  long version;
  long frames, height, width, channels, levels;
  char dtype[16];
  int count;    /* shards */
  char **names; /* [count], owned */
  long *clips;  /* [count], owned */
} shard_index_doc;

/* Parses path as the index.json document (exactly the shape DESIGN.md gives; unknown keys are
 * skipped). 0 with doc filled (free with shard_index_free), or -1 with one line in err naming the
 * file and the key or the byte offset. */
int shard_index_read(const char *path, shard_index_doc *doc, char *err, size_t err_size);
void shard_index_free(shard_index_doc *doc);

#endif
