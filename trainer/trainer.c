/* trainer.c — the optimizer step. */
#include "trainer/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/diffusion.h"

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

int trainer_create(trainer *tr, const tpdiff_config *cfg, char *err, size_t err_size) {
  memset(tr, 0, sizeof *tr);
  tr->cfg = *cfg;
  dit_shape shape = trainer_shape_from_config(cfg);
  if (dit_create(&tr->model, &shape, err, err_size) != 0) return -1;
  dit_init_dit(&tr->model, (uint64_t)cfg->train_seed);
  int max_clips[TPDIFF_MAX_STAGES];
  for (int k = 0; k < shape.stages; k++) max_clips[k] = cfg->train_clips_per_microbatch;
  tr->acts = dit_acts_create(&tr->model, max_clips, err, err_size);
  if (!tr->acts) goto fail;
  if (adamw_create(&tr->opt, &tr->model, cfg->train_ema > 0) != 0) {
    snprintf(err, err_size, "out of memory for the optimizer state");
    goto fail;
  }
  tr->clip_elems = (size_t)shape.channels * shape.frames * shape.height * shape.width;
  size_t n = tr->clip_elems * (size_t)cfg->train_clips_per_microbatch;
  tr->x_t = malloc(n * sizeof(float));
  tr->target = malloc(n * sizeof(float));
  tr->d_out = malloc(n * sizeof(float));
  if (!tr->x_t || !tr->target || !tr->d_out) {
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
  memset(tr, 0, sizeof *tr);
}

step_stats trainer_step(trainer *tr, const rf_microbatch *mbs, int count) {
  dit_model *m = &tr->model;
  step_stats st = {0};
  memset(m->grads, 0, m->num_floats * sizeof(float));
  for (int i = 0; i < count; i++) {
    const rf_microbatch *mb = &mbs[i];
    size_t elems = tr->clip_elems / (size_t)dit_stage_stride(&m->shape, mb->stage);
    rf_training_pair(tr->x_t, tr->target, mb->x0, mb->eps, mb->t, mb->B, elems);
    const float *pred = dit_forward(m, tr->acts, tr->x_t, mb->t, mb->y, mb->stage, mb->B);
    st.loss += k_mse_loss(tr->d_out, pred, tr->target, elems * (size_t)mb->B, 1.0f / (float)count) / count;
    dit_backward(m, tr->acts, tr->d_out);
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
