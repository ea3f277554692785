/* test_config_load.c — unit tests of the config that loads (trainer/config*.c): defaults, the
 * reference configs, command-line overrides, round trips through config_write_yaml and the help table.
 * What a load refuses is tested in test_config_rules.c.
 *
 * Usage: test_config_load [CONFIGS_DIR]   (default "configs"). Prints one "PASS <case>" or
 * "FAIL <case>: <detail>" line per case and a summary line; exits 1 if any case failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/config_test_util.h"
#include "trainer/config.h"

static const char *configs_dir = "configs";

/* ---- cases ---- */

static void test_defaults(void) {
  const char *name = "defaults";
  tpdiff_config cfg;
  char err[TPDIFF_CONFIG_ERROR_MAX];
  config_defaults(&cfg);
  CHECK_INT(model_depth, 2);
  CHECK_INT(model_dim, 64);
  CHECK_INT(model_heads, 4);
  CHECK_INT(model_patch, 2);
  CHECK_INT(model_classes, 0);
  CHECK_FLOAT(model_class_dropout, 0.1);
  CHECK_STR(data_path, "");
  CHECK_INT(data_frames, 8);
  CHECK_STR(data_on_error, "fail");
  CHECK_STR(diffusion_form, "rf");
  CHECK_INT(pyramid_stages, 1);
  CHECK_INT(pyramid_cuts.count, 0);
  CHECK_STR(pyramid_align, "microbatch");
  CHECK_FLOAT(train_lr, 1e-4);
  CHECK_FLOAT(train_ema, 0.9999);
  CHECK_STR(train_out, "runs/default");
  CHECK_INT(train_keep, 3);
  CHECK_FLOAT(sample_cfg, 1.0);
  CHECK_INT(sample_count, 4);
  CHECK_STR(source, "");
  if (config_validate(&cfg, "defaults", err, sizeof err) != 0) {
    failf(name, "defaults do not validate: %s", err);
    return;
  }
  /* An empty mapping loads to exactly the defaults. */
  tpdiff_config loaded;
  memset(&loaded, 0xAB, sizeof loaded);
  if (load_text(name, "{}\n", 0, NULL, &loaded)) return;
  memset(loaded.source, 0, sizeof loaded.source);
  if (memcmp(&loaded, &cfg, sizeof cfg) != 0) {
    failf(name, "loading {} differs from config_defaults");
    return;
  }
  pass(name, NULL);
}

static int load_named(const char *name, const char *file, tpdiff_config *cfg, char *path, size_t path_size) {
  char err[TPDIFF_CONFIG_ERROR_MAX];
  snprintf(path, path_size, "%s/%s", configs_dir, file);
  if (config_load(cfg, path, 0, NULL, err, sizeof err) != 0) {
    failf(name, "%s", err);
    return -1;
  }
  if (strcmp(cfg->source, path) != 0) {
    failf(name, "source = '%s', expected '%s'", cfg->source, path);
    return -1;
  }
  return 0;
}

static void test_tiny(void) {
  const char *name = "tiny.yaml loads";
  tpdiff_config cfg;
  char path[1024];
  if (load_named(name, "tiny.yaml", &cfg, path, sizeof path)) return;
  CHECK_INT(model_depth, 2);
  CHECK_INT(model_dim, 64);
  CHECK_INT(model_heads, 4);
  CHECK_INT(model_patch, 2);
  CHECK_INT(model_classes, 0);
  CHECK_FLOAT(model_class_dropout, 0.0);
  CHECK_STR(data_path, "");
  CHECK_INT(data_frames, 8);
  CHECK_INT(data_height, 16);
  CHECK_INT(data_width, 16);
  CHECK_INT(data_channels, 3);
  CHECK_INT(pyramid_stages, 1);
  CHECK_INT(pyramid_cuts.count, 0);
  CHECK_INT(train_steps, 20);
  CHECK_INT(train_clips_per_microbatch, 4);
  CHECK_INT(train_microbatches, 1);
  CHECK_FLOAT(train_lr, 1e-3);
  CHECK_INT(train_warmup, 0);
  CHECK_FLOAT(train_weight_decay, 0.0);
  CHECK_FLOAT(train_grad_clip, 1.0);
  CHECK_FLOAT(train_ema, 0.999);
  CHECK_INT(train_seed, 1);
  CHECK_STR(train_device, "cpu");
  CHECK_STR(train_out, "runs/tiny");
  CHECK_INT(train_log_every, 1);
  CHECK_INT(sample_steps, 4);
  CHECK_INT(sample_count, 2);
  CHECK_FLOAT(sample_cfg, 1.0);
  pass(name, NULL);
}

static void test_demo(void) {
  const char *name = "demo.yaml loads";
  tpdiff_config cfg;
  char path[1024];
  if (load_named(name, "demo.yaml", &cfg, path, sizeof path)) return;
  CHECK_INT(model_depth, 4);
  CHECK_INT(model_dim, 128);
  CHECK_INT(model_heads, 4);
  CHECK_INT(model_patch, 4);
  CHECK_INT(model_classes, 10);
  CHECK_INT(data_frames, 16);
  CHECK_INT(data_height, 32);
  CHECK_INT(data_width, 32);
  CHECK_INT(data_channels, 3);
  CHECK_INT(pyramid_stages, 3);
  CHECK_STR(data_synth, "fashion");
  CHECK_INT(train_steps, 300);
  CHECK_INT(train_clips_per_microbatch, 4);
  CHECK_FLOAT(train_lr, 5e-4);
  CHECK_INT(train_warmup, 20);
  CHECK_FLOAT(train_grad_clip, 1.0);
  CHECK_INT(train_seed, 0);
  CHECK_STR(train_device, "auto");
  CHECK_STR(train_out, "runs/demo");
  CHECK_INT(train_log_every, 25);
  CHECK_INT(sample_steps, 10);
  CHECK_INT(sample_count, 4);
  CHECK_FLOAT(sample_cfg, 2.0);
  pass(name, NULL);
}

static void test_base(void) {
  const char *name = "base.yaml loads";
  tpdiff_config cfg;
  char path[1024];
  if (load_named(name, "base.yaml", &cfg, path, sizeof path)) return;
  /* the shape is the DESIGN.md reference workload; the rest is tuned */
  CHECK_INT(model_depth, 12);
  CHECK_INT(model_dim, 768);
  CHECK_INT(model_heads, 12);
  CHECK_INT(model_patch, 4);
  CHECK_INT(data_frames, 16);
  CHECK_INT(data_height, 64);
  CHECK_INT(data_width, 64);
  CHECK_INT(data_channels, 3);
  CHECK_INT(pyramid_stages, 3);
  CHECK_INT(train_clips_per_microbatch, 4);
  CHECK_STR(train_device, "cuda");
  CHECK_STR(train_precision, "fp32");
  CHECK_STR(train_out, "runs/base");
  pass(name, NULL);
}

/* The reference configs write every key explicitly: their text names every key of the table. */
static void test_configs_complete(void) {
  const char *name = "configs write every key";
  char help[16384];
  FILE *mem = fmemopen(help, sizeof help, "w");
  if (!mem) {
    failf(name, "fmemopen failed");
    return;
  }
  tpdiff_config cfg;
  config_defaults(&cfg);
  config_write_yaml(&cfg, mem);
  fclose(mem);
  static const char *const files[] = {"tiny.yaml", "demo.yaml", "base.yaml", "large.yaml"};
  for (int f = 0; f < (int)(sizeof files / sizeof files[0]); f++) {
    char path[1024], text[16384];
    snprintf(path, sizeof path, "%s/%s", configs_dir, files[f]);
    FILE *in = fopen(path, "r");
    if (!in) {
      failf(name, "cannot open %s", path);
      return;
    }
    size_t n = fread(text, 1, sizeof text - 1, in);
    fclose(in);
    text[n] = '\0';
    /* Each "  key: value" line of the written defaults must have its "  key:" in the file. */
    char *save = NULL;
    char copy[16384];
    snprintf(copy, sizeof copy, "%s", help);
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
      char want[128];
      const char *colon = strchr(line, ':');
      if (!colon) continue;
      snprintf(want, sizeof want, "\n%.*s:", (int)(colon - line), line);
      if (!strstr(text, want)) {
        failf(name, "%s lacks '%s'", path, want + 1);
        return;
      }
    }
  }
  pass(name, NULL);
}

static void test_overrides(void) {
  const char *name = "overrides apply over file values";
  char a0[] = "--model.dim=128", a1[] = "--train.lr=0.01", a2[] = "--pyramid.stages=3",
       a3[] = "--pyramid.cuts=[0.6, 0.3]", a4[] = "--train.device=cuda", a5[] = "--data.path=/data/my clips",
       a6[] = "--model.dim=256", a7[] = "--train.out=";
  char *args[] = {a0, a1, a2, a3, a4, a5, a6, a7};
  tpdiff_config cfg;
  if (load_text(name, "model:\n  dim: 64\ntrain:\n  lr: 1e-3\n  out: runs/x\ndata:\n  frames: 8\n", 8, args, &cfg))
    return;
  CHECK_INT(model_dim, 256); /* the later override wins */
  CHECK_FLOAT(train_lr, 0.01);
  CHECK_INT(pyramid_stages, 3);
  CHECK_INT(pyramid_cuts.count, 2);
  CHECK_FLOAT(pyramid_cuts.values[0], 0.6);
  CHECK_FLOAT(pyramid_cuts.values[1], 0.3);
  CHECK_STR(train_device, "cuda");
  CHECK_STR(data_path, "/data/my clips");
  CHECK_STR(train_out, "");
  pass(name, NULL);

  name = "overrides: bare list form";
  char b0[] = "--pyramid.stages=4", b1[] = "--pyramid.cuts=0.75,0.5,0.25", b2[] = "--data.frames=16";
  char *bargs[] = {b0, b1, b2};
  if (load_text(name, "{}\n", 3, bargs, &cfg)) return;
  CHECK_INT(pyramid_cuts.count, 3);
  CHECK_FLOAT(pyramid_cuts.values[2], 0.25);
  pass(name, NULL);

  name = "overrides: empty list";
  char c0[] = "--pyramid.cuts=[]";
  char *cargs[] = {c0};
  if (load_text(name, "pyramid:\n  stages: 2\n  cuts: [0.5]\n", 1, cargs, &cfg)) return;
  CHECK_INT(pyramid_cuts.count, 0);
  pass(name, NULL);

  name = "overrides without a file";
  char d0[] = "--train.steps=7";
  char *dargs[] = {d0};
  char err[TPDIFF_CONFIG_ERROR_MAX];
  if (config_load(&cfg, NULL, 1, dargs, err, sizeof err) != 0) {
    failf(name, "%s", err);
    return;
  }
  CHECK_INT(train_steps, 7);
  CHECK_STR(source, "");
  pass(name, NULL);
}

/* write_yaml -> load gives back a byte-identical struct; the second write is byte-identical text. */
static void round_trip(const char *name, int nargs, char **args) {
  tpdiff_config first, second;
  memset(&first, 0, sizeof first);
  memset(&second, 0, sizeof second);
  char base[1024], err[TPDIFF_CONFIG_ERROR_MAX];
  snprintf(base, sizeof base, "%s/tiny.yaml", configs_dir);
  if (config_load(&first, base, nargs, args, err, sizeof err) != 0) {
    failf(name, "%s", err);
    return;
  }
  char *text1 = NULL, *text2 = NULL;
  size_t len1 = 0, len2 = 0;
  FILE *mem = open_memstream(&text1, &len1);
  config_write_yaml(&first, mem);
  fclose(mem);
  char path[1024];
  if (write_temp(text1, len1, path, sizeof path)) {
    failf(name, "cannot write a temporary file");
    free(text1);
    return;
  }
  int rc = config_load(&second, path, 0, NULL, err, sizeof err);
  unlink(path);
  if (rc != 0) {
    failf(name, "reading the written YAML back failed: %s", err);
    free(text1);
    return;
  }
  mem = open_memstream(&text2, &len2);
  config_write_yaml(&second, mem);
  fclose(mem);
  memset(first.source, 0, sizeof first.source);
  memset(second.source, 0, sizeof second.source);
  if (memcmp(&first, &second, sizeof first) != 0)
    failf(name, "the struct read back differs");
  else if (len1 != len2 || memcmp(text1, text2, len1) != 0)
    failf(name, "writing the struct read back gives different text");
  else
    pass(name, NULL);
  free(text1);
  free(text2);
}

static void test_round_trips(void) {
  round_trip("round trip: tiny", 0, NULL);
  char a0[] = "--pyramid.stages=3", a1[] = "--pyramid.cuts=[0.6, 0.30000000000000004]", a2[] = "--train.lr=3e-4",
       a3[] = "--model.class_dropout=0.1", a4[] = "--train.ema=0.99990000000000001",
       a5[] = "--data.path=my data: \"clips\" #1 \\ \t tab\nline ü \xe2\x80\xa8 \xef\xbb\xbf \x7f end",
       a6[] = "--train.out=-yes", a7[] = "--train.weight_decay=4.9406564584124654e-324",
       a8[] = "--train.grad_clip=1e300", a9[] = "--model.classes=1000", a10[] = "--sample.cfg=7.25",
       a11[] = "--train.seed=2147483647", a12[] = "--data.on_error=skip", a13[] = "--pyramid.align=global";
  char *args[] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13};
  round_trip("round trip: awkward values", 14, args);
  char b0[] = "--data.path=true", b1[] = "--train.out=123";
  char *bargs[] = {b0, b1};
  round_trip("round trip: paths that look like other types", 2, bargs);
  char c0[] = "--data.path=~", c1[] = "--train.out=null";
  char *cargs[] = {c0, c1};
  round_trip("round trip: paths that look like null", 2, cargs);
}

static void test_write_yaml_format(void) {
  const char *name = "write_yaml: sections and keys in table order";
  tpdiff_config cfg;
  config_defaults(&cfg);
  char *text = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&text, &len);
  config_write_yaml(&cfg, mem);
  fclose(mem);
  const char *order[] = {"model:\n  depth: 2\n",
                         "\ndata:\n  path: \"\"\n",
                         "\ndiffusion:\n  form: rf\n",
                         "\npyramid:\n  stages: 1\n  cuts: []\n",
                         "\ntrain:\n  steps: 100\n",
                         "  lr: 0.0001\n",
                         "\nsample:\n  steps: 10\n  cfg: 1.0\n  count: 4\n"};
  const char *at = text;
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
    const char *found = strstr(at, order[i]);
    if (!found) {
      failf(name, "'%s' missing or out of order", order[i]);
      free(text);
      return;
    }
    at = found;
  }
  free(text);
  pass(name, NULL);
}

static void test_help(void) {
  const char *name = "write_help lists every key with choices";
  char *text = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&text, &len);
  config_write_help(mem);
  fclose(mem);
  tpdiff_config cfg;
  config_defaults(&cfg);
  char *yaml = NULL;
  size_t yaml_len = 0;
  mem = open_memstream(&yaml, &yaml_len);
  config_write_yaml(&cfg, mem);
  fclose(mem);
  /* Every "section.key" from the YAML printout appears at the start of a help line. */
  char section[64] = "";
  int ok = 1;
  char *save = NULL;
  for (char *line = strtok_r(yaml, "\n", &save); ok && line; line = strtok_r(NULL, "\n", &save)) {
    const char *colon = strchr(line, ':');
    if (line[0] != ' ') {
      snprintf(section, sizeof section, "%.*s", (int)(colon - line), line);
      continue;
    }
    char want[160];
    snprintf(want, sizeof want, "\n%s.%.*s ", section, (int)(colon - line - 2), line + 2);
    if (!strstr(text, want)) {
      failf(name, "help lacks a line for '%s'", want + 1);
      ok = 0;
    }
  }
  const char *device = strstr(text, "\ntrain.device ");
  const char *device_end = device ? strchr(device + 1, '\n') : NULL;
  if (ok && (!device || !device_end || !strstr(device, "auto, cpu, cuda") ||
             strstr(device, "auto, cpu, cuda") > device_end)) {
    failf(name, "train.device line lacks its choices");
    ok = 0;
  }
  if (ok && !strstr(text, "FLOAT")) {
    failf(name, "no type column");
    ok = 0;
  }
  free(text);
  free(yaml);
  if (ok) pass(name, NULL);
}

int main(int argc, char **argv) {
  if (argc > 1) configs_dir = argv[1];
  test_defaults();
  test_tiny();
  test_demo();
  test_base();
  test_configs_complete();
  test_overrides();
  test_round_trips();
  test_write_yaml_format();
  test_help();
  test_summary("test_config_load", NULL);
  return test_exit_code();
}
