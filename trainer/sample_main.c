/* sample_main.c — `tpdiff-sample CKPT_OR_SAFETENSORS --out DIR [options]`: generates videos with the
 * model's own pyramid (model/sampler.h) from a checkpoint or an exported safetensors file, and writes
 * each as DIR/video-NN.gif and DIR/video-NN.png (all frames side by side), plus DIR/video-NN.npy (the
 * raw floats [C, F, H, W]) with --save-raw. With --noise the initial noise comes from a file, so the
 * same noise and weights give bit-identical videos on the CPU. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/make_dirs.h"
#include "data/npy.h"
#include "data/npy_read.h"
#include "data/video_write.h"
#include "model/sampler.h"
#include "trainer/device.h"
#include "trainer/trainer.h"
#include "trainer/weights_io.h"

/* tpdiff-sample's renoise (and drawn initial noise) stream family; training and its sample rounds
 * use others, so a seed never replays one of their draws. */
#define SAMPLE_CLI_STREAM ((uint64_t)0xA1 << 56)
#define MAX_COUNT 4096

static void usage(FILE *f) {
  fprintf(f,
          "usage: tpdiff-sample CKPT_OR_SAFETENSORS --out DIR [--count N] [--steps S] [--cfg G] [--seed S]\n"
          "                     [--labels L[,L...]] [--noise FILE.npy] [--save-raw] [--device cpu|cuda|auto]\n"
          "                     [--weights ema|raw]\n"
          "Generates N videos (default sample.count of the stored config) with S sampler steps per pyramid\n"
          "stage (default sample.steps), guidance G (default sample.cfg) and writes DIR/video-NN.gif and .png.\n"
          "  --labels   one class for every video, or one per video (class-conditional models; default i mod classes)\n"
          "  --noise    initial noise, float32 .npy of shape [N, C, T_0, H, W] (T_0 = the first stage's frames)\n"
          "  --save-raw also write each video's raw float output [C, T, H, W] as DIR/video-NN.npy\n"
          "  --seed     renoise (and initial noise without --noise) seed; default train.seed of the stored config\n"
          "  --weights  ema (default when present) or raw; --ema is --weights ema, --class C is --labels C\n");
}

typedef struct {
  const char *in, *out, *noise, *labels, *device, *weights;
  long count, steps, seed;
  double cfg;
  int has_count, has_steps, has_seed, has_cfg, save_raw;
} options;

static int parse_long(const char *opt, const char *text, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (errno || end == text || *end || v < lo || v > hi) {
    fprintf(stderr, "tpdiff-sample: %s '%s': expected an integer in [%ld, %ld]\n", opt, text, lo, hi);
    return -1;
  }
  *out = v;
  return 0;
}

static int parse_args(int argc, char **argv, options *o) {
  memset(o, 0, sizeof *o);
  o->device = "auto";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--save-raw") == 0) {
      o->save_raw = 1;
      continue;
    }
    if (strcmp(a, "--ema") == 0) { /* DESIGN.md's spelling of --weights ema */
      o->weights = "ema";
      continue;
    }
    if (a[0] != '-' || !a[1]) {
      if (o->in) {
        fprintf(stderr, "tpdiff-sample: one input file expected, got '%s' and '%s'\n", o->in, a);
        return -1;
      }
      o->in = a;
      continue;
    }
    static const char *const valued[] = {"--out",    "--count", "--steps",  "--cfg",     "--seed",
                                         "--labels", "--noise", "--device", "--weights", "--class", NULL};
    int known = 0;
    for (int k = 0; valued[k]; k++) known |= strcmp(a, valued[k]) == 0;
    if (!known) {
      fprintf(stderr, "tpdiff-sample: unknown option '%s' (see --help)\n", a);
      return -1;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "tpdiff-sample: %s needs a value\n", a);
      return -1;
    }
    const char *v = argv[++i];
    if (strcmp(a, "--out") == 0)
      o->out = v;
    else if (strcmp(a, "--labels") == 0 || strcmp(a, "--class") == 0) /* --class: DESIGN.md's spelling */
      o->labels = v;
    else if (strcmp(a, "--noise") == 0)
      o->noise = v;
    else if (strcmp(a, "--device") == 0)
      o->device = v;
    else if (strcmp(a, "--weights") == 0)
      o->weights = v;
    else if (strcmp(a, "--count") == 0) {
      if (parse_long(a, v, 1, MAX_COUNT, &o->count) != 0) return -1;
      o->has_count = 1;
    } else if (strcmp(a, "--steps") == 0) {
      if (parse_long(a, v, 1, 100000, &o->steps) != 0) return -1;
      o->has_steps = 1;
    } else if (strcmp(a, "--seed") == 0) {
      if (parse_long(a, v, 0, INT32_MAX, &o->seed) != 0) return -1;
      o->has_seed = 1;
    } else { /* --cfg */
      char *end;
      errno = 0;
      o->cfg = strtod(v, &end);
      if (errno || end == v || *end || !isfinite(o->cfg)) {
        fprintf(stderr, "tpdiff-sample: --cfg '%s': expected a finite number\n", v);
        return -1;
      }
      o->has_cfg = 1;
    }
  }
  if (!o->in || !o->out) {
    usage(stderr);
    return -1;
  }
  if (o->weights && strcmp(o->weights, "ema") != 0 && strcmp(o->weights, "raw") != 0) {
    fprintf(stderr, "tpdiff-sample: --weights '%s': expected ema or raw\n", o->weights);
    return -1;
  }
  if (strcmp(o->device, "cpu") != 0 && strcmp(o->device, "cuda") != 0 && strcmp(o->device, "auto") != 0) {
    fprintf(stderr, "tpdiff-sample: --device '%s': expected cpu, cuda or auto\n", o->device);
    return -1;
  }
  return 0;
}

/* --labels "3" (every video) or "1,4,2" (one per video), each in [0, classes). */
static int parse_labels(const char *text, int classes, int B, int *labels) {
  if (classes <= 0) {
    fprintf(stderr, "tpdiff-sample: --labels: the model is unconditional (model.classes = 0)\n");
    return -1;
  }
  int n = 0;
  const char *s = text;
  for (;;) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || v < 0 || v >= classes || (*end && *end != ',')) {
      fprintf(stderr, "tpdiff-sample: --labels '%s': entry %d is not a class in [0, %d)\n", text, n, classes);
      return -1;
    }
    if (n == B) {
      fprintf(stderr, "tpdiff-sample: --labels '%s': more labels than the %d videos\n", text, B);
      return -1;
    }
    labels[n++] = (int)v;
    if (!*end) break;
    s = end + 1;
  }
  if (n != 1 && n != B) {
    fprintf(stderr, "tpdiff-sample: --labels '%s': %d labels for %d videos (give one, or one per video)\n", text, n, B);
    return -1;
  }
  for (int b = n; b < B; b++) labels[b] = labels[0];
  return 0;
}

/* The --noise file, checked against [B, C, T_0, H, W]; B = 0 takes the count from the file. */
static int read_noise(const char *path, const dit_shape *s, int *B, npy_f32 *noise) {
  char err[1024];
  if (npy_read_f32(path, noise, err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-sample: --noise %s\n", err);
    return -1;
  }
  size_t want[5] = {(size_t)*B, (size_t)s->channels, (size_t)dit_stage_frames(s, 0), (size_t)s->height,
                    (size_t)s->width};
  int ok = noise->ndim == 5 && noise->shape[0] >= 1 && noise->shape[0] <= MAX_COUNT;
  if (ok && *B == 0) want[0] = noise->shape[0];
  for (int d = 0; d < 5 && ok; d++) ok = noise->shape[d] == want[d];
  if (!ok) {
    char got[160] = "", count[32] = "N";
    size_t used = 0;
    for (int d = 0; d < noise->ndim && used < sizeof got; d++)
      used += (size_t)snprintf(got + used, sizeof got - used, "%s%zu", d ? ", " : "", noise->shape[d]);
    if (*B) snprintf(count, sizeof count, "%d", *B);
    fprintf(stderr,
            "tpdiff-sample: --noise %s: shape [%s], expected [%s, %d, %d, %d, %d] (count%s, channels, the first "
            "stage's %d frames, height, width)\n",
            path, got, count, s->channels, dit_stage_frames(s, 0), s->height, s->width, *B ? " from --count" : "",
            dit_stage_frames(s, 0));
    free(noise->data);
    noise->data = NULL;
    return -1;
  }
  *B = (int)want[0];
  return 0;
}

/* Writes video b's files; 0, or -1 with err set. */
static int write_video(const char *dir, int b, const float *v, const dit_shape *s, int fps, int save_raw, char *err,
                       size_t err_size) {
  char path[TPDIFF_PATH_MAX + 64];
  video_write_options w = video_write_defaults();
  w.fps = fps;
  w.upscale = s->height < 64 ? 4 : 2;
  w.sheet_gap = 2;
  snprintf(path, sizeof path, "%s/video-%02d.gif", dir, b);
  if (video_write_gif(path, v, s->channels, s->frames, s->height, s->width, &w, err, err_size) != 0) return -1;
  snprintf(path, sizeof path, "%s/video-%02d.png", dir, b);
  if (video_write_png_sheet(path, v, s->channels, s->frames, s->height, s->width, &w, err, err_size) != 0) return -1;
  if (!save_raw) return 0;
  snprintf(path, sizeof path, "%s/video-%02d.npy", dir, b);
  size_t shape[4] = {(size_t)s->channels, (size_t)s->frames, (size_t)s->height, (size_t)s->width};
  return npy_write(path, NPY_F32, v, 4, shape, err, err_size);
}

int main(int argc, char **argv) {
  if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    usage(stdout);
    return 0;
  }
  options o;
  if (parse_args(argc, argv, &o) != 0) return 2;
  static tpdiff_config cfg;
  char err[1024], notice[1024];
  pyramid_schedule sched;
  if (weights_read_config(o.in, &cfg, err, sizeof err) != 0 ||
      trainer_schedule_from_config(&cfg, &sched, err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-sample: %s\n", err);
    return 2;
  }
  dit_shape s = trainer_shape_from_config(&cfg);
  int B = o.has_count ? (int)o.count : (o.noise ? 0 : cfg.sample_count);
  npy_f32 noise = {0};
  if (o.noise && read_noise(o.noise, &s, &B, &noise) != 0) return 2;
  int *labels = s.classes > 0 ? malloc(sizeof(int) * (size_t)B) : NULL;
  int early = 0; /* exit status of a refusal before the model exists */
  if (s.classes > 0 && !labels) {
    fprintf(stderr, "tpdiff-sample: out of memory\n");
    early = 1;
  }
  for (int b = 0; b < B && labels; b++) labels[b] = b % s.classes;
  if (!early && o.labels && parse_labels(o.labels, s.classes, B, labels) != 0) early = 2;
  const tpdiff_backend *be = early ? NULL : device_open("--device", o.device, notice, sizeof notice, err, sizeof err);
  if (!early && !be) {
    fprintf(stderr, "tpdiff-sample: %s\n", err);
    early = 2;
  }
  dit_model m;
  if (!early && dit_create(&m, &s, be, err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-sample: %s: %s\n", o.in, err);
    early = 1;
  }
  int want = !o.weights ? WEIGHTS_EMA_IF_PRESENT : strcmp(o.weights, "ema") == 0 ? WEIGHTS_EMA : WEIGHTS_RAW;
  if (!early && weights_load(o.in, &m, want, err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-sample: %s\n", err);
    dit_destroy(&m);
    early = 2;
  }
  if (early) {
    free(labels);
    free(noise.data);
    return early;
  }
  /* after the weights loaded, so a refused file gets its one line alone */
  if (notice[0]) fprintf(stderr, "tpdiff-sample: %s\n", notice);

  /* chunks as large as a training microbatch: that arena is known to fit the device */
  int max_clips = B < cfg.train_clips_per_microbatch ? B : cfg.train_clips_per_microbatch;
  if (max_clips < 1) max_clips = 1;
  int stage_clips[TPDIFF_MAX_STAGES];
  for (int k = 0; k < s.stages; k++) stage_clips[k] = max_clips;
  size_t clip = (size_t)s.channels * s.frames * s.height * s.width;
  dit_acts *acts = dit_acts_create(&m, stage_clips, DIT_RECOMPUTE_BLOCKS, err, sizeof err);
  float *t_buffer = malloc(sizeof(float) * (size_t)max_clips);
  float *work = be->alloc(sizeof(float) * sampler_work_floats(&s, B));
  float *videos_dev = be->alloc(sizeof(float) * clip * (size_t)B);
  float *noise_dev = noise.data ? be->alloc(sizeof(float) * noise.count) : NULL;
  float *videos = malloc(sizeof(float) * clip * (size_t)B);
  int rc = 1;
  if (!acts) {
    fprintf(stderr, "tpdiff-sample: %s\n", err);
    goto done;
  }
  if (!t_buffer || !work || !videos_dev || !videos || (noise.data && !noise_dev)) {
    fprintf(stderr, "tpdiff-sample: out of memory for %d videos\n", B);
    goto done;
  }
  if (noise_dev && be->copy_to_device(noise_dev, noise.data, sizeof(float) * noise.count) != 0) {
    fprintf(stderr, "tpdiff-sample: uploading the noise failed: %s\n", be->last_error());
    goto done;
  }
  dit_sampler_ctx ctx = {&m, acts, max_clips, t_buffer};
  sampler_options opt = {o.has_steps ? (int)o.steps : cfg.sample_steps, o.has_cfg ? o.cfg : cfg.sample_cfg,
                         (uint64_t)(o.has_seed ? o.seed : cfg.train_seed), SAMPLE_CLI_STREAM};
  if (sample_videos(be, &sched, &s, dit_sampler_model, &ctx, &opt, noise_dev, labels, s.classes, B, videos_dev, work) !=
          0 ||
      be->copy_to_host(videos, videos_dev, sizeof(float) * clip * (size_t)B) != 0) {
    const char *why = be->last_error();
    fprintf(stderr, "tpdiff-sample: the sampler failed%s%s\n", why[0] ? ": " : "", why);
    goto done;
  }
  if (make_dirs(o.out, "--out", err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-sample: %s\n", err);
    goto done;
  }
  long nonfinite = 0;
  for (int b = 0; b < B; b++) {
    const float *v = videos + clip * (size_t)b;
    for (size_t i = 0; i < clip; i++) nonfinite += !isfinite(v[i]);
    if (write_video(o.out, b, v, &s, cfg.sample_fps, o.save_raw, err, sizeof err) != 0) {
      fprintf(stderr, "tpdiff-sample: %s\n", err);
      goto done;
    }
  }
  printf("tpdiff-sample: %d videos of %d frames (%d steps per stage, %d stages, cfg %g, %s noise, %s) -> %s\n", B,
         s.frames, opt.steps, s.stages, opt.cfg, noise.data ? "given" : "drawn", be->name, o.out);
  if (nonfinite) {
    fprintf(stderr, "tpdiff-sample: %ld non-finite values in the sampled videos (%s)\n", nonfinite, o.out);
    goto done;
  }
  rc = 0;
done:
  free(t_buffer);
  if (work) be->free(work);
  if (videos_dev) be->free(videos_dev);
  if (noise_dev) be->free(noise_dev);
  free(videos);
  free(labels);
  free(noise.data);
  if (acts) dit_acts_destroy(acts);
  dit_destroy(&m);
  return rc;
}
