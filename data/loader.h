/* loader.h — the streaming data loader over a folder of HDF5 shards (DESIGN.md "Data: HDF5 shards"):
 * one background reader thread fills a ring of ready microbatches while the trainer computes, and
 * each microbatch reads only the pyramid level its stage needs.
 *
 * Order. One global stream of clips that every rank addresses alike: epoch e is a permutation of
 * the data set's clips [0, total) drawn from (seed, e) (Fisher-Yates with 64-bit counter-based draws:
 * identical on every rank and every machine), and stream position p is clip perm_{p / total}[p mod
 * total]. The plan names each microbatch's first stream position; the trainer gives the microbatches
 * of a step consecutive runs of the stream in global microbatch order (rank by rank), so every clip
 * is read once per epoch across all ranks, and the stream position at a step boundary is the whole
 * loader state: a run resumes exactly, with any number of ranks, from that one number.
 *
 * Errors (data.on_error). fail: loader_next returns -1 with the reader's one line (file, dataset,
 * clip). skip: the bad clip is replaced by the next clip of the sequence, counted (loader_skipped)
 * and logged once per clip on stderr. A failed reader never leaves loader_next waiting. */
#ifndef TPDIFF_LOADER_H
#define TPDIFF_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "data/shard.h"

/* What microbatch `seq` (0, 1, 2, ...) reads: its pyramid level, its clip count and the stream
 * position of its first clip. Must be a pure function of seq (the reader thread calls it ahead of
 * the consumer, in order). 0, or -1 to stop the reader. */
typedef int (*loader_plan_fn)(void *ctx, long seq, int *level, int *clips, long *position);

typedef struct {
  uint64_t seed;       /* run seed: the permutation of every epoch */
  int prefetch;        /* ready microbatches held ahead (ring slots), >= 1 */
  int max_clips;       /* the most clips any plan answer asks for (sizes the ring) */
  int skip_bad;        /* 0: a bad clip fails the stream; 1: it is skipped, counted and logged */
  loader_plan_fn plan; /* required */
  void *plan_ctx;
  long first_seq; /* sequence number of the first microbatch (resume: the step's first) */
} loader_options;

/* One microbatch, copied out by loader_next into buffers the caller owns. */
typedef struct {
  float *clips;  /* caller's: [max_clips, C, T, H, W] floats at least; receives [B, C, T/2^level, H, W] */
  int *labels;   /* caller's: [max_clips]; the shards' labels (0 without labels) */
  long *indices; /* caller's: [max_clips]; data set clip indices (shards in index.json order) */
  /* filled by loader_next: */
  long seq;
  int level, clips_count, frames; /* frames = T / 2^level */
  long position, epoch;           /* stream position of the first clip, and its epoch */
} loader_batch;

/* Bytes and clips read so far, per level (counted when a clip is read, ahead of the consumer). */
typedef struct {
  double bytes[SHARD_MAX_LEVELS]; /* in the shards' dtype (shard_clip_bytes) */
  long clips[SHARD_MAX_LEVELS];
  long skipped;
} loader_stats;

typedef struct loader loader;

/* Opens the data set folder (shard_dataset_open) and starts the reader thread. NULL with one line
 * in err on failure (folder missing or malformed, an empty data set, bad options). */
loader *loader_open(const char *folder, const loader_options *opt, char *err, size_t err_size);
/* The data set being read (valid until loader_close). */
const shard_dataset *loader_dataset(const loader *l);
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

/* Writes epoch `epoch`'s permutation of [0, total) for `seed` into perm[total] (the stream's order),
 * so tests and tools can state the order without running a loader. */
void loader_permutation(long *perm, long total, uint64_t seed, long epoch);

#endif
