/* test_sampler.c — model/sampler.c with an oracle in place of the network: the exact conditional
 * target of each stage (MATH.md 5.1, rebuilt from the state the sampler hands over at the stage's
 * start). With it the sampler must land on the data X for every K, form and step count; the state
 * after each renoise must carry unit-variance noise with no within-pair correlation (the flicker
 * the renoise exists to remove); K = 1 must be the vanilla Euler loop bit for bit; guidance must
 * combine the two predictions as null + w (cond - null). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/pyramid.h"
#include "model/sampler.h"
#include "tests/unit/test_report.h"

typedef struct {
  const pyramid_schedule *p;
  int B, C, F, H, W;
  float *levels[PYRAMID_MAX_STAGES]; /* X_k [B, C, F_k, H, W] */
  float *start_data;                 /* S_k of the current stage */
  float *x_start;                    /* state at the stage's start */
  int stage;
  double noise_var[PYRAMID_MAX_STAGES], pair_corr[PYRAMID_MAX_STAGES];
} oracle;

static int oracle_model(void *vctx, const float *x, double t, int stage, const int *y, int B, float *pred) {
  (void)y;
  oracle *o = vctx;
  const pyramid_schedule *p = o->p;
  int T = o->F / p->stride[stage], plane = o->H * o->W;
  size_t n = (size_t)B * o->C * T * plane;
  const float *X = o->levels[stage];
  double s = p->start[stage], e = p->end[stage];
  double as = diffusion_a(p->form, s), bs = diffusion_b(p->form, s);
  double ae = diffusion_a(p->form, e), be = diffusion_b(p->form, e);
  if (stage != o->stage) { /* first call of a stage: t == s_k; remember where the sampler put us */
    o->stage = stage;
    memcpy(o->x_start, x, n * sizeof(float));
    if (stage == 0)
      memcpy(o->start_data, X, n * sizeof(float));
    else
      k_frames_repeat(o->start_data, o->levels[stage - 1], B * o->C, T / 2, plane);
    /* the noise the state carries: eps' = (x_s - a_s S_k) / b_s; its law must be N(0, I) */
    double sum2 = 0, pair = 0;
    for (size_t i = 0; i < n; i++) {
      double v = (x[i] - as * o->start_data[i]) / bs;
      sum2 += v * v;
    }
    for (int bc = 0; bc < B * o->C; bc++)
      for (int j = 0; j + 1 < T; j += 2)
        for (int q = 0; q < plane; q++) {
          size_t i0 = ((size_t)bc * T + j) * plane + q, i1 = i0 + plane;
          pair += (x[i0] - as * o->start_data[i0]) / bs * ((x[i1] - as * o->start_data[i1]) / bs);
        }
    o->noise_var[stage] = sum2 / n;
    o->pair_corr[stage] = pair / (n / 2) / o->noise_var[stage];
  }
  double D = as * be - ae * bs, at = diffusion_a(p->form, t), bt = diffusion_b(p->form, t);
  for (size_t i = 0; i < n; i++) {
    double xs = o->x_start[i], eps = (xs - as * o->start_data[i]) / bs;
    double xe = ae * X[i] + be * eps;
    double x0h = (be * xs - bs * xe) / D, epsh = (as * xe - ae * xs) / D;
    pred[i] = (float)(p->form == DIFFUSION_RF ? epsh - x0h : at * epsh - bt * x0h);
  }
  return 0;
}

static void run_oracle(diffusion_form form, int K, int steps, int B, int F, int HW, int check_law) {
  pyramid_schedule p;
  char err[256];
  if (pyramid_schedule_init(&p, form, K, NULL, 0, err, sizeof err) != 0) {
    failf("schedule", "%s", err);
    return;
  }
  dit_shape shape = {.depth = 1, .dim = 4, .heads = 1, .patch = 1, .channels = 1, .frames = F, .height = HW,
                     .width = HW, .stages = K};
  oracle o = {&p, B, 1, F, HW, HW, {0}, NULL, NULL, -1, {0}, {0}};
  size_t full = (size_t)B * F * HW * HW;
  /* data: a smooth-in-time signal (AR(1), rho 0.9) plus an offset, like MATH.md's MC */
  float *X = malloc(full * sizeof(float)), *z = malloc(full * sizeof(float));
  k_fill_normal(z, full, 5, 1, 0);
  for (int b = 0; b < B; b++)
    for (int f = 0; f < F; f++)
      for (int q = 0; q < HW * HW; q++) {
        size_t i = ((size_t)b * F + f) * HW * HW + q;
        X[i] = f == 0 ? z[i] + 0.3f : 0.9f * (X[i - (size_t)HW * HW] - 0.3f) + 0.43589f * z[i] + 0.3f;
      }
  o.levels[K - 1] = X;
  for (int k = K - 2; k >= 0; k--) {
    int T = F / p.stride[k + 1];
    o.levels[k] = malloc(full * sizeof(float));
    k_frames_pair_mean(o.levels[k], o.levels[k + 1], B, T, HW * HW);
  }
  o.start_data = malloc(full * sizeof(float));
  o.x_start = malloc(full * sizeof(float));
  float *work = malloc(sampler_work_floats(&shape, B) * sizeof(float)), *out = malloc(full * sizeof(float));
  sampler_options opt = {steps, 1.0, 11, 0x100};
  int rc = sample_videos(tpdiff_cpu_backend(), &p, &shape, oracle_model, &o, &opt, NULL, NULL, 0, B, out, work);
  double err_max = 0, scale = 0;
  for (size_t i = 0; i < full; i++) {
    err_max = fmax(err_max, fabs(out[i] - X[i]));
    scale = fmax(scale, fabs(X[i]));
  }
  char name[160];
  snprintf(name, sizeof name, "oracle %s K=%d n=%d lands on the data", form == DIFFUSION_RF ? "rf" : "vp", K, steps);
  check(name, rc == 0 && err_max / scale < 2e-6, "value=%.3g (limit %.3g)", err_max / scale, 2e-6);
  if (check_law) {
    for (int k = 1; k < K; k++) {
      /* n = B·F_k·H·W/2 pairs; 5 sigma of a correlation estimate is 5/sqrt(n) */
      double pairs = (double)B * (F / p.stride[k]) * HW * HW / 2;
      snprintf(name, sizeof name, "%s K=%d stage %d: renoised state's noise has unit variance",
               form == DIFFUSION_RF ? "rf" : "vp", K, k);
      check(name, fabs(o.noise_var[k] - 1) < 0.01, "value=%.3g (limit %.3g)", o.noise_var[k] - 1, 0.01);
      snprintf(name, sizeof name, "%s K=%d stage %d: no within-pair noise correlation (no flicker)",
               form == DIFFUSION_RF ? "rf" : "vp", K, k);
      check(name, fabs(o.pair_corr[k]) < 5 / sqrt(pairs), "value=%.3g (limit %.3g)", o.pair_corr[k], 5 / sqrt(pairs));
    }
  }
  for (int k = 0; k < K - 1; k++) free(o.levels[k]);
  free(X);
  free(z);
  free(o.start_data);
  free(o.x_start);
  free(work);
  free(out);
}

/* A fixed linear "network" for the K = 1 and guidance checks: pred = 0.5 x - 0.25 t + label/8. */
static int toy_model(void *ctx, const float *x, double t, int stage, const int *y, int B, float *pred) {
  (void)stage;
  size_t clip = *(const size_t *)ctx;
  for (int b = 0; b < B; b++)
    for (size_t i = 0; i < clip; i++)
      pred[b * clip + i] = 0.5f * x[b * clip + i] - 0.25f * (float)t + (y ? (float)y[b] / 8.0f : 0.0f);
  return 0;
}

static void test_vanilla_and_guidance(void) {
  pyramid_schedule p;
  char err[256];
  pyramid_schedule_init(&p, DIFFUSION_RF, 1, NULL, 0, err, sizeof err);
  dit_shape shape = {.depth = 1, .dim = 4, .heads = 1, .patch = 1, .channels = 2, .frames = 4, .height = 3,
                     .width = 3, .stages = 1};
  int B = 3, steps = 7;
  size_t clip = 2 * 4 * 3 * 3, full = clip * B;
  float *noise = malloc(full * 4), *out = malloc(full * 4), *ref = malloc(full * 4), *pred = malloc(full * 4);
  float *work = malloc(sampler_work_floats(&shape, B) * sizeof(float));
  k_fill_normal(noise, full, 3, 3, 0);
  sampler_options opt = {steps, 1.0, 1, 0};
  sample_videos(tpdiff_cpu_backend(), &p, &shape, toy_model, &clip, &opt, noise, NULL, 0, B, out, work);
  /* the vanilla Euler loop, written out: t_i = 1 - i/n, x += (t_{i+1} - t_i) v */
  memcpy(ref, noise, full * 4);
  for (int i = 0; i < steps; i++) {
    double t = 0 + (1.0 - (double)i / steps) * (1 - 0), tn = 0 + (1.0 - (double)(i + 1) / steps) * (1 - 0);
    toy_model(&clip, ref, t, 0, NULL, B, pred);
    float c1 = (float)(tn - t);
    for (size_t j = 0; j < full; j++) ref[j] = 1.0f * ref[j] + c1 * pred[j];
  }
  check("K=1 sampler is the vanilla Euler loop bit for bit", memcmp(out, ref, full * 4) == 0, "value=%.3g (limit %.3g)",
        0.0, 0.0);

  /* guidance: v = null + w (cond - null), one step from t = 1 to 0 */
  int y[3] = {1, 2, 3};
  sampler_options g = {1, 3.0, 1, 0};
  sample_videos(tpdiff_cpu_backend(), &p, &shape, toy_model, &clip, &g, noise, y, 7, B, out, work);
  double worst = 0;
  for (int b = 0; b < B; b++)
    for (size_t j = 0; j < clip; j++) {
      double x0 = noise[b * clip + j], cond = 0.5 * x0 - 0.25 + y[b] / 8.0, null = 0.5 * x0 - 0.25 + 7 / 8.0;
      double want = x0 - (null + 3.0 * (cond - null));
      worst = fmax(worst, fabs(out[b * clip + j] - want));
    }
  check("guidance combines null + w (cond - null) with the null label", worst < 1e-5, "value=%.3g (limit %.3g)", worst,
        1e-5);
  free(noise);
  free(out);
  free(ref);
  free(pred);
  free(work);
}

int main(void) {
  int steps[3] = {1, 3, 10};
  for (int form = 0; form < 2; form++)
    for (int K = 1; K <= 4; K++)
      for (int s = 0; s < 3; s++) run_oracle((diffusion_form)form, K, steps[s], 2, 8, 4, 0);
  /* the law after renoise, on enough values to see a 1% error: 2^19 per stage */
  run_oracle(DIFFUSION_RF, 3, 2, 16, 8, 64, 1);
  run_oracle(DIFFUSION_VP, 4, 2, 16, 8, 64, 1);
  test_vanilla_and_guidance();
  test_summary("test_sampler", NULL);
  return test_exit_code();
}
