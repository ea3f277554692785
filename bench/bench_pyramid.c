/* bench_pyramid.c — what the temporal pyramid saves, measured side by side in one run on one model:
 *   (a) training time per clip, K = 3 (sync and balanced) against K = 1;
 *   (b) sampling latency, K = 3 with n+n+n steps against K = 1 with 3n steps;
 * each next to the FLOP-model ratio of MATH.md section 8.
 *
 * usage: bench_pyramid CONFIG [--reps=R] [--sample-steps=n] [--section.key=value ...]
 * Each stage is timed on its own (R optimizer steps of one microbatch at that stage, after one
 * warm-up step) and combined with the stage probabilities 1/K, so the random stage draw adds no
 * noise to the comparison. It runs where train.device and train.precision say (the CPU by default
 * in configs/demo.yaml; --train.device=cuda --train.precision=bf16 on a GPU), every timing ended by
 * a synchronize. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "model/sampler.h"
#include "trainer/batch.h"
#include "trainer/clip_source.h"
#include "trainer/config.h"
#include "trainer/device.h"
#include "trainer/trainer.h"

static const tpdiff_backend *be; /* train.device's, in train.precision */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
  batch_builder *bb;
  long step;
  int stage;
} fixed_stage;

static int next_fixed(void *ctx, int micro, stage_microbatch *out, char *err, size_t err_size) {
  fixed_stage *f = ctx;
  return batch_build_stage(f->bb, f->step, micro, f->stage, out, err, err_size);
}

static void die(const char *msg) {
  fprintf(stderr, "bench_pyramid: %s\n", msg);
  exit(1);
}

/* Seconds per optimizer step of one microbatch at each stage; clips[k] gets B_k. */
static void time_stages(const tpdiff_config *cfg, int reps, double *seconds, int *clips) {
  static trainer tr;
  char err[512];
  clip_source src;
  batch_builder bb;
  if (trainer_create(&tr, cfg, be, err, sizeof err) != 0 || clip_source_open(&src, cfg, err, sizeof err) != 0 ||
      batch_builder_create(&bb, cfg, &tr.schedule, src, 0, 1, err, sizeof err) != 0)
    die(err);
  for (int k = 0; k < cfg->pyramid_stages; k++) {
    fixed_stage f = {&bb, 1, k};
    step_stats st = trainer_step(&tr, 1, next_fixed, &f); /* warm-up: first touch of the arena */
    if (st.failed) die(st.error);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
      f.step = 2 + r;
      double t0 = now_s();
      st = trainer_step(&tr, 1, next_fixed, &f);
      if (st.failed || be->synchronize() != 0) die(st.failed ? st.error : be->last_error());
      double dt = now_s() - t0;
      best = dt < best ? dt : best;
    }
    seconds[k] = best;
    clips[k] = batch_clips_for_stage(cfg, k);
  }
  batch_builder_destroy(&bb);
  clip_source_close(&src);
  trainer_destroy(&tr);
}

static double time_sampling(const tpdiff_config *cfg, int steps_per_stage, int videos) {
  static trainer tr;
  char err[512];
  if (trainer_create(&tr, cfg, be, err, sizeof err) != 0) die(err);
  if (dit_init_random(&tr.model, 3) != 0) die("out of memory initialising the weights");
  const dit_shape *s = &tr.model.shape;
  int max_clips = batch_clips_for_stage(cfg, s->stages - 1);
  float *tbuf = malloc(sizeof(float) * (size_t)max_clips); /* host: dit_forward's t */
  float *work = be->alloc(sizeof(float) * sampler_work_floats(s, videos));
  float *out = be->alloc(sizeof(float) * (size_t)videos * s->channels * s->frames * s->height * s->width);
  if (!tbuf || !work || !out) die("out of memory for the sampler's buffers");
  dit_sampler_ctx ctx = {&tr.model, tr.acts, max_clips, tbuf};
  sampler_options opt = {steps_per_stage, 1.0, 1, 0};
  double best = 1e30;
  for (int r = 0; r < 2; r++) {
    double t0 = now_s();
    if (sample_videos(tr.be, &tr.schedule, s, dit_sampler_model, &ctx, &opt, NULL, NULL, 0, videos, out, work) != 0 ||
        be->synchronize() != 0)
      die("sampling failed");
    double dt = now_s() - t0;
    best = dt < best ? dt : best;
  }
  free(tbuf);
  be->free(work);
  be->free(out);
  trainer_destroy(&tr);
  return best;
}

/* Attention share x of the forward FLOPs at full rate (MATH.md section 8's cost model). */
static double attention_share(const tpdiff_config *cfg) {
  double N = (double)cfg->data_frames * (cfg->data_height / cfg->model_patch) * (cfg->data_width / cfg->model_patch);
  double D = cfg->model_dim, P = (double)cfg->data_channels * cfg->model_patch * cfg->model_patch;
  double attn = 4 * N * N * D, linear = 24 * N * D * D + 4 * N * P * D / cfg->model_depth;
  return attn / (attn + linear);
}

int main(int argc, char **argv) {
  if (argc < 2) die("usage: bench_pyramid CONFIG [--reps=R] [--sample-steps=n] [--section.key=value ...]");
  int reps = 3, n = 10;
  char *over[64];
  int nover = 0;
  for (int i = 2; i < argc; i++) {
    if (sscanf(argv[i], "--reps=%d", &reps) == 1 || sscanf(argv[i], "--sample-steps=%d", &n) == 1) continue;
    if (nover < 60) over[nover++] = argv[i];
  }
  char err[512];
  static tpdiff_config base, k1, sync3, bal3;
  if (config_load(&base, argv[1], nover, over, err, sizeof err) != 0) die(err);
  k1 = base;
  k1.pyramid_stages = 1;
  k1.pyramid_cuts.count = 0;
  k1.pyramid_stage_weights.count = 0;
  sync3 = base;
  sync3.pyramid_stages = 3;
  sync3.pyramid_cuts.count = 0;
  sync3.pyramid_stage_weights.count = 0;
  snprintf(sync3.pyramid_schedule, sizeof sync3.pyramid_schedule, "sync");
  bal3 = sync3;
  snprintf(bal3.pyramid_schedule, sizeof bal3.pyramid_schedule, "balanced");
  if (config_validate(&k1, "K=1", err, sizeof err) || config_validate(&sync3, "K=3", err, sizeof err)) die(err);
  char notice[512] = "";
  be = device_open("train.device", base.train_device, notice, sizeof notice, err, sizeof err);
  if (!be) die(err);
  if (notice[0]) fprintf(stderr, "bench_pyramid: %s\n", notice);
  if (be->set_precision(strcmp(base.train_precision, "bf16") == 0 ? TPDIFF_BF16 : TPDIFF_FP32, err, sizeof err) != 0)
    die(err);

  double x = attention_share(&base);
  double t1[4], ts[4], tb[4];
  int c1[4], cs[4], cb[4];
  time_stages(&k1, reps, t1, c1);
  time_stages(&sync3, reps, ts, cs);
  time_stages(&bal3, reps, tb, cb);
  double per_clip_1 = t1[0] / c1[0];
  /* equal time per stage: expected step time and expected clips per step, then their ratio */
  double sync_time = (ts[0] + ts[1] + ts[2]) / 3, sync_clips = (cs[0] + cs[1] + cs[2]) / 3.0;
  double bal_time = (tb[0] + tb[1] + tb[2]) / 3, bal_clips = (cb[0] + cb[1] + cb[2]) / 3.0;
  double rho = pyramid_cost_ratio(3, x);
  /* balanced FLOP model: per-clip cost c_k weighted by the clips B_k = B m_k of each stage */
  double ck[3], num = 0, den = 0;
  for (int k = 0; k < 3; k++) {
    double f = 1.0 / (1 << (2 - k));
    ck[k] = (1 - x) * f + x * f * f;
    num += cb[k] * ck[k];
    den += cb[k];
  }
  if (strcmp(be->name, "cpu") == 0)
    printf("# bench-pyramid: %s, cpu, %d threads, attention share of FLOPs x = %.3f, best of %d reps\n", argv[1],
           k_num_threads(), x, reps);
  else
    printf("# bench-pyramid: %s, %s on %s, %s, attention share of FLOPs x = %.3f, best of %d reps\n", argv[1], be->name,
           be->device, base.train_precision, x, reps);
  printf("# (a) training time per clip (one optimizer step of one microbatch per stage, stages equally likely)\n");
  printf("%-22s %12s %12s %12s %14s\n", "variant", "ms/step", "clips/step", "ms/clip", "ratio vs K=1");
  printf("%-22s %12.1f %12d %12.2f %14s\n", "K=1", 1e3 * t1[0], c1[0], 1e3 * per_clip_1, "1");
  for (int k = 0; k < 3; k++)
    printf("%-22s %12.1f %12d %12.2f %14.3f\n", k == 0 ? "K=3 sync   stage 0" : k == 1 ? "           stage 1" : "           stage 2",
           1e3 * ts[k], cs[k], 1e3 * ts[k] / cs[k], ts[k] / cs[k] / per_clip_1);
  printf("%-22s %12.1f %12.1f %12.2f %14.3f   (FLOP model %.3f)\n", "K=3 sync   expected", 1e3 * sync_time, sync_clips,
         1e3 * sync_time / sync_clips, sync_time / sync_clips / per_clip_1, rho);
  for (int k = 0; k < 3; k++)
    printf("%-22s %12.1f %12d %12.2f %14.3f\n", k == 0 ? "K=3 balanced stage 0" : k == 1 ? "           stage 1" : "           stage 2",
           1e3 * tb[k], cb[k], 1e3 * tb[k] / cb[k], tb[k] / cb[k] / per_clip_1);
  printf("%-22s %12.1f %12.1f %12.2f %14.3f   (FLOP model %.3f)\n", "K=3 balanced expected", 1e3 * bal_time, bal_clips,
         1e3 * bal_time / bal_clips, bal_time / bal_clips / per_clip_1, num / den);

  int videos = base.sample_count;
  double s1, s3;
  k1.sample_steps = 3 * n;
  s1 = time_sampling(&k1, 3 * n, videos);
  s3 = time_sampling(&sync3, n, videos);
  printf("# (b) sampling latency, %d videos\n", videos);
  printf("%-22s %12s %12s\n", "variant", "seconds", "speed-up");
  printf("%-22s %12.2f %12s\n", "K=1, 3n steps", s1, "1");
  printf("%-22s %12.2f %12.2fx   (FLOP model %.2fx)\n", "K=3, n+n+n steps", s3, s1 / s3, 1 / rho);
  printf("# n = %d\n", n);
  return 0;
}
