/* sample_round.c — sample videos from the training state and write them as GIF and PNG. */
#include "trainer/sample_round.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "data/npy.h"
#include "data/video_write.h"
#include "model/sampler.h"

/* Sampling rounds use their own stream family, so they never reuse a training draw. */
#define SAMPLE_STREAM_FAMILY ((uint64_t)0xA0 << 56)

static int make_dir(const char *path, char *err, size_t err_size) {
  if (mkdir(path, 0755) != 0 && errno != EEXIST) {
    snprintf(err, err_size, "%s: cannot create: %s", path, strerror(errno));
    return -1;
  }
  return 0;
}

int sample_round(trainer *tr, long step, char *err, size_t err_size) {
  const tpdiff_config *cfg = &tr->cfg;
  const dit_shape *s = &tr->model.shape;
  int B = cfg->sample_count, K = s->stages;
  size_t clip = (size_t)s->channels * s->frames * s->height * s->width;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);

  /* the EMA weights are the ones to look at; a shallow copy of the model points at them */
  const tpdiff_backend *be = tr->be;
  dit_model view = tr->model;
  if (tr->opt.ema) view.weights = tr->opt.ema;
  int max_clips = batch_clips_for_stage(cfg, K - 1);
  float *t_buffer = malloc(sizeof(float) * (size_t)max_clips);
  /* the sampler's state and its output on the backend; the videos come to the host to be written */
  float *work = be->alloc(sizeof(float) * sampler_work_floats(s, B));
  float *videos_dev = be->alloc(sizeof(float) * clip * (size_t)B);
  float *videos = malloc(sizeof(float) * clip * (size_t)B);
  int *labels = s->classes > 0 ? malloc(sizeof(int) * (size_t)B) : NULL;
  int status = -1;
  if (!t_buffer || !work || !videos_dev || !videos || (s->classes > 0 && !labels)) {
    snprintf(err, err_size, "out of memory for %d sample videos", B);
    goto done;
  }
  for (int b = 0; b < B && labels; b++) labels[b] = b % s->classes;
  dit_sampler_ctx ctx = {&view, tr->acts, max_clips, t_buffer};
  sampler_options opt = {cfg->sample_steps, cfg->sample_cfg, (uint64_t)cfg->train_seed,
                         SAMPLE_STREAM_FAMILY | ((uint64_t)step << 8)};
  if (sample_videos(be, &tr->schedule, s, dit_sampler_model, &ctx, &opt, NULL, labels, s->classes, B, videos_dev,
                    work) != 0 ||
      be->copy_to_host(videos, videos_dev, sizeof(float) * clip * (size_t)B) != 0) {
    const char *why = be->last_error();
    snprintf(err, err_size, "the sampler failed%s%s", why[0] ? ": " : "", why);
    goto done;
  }

  char dir[TPDIFF_PATH_MAX + 64], path[TPDIFF_PATH_MAX + 96];
  snprintf(dir, sizeof dir, "%s/samples", cfg->train_out);
  if (make_dir(dir, err, err_size) != 0) goto done;
  snprintf(dir, sizeof dir, "%s/samples/step-%07ld", cfg->train_out, step);
  if (make_dir(dir, err, err_size) != 0) goto done;
  video_write_options wopt = video_write_defaults();
  wopt.fps = cfg->sample_fps;
  wopt.upscale = s->height < 64 ? 4 : 2;
  wopt.sheet_gap = 2;
  long nonfinite = 0;
  for (int b = 0; b < B; b++) {
    const float *v = videos + clip * (size_t)b;
    for (size_t i = 0; i < clip; i++) nonfinite += !isfinite(v[i]);
    snprintf(path, sizeof path, "%s/video-%02d.gif", dir, b);
    if (video_write_gif(path, v, s->channels, s->frames, s->height, s->width, &wopt, err, err_size) != 0) goto done;
    snprintf(path, sizeof path, "%s/video-%02d.png", dir, b);
    if (video_write_png_sheet(path, v, s->channels, s->frames, s->height, s->width, &wopt, err, err_size) != 0)
      goto done;
    snprintf(path, sizeof path, "%s/video-%02d.npy", dir, b); /* the raw floats, for checks and reuse */
    size_t shape[4] = {(size_t)s->channels, (size_t)s->frames, (size_t)s->height, (size_t)s->width};
    if (npy_write(path, NPY_F32, v, 4, shape, err, err_size) != 0) goto done;
    snprintf(path, sizeof path, "%s/video-%02d", dir, b);
    if (video_write_png_frames(path, v, s->channels, s->frames, s->height, s->width, &wopt, err, err_size) != 0)
      goto done;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  printf("# samples: %d videos of %d frames (%d step%s per stage%s) in %.1f s -> %s\n", B, s->frames,
         cfg->sample_steps, cfg->sample_steps == 1 ? "" : "s", tr->opt.ema ? ", EMA weights" : "", secs, dir);
  fflush(stdout);
  if (nonfinite) {
    snprintf(err, err_size, "%ld non-finite values in the sampled videos (%s)", nonfinite, dir);
    goto done;
  }
  status = 0;
done:
  free(t_buffer);
  be->free(work);
  be->free(videos_dev);
  free(videos);
  free(labels);
  return status;
}
