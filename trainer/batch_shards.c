/* batch_shards.c — the shard loader as a batch_builder's level source. */
#include "trainer/batch_shards.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/loader.h"

/* The loader and the builder whose stage draws are its plan. */
typedef struct {
  loader *shards;
  const batch_builder *bb;
  long first_step;                 /* the step of loader sequence 0 */
  long base_step, base_position;   /* plan's memo: the stream position where base_step starts */
  long indices[];                  /* [max_clips] data set clips of the last microbatch */
} shard_levels;

/* The loader's plan: microbatch seq (step first_step + seq / M, micro seq % M) reads its stage's
 * level, at the stream position after every clip of earlier steps and of the global microbatches
 * before it in this step. A pure function of seq; the memo only saves re-summing earlier steps
 * (the reader thread asks in order). */
static int shard_plan(void *ctx, long seq, int *level, int *clips, long *position) {
  shard_levels *s = ctx;
  const batch_builder *bb = s->bb;
  int M = bb->cfg.train_microbatches;
  long step = s->first_step + seq / M;
  int micro = (int)(seq % M);
  if (step < s->base_step) return -1; /* asked out of order: never done by the loader */
  for (; s->base_step < step; s->base_step++) s->base_position += batch_step_clips(bb, s->base_step);
  int stage = batch_draw_stage(bb, step, micro);
  *level = bb->cfg.pyramid_stages - 1 - stage;
  *clips = batch_clips_for_stage(&bb->cfg, stage);
  *position = s->base_position + batch_stream_offset(bb, step, bb->rank, micro);
  return 0;
}

static int read_shard_microbatch(void *ctx, long step, int micro, int stage, int B, float *X, int *labels, char *err,
                                 size_t err_size);

static void close_shard_levels(void *ctx) {
  shard_levels *s = ctx;
  loader_close(s->shards);
  free(s);
}

int batch_builder_open_shards(batch_builder *bb, long first_step, long position, char *err, size_t err_size) {
  shard_levels *s = malloc(sizeof *s + sizeof(long) * (size_t)bb->max_clips);
  if (!s) {
    snprintf(err, err_size, "out of memory for the shard loader");
    return -1;
  }
  s->bb = bb;
  s->first_step = s->base_step = first_step;
  s->base_position = position;
  loader_options o = {.seed = (uint64_t)bb->cfg.train_seed,
                      .prefetch = bb->cfg.data_prefetch,
                      .max_clips = bb->max_clips,
                      .skip_bad = strcmp(bb->cfg.data_on_error, "skip") == 0,
                      .plan = shard_plan,
                      .plan_ctx = s,
                      .first_seq = 0};
  s->shards = loader_open(bb->cfg.data_path, &o, err, err_size);
  if (!s->shards) {
    free(s);
    return -1;
  }
  bb->levels = (level_source){read_shard_microbatch, close_shard_levels, s};
  return 0;
}

long batch_shards_skipped(const batch_builder *bb) {
  if (bb->levels.close != close_shard_levels) return 0;
  const shard_levels *s = bb->levels.ctx;
  return loader_skipped(s->shards);
}

/* Microbatch (step, micro) from the shard loader into X and labels. */
static int read_shard_microbatch(void *ctx, long step, int micro, int stage, int B, float *X, int *labels, char *err,
                                 size_t err_size) {
  shard_levels *s = ctx;
  const batch_builder *bb = s->bb;
  loader_batch got = {.clips = X, .labels = labels, .indices = s->indices};
  if (loader_next(s->shards, &got, err, err_size) != 0) return -1;
  long seq = (step - s->first_step) * bb->cfg.train_microbatches + micro;
  int level = bb->cfg.pyramid_stages - 1 - stage;
  if (got.seq != seq || got.level != level || got.clips_count != B) {
    /* only a caller building microbatches out of order or forcing another stage gets here */
    snprintf(err, err_size,
             "shard loader: microbatch (step %ld, micro %d) expected sequence %ld level %d, %d clips; the loader "
             "delivered sequence %ld level %d, %d clips (shard training builds microbatches in order, at the "
             "drawn stage)",
             step, micro, seq, level, B, got.seq, got.level, got.clips_count);
    return -1;
  }
  return 0;
}

