/* sampler.h — generation with the model's own pyramid (MATH.md section 6): per stage n Euler (rf)
 * or DDIM v-prediction (vp) steps, exact renoise at each stage boundary, optional classifier-free
 * guidance. K = 1 is plain vanilla sampling. */
#ifndef TPDIFF_SAMPLER_H
#define TPDIFF_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "model/dit.h"
#include "model/pyramid.h"

typedef struct {
  int steps;           /* n_k, the same for every stage */
  double cfg;          /* guidance scale w: v = v_null + w (v_cond - v_null); 1 = no guidance */
  uint64_t seed;       /* key of the renoise draws (and of the initial noise when none is given) */
  uint64_t stream;     /* stream family of this sampling round, so rounds differ */
} sampler_options;

/* Velocity (rf) or v (vp) the sampler integrates; the network, or an oracle in tests. Writes
 * pred [B, C, T_k, H, W] for x at time t (one t for the whole microbatch), stage k, labels y
 * (host memory; NULL when unconditional). x and pred are memory of the sampler's backend.
 * Returns 0, or -1 to abort sampling. */
typedef int (*sampler_model_fn)(void *ctx, const float *x, double t, int stage, const int *y, int B, float *pred);

/* Work memory sample_videos needs for B videos of the given shape (floats). */
size_t sampler_work_floats(const dit_shape *shape, int B);

/* Generates B videos [B, C, F, H, W] into out on backend be. noise0 [B, C, F_0, H, W] is the initial
 * state at t = s_0 = 1 (NULL: drawn from opt->seed). y [B] labels (host) or NULL; with cfg != 1 the
 * model is called twice per step (labels, then the null class `null_label`). work:
 * sampler_work_floats floats. noise0, out and work are backend memory. Returns 0 or -1 (the model
 * function failed, or host memory ran out). */
int sample_videos(const tpdiff_backend *be, const pyramid_schedule *p, const dit_shape *shape,
                  sampler_model_fn model, void *ctx, const sampler_options *opt, const float *noise0, const int *y,
                  int null_label, int B, float *out, float *work);

/* A sampler_model_fn over dit_forward (on the model's backend): ctx is a dit_sampler_ctx. Processes
 * the microbatch in chunks of at most max_clips clips (the arena's capacity). */
typedef struct {
  const dit_model *model;
  dit_acts *acts;
  int max_clips;
  float *t_buffer; /* [max_clips], host (dit_forward's t) */
} dit_sampler_ctx;
int dit_sampler_model(void *ctx, const float *x, double t, int stage, const int *y, int B, float *pred);

#endif
