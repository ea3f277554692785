/* trainer.c — the optimizer step. */
#include "trainer/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

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

int trainer_create(trainer *tr, const tpdiff_config *cfg, char *err, size_t err_size) {
  memset(tr, 0, sizeof *tr);
  tr->cfg = *cfg;
  if (trainer_schedule_from_config(cfg, &tr->schedule, err, err_size) != 0) return -1;
  dit_shape shape = trainer_shape_from_config(cfg);
  if (dit_create(&tr->model, &shape, err, err_size) != 0) return -1;
  dit_init_dit(&tr->model, (uint64_t)cfg->train_seed);
  int max_clips[TPDIFF_MAX_STAGES], most_full_clips = 1;
  for (int k = 0; k < shape.stages; k++) {
    max_clips[k] = batch_clips_for_stage(cfg, k);
    int full_equivalent = max_clips[k] / dit_stage_stride(&shape, k);
    if (full_equivalent < 1) full_equivalent = 1;
    if (full_equivalent > most_full_clips) most_full_clips = full_equivalent;
  }
  tr->acts = dit_acts_create(&tr->model, max_clips, err, err_size);
  if (!tr->acts) goto fail;
  if (adamw_create(&tr->opt, &tr->model, cfg->train_ema > 0) != 0) {
    snprintf(err, err_size, "out of memory for the optimizer state");
    goto fail;
  }
  /* a stage-k microbatch of B_k clips of F/m_k frames: B_k/m_k full clips' worth of values */
  size_t n = (size_t)shape.channels * shape.frames * shape.height * shape.width * (size_t)most_full_clips;
  tr->x_t = malloc(n * sizeof(float));
  tr->target = malloc(n * sizeof(float));
  tr->d_out = malloc(n * sizeof(float));
  tr->scratch = malloc(n * sizeof(float));
  if (!tr->x_t || !tr->target || !tr->d_out || !tr->scratch) {
    snprintf(err, err_size, "out of memory for microbatch buffers");
    goto fail;
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
  free(tr->x_t);
  free(tr->target);
  free(tr->d_out);
  free(tr->scratch);
  memset(tr, 0, sizeof *tr);
}

step_stats trainer_step(trainer *tr, int count, microbatch_fn next, void *ctx) {
  dit_model *m = &tr->model;
  const dit_shape *s = &m->shape;
  step_stats st = {0};
  memset(m->grads, 0, m->num_floats * sizeof(float));
  for (int i = 0; i < count; i++) {
    stage_microbatch mb;
    if (next(ctx, i, &mb, st.error, sizeof st.error) != 0) {
      st.failed = 1;
      return st;
    }
    int T = dit_stage_frames(s, mb.stage);
    size_t elems = (size_t)s->channels * T * s->height * s->width * (size_t)mb.B;
    pyramid_training_pair(&tr->schedule, mb.stage, mb.X, mb.eps, mb.t, mb.B, s->channels, T, s->height, s->width,
                          tr->x_t, tr->target, tr->scratch);
    const float *pred = dit_forward(m, tr->acts, tr->x_t, mb.t, mb.y, mb.stage, mb.B);
    double loss = k_mse_loss(tr->d_out, pred, tr->target, elems, 1.0f / (float)count);
    dit_backward(m, tr->acts, tr->d_out);
    st.loss += loss / count;
    st.stage_loss_sum[mb.stage] += loss;
    st.stage_count[mb.stage]++;
    st.clips += mb.B;
    st.tokens += (long)mb.B * dit_stage_tokens(s, mb.stage);
  }
  st.grad_norm = grad_global_norm(m->grads, m->num_floats);
  st.lr = lr_at_step(tr->cfg.train_lr, tr->cfg.train_warmup, tr->opt.step + 1);
  if (!isfinite(st.loss) || !isfinite(st.grad_norm)) {
    /* A non-finite step would poison the moments for good: skip it and count. */
    st.skipped = 1;
    tr->skipped_steps++;
    tr->nonfinite_in_a_row++;
    return st;
  }
  tr->nonfinite_in_a_row = 0;
  grad_clip(m->grads, m->num_floats, st.grad_norm, tr->cfg.train_grad_clip);
  adamw_apply(m, &tr->opt, (float)st.lr, (float)tr->cfg.train_weight_decay);
  ema_update(&tr->opt, m->weights, (float)tr->cfg.train_ema);
  return st;
}
