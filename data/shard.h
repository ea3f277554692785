/* shard.h — tpdiff's HDF5 data shards (DESIGN.md "Data: HDF5 shards"): one file holds N clips at
 * every pyramid level, so a low-frame-rate stage reads only its own, smaller level.
 *
 * Schema (format "tpdiff-shard", version 1), per file:
 *   datasets level0 [N, T, H, W, C], level1 [N, T/2, H, W, C], ..., level{L} [N, T/2^L, H, W, C]:
 *            level l = the clip averaged over non-overlapping groups of 2^l frames (computed from
 *            level 0 in float, then stored in the shard's dtype); chunked one clip per chunk;
 *            Fletcher32 checksum on every chunk (so a flipped byte is caught); optional
 *            deflate + shuffle;
 *   labels [N] int32 (optional), source [N] variable-length UTF-8 string (file and start frame;
 *            the one dataset without Fletcher32: HDF5 cannot filter variable-length data);
 *   attributes format = "tpdiff-shard", version = 1, fps (double), dtype ("uint8", "float16",
 *            "float32"), scale, shift (double): model value = stored * scale + shift.
 * A data set is a folder of shard-NNNNN.h5 plus index.json:
 *   {"format": "tpdiff-dataset", "version": 1, "frames": T, "height": H, "width": W, "channels": C,
 *    "levels": L+1, "dtype": "uint8", "shards": [{"name": "shard-00000.h5", "clips": N}, ...]}
 * Shards written by h5py with the same names (any chunking or filters) must load.
 *
 * Errors: every function returns 0 or -1 with ONE line in err naming the file, the dataset (or clip
 * index) and what was expected. Nothing here crashes on a bad file. */
#ifndef TPDIFF_SHARD_H
#define TPDIFF_SHARD_H

#include <stddef.h>
#include <stdint.h>

#define SHARD_FORMAT "tpdiff-shard"
#define SHARD_VERSION 1
#define SHARD_MAX_LEVELS 8

typedef enum { SHARD_UINT8 = 0, SHARD_FLOAT16 = 1, SHARD_FLOAT32 = 2 } shard_dtype;

/* The clip geometry and storage of one shard (and of a data set: all its shards agree). */
typedef struct {
  int frames, height, width, channels; /* level 0 */
  int levels;                          /* L + 1 >= 1; frames divisible by 2^(levels-1) */
  shard_dtype dtype;
  double scale, shift; /* model value = stored * scale + shift (uint8 pixels: 2/255, -1) */
  double fps;
  int has_labels;
} shard_layout;

/* ---- writing -------------------------------------------------------------------------------- */

typedef struct shard_writer shard_writer;

typedef struct {
  int deflate_level; /* 0 = none; 1..9 = deflate with shuffle */
} shard_write_options;

/* Creates path (written under a temporary name; see shard_writer_close). */
shard_writer *shard_writer_open(const char *path, const shard_layout *layout, const shard_write_options *opt,
                                char *err, size_t err_size);
/* Appends one clip given at level 0 as float values in model units [T, H, W, C] (frame-major,
 * channels last, as the shard stores it); every coarser level is computed here in float from it and
 * then quantised (uint8: round(clamp((v - shift) / scale, 0, 255)); float16: nearest even). Level l
 * is the mean of level 0 AS STORED, taken in stored units (the same mean as in model units, since
 * the map is affine; exact for uint8). Non-finite values and float16 overflow are refused. label is
 * ignored without labels; source is a short text (file and start frame). */
int shard_writer_append(shard_writer *w, const float *clip_thwc, int label, const char *source, char *err,
                        size_t err_size);
/* Finishes: flushes, fsyncs and renames onto the final name (the attributes went in at open). On
 * failure the temporary file is removed and nothing is left at path. Frees w either way. */
int shard_writer_close(shard_writer *w, char *err, size_t err_size);
/* Abandons a shard being written (removes its temporary file). */
void shard_writer_abort(shard_writer *w);

/* Writes folder/index.json for the shards listed (names relative to folder), via temp + rename. */
int shard_write_index(const char *folder, const shard_layout *layout, int count, const char *const *names,
                      const long *clips, char *err, size_t err_size);

/* ---- reading -------------------------------------------------------------------------------- */

typedef struct shard_reader shard_reader;

/* Opens a shard read-only and validates its schema (format, version, datasets, shapes across
 * levels, dtype) against nothing but itself; layout receives what it holds. */
shard_reader *shard_reader_open(const char *path, shard_layout *layout, long *clips, char *err, size_t err_size);
/* Reads clip `index` at pyramid level `level` as float model values into out
 * [C, T/2^level, H, W] (channels first: the layout the model consumes; value = (float)stored *
 * (float)scale + (float)shift), and its label (0 without
 * labels). A checksum mismatch, a short read or an index out of range is an error naming the
 * file, the dataset and the clip. */
int shard_read_clip(shard_reader *r, long index, int level, float *out_cthw, int *label, char *err, size_t err_size);
/* Bytes one clip of `level` occupies in the file's dtype (for throughput accounting). */
size_t shard_clip_bytes(const shard_layout *layout, int level);
void shard_reader_close(shard_reader *r);

/* Opens a data set folder: reads index.json (or, when it is missing, opens every shard-*.h5 and
 * says so once on stderr), checks that every shard agrees with it and with each other. */
typedef struct {
  shard_layout layout;
  int count;       /* shards */
  char **paths;    /* [count] full paths */
  long *clips;     /* [count] */
  long total;      /* clips in all shards */
} shard_dataset;
int shard_dataset_open(shard_dataset *d, const char *folder, char *err, size_t err_size);
void shard_dataset_close(shard_dataset *d);

#endif
