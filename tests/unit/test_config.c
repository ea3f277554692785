/* test_config.c — unit tests of trainer/config.c: loading, errors, overrides, validation, round trip.
 *
 * Usage: test_config [CONFIGS_DIR]   (default "configs"). Prints one "PASS <case>" or
 * "FAIL <case>: <detail>" line per case and a summary line; exits 1 if any case failed. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trainer/config.h"

static int failures, passes;
static const char *configs_dir = "configs";

static void pass(const char *name) {
  printf("PASS %s\n", name);
  passes++;
}

/* Prints "FAIL <name>: <detail>" on one line whatever the detail holds. */
static void failf(const char *name, const char *fmt, ...) {
  char detail[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  for (char *p = detail; *p; p++)
    if ((unsigned char)*p < 0x20) *p = '?';
  printf("FAIL %s: %s\n", name, detail);
  failures++;
}

/* Writes len bytes to a new file under $TMPDIR (or /tmp); path gets its name. */
static int write_temp(const char *text, size_t len, char *path, size_t path_size) {
  const char *dir = getenv("TMPDIR");
  if (!dir || !dir[0]) dir = "/tmp";
  snprintf(path, path_size, "%s/tpdiff_test_config_XXXXXX", dir);
  int fd = mkstemp(path);
  if (fd < 0) return -1;
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(fd, text + done, len - done);
    if (n <= 0) {
      close(fd);
      unlink(path);
      return -1;
    }
    done += (size_t)n;
  }
  close(fd);
  return 0;
}

/* The err contract: non-empty, one line, terminated within the buffer. */
static const char *err_shape_problem(const char *err, size_t err_size) {
  size_t len = strnlen(err, err_size);
  if (len == err_size) return "err is not terminated";
  if (len == 0) return "err is empty";
  if (strchr(err, '\n') || strchr(err, '\r')) return "err is not a single line";
  return NULL;
}

/* Loads yaml text (a temp file; NULL = no file) with args; expects -1 and an err that starts with the
 * origin (the temp file's name when origin is NULL) and contains every NULL-terminated needle. */
static void expect_error(const char *name, const char *yaml, const char *origin, int nargs, char **args, ...) {
  char path[1024] = "";
  if (yaml && write_temp(yaml, strlen(yaml), path, sizeof path)) {
    failf(name, "cannot write a temporary file");
    return;
  }
  tpdiff_config cfg;
  char err[TPDIFF_CONFIG_ERROR_MAX];
  memset(err, 'Z', sizeof err);
  int rc = config_load(&cfg, yaml ? path : NULL, nargs, args, err, sizeof err);
  const char *want_origin = origin ? origin : path;
  const char *problem = rc == -1 ? err_shape_problem(err, sizeof err) : NULL;
  if (rc != -1) {
    failf(name, "config_load returned %d, expected -1", rc);
  } else if (problem) {
    failf(name, "%s", problem);
  } else if (strncmp(err, want_origin, strlen(want_origin)) != 0 || strncmp(err + strlen(want_origin), ": ", 2) != 0) {
    failf(name, "err does not start with '%s: ': %s", want_origin, err);
  } else {
    va_list ap;
    va_start(ap, args);
    const char *needle;
    int ok = 1;
    while (ok && (needle = va_arg(ap, const char *)) != NULL) {
      if (!strstr(err, needle)) {
        failf(name, "err lacks '%s': %s", needle, err);
        ok = 0;
      }
    }
    va_end(ap);
    if (ok) pass(name);
  }
  if (yaml) unlink(path);
}

static void expect_yaml_error(const char *name, const char *yaml, const char *needle1, const char *needle2) {
  expect_error(name, yaml, NULL, 0, NULL, needle1, needle2, (const char *)NULL);
}

/* Loads yaml text plus args into cfg; on failure reports the case and returns -1. */
static int load_text(const char *name, const char *yaml, int nargs, char **args, tpdiff_config *cfg) {
  char path[1024], err[TPDIFF_CONFIG_ERROR_MAX];
  if (write_temp(yaml, strlen(yaml), path, sizeof path)) {
    failf(name, "cannot write a temporary file");
    return -1;
  }
  int rc = config_load(cfg, path, nargs, args, err, sizeof err);
  unlink(path);
  if (rc != 0) failf(name, "config_load failed: %s", err);
  return rc;
}

#define CHECK_INT(field, want)                                             \
  do {                                                                     \
    if (cfg.field != (want)) {                                             \
      failf(name, "%s = %d, expected %d", #field, cfg.field, (int)(want)); \
      return;                                                              \
    }                                                                      \
  } while (0)
#define CHECK_FLOAT(field, want)                                                    \
  do {                                                                              \
    if (cfg.field != (want)) {                                                      \
      failf(name, "%s = %.17g, expected %.17g", #field, cfg.field, (double)(want)); \
      return;                                                                       \
    }                                                                               \
  } while (0)
#define CHECK_STR(field, want)                                            \
  do {                                                                    \
    if (strcmp(cfg.field, (want)) != 0) {                                 \
      failf(name, "%s = '%s', expected '%s'", #field, cfg.field, (want)); \
      return;                                                             \
    }                                                                     \
  } while (0)

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
  pass(name);
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
  pass(name);
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
  CHECK_INT(model_classes, 0);
  CHECK_INT(data_frames, 16);
  CHECK_INT(data_height, 32);
  CHECK_INT(data_width, 32);
  CHECK_INT(data_channels, 3);
  CHECK_INT(pyramid_stages, 1);
  CHECK_INT(train_steps, 200);
  CHECK_INT(train_clips_per_microbatch, 4);
  CHECK_FLOAT(train_lr, 3e-4);
  CHECK_INT(train_warmup, 20);
  CHECK_FLOAT(train_grad_clip, 1.0);
  CHECK_INT(train_seed, 0);
  CHECK_STR(train_device, "auto");
  CHECK_STR(train_out, "runs/demo");
  CHECK_INT(train_log_every, 10);
  CHECK_INT(sample_steps, 10);
  CHECK_INT(sample_count, 4);
  pass(name);
}

/* Both reference configs write every key explicitly: their text names every key of the table. */
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
  static const char *const files[] = {"tiny.yaml", "demo.yaml"};
  for (int f = 0; f < 2; f++) {
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
  pass(name);
}

static void test_error_cases(void) {
  expect_yaml_error("unknown key", "model:\n  dimm: 64\n", "model.dimm: unknown key",
                    "(known keys of model: depth, dim, heads, patch, classes, class_dropout)");
  expect_yaml_error("unknown section", "modle:\n  dim: 64\n", "modle: unknown section", "train");
  expect_yaml_error("wrong type: int", "model:\n  dim: abc\n", "model.dim: expected an integer, got 'abc'", NULL);
  expect_yaml_error("wrong type: int with a fraction", "model:\n  depth: 2.5\n", "model.depth", "integer");
  expect_yaml_error("wrong type: int out of range", "train:\n  seed: 99999999999\n", "train.seed", "integer");
  expect_yaml_error("wrong type: int empty", "train:\n  steps:\n", "train.steps", "empty");
  expect_yaml_error("wrong type: float", "train:\n  lr: fast\n", "train.lr: expected a number, got 'fast'", NULL);
  expect_yaml_error("wrong type: float not finite", "train:\n  lr: 1e999\n", "train.lr", "finite");
  expect_yaml_error("wrong type: float nan", "train:\n  ema: .nan\n", "train.ema", "number");
  expect_yaml_error("wrong type: string choice", "train:\n  device: gpu\n", "train.device",
                    "expected one of auto, cpu, cuda, got 'gpu'");
  expect_yaml_error("wrong type: list entry", "pyramid:\n  stages: 3\n  cuts: [0.6, x]\n", "pyramid.cuts", "entry 2");
  expect_yaml_error("wrong type: list given a scalar", "pyramid:\n  stages: 2\n  cuts: 0.5\n", "pyramid.cuts", "list");
  expect_yaml_error("wrong type: list too long", "pyramid:\n  cuts: [0.9, 0.8, 0.7, 0.6, 0.5]\n", "pyramid.cuts",
                    "at most 4");
  expect_yaml_error("wrong type: list nested", "pyramid:\n  cuts:\n    - [0.5]\n", "pyramid.cuts", "sequence");
  expect_yaml_error("wrong type: sequence for an int", "model:\n  dim: [64]\n", "model.dim", "sequence");
  expect_yaml_error("wrong type: mapping for an int", "model:\n  dim: {a: 1}\n", "model.dim", "mapping");
  expect_yaml_error("wrong type: NUL in a path", "data:\n  path: \"a\\0b\"\n", "data.path", "NUL");
  expect_yaml_error("duplicate key", "model:\n  dim: 64\n  heads: 4\n  dim: 128\n", "model.dim: duplicate key",
                    "line 2");
  expect_yaml_error("duplicate section", "model:\n  dim: 64\ntrain:\n  steps: 1\nmodel:\n  depth: 2\n",
                    "model: duplicate section", "line 1");
  expect_yaml_error("non-mapping section", "model: 5\n", "model: expected a mapping", "'5'");
  expect_yaml_error("empty section", "model:\ntrain:\n  steps: 1\n", "model: expected a mapping", NULL);
  expect_yaml_error("top level not a mapping", "- model\n- data\n", "top level must be a mapping", NULL);
  expect_yaml_error("alias", "model:\n  dim: &d 64\n  heads: *d\n", "model.heads", "alias");
  expect_yaml_error("two documents", "model:\n  dim: 64\n---\nmodel:\n  dim: 32\n", "more than one YAML document",
                    NULL);
  expect_yaml_error("YAML syntax error", "model:\n  dim: 64\n  depth 2\ntrain:\n  steps: 1\n",
                    "line 4, column 1: YAML syntax error", "line 3");
  expect_yaml_error("YAML syntax error: unclosed flow", "model:\n  dim: 64\n  depth: [2\ntrain:\n  steps: 1\n",
                    "line 4", "YAML syntax error");
  expect_yaml_error("YAML syntax error: unclosed quote", "model:\n  dim: \"64\n  depth: 2\n", "line 2",
                    "YAML syntax error");
  expect_yaml_error("YAML syntax error: bad indent", "model:\n  dim: 64\n depth: 2\n", "line 3, column 2",
                    "YAML syntax error");
  expect_yaml_error("YAML syntax error: tab", "model:\n\tdim: 64\n", "line 2", "YAML syntax error");
  expect_yaml_error("invalid UTF-8", "model:\n  dim: 64\n  depth: \xff\xfe\n", "line 3", "UTF-8");
  expect_yaml_error("empty file", "", "empty file", NULL);
  expect_yaml_error("comment-only file", "# nothing here\n\n", "empty file", NULL);
  {
    const char *name = "missing file";
    const char *path = "/nonexistent/tpdiff/missing.yaml";
    tpdiff_config cfg;
    char err[TPDIFF_CONFIG_ERROR_MAX];
    int rc = config_load(&cfg, path, 0, NULL, err, sizeof err);
    if (rc != -1)
      failf(name, "returned %d", rc);
    else if (strcmp(err, "/nonexistent/tpdiff/missing.yaml: cannot read: No such file or directory") != 0)
      failf(name, "err: %s", err);
    else
      pass(name);
  }
  {
    const char *name = "directory instead of a file";
    const char *dir = getenv("TMPDIR");
    if (!dir || !dir[0]) dir = "/tmp";
    tpdiff_config cfg;
    char err[TPDIFF_CONFIG_ERROR_MAX];
    int rc = config_load(&cfg, dir, 0, NULL, err, sizeof err);
    if (rc != -1 || !strstr(err, "cannot read") || err_shape_problem(err, sizeof err))
      failf(name, "rc %d, err: %s", rc, err);
    else
      pass(name);
  }
}

static void test_rules(void) {
  expect_yaml_error("rule: frames vs stages", "data:\n  frames: 12\npyramid:\n  stages: 4\n",
                    "data.frames: 12 is not divisible by 2^(pyramid.stages-1) = 8", NULL);
  expect_yaml_error("rule: height vs patch", "model:\n  patch: 4\ndata:\n  height: 18\n",
                    "data.height: 18 is not divisible by model.patch = 4", NULL);
  expect_yaml_error("rule: width vs patch", "data:\n  width: 15\n", "data.width: 15 is not divisible by model.patch",
                    NULL);
  expect_yaml_error("rule: dim vs 4", "model:\n  dim: 66\n  heads: 3\n", "model.dim: 66 is not divisible by 4", NULL);
  expect_yaml_error("rule: dim vs heads", "model:\n  dim: 64\n  heads: 3\n",
                    "model.dim: 64 is not divisible by model.heads = 3", NULL);
  expect_yaml_error("rule: cuts not decreasing", "pyramid:\n  stages: 3\n  cuts: [0.3, 0.6]\n", "pyramid.cuts",
                    "strictly decreasing");
  expect_yaml_error("rule: cuts equal", "pyramid:\n  stages: 3\n  cuts: [0.5, 0.5]\n", "pyramid.cuts",
                    "strictly decreasing");
  expect_yaml_error("rule: cuts out of range (1.5)", "pyramid:\n  stages: 2\n  cuts: [1.5]\n", "pyramid.cuts",
                    "not in (0, 1)");
  expect_yaml_error("rule: cuts out of range (0)", "pyramid:\n  stages: 2\n  cuts: [0]\n", "pyramid.cuts",
                    "not in (0, 1)");
  expect_yaml_error("rule: cuts count", "pyramid:\n  stages: 3\n  cuts: [0.5]\n", "pyramid.cuts",
                    "pyramid.stages-1 = 2 entries");
  expect_yaml_error("rule: cuts with one stage", "pyramid:\n  cuts:\n    - 0.5\n", "pyramid.cuts",
                    "pyramid.stages-1 = 0 entries");
  expect_yaml_error("rule: stages too many", "pyramid:\n  stages: 5\n", "pyramid.stages", "1..4");
  expect_yaml_error("rule: stages zero", "pyramid:\n  stages: 0\n", "pyramid.stages", "1..4");
  expect_yaml_error("rule: guidance on an unconditional model", "sample:\n  cfg: 3\n", "sample.cfg",
                    "guidance needs a class-conditional model");
  expect_yaml_error("rule: negative guidance", "model:\n  classes: 10\nsample:\n  cfg: -1\n", "sample.cfg", ">= 0");
  expect_yaml_error("rule: depth positive", "model:\n  depth: 0\n", "model.depth", "> 0");
  expect_yaml_error("rule: heads positive", "model:\n  heads: 0\n", "model.heads", "> 0");
  expect_yaml_error("rule: patch positive", "model:\n  patch: -2\n", "model.patch", "> 0");
  expect_yaml_error("rule: classes non-negative", "model:\n  classes: -1\n", "model.classes", ">= 0");
  expect_yaml_error("rule: seed non-negative", "train:\n  seed: -5\n", "train.seed", ">= 0");
  expect_yaml_error("rule: class_dropout below 1", "model:\n  class_dropout: 1\n", "model.class_dropout", "[0, 1)");
  expect_yaml_error("rule: lr positive", "train:\n  lr: 0\n", "train.lr", "> 0");
  expect_yaml_error("rule: weight_decay non-negative", "train:\n  weight_decay: -0.1\n", "train.weight_decay", ">= 0");
  expect_yaml_error("rule: grad_clip non-negative", "train:\n  grad_clip: -1\n", "train.grad_clip", ">= 0");
  expect_yaml_error("rule: ema below 1", "train:\n  ema: 1.0\n", "train.ema", "[0, 1)");
  expect_yaml_error("rule: keep positive", "train:\n  keep: 0\n", "train.keep", "> 0");

  const char *name = "rule: valid pyramid and guidance load";
  tpdiff_config cfg;
  if (load_text(name,
                "model:\n  classes: 10\ndata:\n  frames: 16\npyramid:\n  stages: 3\n  cuts:\n    - 0.6\n    - 0.3\n"
                "sample:\n  cfg: 4.5\n",
                0, NULL, &cfg))
    return;
  CHECK_INT(pyramid_stages, 3);
  CHECK_INT(pyramid_cuts.count, 2);
  CHECK_FLOAT(pyramid_cuts.values[0], 0.6);
  CHECK_FLOAT(pyramid_cuts.values[1], 0.3);
  CHECK_FLOAT(sample_cfg, 4.5);
  pass(name);
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
  pass(name);

  name = "overrides: bare list form";
  char b0[] = "--pyramid.stages=4", b1[] = "--pyramid.cuts=0.75,0.5,0.25", b2[] = "--data.frames=16";
  char *bargs[] = {b0, b1, b2};
  if (load_text(name, "{}\n", 3, bargs, &cfg)) return;
  CHECK_INT(pyramid_cuts.count, 3);
  CHECK_FLOAT(pyramid_cuts.values[2], 0.25);
  pass(name);

  name = "overrides: empty list";
  char c0[] = "--pyramid.cuts=[]";
  char *cargs[] = {c0};
  if (load_text(name, "pyramid:\n  stages: 2\n  cuts: [0.5]\n", 1, cargs, &cfg)) return;
  CHECK_INT(pyramid_cuts.count, 0);
  pass(name);

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
  pass(name);
}

static void test_bad_overrides(void) {
  char a[] = "--model.dim=abc";
  char *args_a[] = {a};
  expect_error("bad override: wrong type", "{}\n", "command line", 1, args_a,
               "command line: --model.dim=abc: expected an integer, got 'abc'", (const char *)NULL);
  char b[] = "--model.dimm=64";
  char *args_b[] = {b};
  expect_error("bad override: unknown key", "{}\n", "command line", 1, args_b, "model.dimm", "unknown key",
               (const char *)NULL);
  char c[] = "--modle.dim=64";
  char *args_c[] = {c};
  expect_error("bad override: unknown section", "{}\n", "command line", 1, args_c, "modle", "unknown section",
               (const char *)NULL);
  char d[] = "model.dim=64";
  char *args_d[] = {d};
  expect_error("bad override: no dashes", "{}\n", "command line", 1, args_d, "model.dim", "--section.key=value",
               (const char *)NULL);
  char e[] = "--model.dim";
  char *args_e[] = {e};
  expect_error("bad override: no value", "{}\n", "command line", 1, args_e, "model.dim", "--section.key=value",
               (const char *)NULL);
  char f[] = "--pyramid.cuts=[0.6,0.3";
  char *args_f[] = {f};
  expect_error("bad override: list", "{}\n", "command line", 1, args_f, "pyramid.cuts", "list", (const char *)NULL);
  char g[] = "--train.device=tpu";
  char *args_g[] = {g};
  expect_error("bad override: string choice", "{}\n", "command line", 1, args_g, "train.device", "auto, cpu, cuda",
               (const char *)NULL);
  char h[] = "--data.path=\xff\xfe";
  char *args_h[] = {h};
  expect_error("bad override: path not UTF-8", "{}\n", "command line", 1, args_h, "data.path", "UTF-8",
               (const char *)NULL);
}

static void test_origins(void) {
  /* The value that broke the rule came from the command line: the message says so. */
  char a[] = "--pyramid.stages=4";
  char *args_a[] = {a};
  expect_error("origin: rule broken by an override", "data:\n  frames: 12\n", "command line", 1, args_a,
               "data.frames: 12 is not divisible", (const char *)NULL);
  /* The file sets the value and an override leaves it alone: the file is named. */
  char b[] = "--train.steps=5";
  char *args_b[] = {b};
  expect_error("origin: rule broken in the file", "sample:\n  cfg: 2\n", NULL, 1, args_b, "sample.cfg",
               (const char *)NULL);
  char c[] = "--model.heads=5";
  char *args_c[] = {c};
  expect_error("origin: override of a range", "{}\n", "command line", 1, args_c, "model.dim", "model.heads = 5",
               (const char *)NULL);

  const char *name = "origin: config_validate names its origin";
  tpdiff_config cfg;
  char err[TPDIFF_CONFIG_ERROR_MAX];
  config_defaults(&cfg);
  cfg.model_dim = 66;
  int rc = config_validate(&cfg, "checkpoint", err, sizeof err);
  if (rc != -1 || strncmp(err, "checkpoint: model.dim: ", 23) != 0)
    failf(name, "rc %d, err: %s", rc, err);
  else
    pass(name);

  name = "validate: bad string and list count in a struct";
  config_defaults(&cfg);
  snprintf(cfg.train_device, sizeof cfg.train_device, "gpu");
  rc = config_validate(&cfg, "x", err, sizeof err);
  if (rc != -1 || !strstr(err, "train.device")) {
    failf(name, "rc %d, err: %s", rc, err);
    return;
  }
  config_defaults(&cfg);
  cfg.pyramid_cuts.count = 99;
  rc = config_validate(&cfg, "x", err, sizeof err);
  if (rc != -1 || !strstr(err, "pyramid.cuts")) {
    failf(name, "rc %d, err: %s", rc, err);
    return;
  }
  pass(name);
}

static void test_failed_load_keeps_cfg(void) {
  const char *name = "failed load leaves cfg untouched";
  tpdiff_config cfg, before;
  memset(&cfg, 0x5A, sizeof cfg);
  memcpy(&before, &cfg, sizeof cfg);
  char path[1024], err[TPDIFF_CONFIG_ERROR_MAX];
  const char *yaml = "model:\n  depth: 3\n  dim: abc\n";
  if (write_temp(yaml, strlen(yaml), path, sizeof path)) {
    failf(name, "cannot write a temporary file");
    return;
  }
  int rc = config_load(&cfg, path, 0, NULL, err, sizeof err);
  unlink(path);
  if (rc != -1 || memcmp(&cfg, &before, sizeof cfg) != 0)
    failf(name, "rc %d, cfg changed", rc);
  else
    pass(name);
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
    pass(name);
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
  pass(name);
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
  if (ok) pass(name);
}

/* Fills buf with len pseudo-random bytes drawn from alphabet (or any byte when alphabet is NULL). */
static void garbage(char *buf, size_t len, const char *alphabet, unsigned long seed) {
  unsigned long state = seed;
  size_t alphabet_len = alphabet ? strlen(alphabet) : 256;
  for (size_t i = 0; i < len; i++) {
    state = state * 6364136223846793005ul + 1442695040888963407ul;
    unsigned long r = state >> 33;
    buf[i] = alphabet ? alphabet[r % alphabet_len] : (char)(r & 0xFF);
  }
}

static void expect_rejected(const char *name, const char *text, size_t len) {
  char path[1024], err[TPDIFF_CONFIG_ERROR_MAX];
  if (write_temp(text, len, path, sizeof path)) {
    failf(name, "cannot write a temporary file");
    return;
  }
  tpdiff_config cfg;
  memset(err, 'Z', sizeof err);
  int rc = config_load(&cfg, path, 0, NULL, err, sizeof err);
  unlink(path);
  const char *problem = rc == -1 ? err_shape_problem(err, sizeof err) : NULL;
  if (rc != -1)
    failf(name, "returned %d", rc);
  else if (problem)
    failf(name, "%s", problem);
  else if (strncmp(err, path, strlen(path)) != 0)
    failf(name, "err does not name the file: %s", err);
  else
    pass(name);
}

static void test_hostile_input(void) {
  const size_t size = 200 * 1024;
  char *buf = malloc(size + 6000);
  if (!buf) {
    failf("hostile input", "out of memory");
    return;
  }
  garbage(buf, size, NULL, 1);
  expect_rejected("garbage: 200 KB of random bytes", buf, size);
  garbage(buf, size, "abc:- \n[]{},#&*!|>'\"%@`?\t0123456789.", 2);
  expect_rejected("garbage: 200 KB of YAML punctuation", buf, size);
  garbage(buf, size, "abcdefghij \n", 3);
  expect_rejected("garbage: 200 KB of words", buf, size);
  memset(buf, '[', size);
  expect_rejected("garbage: 200 KB of nested brackets", buf, size);
  snprintf(buf, size, "model:\n  dim: ");
  size_t at = strlen(buf);
  memset(buf + at, '7', size - at - 1);
  buf[size - 1] = '\n';
  expect_rejected("garbage: a 200 KB number", buf, size);

  snprintf(buf, size, "model:\n  ");
  at = strlen(buf);
  memset(buf + at, 'k', 5000);
  snprintf(buf + at + 5000, 100, ": 1\n");
  expect_rejected("a 5000-character key", buf, strlen(buf));
  memset(buf, 's', 5000);
  snprintf(buf + 5000, 100, ":\n  dim: 64\n");
  expect_rejected("a 5000-character section", buf, strlen(buf));
  snprintf(buf, size, "data:\n  path: ");
  at = strlen(buf);
  memset(buf + at, 'p', 5000);
  snprintf(buf + at + 5000, 100, "\n");
  expect_rejected("a 5000-character path", buf, strlen(buf));

  /* A tiny err buffer is filled, not overrun (AddressSanitizer checks the bounds). */
  const char *name = "small err buffers";
  const char *yaml = "model:\n  dim: abc\n";
  char path[1024];
  if (write_temp(yaml, strlen(yaml), path, sizeof path)) {
    failf(name, "cannot write a temporary file");
    free(buf);
    return;
  }
  tpdiff_config cfg;
  char *small = malloc(8);
  int rc1 = small ? config_load(&cfg, path, 0, NULL, small, 8) : 0;
  int rc2 = config_load(&cfg, path, 0, NULL, NULL, 0);
  unlink(path);
  if (!small || rc1 != -1 || rc2 != -1 || strlen(small) != 7)
    failf(name, "rc %d / %d", rc1, rc2);
  else
    pass(name);
  free(small);
  free(buf);
}

int main(int argc, char **argv) {
  if (argc > 1) configs_dir = argv[1];
  test_defaults();
  test_tiny();
  test_demo();
  test_configs_complete();
  test_error_cases();
  test_rules();
  test_overrides();
  test_bad_overrides();
  test_origins();
  test_failed_load_keeps_cfg();
  test_round_trips();
  test_write_yaml_format();
  test_help();
  test_hostile_input();
  printf("test_config: %d passed, %d failed\n", passes, failures);
  return failures ? 1 : 0;
}
