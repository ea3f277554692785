/* trainer.c — the run's state on a backend (memory plan, model, arena, optimizer, microbatch
 * buffers) and the optimizer step. */
#include "trainer/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/sampler.h"

dit_recompute trainer_recompute(const tpdiff_config *cfg) {
  int mode = dit_recompute_from_name(cfg->train_recompute);
  return mode < 0 ? DIT_RECOMPUTE_NONE : (dit_recompute)mode; /* the config's choices list checked the name */
}

dit_shape trainer_shape_from_config(const tpdiff_config *cfg) {
  dit_shape s = {
      .depth = cfg->model_depth,
      .dim = cfg->model_dim,
      .heads = cfg->model_heads,
      .patch = cfg->model_patch,
      .classes = cfg->model_classes,
      .channels = cfg->data_channels,
      .frames = cfg->data_frames,
      .height = cfg->data_height,
      .width = cfg->data_width,
      .stages = cfg->pyramid_stages,
  };
  return s;
}

int trainer_schedule_from_config(const tpdiff_config *cfg, pyramid_schedule *p, char *err, size_t err_size) {
  diffusion_form form = strcmp(cfg->diffusion_form, "vp") == 0 ? DIFFUSION_VP : DIFFUSION_RF;
  return pyramid_schedule_init(p, form, cfg->pyramid_stages, cfg->pyramid_cuts.values, cfg->pyramid_cuts.count, err,
                               err_size);
}

/* Every stage's largest microbatch (clips) and the floats of one microbatch buffer: a stage-k
 * microbatch of B_k clips of F/m_k frames holds B_k/m_k full clips' worth of values. */
static size_t microbatch_sizes(const tpdiff_config *cfg, const dit_shape *shape, int *max_clips) {
  int most_full_clips = 1;
  for (int k = 0; k < shape->stages; k++) {
    max_clips[k] = batch_clips_for_stage(cfg, k);
    int full_equivalent = max_clips[k] / dit_stage_stride(shape, k);
    if (full_equivalent < 1) full_equivalent = 1;
    if (full_equivalent > most_full_clips) most_full_clips = full_equivalent;
  }
  return (size_t)shape->channels * shape->frames * shape->height * shape->width * (size_t)most_full_clips;
}

/* bf16 mode on a GPU: the backend's bf16 copy of the weights for the matmuls (set_master_weights). */
static size_t master_copy_bytes(const tpdiff_config *cfg, const dit_model *m) {
  return strcmp(cfg->train_precision, "bf16") == 0 && strcmp(m->be->name, "cpu") != 0 ? m->num_floats * 2 : 0;
}

void trainer_plan(const tpdiff_config *cfg, const dit_model *m, trainer_memory_plan *p) {
  int max_clips[TPDIFF_MAX_STAGES];
  size_t batch_floats = microbatch_sizes(cfg, &m->shape, max_clips);
  memset(p, 0, sizeof *p);
  p->stages = m->shape.stages;
  for (int k = 0; k < p->stages; k++) {
    p->stage_clips[k] = max_clips[k];
    p->stage_acts_bytes[k] = dit_acts_bytes(m, max_clips[k], k, trainer_recompute(cfg));
    if (p->stage_acts_bytes[k] > p->arena_bytes) p->arena_bytes = p->stage_acts_bytes[k];
    size_t scratch = dit_scratch_bytes(m, max_clips[k], k);
    if (scratch > p->scratch_bytes) p->scratch_bytes = scratch;
  }
  size_t copies = 4 + (cfg->train_ema > 0); /* weights, grads, m, v (+ ema) */
  p->state_bytes = copies * m->num_floats * sizeof(float) + master_copy_bytes(cfg, m);
  p->batch_bytes = 6 * batch_floats * sizeof(float);
  /* sample_round.c: the sampler's work and the videos, beside everything training holds; its model
   * passes run in the arena, in chunks of the last stage's microbatch */
  const dit_shape *s = &m->shape;
  const size_t video = (size_t)s->channels * s->frames * s->height * s->width;
  p->sample_bytes = (sampler_work_floats(s, cfg->sample_count) + video * (size_t)cfg->sample_count) * sizeof(float);
  p->total_bytes = p->arena_bytes + p->state_bytes + p->batch_bytes + p->scratch_bytes + p->sample_bytes;
}

/* Headroom left beside the plan for what the backend allocates beyond its planned scratch (the CUDA
 * context's growth, kernels loaded on first use, library internals) and for other users of the device. */
#define TRAIN_MEMORY_HEADROOM_BYTES ((size_t)512 << 20)

/* Whether plan p of cfg for the dit_create'd model m fits the backend's free memory (p->free_bytes and
 * p->device_bytes are filled in); 0, or -1 with one line in err. */
static int check_memory(const tpdiff_config *cfg, const dit_model *m, trainer_memory_plan *p, char *err,
                        size_t err_size) {
  const tpdiff_backend *be = m->be;
  size_t free_bytes = 0, total_bytes = 0;
  if (be->memory_info(&free_bytes, &total_bytes) != 0) {
    (void)be->last_error(); /* unknown: allocate and let the allocator answer */
    return 0;
  }
  /* weights, grads (and the bf16 copy) are already allocated: in the plan but no longer in free_bytes */
  size_t already = 2 * m->num_floats * sizeof(float) + master_copy_bytes(cfg, m);
  p->free_bytes = free_bytes + already;
  p->device_bytes = total_bytes;
  if (p->total_bytes + TRAIN_MEMORY_HEADROOM_BYTES <= p->free_bytes) return 0;
  const double gib = 1024.0 * 1024.0 * 1024.0;
  if (p->total_bytes - p->sample_bytes + TRAIN_MEMORY_HEADROOM_BYTES <= p->free_bytes) {
    /* training fits; the sampling rounds' videos do not */
    snprintf(err, err_size,
             "%s: sample.count: the run needs %.1f GiB of %s memory (training %.1f GiB, sampling %.1f GiB for %d "
             "videos) but %.1f GiB are free on %s; lower sample.count",
             cfg->source, (p->total_bytes + TRAIN_MEMORY_HEADROOM_BYTES) / gib, be->name,
             (p->total_bytes - p->sample_bytes) / gib, p->sample_bytes / gib, cfg->sample_count, p->free_bytes / gib,
             be->device);
    return -1;
  }
  int worst = 0;
  for (int k = 1; k < p->stages; k++)
    if (p->stage_acts_bytes[k] > p->stage_acts_bytes[worst]) worst = k;
  snprintf(err, err_size,
           "%s: train.clips_per_microbatch: the run needs %.1f GiB of %s memory (activations %.1f GiB for %d "
           "clips of %d tokens at stage %d, weights/gradients/optimizer %.1f GiB, microbatch %.1f GiB, backend "
           "buffers %.1f GiB, sampling %.1f GiB) but %.1f GiB are free on %s; lower train.clips_per_microbatch%s",
           cfg->source, (p->total_bytes + TRAIN_MEMORY_HEADROOM_BYTES) / gib, be->name, p->stage_acts_bytes[worst] / gib,
           p->stage_clips[worst], dit_stage_tokens(&m->shape, worst), worst, p->state_bytes / gib,
           p->batch_bytes / gib, p->scratch_bytes / gib, p->sample_bytes / gib, p->free_bytes / gib, be->device,
           trainer_recompute(cfg) == DIT_RECOMPUTE_BLOCKS  ? ""
           : trainer_recompute(cfg) == DIT_RECOMPUTE_CHEAP ? " or set train.recompute: blocks"
                                                            : " or set train.recompute: cheap (or blocks)");
  return -1;
}

int trainer_check_fits(const tpdiff_config *cfg, const tpdiff_backend *be, char *err, size_t err_size) {
  dit_model m;
  dit_shape shape = trainer_shape_from_config(cfg);
  if (dit_create(&m, &shape, be, err, err_size) != 0) return -1;
  trainer_memory_plan p;
  trainer_plan(cfg, &m, &p);
  int rc = check_memory(cfg, &m, &p, err, err_size);
  dit_destroy(&m);
  return rc;
}

int trainer_create(trainer *tr, const tpdiff_config *cfg, const tpdiff_backend *be, char *err, size_t err_size) {
  memset(tr, 0, sizeof *tr);
  tr->cfg = *cfg;
  tr->be = be;
  if (trainer_schedule_from_config(cfg, &tr->schedule, err, err_size) != 0) return -1;
  dit_shape shape = trainer_shape_from_config(cfg);
  if (dit_create(&tr->model, &shape, be, err, err_size) != 0) return -1;
  int max_clips[TPDIFF_MAX_STAGES];
  size_t n = microbatch_sizes(cfg, &shape, max_clips);
  trainer_plan(cfg, &tr->model, &tr->plan);
  if (check_memory(cfg, &tr->model, &tr->plan, err, err_size) != 0) goto fail;
  if (dit_init_dit(&tr->model, (uint64_t)cfg->train_seed) != 0) {
    snprintf(err, err_size, "initialising the weights failed: %s", be->last_error());
    goto fail;
  }
  tr->acts = dit_acts_create(&tr->model, max_clips, trainer_recompute(cfg), err, err_size);
  if (!tr->acts) goto fail;
  if (adamw_create(&tr->opt, &tr->model, cfg->train_ema > 0) != 0) {
    snprintf(err, err_size, "out of %s memory for the optimizer state: %s", be->name, be->last_error());
    goto fail;
  }
  float **buffers[] = {&tr->X, &tr->eps, &tr->x_t, &tr->target, &tr->d_out, &tr->scratch};
  for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) {
    *buffers[i] = be->alloc(n * sizeof(float));
    if (!*buffers[i]) {
      snprintf(err, err_size, "out of %s memory for microbatch buffers: %s", be->name, be->last_error());
      goto fail;
    }
  }
  return 0;
fail:
  trainer_destroy(tr);
  return -1;
}

void trainer_destroy(trainer *tr) {
  dit_acts_destroy(tr->acts);
  adamw_destroy(&tr->opt);
  dit_destroy(&tr->model);
  if (tr->be) {
    float *buffers[] = {tr->X, tr->eps, tr->x_t, tr->target, tr->d_out, tr->scratch};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) tr->be->free(buffers[i]);
  }
  memset(tr, 0, sizeof *tr);
}

/* The backend's first error since the last call, into st (0 when none). */
static int backend_failed(const tpdiff_backend *be, step_stats *st, const char *when) {
  const char *e = be->last_error();
  if (!e[0]) return 0;
  snprintf(st->error, sizeof st->error, "%s: %s", when, e);
  st->failed = 1;
  return 1;
}

/* Sums the step over ranks through tr->reduce: the gradient becomes the mean over ranks (each rank's
 * is already the mean over its own microbatches), the stats the step's totals. Every rank counts 1
 * in the first slot, so the loss is the mean over ranks without the trainer knowing the world size. */
static int reduce_step(trainer *tr, step_stats *st) {
  enum { RANKS, LOSS, CLIPS, TOKENS, STAGE_SUMS, STAGE_COUNTS = STAGE_SUMS + PYRAMID_MAX_STAGES,
         STAT_COUNT = STAGE_COUNTS + PYRAMID_MAX_STAGES };
  double stats[STAT_COUNT] = {1.0, st->loss, (double)st->clips, (double)st->tokens};
  for (int k = 0; k < PYRAMID_MAX_STAGES; k++) {
    stats[STAGE_SUMS + k] = st->stage_loss_sum[k];
    stats[STAGE_COUNTS + k] = st->stage_count[k];
  }
  if (tr->reduce(tr->reduce_ctx, tr->model.grads, tr->model.num_floats, stats, STAT_COUNT, st->error,
                 sizeof st->error) != 0) {
    st->failed = 1;
    return -1;
  }
  st->loss = stats[LOSS] / stats[RANKS];
  st->clips = (long)stats[CLIPS];
  st->tokens = (long)stats[TOKENS];
  for (int k = 0; k < PYRAMID_MAX_STAGES; k++) {
    st->stage_loss_sum[k] = stats[STAGE_SUMS + k];
    st->stage_count[k] = (int)stats[STAGE_COUNTS + k];
  }
  return 0;
}

/* dit_backward's grads_done, during the last microbatch: hands the finished range to tr->ready. */
static void grads_done(void *ctx, size_t from_offset) {
  trainer *tr = ctx;
  tr->ready(tr->reduce_ctx, tr->model.grads, tr->model.num_floats, from_offset);
}

step_stats trainer_step(trainer *tr, int count, microbatch_fn next, void *ctx) {
  const tpdiff_backend *be = tr->be;
  dit_model *m = &tr->model;
  const dit_shape *s = &m->shape;
  step_stats st = {0};
  be->fill_zero(m->grads, m->num_floats * sizeof(float));
  for (int i = 0; i < count; i++) {
    stage_microbatch mb;
    if (next(ctx, i, &mb, st.error, sizeof st.error) != 0) {
      st.failed = 1;
      return st;
    }
    int T = dit_stage_frames(s, mb.stage);
    size_t elems = (size_t)s->channels * T * s->height * s->width * (size_t)mb.B;
    /* the host-built microbatch goes up once; t and y stay host arguments (pyramid.h, dit.h) */
    be->copy_to_device(tr->X, mb.X, elems * sizeof(float));
    be->copy_to_device(tr->eps, mb.eps, elems * sizeof(float));
    pyramid_training_pair(be, &tr->schedule, mb.stage, tr->X, tr->eps, mb.t, mb.B, s->channels, T, s->height, s->width,
                          tr->x_t, tr->target, tr->scratch);
    const float *pred = dit_forward(m, tr->acts, tr->x_t, mb.t, mb.y, mb.stage, mb.B);
    double loss = be->mse_loss(tr->d_out, pred, tr->target, elems, 1.0f / (float)count);
    /* the last microbatch's backward finishes each layer's gradient: its reduction can start */
    int overlap = tr->reduce && tr->ready && i == count - 1;
    m->grads_done = overlap ? grads_done : NULL;
    m->grads_done_ctx = overlap ? tr : NULL;
    dit_backward(m, tr->acts, tr->d_out);
    m->grads_done = NULL;
    if (backend_failed(be, &st, "forward/backward")) return st;
    st.loss += loss / count;
    st.stage_loss_sum[mb.stage] += loss;
    st.stage_count[mb.stage]++;
    st.clips += mb.B;
    st.tokens += (long)mb.B * dit_stage_tokens(s, mb.stage);
  }
  if (tr->reduce && reduce_step(tr, &st) != 0) return st;
  st.grad_norm = grad_global_norm(be, m->grads, m->num_floats);
  st.lr = lr_at_step(tr->cfg.train_lr, tr->cfg.train_warmup, tr->opt.step + 1);
  if (!isfinite(st.loss) || !isfinite(st.grad_norm)) {
    /* A non-finite step would poison the moments for good: skip it and count. */
    st.skipped = 1;
    tr->skipped_steps++;
    tr->nonfinite_in_a_row++;
    return st;
  }
  tr->nonfinite_in_a_row = 0;
  grad_clip(be, m->grads, m->num_floats, st.grad_norm, tr->cfg.train_grad_clip);
  adamw_apply(m, &tr->opt, (float)st.lr, (float)tr->cfg.train_weight_decay);
  ema_update(&tr->opt, m->weights, (float)tr->cfg.train_ema);
  backend_failed(be, &st, "optimizer step");
  return st;
}
