/* checkpoint.h — one HDF5 file per checkpoint step (DESIGN.md "Checkpoints and export"), written so
 * that a run killed at any moment resumes from its newest good checkpoint and continues exactly.
 *
 * Layout of ckpt-NNNNNNN.h5 (NNNNNNN = the optimizer steps done):
 *   attributes of /: format "tpdiff-checkpoint", version, step, world_size, adam_step,
 *                    stream_position, skipped_steps, nonfinite_in_a_row
 *   /config                 uint8 [bytes]      the resolved config (YAML text)
 *   /params/<name>          float32 [shape]    fp32 master weights, one dataset per registry tensor
 *   /ema/<name>             float32 [shape]    EMA weights (absent when train.ema is 0)
 *   /adam_m/<name>, /adam_v/<name>             AdamW moments
 *   /ranks                  int64 [world, 4]   per rank: rank, seed, next step, stream position
 * Every dataset carries a "crc32" attribute (zlib CRC-32 of its bytes), verified on every read.
 *
 * The per-rank RNG state is (seed, next step): every draw of a microbatch is a Philox stream keyed
 * by (seed, step, global microbatch), so nothing else needs saving. The data stream position (clips
 * of the global stream consumed before the next step) is the loader's whole state, identical on
 * every rank, which is why a different world size can resume.
 *
 * Writing: to ckpt-NNNNNNN.h5.tmp, fsynced, renamed, the folder fsynced; a failed write (full disk,
 * file-size limit) removes the temporary and leaves every earlier checkpoint as it was. */
#ifndef TPDIFF_CHECKPOINT_H
#define TPDIFF_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "trainer/config.h"
#include "trainer/trainer.h"

#define CHECKPOINT_FORMAT "tpdiff-checkpoint"
#define CHECKPOINT_VERSION 1

/* The run's position besides the tensors. */
typedef struct {
  long step;            /* optimizer steps done */
  long stream_position; /* clips of the global data stream consumed before step + 1 */
  long skipped_steps, nonfinite_in_a_row;
  int world;            /* ranks of the run that wrote it */
} checkpoint_meta;

/* One rank's row of /ranks. */
typedef struct {
  long rank, seed, next_step, stream_position;
} checkpoint_rank_state;

/* zlib CRC-32 of bytes (the per-dataset checksum). */
uint32_t checkpoint_crc32(const void *data, size_t bytes);

/* Path of step's checkpoint in dir. */
void checkpoint_path(char *out, size_t size, const char *dir, long step);

/* Writes dir/ckpt-NNNNNNN.h5 from tr (weights, EMA, moments copied from the backend), meta, the
 * world rows of ranks and the resolved config. 0, or -1 with one line naming the file and the reason. */
int checkpoint_write(const char *dir, const trainer *tr, const checkpoint_meta *meta,
                     const checkpoint_rank_state *ranks, int world, char *err, size_t err_size);

/* Deletes all but the newest `keep` checkpoints of dir (and temporaries left by a crash). */
int checkpoint_prune(const char *dir, int keep, char *err, size_t err_size);

/* The checkpoints of dir, newest first: *paths is malloc'd (free each and the array); -1 on error. */
int checkpoint_list(const char *dir, char ***paths, int *count, char *err, size_t err_size);

/* Reads and verifies every dataset of path against tr's model (names, shapes, checksums), then, only
 * when all of it verified, loads weights, EMA and moments into tr and fills meta. A failure leaves tr
 * untouched and says which file, dataset or parameter (with both shapes) and why. */
int checkpoint_load(const char *path, trainer *tr, checkpoint_meta *meta, char *err, size_t err_size);

/* The resolved config stored in path (its format marker verified). */
int checkpoint_read_config(const char *path, tpdiff_config *cfg, long *step, char *err, size_t err_size);

/* The weights of path into host[m->num_floats] in m's registry order: ema != 0 the EMA (an error when
 * the checkpoint has none), else the fp32 master weights; names, shapes and checksums verified. */
int checkpoint_read_weights(const char *path, const dit_model *m, int ema, float *host, char *err, size_t err_size);

/* *has = whether path holds EMA weights. */
int checkpoint_has_ema(const char *path, int *has, char *err, size_t err_size);

#endif
