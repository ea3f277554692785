/* batch_shards.c — the shard loader as a batch_builder's level source. */
#include "trainer/batch_shards.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/loader.h"

/* The loader's plan: microbatch seq's stage decides its level; a pure function of seq. */
static int shard_plan(void *ctx, long seq, int *level, int *clips) {
  const batch_builder *bb = ctx;
  int M = bb->cfg.train_microbatches;
  int stage = batch_draw_stage(bb, seq / M + 1, (int)(seq % M));
  *level = bb->cfg.pyramid_stages - 1 - stage;
  *clips = batch_clips_for_stage(&bb->cfg, stage);
  return 0;
}

/* The loader and the builder whose stage draw is its plan. */
typedef struct {
  loader *shards;
  const batch_builder *bb;
  long indices[]; /* [max_clips] data set clips of the last microbatch */
} shard_levels;

static int read_shard_microbatch(void *ctx, long step, int micro, int stage, int B, float *X, int *labels, char *err,
                                 size_t err_size);

static void close_shard_levels(void *ctx) {
  shard_levels *s = ctx;
  loader_close(s->shards);
  free(s);
}

int batch_builder_open_shards(batch_builder *bb, char *err, size_t err_size) {
  shard_levels *s = malloc(sizeof *s + sizeof(long) * (size_t)bb->max_clips);
  if (!s) {
    snprintf(err, err_size, "out of memory for the shard loader");
    return -1;
  }
  s->bb = bb;
  loader_options o = {.rank = bb->rank,
                      .world = bb->world,
                      .seed = (uint64_t)bb->cfg.train_seed,
                      .prefetch = bb->cfg.data_prefetch,
                      .max_clips = bb->max_clips,
                      .skip_bad = strcmp(bb->cfg.data_on_error, "skip") == 0,
                      .plan = shard_plan,
                      .plan_ctx = bb,
                      .first_seq = 0,
                      .start = {0, 0}};
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
  long seq = (step - 1) * bb->cfg.train_microbatches + micro;
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

