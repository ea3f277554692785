/* export_main.c — `tpdiff-export CKPT --out DIR [--dtype fp32|bf16] [--weights ema|raw]`: writes
 * DIR/model.safetensors (the PyTorch parameter names of tests/ref/dit_ref.py, so load_state_dict with
 * strict=True takes it) and DIR/config.json (what a PyTorch user needs to build and sample the model). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/make_dirs.h"
#include "data/atomic_file.h"
#include "data/safetensors.h"
#include "kernels/kernels.h"
#include "model/dit.h"
#include "model/pyramid.h"
#include "trainer/trainer.h"
#include "trainer/weights_io.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: tpdiff-export CKPT --out DIR [--dtype fp32|bf16] [--weights ema|raw]\n"
          "Writes DIR/model.safetensors (PyTorch parameter names, loads with strict=True) and DIR/config.json.\n"
          "CKPT is a checkpoint (ckpt-NNNNNNN.h5) or a safetensors file written by tpdiff-export.\n"
          "  --dtype    fp32 (default) or bf16 (round to nearest even)\n"
          "  --weights  ema (default when the checkpoint has EMA weights) or raw (the fp32 master weights);\n"
          "             --ema is --weights ema\n");
}

/* A JSON string of plain config text (config words and paths); quotes, backslashes and control bytes
 * escaped. */
static void json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c < 0x20)
      fprintf(f, "\\u%04x", c);
    else
      fputc(c, f);
  }
  fputc('"', f);
}

static void json_doubles(FILE *f, const double *v, int n) {
  fputc('[', f);
  for (int i = 0; i < n; i++) fprintf(f, "%s%.17g", i ? ", " : "", v[i]);
  fputc(']', f);
}

/* config.json: the config's sections and key names (the subset that describes the model and its
 * sampling), the resolved stage windows, and the DiT constructor arguments of tests/ref/dit_ref.py. */
static int write_config_json(const char *path, const tpdiff_config *c, const pyramid_schedule *p, long step, int ema,
                             st_dtype dtype, char *err, size_t err_size) {
  atomic_file af;
  if (atomic_file_open(&af, path, err, err_size) != 0) return -1;
  FILE *f = af.f;
  fprintf(f, "{\n  \"format\": \"tpdiff-model\",\n  \"version\": 1,\n  \"weights\": \"%s\",\n  \"dtype\": \"%s\",\n",
          ema ? "ema" : "raw", st_dtype_name(dtype));
  fprintf(f, "  \"step\": %ld,\n", step);
  fprintf(f, "  \"model\": {\"depth\": %d, \"dim\": %d, \"heads\": %d, \"patch\": %d, \"classes\": %d},\n",
          c->model_depth, c->model_dim, c->model_heads, c->model_patch, c->model_classes);
  fprintf(f, "  \"data\": {\"frames\": %d, \"height\": %d, \"width\": %d, \"channels\": %d},\n", c->data_frames,
          c->data_height, c->data_width, c->data_channels);
  fprintf(f, "  \"diffusion\": {\"form\": ");
  json_string(f, c->diffusion_form);
  fprintf(f, "},\n  \"pyramid\": {\"stages\": %d, \"cuts\": ", c->pyramid_stages);
  json_doubles(f, c->pyramid_cuts.values, c->pyramid_cuts.count);
  fprintf(f, ", \"start\": ");
  json_doubles(f, p->start, p->stages);
  fprintf(f, ", \"end\": ");
  json_doubles(f, p->end, p->stages);
  fprintf(f, ", \"stride\": [");
  for (int k = 0; k < p->stages; k++) fprintf(f, "%s%d", k ? ", " : "", p->stride[k]);
  fprintf(f, "]},\n  \"sample\": {\"steps\": %d, \"cfg\": %.17g, \"count\": %d, \"fps\": %d},\n", c->sample_steps,
          c->sample_cfg, c->sample_count, c->sample_fps);
  fprintf(f,
          "  \"dit_args\": {\"depth\": %d, \"dim\": %d, \"heads\": %d, \"patch\": %d, \"classes\": %d, "
          "\"channels\": %d, \"stages\": %d}\n}\n",
          c->model_depth, c->model_dim, c->model_heads, c->model_patch, c->model_classes, c->data_channels,
          c->pyramid_stages);
  return atomic_file_commit(&af, err, err_size);
}

int main(int argc, char **argv) {
  if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    usage(stdout);
    return 0;
  }
  const char *in = NULL, *out = NULL, *dtype_arg = "fp32", *weights_arg = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char **slot = strcmp(a, "--out") == 0       ? &out
                        : strcmp(a, "--dtype") == 0   ? &dtype_arg
                        : strcmp(a, "--weights") == 0 ? &weights_arg
                                                      : NULL;
    if (strcmp(a, "--ema") == 0) { /* DESIGN.md's spelling of --weights ema */
      weights_arg = "ema";
    } else if (slot) {
      if (i + 1 >= argc) {
        fprintf(stderr, "tpdiff-export: %s needs a value\n", a);
        return 2;
      }
      *slot = argv[++i];
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "tpdiff-export: unknown option '%s' (see --help)\n", a);
      return 2;
    } else if (!in) {
      in = a;
    } else {
      fprintf(stderr, "tpdiff-export: one input file expected, got '%s' and '%s'\n", in, a);
      return 2;
    }
  }
  if (!in || !out) {
    usage(stderr);
    return 2;
  }
  st_dtype dtype;
  if (strcmp(dtype_arg, "fp32") == 0)
    dtype = ST_F32;
  else if (strcmp(dtype_arg, "bf16") == 0)
    dtype = ST_BF16;
  else {
    fprintf(stderr, "tpdiff-export: --dtype '%s': expected fp32 or bf16\n", dtype_arg);
    return 2;
  }
  int want = WEIGHTS_EMA_IF_PRESENT;
  if (weights_arg && strcmp(weights_arg, "ema") == 0)
    want = WEIGHTS_EMA;
  else if (weights_arg && strcmp(weights_arg, "raw") == 0)
    want = WEIGHTS_RAW;
  else if (weights_arg) {
    fprintf(stderr, "tpdiff-export: --weights '%s': expected ema or raw\n", weights_arg);
    return 2;
  }

  static tpdiff_config cfg;
  char err[1024];
  long step = -1;
  pyramid_schedule sched;
  if (weights_read_config(in, &cfg, err, sizeof err) != 0 || weights_read_step(in, &step, err, sizeof err) != 0 ||
      trainer_schedule_from_config(&cfg, &sched, err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-export: %s\n", err);
    return 2;
  }
  dit_model m;
  dit_shape shape = trainer_shape_from_config(&cfg);
  if (dit_create(&m, &shape, tpdiff_cpu_backend(), err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-export: %s: %s\n", in, err);
    return 1;
  }
  int used_ema = 0, rc = 1;
  /* the CPU backend's weights are host memory: read straight into them */
  if (weights_read_host(in, &m, want, m.weights, &used_ema, err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-export: %s\n", err);
    rc = 2;
    goto done;
  }
  char path[TPDIFF_PATH_MAX + 32];
  if (make_dirs(out, "--out", err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-export: %s\n", err);
    goto done;
  }
  snprintf(path, sizeof path, "%s/model.safetensors", out);
  if (weights_write_safetensors(path, &m, m.weights, &cfg, used_ema, step, dtype, err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-export: %s\n", err);
    goto done;
  }
  snprintf(path, sizeof path, "%s/config.json", out);
  if (write_config_json(path, &cfg, &sched, step, used_ema, dtype, err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-export: %s\n", err);
    goto done;
  }
  printf("tpdiff-export: %s -> %s/model.safetensors (%d tensors, %zu parameters, %s, %s weights%s) and config.json\n",
         in, out, m.num_params, m.num_floats, st_dtype_name(dtype), used_ema ? "EMA" : "raw",
         step >= 0 ? "" : ", step unknown");
  rc = 0;
done:
  dit_destroy(&m);
  return rc;
}
