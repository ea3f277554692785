/* sampler.c — pyramid sampling: Euler / DDIM-v per stage, exact renoise between stages, CFG; the
 * state lives in the backend's memory and every tensor pass is a backend op. */
#include "model/sampler.h"

#include <stdlib.h>
#include <string.h>


/* Random streams of one sampling round: the initial noise, then two per stage boundary. */
enum { SAMPLE_STREAM_INITIAL = 0, SAMPLE_STREAM_ZETA = 1, SAMPLE_STREAM_ETA = 2 };

size_t sampler_work_floats(const dit_shape *shape, int B) {
  size_t full = (size_t)B * shape->channels * shape->frames * shape->height * shape->width;
  return 7 * full; /* x, x_next, pred, pred_null, zeta, eta, renoise scratch */
}

/* x <- per-clip-constant combination c0 x + c1 pred (the same coefficients for every clip). */
static void step_update(const tpdiff_backend *be, float *x, const float *pred, double c0, double c1, int B,
                        size_t clip) {
  double c[3 * 64];
  for (int done = 0; done < B; done += 64) {
    int nb = B - done < 64 ? B - done : 64;
    for (int b = 0; b < nb; b++) {
      c[3 * b] = c0;
      c[3 * b + 1] = c1;
      c[3 * b + 2] = 0.0;
    }
    be->combine3_per_clip(x + clip * (size_t)done, x + clip * (size_t)done, pred + clip * (size_t)done, NULL, c, nb,
                          clip);
  }
}

int sample_videos(const tpdiff_backend *be, const pyramid_schedule *p, const dit_shape *shape,
                  sampler_model_fn model, void *ctx, const sampler_options *opt, const float *noise0, const int *y,
                  int null_label, int B, float *out, float *work) {
  size_t full = (size_t)B * shape->channels * shape->frames * shape->height * shape->width;
  float *x = work, *x_next = work + full, *pred = work + 2 * full, *pred_null = work + 3 * full;
  float *zeta = work + 4 * full, *eta = work + 5 * full, *scratch = work + 6 * full;
  int C = shape->channels, H = shape->height, W = shape->width;
  int *null_labels = NULL;
  int guided = y != NULL && opt->cfg != 1.0;
  if (guided) {
    null_labels = malloc(sizeof(int) * (size_t)B);
    if (!null_labels) return -1;
    for (int b = 0; b < B; b++) null_labels[b] = null_label;
  }
  int T = shape->frames / p->stride[0];
  size_t n = (size_t)B * C * T * H * W;
  if (noise0)
    be->copy_device(x, noise0, n * sizeof(float));
  else
    be->fill_normal(x, n, opt->seed, opt->stream + SAMPLE_STREAM_INITIAL, 0);

  int status = 0;
  for (int k = 0; k < p->stages && status == 0; k++) {
    if (k > 0) {
      /* stage boundary: double the frames and restore the law of the training start point */
      renoise_coeffs rc;
      pyramid_renoise_coeffs(p->form, p->end[k - 1], p->start[k], 1, &rc);
      size_t coarse = (size_t)B * C * T * H * W;
      be->fill_normal(zeta, coarse, opt->seed, opt->stream + 16 * (uint64_t)k + SAMPLE_STREAM_ZETA, 0);
      if (rc.beta_iso > 0)
        be->fill_normal(eta, 2 * coarse, opt->seed, opt->stream + 16 * (uint64_t)k + SAMPLE_STREAM_ETA, 0);
      pyramid_renoise(be, &rc, x, zeta, rc.beta_iso > 0 ? eta : NULL, B, C, T, H, W, x_next, scratch);
      float *swap = x;
      x = x_next;
      x_next = swap;
      T *= 2;
    }
    size_t clip = (size_t)C * T * H * W;
    double s = p->start[k], e = p->end[k];
    for (int i = 0; i < opt->steps; i++) {
      double t = e + (1.0 - (double)i / opt->steps) * (s - e);
      double t_next = e + (1.0 - (double)(i + 1) / opt->steps) * (s - e);
      if (model(ctx, x, t, k, y, B, pred) != 0) {
        status = -1;
        break;
      }
      if (guided) {
        if (model(ctx, x, t, k, null_labels, B, pred_null) != 0) {
          status = -1;
          break;
        }
        /* pred = null + w (cond - null) = w cond + (1 - w) null */
        double c[3 * 64];
        for (int done = 0; done < B; done += 64) {
          int nb = B - done < 64 ? B - done : 64;
          for (int b = 0; b < nb; b++) {
            c[3 * b] = opt->cfg;
            c[3 * b + 1] = 1.0 - opt->cfg;
            c[3 * b + 2] = 0.0;
          }
          be->combine3_per_clip(pred + clip * (size_t)done, pred + clip * (size_t)done,
                                pred_null + clip * (size_t)done, NULL, c, nb, clip);
        }
      }
      if (p->form == DIFFUSION_RF) {
        step_update(be, x, pred, 1.0, t_next - t, B, clip); /* Euler on the velocity */
      } else {
        /* DDIM with v: x0 = a x - b v, eps = b x + a v, x' = a' x0 + b' eps */
        double a = diffusion_a(p->form, t), b = diffusion_b(p->form, t);
        double a2 = diffusion_a(p->form, t_next), b2 = diffusion_b(p->form, t_next);
        step_update(be, x, pred, a2 * a + b2 * b, b2 * a - a2 * b, B, clip);
      }
    }
  }
  if (status == 0) status = be->copy_device(out, x, full * sizeof(float)) == 0 ? 0 : -1;
  free(null_labels);
  return status;
}

int dit_sampler_model(void *vctx, const float *x, double t, int stage, const int *y, int B, float *pred) {
  dit_sampler_ctx *ctx = vctx;
  const dit_shape *s = &ctx->model->shape;
  size_t clip = (size_t)s->channels * dit_stage_frames(s, stage) * s->height * s->width;
  for (int done = 0; done < B; done += ctx->max_clips) {
    int nb = B - done < ctx->max_clips ? B - done : ctx->max_clips;
    for (int b = 0; b < nb; b++) ctx->t_buffer[b] = (float)t;
    const float *out =
        dit_forward(ctx->model, ctx->acts, x + clip * (size_t)done, ctx->t_buffer, y ? y + done : NULL, stage, nb);
    if (ctx->model->be->copy_device(pred + clip * (size_t)done, out, clip * (size_t)nb * sizeof(float)) != 0)
      return -1;
  }
  return 0;
}
