/* forward_dump.c — the C side of the export checks (tests/export/export_checks.sh).
 *
 *   forward_dump random CONFIG OUT.safetensors [--seed=S] [--section.key=value ...]
 *       a model of CONFIG with fully random weights (dit_init_random), written as a safetensors file
 *       the way tpdiff-export writes one (raw weights, fp32)
 *   forward_dump forward WEIGHTS OUTDIR [--stage=K] [--clips=B] [--seed=S]
 *       loads WEIGHTS (a checkpoint or a safetensors file) with weights_load into a CPU model built
 *       from the file's own config, runs one forward on seeded inputs and writes x.npy, t.npy, y.npy
 *       (class-conditional models), out.npy and meta.json (stage) for tests/export/check_export.py */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/npy.h"
#include "kernels/kernels.h"
#include "model/dit.h"
#include "model/pyramid.h"
#include "trainer/trainer.h"
#include "trainer/weights_io.h"

static char err[1024];

static void die(const char *what) {
  fprintf(stderr, "forward_dump: %s\n", what);
  exit(2);
}

static void save(const char *dir, const char *name, npy_dtype dt, const void *data, int ndim, const size_t *shape) {
  char path[2048];
  snprintf(path, sizeof path, "%s/%s.npy", dir, name);
  if (npy_write(path, dt, data, ndim, shape, err, sizeof err) != 0) die(err);
}

static int random_weights(int argc, char **argv) {
  if (argc < 4) die("usage: forward_dump random CONFIG OUT.safetensors [--seed=S] [overrides]");
  unsigned long seed = 1234;
  char *overrides[64];
  int n = 0;
  for (int i = 4; i < argc; i++)
    if (sscanf(argv[i], "--seed=%lu", &seed) != 1 && n < 64) overrides[n++] = argv[i];
  static tpdiff_config cfg;
  if (config_load(&cfg, argv[2], n, overrides, err, sizeof err) != 0) die(err);
  dit_shape s = trainer_shape_from_config(&cfg);
  dit_model m;
  if (dit_create(&m, &s, tpdiff_cpu_backend(), err, sizeof err) != 0) die(err);
  if (dit_init_random(&m, seed) != 0) die("initialising the weights");
  if (weights_write_safetensors(argv[3], &m, m.weights, &cfg, 0, -1, ST_F32, err, sizeof err) != 0) die(err);
  printf("forward_dump: wrote %s (%zu random parameters, seed %lu)\n", argv[3], m.num_floats, seed);
  dit_destroy(&m);
  return 0;
}

static int forward(int argc, char **argv) {
  if (argc < 4) die("usage: forward_dump forward WEIGHTS OUTDIR [--stage=K] [--clips=B] [--seed=S]");
  int stage = -1, clips = 2;
  unsigned long seed = 99;
  for (int i = 4; i < argc; i++)
    if (sscanf(argv[i], "--stage=%d", &stage) != 1 && sscanf(argv[i], "--clips=%d", &clips) != 1 &&
        sscanf(argv[i], "--seed=%lu", &seed) != 1)
      die("unknown option");
  static tpdiff_config cfg;
  pyramid_schedule sched;
  if (weights_read_config(argv[2], &cfg, err, sizeof err) != 0 ||
      trainer_schedule_from_config(&cfg, &sched, err, sizeof err) != 0)
    die(err);
  dit_shape s = trainer_shape_from_config(&cfg);
  if (stage < 0) stage = s.stages - 1;
  if (stage >= s.stages || clips < 1) die("--stage or --clips out of range");
  dit_model m;
  if (dit_create(&m, &s, tpdiff_cpu_backend(), err, sizeof err) != 0) die(err);
  if (weights_load(argv[2], &m, WEIGHTS_EMA_IF_PRESENT, err, sizeof err) != 0) die(err);
  int max_clips[TPDIFF_MAX_STAGES];
  for (int k = 0; k < s.stages; k++) max_clips[k] = clips;
  dit_acts *acts = dit_acts_create(&m, max_clips, DIT_RECOMPUTE_NONE, err, sizeof err);
  if (!acts) die(err);

  int T = dit_stage_frames(&s, stage);
  size_t n = (size_t)clips * s.channels * T * s.height * s.width;
  float *x = malloc(n * sizeof(float)), *t = malloc((size_t)clips * sizeof(float));
  int *y = malloc((size_t)clips * sizeof(int));
  if (!x || !t || !y) die("out of memory");
  k_fill_normal(x, n, seed, 1, 0);
  k_fill_uniform(t, (size_t)clips, seed, 2, 0);
  for (int b = 0; b < clips; b++) t[b] = (float)pyramid_time(&sched, stage, t[b]);
  for (int b = 0; b < clips; b++) y[b] = s.classes > 0 ? b % (s.classes + 1) : 0; /* includes the null class */
  const float *out = dit_forward(&m, acts, x, t, s.classes > 0 ? y : NULL, stage, clips);

  if (mkdir(argv[3], 0755) != 0 && errno != EEXIST) die(strerror(errno));
  size_t vshape[5] = {(size_t)clips, (size_t)s.channels, (size_t)T, (size_t)s.height, (size_t)s.width};
  size_t bshape[1] = {(size_t)clips};
  save(argv[3], "x", NPY_F32, x, 5, vshape);
  save(argv[3], "t", NPY_F32, t, 1, bshape);
  if (s.classes > 0) save(argv[3], "y", NPY_I32, y, 1, bshape);
  save(argv[3], "out", NPY_F32, out, 5, vshape);
  char path[2048];
  snprintf(path, sizeof path, "%s/meta.json", argv[3]);
  FILE *f = fopen(path, "w");
  if (!f) die(path);
  fprintf(f, "{\"stage\": %d, \"clips\": %d}\n", stage, clips);
  fclose(f);
  printf("forward_dump: %s -> %s (stage %d, %d clips)\n", argv[2], argv[3], stage, clips);
  free(x);
  free(t);
  free(y);
  dit_acts_destroy(acts);
  dit_destroy(&m);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "random") == 0) return random_weights(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "forward") == 0) return forward(argc, argv);
  die("usage: forward_dump random|forward ...");
}
