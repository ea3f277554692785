/* train_main.c — `tpdiff-train CONFIG [--section.key=value ...]`: reads and checks the config, writes
 * the resolved copy into train.out, then runs the training (trainer/train_run.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/atomic_file.h"
#include "trainer/config.h"
#include "trainer/device.h"
#include "trainer/train_run.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: tpdiff-train CONFIG [--section.key=value ...] [--resume CKPT | --init FILE]\n"
          "       tpdiff-train --help-config   (every config key, its type, default and meaning)\n"
          "Trains the DiT of CONFIG (YAML); prints step, loss, grad norm, lr, time per step.\n"
          "A run whose train.out holds checkpoints resumes from the newest one that verifies.\n"
          "  --resume CKPT  resume from this checkpoint (it must verify)\n"
          "  --init FILE    start a new run from the weights of a checkpoint or a safetensors file (EMA when present)\n");
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
  char path[TPDIFF_PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/config.yaml", dir);
  atomic_file af;
  if (atomic_file_open(&af, path, err, err_size) != 0) return -1;
  config_write_yaml(cfg, af.f);
  return atomic_file_commit(&af, err, err_size);
}

/* Rejects settings this build cannot run yet, before anything is written. */
static int check_supported(const tpdiff_config *cfg, char *err, size_t err_size) {
  const char *o = cfg->source;
  if (strcmp(cfg->train_precision, "bf16") == 0 && strcmp(cfg->train_device, "cpu") == 0) {
    snprintf(err, err_size, "%s: train.precision: bf16 needs the CUDA backend (train.device: cpu computes in fp32)", o);
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
  /* --resume/--init take a path; everything else after CONFIG is a config override */
  start_options start = {NULL, NULL};
  char **overrides = calloc((size_t)argc, sizeof *overrides);
  int noverrides = 0;
  if (!overrides) return 1;
  for (int i = 2; i < argc; i++) {
    const char **slot = strcmp(argv[i], "--resume") == 0 ? &start.resume : strcmp(argv[i], "--init") == 0 ? &start.init : NULL;
    if (!slot) {
      overrides[noverrides++] = argv[i];
      continue;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "tpdiff-train: %s needs a checkpoint path\n", argv[i]);
      free(overrides);
      return 2;
    }
    *slot = argv[++i];
  }
  int loaded = config_load(&cfg, argv[1], noverrides, overrides, err, sizeof err);
  free(overrides);
  if (loaded != 0 ||
      check_supported(&cfg, err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-train: %s\n", err);
    return 2;
  }
  /* before anything is written: a device that cannot be used is a refusal like a bad key */
  char notice[1024];
  const tpdiff_backend *be = device_open(cfg.train_device, notice, sizeof notice, err, sizeof err);
  if (!be) {
    fprintf(stderr, "tpdiff-train: %s\n", err);
    return 2;
  }
  if (notice[0]) fprintf(stderr, "tpdiff-train: %s\n", notice);
  /* train.device: auto may have fallen back to the CPU, which refuses bf16 with one line */
  if (be->set_precision(strcmp(cfg.train_precision, "bf16") == 0 ? TPDIFF_BF16 : TPDIFF_FP32, err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-train: %s: %s\n", cfg.source, err);
    return 2;
  }

  printf("# tpdiff-train: resolved config (%s)\n", cfg.source);
  config_write_yaml(&cfg, stdout);
  fflush(stdout);

  if (make_dirs(cfg.train_out, err, sizeof err) != 0 || write_resolved_config(&cfg, cfg.train_out, err, sizeof err)) {
    fprintf(stderr, "tpdiff-train: %s\n", err);
    return 1;
  }

  return train_run(&cfg, be, &start);
}
