/* batch.c — stage draw, level gathering, noise alignment, times and labels of one microbatch. */
#include "trainer/batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/align.h"

/* Philox stream ids: family in the top byte, then rank (16 bits), microbatch (12), step (28). */
enum { STREAM_STAGE = 1, STREAM_CLIPS = 2, STREAM_NOISE = 3, STREAM_TIME = 4, STREAM_LABEL_DROP = 5 };
static uint64_t stream_id(int family, int rank, int micro, long step) {
  return ((uint64_t)family << 56) | ((uint64_t)(rank & 0xFFFF) << 40) | ((uint64_t)(micro & 0xFFF) << 28) |
         ((uint64_t)step & 0xFFFFFFF);
}

int batch_clips_for_stage(const tpdiff_config *cfg, int stage) {
  int clips = cfg->train_clips_per_microbatch;
  if (strcmp(cfg->pyramid_schedule, "balanced") == 0) clips <<= (cfg->pyramid_stages - 1 - stage);
  return clips;
}

int batch_builder_create(batch_builder *bb, const tpdiff_config *cfg, const pyramid_schedule *schedule,
                         clip_source source, int rank, int world, char *err, size_t err_size) {
  memset(bb, 0, sizeof *bb);
  bb->cfg = *cfg;
  bb->schedule = *schedule;
  bb->source = source;
  bb->rank = rank;
  bb->world = world;
  int K = cfg->pyramid_stages;
  double total = 0, w[PYRAMID_MAX_STAGES];
  for (int k = 0; k < K; k++) {
    w[k] = cfg->pyramid_stage_weights.count ? cfg->pyramid_stage_weights.values[k] : 1.0;
    total += w[k];
  }
  double acc = 0;
  for (int k = 0; k < K; k++) {
    acc += w[k] / total;
    bb->stage_cdf[k] = acc;
  }
  bb->stage_cdf[K - 1] = 1.0;
  for (int k = 0; k < K; k++) {
    int c = batch_clips_for_stage(cfg, k);
    if (c > bb->max_clips) bb->max_clips = c;
  }
  bb->full_clip = (size_t)cfg->data_channels * cfg->data_frames * cfg->data_height * cfg->data_width;
  /* a stage-k microbatch holds B_k clips of F / m_k frames: at most max_clips full clips' worth */
  size_t n = bb->full_clip * (size_t)bb->max_clips;
  bb->full = malloc(n * sizeof(float));
  bb->level = malloc(n * sizeof(float));
  bb->candidates = malloc(n * sizeof(float));
  bb->eps = malloc(n * sizeof(float));
  bb->t = malloc(sizeof(float) * (size_t)bb->max_clips);
  bb->u = malloc(sizeof(float) * (size_t)bb->max_clips);
  bb->y = malloc(sizeof(int) * (size_t)bb->max_clips);
  bb->perm = malloc(sizeof(int) * (size_t)bb->max_clips);
  if (!bb->full || !bb->level || !bb->candidates || !bb->eps || !bb->t || !bb->u || !bb->y || !bb->perm) {
    snprintf(err, err_size, "out of memory for microbatch buffers (%zu floats each)", n);
    batch_builder_destroy(bb);
    return -1;
  }
  return 0;
}

void batch_builder_destroy(batch_builder *bb) {
  if (bb->levels.close) bb->levels.close(bb->levels.ctx);
  free(bb->full);
  free(bb->level);
  free(bb->candidates);
  free(bb->eps);
  free(bb->t);
  free(bb->u);
  free(bb->y);
  free(bb->perm);
  memset(bb, 0, sizeof *bb);
}

int batch_draw_stage(const batch_builder *bb, long step, int micro) {
  return batch_draw_stage_of(bb, step, bb->rank, micro);
}

int batch_draw_stage_of(const batch_builder *bb, long step, int rank, int micro) {
  int sync = strcmp(bb->cfg.pyramid_schedule, "sync") == 0;
  float u;
  k_fill_uniform(&u, 1, (uint64_t)bb->cfg.train_seed, stream_id(STREAM_STAGE, sync ? 0 : rank + 1, micro, step), 0);
  for (int k = 0; k < bb->cfg.pyramid_stages; k++)
    if ((double)u < bb->stage_cdf[k]) return k;
  return bb->cfg.pyramid_stages - 1;
}

long batch_step_clips(const batch_builder *bb, long step) {
  return batch_stream_offset(bb, step, bb->world, 0);
}

long batch_stream_offset(const batch_builder *bb, long step, int rank, int micro) {
  int M = bb->cfg.train_microbatches;
  long clips = 0;
  for (int r = 0; r <= rank && r < bb->world; r++)
    for (int m = 0; m < (r < rank ? M : micro); m++)
      clips += batch_clips_for_stage(&bb->cfg, batch_draw_stage_of(bb, step, r, m));
  return clips;
}

int batch_build(batch_builder *bb, long step, int micro, stage_microbatch *out, char *err, size_t err_size) {
  return batch_build_stage(bb, step, micro, batch_draw_stage(bb, step, micro), out, err, err_size);
}

int batch_build_stage(batch_builder *bb, long step, int micro, int stage, stage_microbatch *out, char *err,
                      size_t err_size) {
  const tpdiff_config *cfg = &bb->cfg;
  uint64_t seed = (uint64_t)cfg->train_seed;
  int B = batch_clips_for_stage(cfg, stage), K = cfg->pyramid_stages, C = cfg->data_channels;
  int F = cfg->data_frames, plane = cfg->data_height * cfg->data_width;

  const float *X = bb->full;
  int T = F;
  if (bb->levels.read) {
    /* the source holds every level (shards): read the stage's level (K-1-k) directly */
    if (bb->levels.read(bb->levels.ctx, step, micro, stage, B, bb->level, bb->y, err, err_size) != 0) return -1;
    X = bb->level;
    T = F >> (K - 1 - stage);
  } else {
    /* clips: uniform draws over the source, distinct streams per rank so ranks see different clips */
    k_fill_uniform(bb->u, (size_t)B, seed, stream_id(STREAM_CLIPS, bb->rank, micro, step), 0);
    for (int b = 0; b < B; b++) {
      long index = (long)((double)bb->u[b] * (double)bb->source.count);
      if (index >= bb->source.count) index = bb->source.count - 1;
      if (bb->source.read(bb->source.ctx, index, bb->full + bb->full_clip * (size_t)b, &bb->y[b], err, err_size) != 0)
        return -1;
    }
    /* the stage's level: pair-average the frames K-1-k times */
    float *ping = bb->level, *pong = bb->candidates;
    for (int l = 0; l < K - 1 - stage; l++) {
      k_frames_pair_mean(ping, X, B * C, T, plane);
      T /= 2;
      X = ping;
      float *swap = ping;
      ping = pong;
      pong = swap;
    }
    if (X != bb->level && X != bb->full) { /* keep X out of the candidates buffer */
      memcpy(bb->level, X, sizeof(float) * (size_t)B * C * T * plane);
      X = bb->level;
    }
  }
  if (cfg->model_classes > 0) /* a data set may have more classes than the model */
    for (int b = 0; b < B; b++) bb->y[b] = ((bb->y[b] % cfg->model_classes) + cfg->model_classes) % cfg->model_classes;
  size_t clip = (size_t)C * T * plane;

  /* noise drawn directly at the stage's level (MATH.md section 7), then aligned */
  k_fill_normal(bb->candidates, clip * (size_t)B, seed, stream_id(STREAM_NOISE, bb->rank, micro, step), 0);
  const float *eps = bb->candidates;
  if (strcmp(cfg->pyramid_align, "off") != 0 && B > 1) {
    if (align_noise(X, bb->candidates, B, clip, bb->eps, bb->perm) != 0) {
      snprintf(err, err_size, "out of memory in the noise alignment (B = %d)", B);
      return -1;
    }
    eps = bb->eps;
  }

  /* times inside the stage's window: t = e_k + r (s_k - e_k), r ~ U(0, 1) */
  k_fill_uniform(bb->t, (size_t)B, seed, stream_id(STREAM_TIME, bb->rank, micro, step), 0);
  for (int b = 0; b < B; b++) bb->t[b] = (float)pyramid_time(&bb->schedule, stage, bb->t[b]);

  const int *y = NULL;
  if (cfg->model_classes > 0) {
    /* label dropout to the null class trains the unconditional branch used by guidance */
    k_fill_uniform(bb->u, (size_t)B, seed, stream_id(STREAM_LABEL_DROP, bb->rank, micro, step), 0);
    for (int b = 0; b < B; b++)
      if ((double)bb->u[b] < cfg->model_class_dropout) bb->y[b] = cfg->model_classes;
    y = bb->y;
  }
  *out = (stage_microbatch){X, eps, bb->t, y, B, stage};
  return 0;
}
