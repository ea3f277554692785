/* train_main.c — `tpdiff-train CONFIG [--section.key=value ...]`: single-process training. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "trainer/config.h"
#include "trainer/synthetic_clips.h"
#include "trainer/trainer.h"

/* Random stream families (Philox stream ids): family in the top byte, then step and microbatch. */
enum { STREAM_CLIP_CHOICE = 1, STREAM_NOISE = 2, STREAM_TIME = 3, STREAM_LABEL_DROP = 4 };
static uint64_t stream_id(int family, int step, int micro) {
  return ((uint64_t)family << 56) | ((uint64_t)(uint32_t)step << 16) | (uint64_t)(uint16_t)micro;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: tpdiff-train CONFIG [--section.key=value ...]\n"
          "       tpdiff-train --help-config   (every config key, its type, default and meaning)\n"
          "Trains the DiT of CONFIG (YAML) on one process; prints step, loss, grad norm, lr, time per step.\n");
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* mkdir -p */
static int make_dirs(const char *path, char *err, size_t err_size) {
  char buf[TPDIFF_PATH_MAX];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) goto fail;
    *p = '/';
  }
  if (mkdir(buf, 0755) != 0 && errno != EEXIST) goto fail;
  return 0;
fail:
  snprintf(err, err_size, "train.out: cannot create %s: %s", buf, strerror(errno));
  return -1;
}

static int write_resolved_config(const tpdiff_config *cfg, const char *dir, char *err, size_t err_size) {
  char path[TPDIFF_PATH_MAX + 32], tmp[TPDIFF_PATH_MAX + 40];
  snprintf(path, sizeof path, "%s/config.yaml", dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    snprintf(err, err_size, "%s: cannot create: %s", tmp, strerror(errno));
    return -1;
  }
  config_write_yaml(cfg, f);
  int ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
  ok = fclose(f) == 0 && ok;
  if (!ok || rename(tmp, path) != 0) {
    snprintf(err, err_size, "%s: write failed: %s", path, strerror(errno));
    unlink(tmp);
    return -1;
  }
  return 0;
}

/* Rejects settings this build cannot run yet, before anything is written. */
static int check_supported(const tpdiff_config *cfg, char *err, size_t err_size) {
  const char *o = cfg->source;
  if (cfg->pyramid_stages != 1) {
    snprintf(err, err_size, "%s: pyramid.stages: %d stages need the pyramid trainer, which this build lacks; use 1", o,
             cfg->pyramid_stages);
    return -1;
  }
  if (cfg->data_path[0]) {
    snprintf(err, err_size, "%s: data.path: reading shards is not available in this build; leave it empty", o);
    return -1;
  }
  if (strcmp(cfg->train_device, "cuda") == 0) {
    snprintf(err, err_size, "%s: train.device: cuda requested but this build has no CUDA backend", o);
    return -1;
  }
  if (strcmp(cfg->train_precision, "bf16") == 0) {
    snprintf(err, err_size, "%s: train.precision: bf16 runs on the GPU only; the CPU trains in fp32", o);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(argv[1], "--help-config") == 0) {
    config_write_help(stdout);
    return 0;
  }
  static tpdiff_config cfg;
  char err[TPDIFF_CONFIG_ERROR_MAX];
  if (config_load(&cfg, argv[1], argc - 2, argv + 2, err, sizeof err) != 0 ||
      check_supported(&cfg, err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-train: %s\n", err);
    return 2;
  }
  if (strcmp(cfg.train_device, "auto") == 0)
    fprintf(stderr, "tpdiff-train: train.device=auto: no CUDA backend in this build, training on the CPU\n");

  printf("# tpdiff-train: resolved config (%s)\n", cfg.source);
  config_write_yaml(&cfg, stdout);
  fflush(stdout);

  if (make_dirs(cfg.train_out, err, sizeof err) != 0 || write_resolved_config(&cfg, cfg.train_out, err, sizeof err)) {
    fprintf(stderr, "tpdiff-train: %s\n", err);
    return 1;
  }

  static trainer tr;
  if (trainer_create(&tr, &cfg, err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-train: %s\n", err);
    return 1;
  }
  int B = cfg.train_clips_per_microbatch, micro_count = cfg.train_microbatches;
  int stage = cfg.pyramid_stages - 1;
  synthetic_clips pool;
  int pool_size = 8 * B > 64 ? 8 * B : 64;
  if (synthetic_clips_create(&pool, pool_size, cfg.data_channels, cfg.data_frames, cfg.data_height, cfg.data_width,
                             cfg.model_classes, (uint64_t)cfg.train_seed) != 0) {
    fprintf(stderr, "tpdiff-train: out of memory for the synthetic clips\n");
    return 1;
  }
  size_t clip = tr.clip_elems;
  float *x0 = malloc(sizeof(float) * clip * (size_t)B * micro_count);
  float *eps = malloc(sizeof(float) * clip * (size_t)B * micro_count);
  float *t = malloc(sizeof(float) * (size_t)B * micro_count);
  float *u = malloc(sizeof(float) * (size_t)B);
  int *y = malloc(sizeof(int) * (size_t)B * micro_count);
  rf_microbatch *mbs = calloc((size_t)micro_count, sizeof *mbs);
  if (!x0 || !eps || !t || !u || !y || !mbs) {
    fprintf(stderr, "tpdiff-train: out of memory for the batch\n");
    return 1;
  }
  printf("# model: %zu parameters, activation arena %.1f MiB, %d threads\n", tr.model.num_floats,
         dit_acts_allocated_bytes(tr.acts) / 1048576.0, k_num_threads());
  printf("%6s %10s %10s %10s %10s %12s\n", "step", "loss", "grad_norm", "lr", "ms/step", "tokens/s");
  fflush(stdout);

  uint64_t seed = (uint64_t)cfg.train_seed;
  double tokens_per_step = (double)B * micro_count * dit_stage_tokens(&tr.model.shape, stage);
  double window_time = 0;
  int window_steps = 0, status = 0;
  for (int step = 1; step <= cfg.train_steps; step++) {
    for (int mi = 0; mi < micro_count; mi++) {
      float *xb = x0 + clip * (size_t)B * mi, *eb = eps + clip * (size_t)B * mi, *tb = t + (size_t)B * mi;
      int *yb = y + (size_t)B * mi;
      k_fill_uniform(u, (size_t)B, seed, stream_id(STREAM_CLIP_CHOICE, step, mi), 0);
      for (int b = 0; b < B; b++) {
        int idx = (int)(u[b] * (float)pool.count) % pool.count;
        memcpy(xb + clip * (size_t)b, pool.pixels + clip * (size_t)idx, clip * sizeof(float));
        yb[b] = pool.labels[idx];
      }
      k_fill_normal(eb, clip * (size_t)B, seed, stream_id(STREAM_NOISE, step, mi), 0);
      k_fill_uniform(tb, (size_t)B, seed, stream_id(STREAM_TIME, step, mi), 0);
      if (cfg.model_classes > 0) {
        /* label dropout to the null class trains the unconditional branch for guidance */
        k_fill_uniform(u, (size_t)B, seed, stream_id(STREAM_LABEL_DROP, step, mi), 0);
        for (int b = 0; b < B; b++)
          if (u[b] < cfg.model_class_dropout) yb[b] = cfg.model_classes;
      }
      mbs[mi] = (rf_microbatch){xb, eb, tb, cfg.model_classes > 0 ? yb : NULL, B, stage};
    }
    double t0 = now_seconds();
    step_stats st = trainer_step(&tr, mbs, micro_count);
    double dt = now_seconds() - t0;
    window_time += dt;
    window_steps++;
    if (st.skipped && tr.nonfinite_in_a_row >= TRAIN_MAX_NONFINITE_IN_A_ROW) {
      fprintf(stderr, "tpdiff-train: step %d: %ld non-finite steps in a row (loss %g, grad norm %g); stopping\n",
              step, tr.nonfinite_in_a_row, st.loss, st.grad_norm);
      status = 1;
      break;
    }
    if (step % cfg.train_log_every == 0 || step == cfg.train_steps) {
      double ms = 1000.0 * window_time / window_steps;
      printf("%6d %10.5f %10.4f %10.3e %10.1f %12.0f%s\n", step, st.loss, st.grad_norm, st.lr, ms,
             tokens_per_step / (ms / 1000.0), st.skipped ? "  (skipped: non-finite)" : "");
      fflush(stdout);
      window_time = 0;
      window_steps = 0;
    }
  }
  if (tr.skipped_steps) printf("# %ld steps skipped for non-finite loss or gradient\n", tr.skipped_steps);
  free(x0);
  free(eps);
  free(t);
  free(u);
  free(y);
  free(mbs);
  synthetic_clips_destroy(&pool);
  trainer_destroy(&tr);
  return status;
}
