/* parity_dump.c — writes a model's random weights, inputs, outputs, gradients and a short
 * training run as .npy files, for tests/ref/check_parity.py to compare against PyTorch.
 *
 * usage: parity_dump CONFIG OUTDIR [--stage=K] [--clips=B] [--seed=S] [--train-steps=N]
 *                    [--section.key=value ...] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/npy.h"
#include "kernels/kernels.h"
#include "model/dit.h"
#include "trainer/config.h"
#include "trainer/trainer.h"

static char err[1024];

static void die(const char *what) {
  fprintf(stderr, "parity_dump: %s\n", what);
  exit(2);
}

static void mkdir_or_die(const char *path) {
  if (mkdir(path, 0755) != 0 && errno != EEXIST) {
    snprintf(err, sizeof err, "%s: %s", path, strerror(errno));
    die(err);
  }
}

static void save(const char *dir, const char *name, npy_dtype dt, const void *data, int ndim, const size_t *shape) {
  char path[2048];
  snprintf(path, sizeof path, "%s/%s.npy", dir, name);
  if (npy_write(path, dt, data, ndim, shape, err, sizeof err) != 0) die(err);
}

/* The training check feeds the same fixed microbatch to every step. */
static int fixed_microbatch(void *ctx, int micro, stage_microbatch *out, char *error, size_t error_size) {
  (void)micro;
  (void)error;
  (void)error_size;
  *out = *(const stage_microbatch *)ctx;
  return 0;
}

static void save_params(const dit_model *m, const float *buf, const char *dir) {
  mkdir_or_die(dir);
  for (int i = 0; i < m->num_params; i++) {
    const dit_param *p = &m->params[i];
    size_t shape[2] = {(size_t)p->shape[0], (size_t)p->shape[1]};
    save(dir, p->name, NPY_F32, buf + p->offset, p->ndim, shape);
  }
}

int main(int argc, char **argv) {
  if (argc < 3) die("usage: parity_dump CONFIG OUTDIR [--stage=K] [--clips=B] [--seed=S] [--train-steps=N] [overrides]");
  const char *outdir = argv[2];
  int stage = -1, clips = -1, train_steps = 10;
  unsigned long seed = 1234;
  char *overrides[64];
  int noverrides = 0;
  for (int i = 3; i < argc; i++) {
    if (sscanf(argv[i], "--stage=%d", &stage) == 1 || sscanf(argv[i], "--clips=%d", &clips) == 1 ||
        sscanf(argv[i], "--seed=%lu", &seed) == 1 || sscanf(argv[i], "--train-steps=%d", &train_steps) == 1)
      continue;
    if (noverrides < 64) overrides[noverrides++] = argv[i];
  }
  static tpdiff_config cfg;
  if (config_load(&cfg, argv[1], noverrides, overrides, err, sizeof err) != 0) die(err);
  if (stage < 0) stage = cfg.pyramid_stages - 1;
  if (clips < 0) clips = cfg.train_clips_per_microbatch;
  if (stage >= cfg.pyramid_stages) die("--stage out of range");
  cfg.train_clips_per_microbatch = clips;

  static trainer tr;
  if (trainer_create(&tr, &cfg, tpdiff_cpu_backend(), err, sizeof err) != 0) die(err);
  dit_model *m = &tr.model;
  const dit_shape *s = &m->shape;
  float *init = malloc(m->num_floats * sizeof(float));
  if (!init || dit_init_random(m, seed) != 0 || dit_weights_to_host(m, init) != 0) die("initialising the weights");

  int T = dit_stage_frames(s, stage);
  size_t clip = (size_t)s->channels * T * s->height * s->width, n = clip * (size_t)clips;
  size_t vshape[5] = {(size_t)clips, (size_t)s->channels, (size_t)T, (size_t)s->height, (size_t)s->width};
  size_t bshape[1] = {(size_t)clips};
  float *x = malloc(n * sizeof(float)), *target = malloc(n * sizeof(float)), *d_out = malloc(n * sizeof(float));
  float *t = malloc((size_t)clips * sizeof(float));
  int *y = malloc((size_t)clips * sizeof(int));
  k_fill_normal(x, n, seed, 1, 0);
  k_fill_normal(target, n, seed, 2, 0);
  k_fill_uniform(t, (size_t)clips, seed, 3, 0);
  for (int b = 0; b < clips; b++) t[b] = (float)pyramid_time(&tr.schedule, stage, t[b]); /* inside the window */
  for (int b = 0; b < clips; b++) y[b] = s->classes > 0 ? b % (s->classes + 1) : 0; /* includes the null class */
  const int *labels = s->classes > 0 ? y : NULL;

  mkdir_or_die(outdir);
  char path[2048];
  snprintf(path, sizeof path, "%s/meta.json", outdir);
  FILE *f = fopen(path, "w");
  if (!f) die(path);
  fprintf(f,
          "{\"depth\": %d, \"dim\": %d, \"heads\": %d, \"patch\": %d, \"classes\": %d, \"channels\": %d, "
          "\"frames\": %d, \"height\": %d, \"width\": %d, \"stages\": %d, \"stage\": %d, \"clips\": %d, "
          "\"lr\": %.17g, \"beta1\": %.9g, \"beta2\": %.9g, \"adam_eps\": %.9g, \"weight_decay\": %.17g, "
          "\"grad_clip\": %.17g, \"warmup\": %d, \"train_steps\": %d, \"form\": \"%s\", \"cuts\": [",
          s->depth, s->dim, s->heads, s->patch, s->classes, s->channels, s->frames, s->height, s->width, s->stages,
          stage, clips, cfg.train_lr, ADAMW_BETA1, ADAMW_BETA2, ADAMW_EPS, cfg.train_weight_decay,
          cfg.train_grad_clip, cfg.train_warmup, train_steps, cfg.diffusion_form);
  for (int i = 0; i < cfg.pyramid_cuts.count; i++) fprintf(f, "%s%.17g", i ? ", " : "", cfg.pyramid_cuts.values[i]);
  fprintf(f, "]}\n");
  fclose(f);

  char sub[2048];
  snprintf(sub, sizeof sub, "%s/params", outdir);
  save_params(m, init, sub);
  save(outdir, "x", NPY_F32, x, 5, vshape);
  save(outdir, "t", NPY_F32, t, 1, bshape);
  if (labels) save(outdir, "y", NPY_I32, y, 1, bshape);
  save(outdir, "target", NPY_F32, target, 5, vshape);

  /* the CPU backend's memory is host memory: x, out, d_out and the gradients are read in place */
  m->be->fill_zero(m->grads, m->num_floats * sizeof(float));
  const float *out = dit_forward(m, tr.acts, x, t, labels, stage, clips);
  double loss = k_mse_loss(d_out, out, target, n, 1.0f);
  save(outdir, "out", NPY_F32, out, 5, vshape);
  size_t one[1] = {1};
  save(outdir, "loss", NPY_F64, &loss, 1, one);
  dit_backward(m, tr.acts, d_out);
  snprintf(sub, sizeof sub, "%s/grads", outdir);
  save_params(m, m->grads, sub);

  if (train_steps > 0) {
    snprintf(sub, sizeof sub, "%s/train", outdir);
    mkdir_or_die(sub);
    float *x0 = malloc(n * sizeof(float)), *eps = malloc(n * sizeof(float));
    k_fill_normal(x0, n, seed, 4, 0);
    k_fill_normal(eps, n, seed, 5, 0);
    save(sub, "x0", NPY_F32, x0, 5, vshape);
    save(sub, "noise", NPY_F32, eps, 5, vshape);
    save(sub, "t", NPY_F32, t, 1, bshape);
    if (labels) save(sub, "y", NPY_I32, y, 1, bshape);
    if (dit_weights_from_host(m, init) != 0) die("restoring the weights");
    stage_microbatch mb = {x0, eps, t, labels, clips, stage};
    double *losses = malloc(sizeof(double) * (size_t)train_steps), *norms = malloc(sizeof(double) * (size_t)train_steps);
    for (int i = 0; i < train_steps; i++) {
      step_stats st = trainer_step(&tr, 1, fixed_microbatch, &mb);
      losses[i] = st.loss;
      norms[i] = st.grad_norm;
    }
    size_t ts[1] = {(size_t)train_steps};
    save(sub, "losses", NPY_F64, losses, 1, ts);
    save(sub, "grad_norms", NPY_F64, norms, 1, ts);
    free(x0);
    free(eps);
    free(losses);
    free(norms);
  }
  printf("parity_dump: wrote %s (%zu parameters, stage %d, %d clips)\n", outdir, m->num_floats, stage, clips);
  free(init);
  free(x);
  free(target);
  free(d_out);
  free(t);
  free(y);
  trainer_destroy(&tr);
  return 0;
}
