/* batch.h — builds each microbatch of pyramid training: draws its stage, gathers the clips at that
 * stage's level, draws and aligns the noise, draws the times and labels (MATH.md sections 0, 5, 7).
 * Every draw is a Philox stream keyed by (run seed, step, microbatch, rank), so a microbatch is a
 * pure function of those numbers: reproducible and resumable anywhere. */
#ifndef TPDIFF_BATCH_H
#define TPDIFF_BATCH_H

#include <stdint.h>

#include "model/pyramid.h"
#include "trainer/config.h"

/* Where full-rate clips come from when there is no shard loader (the synthetic set in memory). */
typedef struct {
  long count; /* clips available */
  /* writes clip `index` [C, F, H, W] at full rate and its label; 0 or -1 with err set */
  int (*read)(void *ctx, long index, float *clip, int *label, char *err, size_t err_size);
  void *ctx;
} clip_source;

/* One microbatch of one stage, ready for the training step. */
typedef struct {
  const float *X;   /* [B, C, T_k, H, W] the stage's data level (level K-1-k) */
  const float *eps; /* [B, C, T_k, H, W] the stage's noise, aligned to X when pyramid.align != off */
  const float *t;   /* [B] noise levels inside the stage's window */
  const int *y;     /* [B] labels after dropout, or NULL when unconditional */
  int B, stage;
} stage_microbatch;

/* Where a microbatch's clips come from already at the stage's level (the shard loader,
 * trainer/batch_shards.c): fills X [B, C, T_k, H, W] and labels [B] of microbatch (step, micro),
 * whose stage is `stage`. read 0, or -1 with err set; close frees ctx. */
typedef struct {
  int (*read)(void *ctx, long step, int micro, int stage, int B, float *X, int *labels, char *err, size_t err_size);
  void (*close)(void *ctx);
  void *ctx;
} level_source;

typedef struct {
  tpdiff_config cfg;
  pyramid_schedule schedule;
  clip_source source;
  level_source levels; /* read == NULL: clips from `source` at full rate, levels by pair averaging */
  int rank, world;
  double stage_cdf[PYRAMID_MAX_STAGES]; /* cumulative stage probabilities */
  int max_clips;                        /* most clips of any stage's microbatch */
  size_t full_clip;                     /* C·F·H·W */
  float *full, *level, *candidates, *eps, *t, *u;
  int *y, *perm;
} batch_builder;

/* Clips of a stage-k microbatch: clips_per_microbatch (sync) or clips_per_microbatch · 2^(K-1-k)
 * (balanced, so every microbatch costs about the same). */
int batch_clips_for_stage(const tpdiff_config *cfg, int stage);

/* 0, or -1 with err set (no memory). */
int batch_builder_create(batch_builder *bb, const tpdiff_config *cfg, const pyramid_schedule *schedule,
                         clip_source source, int rank, int world, char *err, size_t err_size);
void batch_builder_destroy(batch_builder *bb);


/* The stage of microbatch (step, micro): shared by all ranks under `sync`, per rank under `balanced`. */
int batch_draw_stage(const batch_builder *bb, long step, int micro);

/* The same draw for microbatch `micro` of another rank (every rank can tell every rank's stages). */
int batch_draw_stage_of(const batch_builder *bb, long step, int rank, int micro);

/* Clips of the data stream that step `step` consumes over all ranks and microbatches. */
long batch_step_clips(const batch_builder *bb, long step);

/* Clips of step `step` that come before microbatch `micro` of `rank` in the global stream (ranks in
 * order, each rank's microbatches in order): where that microbatch starts, relative to the step's
 * first stream position. */
long batch_stream_offset(const batch_builder *bb, long step, int rank, int micro);

/* As batch_build, for a given stage (benchmarks time each stage on its own). */
int batch_build_stage(batch_builder *bb, long step, int micro, int stage, stage_microbatch *out, char *err,
                      size_t err_size);

/* Builds microbatch (step, micro) into bb's buffers (valid until the next call). 0, or -1 with
 * err set when the clip source fails. */
int batch_build(batch_builder *bb, long step, int micro, stage_microbatch *out, char *err, size_t err_size);

#endif
