/* test_config_rules.c — unit tests of what a config load refuses and how it says so (trainer/config*.c):
 * YAML errors, bad command-line overrides, the range and shape rules of validation with the source each
 * message names (file, command line or config_validate's origin), a failed load leaving cfg alone, and
 * hostile input. What loads is tested in test_config_load.c.
 *
 * Usage: test_config_rules [CONFIGS_DIR]   (accepted like test_config_load's, but unused: every case
 * writes its own file). Prints one "PASS <case>" or "FAIL <case>: <detail>" line per case and a summary
 * line; exits 1 if any case failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/config_test_util.h"
#include "trainer/config.h"

/* ---- cases ---- */

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
      pass(name, NULL);
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
      pass(name, NULL);
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
  expect_yaml_error("rule: stage_weights count", "pyramid:\n  stages: 3\n  stage_weights: [1, 2]\n",
                    "pyramid.stage_weights", "pyramid.stages = 3 entries");
  expect_yaml_error("rule: stage_weights negative", "pyramid:\n  stages: 2\n  stage_weights: [1, -1]\n",
                    "pyramid.stage_weights", "negative");
  expect_yaml_error("rule: stage_weights all zero", "pyramid:\n  stages: 2\n  stage_weights: [0, 0]\n",
                    "pyramid.stage_weights", "weight > 0");
  expect_yaml_error("rule: synth_clips positive", "data:\n  synth_clips: 0\n", "data.synth_clips", "must be > 0");
  expect_yaml_error("rule: synth choice", "data:\n  synth: mnist\n", "data.synth", "shapes");
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
  pass(name, NULL);
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
    pass(name, NULL);

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
  pass(name, NULL);
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
    pass(name, NULL);
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
    pass(name, NULL);
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
    pass(name, NULL);
  free(small);
  free(buf);
}

int main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  test_error_cases();
  test_rules();
  test_bad_overrides();
  test_origins();
  test_failed_load_keeps_cfg();
  test_hostile_input();
  test_summary("test_config_rules", NULL);
  return test_exit_code();
}
