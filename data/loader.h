/* loader.h — the streaming data loader over a folder of HDF5 shards (DESIGN.md "Data: HDF5 shards"):
 * one background reader thread fills a ring of ready microbatches while the trainer computes, and
 * each microbatch reads only the pyramid level its stage needs.
 *
 * Order. Epoch e visits a permutation of the data set's clips [0, total) drawn from (seed, e)
 * (Fisher-Yates with 64-bit counter-based draws: identical on every rank and every machine). Rank r
 * of W takes permutation positions r, r+W, r+2W, ...: floor(total / W) clips per epoch and per rank,
 * so the ranks never share a clip; the last total mod W positions of the permutation are dropped
 * for that epoch (a different set each epoch, since the permutation changes). A microbatch takes the
 * next `clips` clips of the rank's sequence and crosses into the next epoch when it runs out.
 *
 * State. (epoch, cursor), cursor = clips this rank has consumed in that epoch (always < the rank's
 * epoch length). Every microbatch carries the state BEFORE it: opening a loader with that state and
 * that microbatch's sequence number continues exactly (the same clips in the same order).
 *
 * Errors (data.on_error). fail: loader_next returns -1 with the reader's one line (file, dataset,
 * clip). skip: the bad clip is replaced by the next clip of the sequence, counted (loader_skipped)
 * and logged once per clip on stderr. A failed reader never leaves loader_next waiting. */
#ifndef TPDIFF_LOADER_H
#define TPDIFF_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "data/shard.h"

typedef struct {
  long epoch;  /* >= 0 */
  long cursor; /* clips consumed by this rank in `epoch`, in [0, floor(total / world)) */
} loader_state;

/* What microbatch `seq` (0, 1, 2, ...) reads: its pyramid level and its clip count. Must be a pure
 * function of seq (the reader thread calls it ahead of the consumer). 0, or -1 to stop the reader. */
typedef int (*loader_plan_fn)(void *ctx, long seq, int *level, int *clips);

typedef struct {
  int rank, world;     /* 0 <= rank < world */
  uint64_t seed;       /* run seed: the permutation of every epoch */
  int prefetch;        /* ready microbatches held ahead (ring slots), >= 1 */
  int max_clips;       /* the most clips any plan answer asks for (sizes the ring) */
  int skip_bad;        /* 0: a bad clip fails the stream; 1: it is skipped, counted and logged */
  loader_plan_fn plan; /* required */
  void *plan_ctx;
  long first_seq;     /* sequence number of the first microbatch (resume: the saved one) */
  loader_state start; /* state before microbatch first_seq */
} loader_options;

/* One microbatch, copied out by loader_next into buffers the caller owns. */
typedef struct {
  float *clips;  /* caller's: [max_clips, C, T, H, W] floats at least; receives [B, C, T/2^level, H, W] */
  int *labels;   /* caller's: [max_clips]; the shards' labels (0 without labels) */
  long *indices; /* caller's: [max_clips]; data set clip indices (shards in index.json order) */
  /* filled by loader_next: */
  long seq;
  int level, clips_count, frames; /* frames = T / 2^level */
  loader_state before;            /* the state before this microbatch: save it to resume here */
} loader_batch;

/* Bytes and clips read so far, per level (counted when a clip is read, ahead of the consumer). */
typedef struct {
  double bytes[SHARD_MAX_LEVELS]; /* in the shards' dtype (shard_clip_bytes) */
  long clips[SHARD_MAX_LEVELS];
  long skipped;
} loader_stats;

typedef struct loader loader;

/* Opens the data set folder (shard_dataset_open) and starts the reader thread. NULL with one line
 * in err on failure (folder missing or malformed, a rank's epoch would be empty, bad options). */
loader *loader_open(const char *folder, const loader_options *opt, char *err, size_t err_size);
/* The data set being read (valid until loader_close). */
const shard_dataset *loader_dataset(const loader *l);
/* The rank's clips per epoch: floor(total / world). */
long loader_epoch_clips(const loader *l);
/* Blocks until the next microbatch (first_seq, first_seq + 1, ...) is ready and copies it into out.
 * 0, or -1 with one line in err (a bad clip under fail, a plan asking for more than max_clips or a
 * level the shards do not hold); after -1 every later call fails too. */
int loader_next(loader *l, loader_batch *out, char *err, size_t err_size);
/* Clips skipped as unreadable so far (on_error skip). */
long loader_skipped(loader *l);
void loader_get_stats(loader *l, loader_stats *out);
/* Stops the reader (even while it waits for a free slot), joins it and frees everything. NULL is a
 * no-op. */
void loader_close(loader *l);

/* Writes epoch `epoch`'s permutation of [0, total) for `seed` into perm[total] (the order every
 * rank slices), so tests and tools can state the order without running a loader. */
void loader_permutation(long *perm, long total, uint64_t seed, long epoch);

#endif
