/* config_test_util.h — what the config test programs (test_config_load.c, test_config_rules.c) share:
 * temporary files, config_load expectations and the CHECK_* field macros; the PASS/FAIL reporting with its
 * counters comes from test_report.h. Header-only (static inline) because the Makefile builds every .c file
 * of tests/unit into a program of its own. */
#ifndef TPDIFF_CONFIG_TEST_UTIL_H
#define TPDIFF_CONFIG_TEST_UTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/test_report.h"
#include "trainer/config.h"

/* Writes len bytes to a new file under $TMPDIR (or /tmp); path gets its name. */
static inline int write_temp(const char *text, size_t len, char *path, size_t path_size) {
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
static inline const char *err_shape_problem(const char *err, size_t err_size) {
  size_t len = strnlen(err, err_size);
  if (len == err_size) return "err is not terminated";
  if (len == 0) return "err is empty";
  if (strchr(err, '\n') || strchr(err, '\r')) return "err is not a single line";
  return NULL;
}

/* Loads yaml text (a temp file; NULL = no file) with args; expects -1 and an err that starts with the
 * origin (the temp file's name when origin is NULL) and contains every NULL-terminated needle. */
static inline void expect_error(const char *name, const char *yaml, const char *origin, int nargs, char **args, ...) {
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
    if (ok) pass(name, NULL);
  }
  if (yaml) unlink(path);
}

static inline void expect_yaml_error(const char *name, const char *yaml, const char *needle1, const char *needle2) {
  expect_error(name, yaml, NULL, 0, NULL, needle1, needle2, (const char *)NULL);
}

/* Loads yaml text plus args into cfg; on failure reports the case and returns -1. */
static inline int load_text(const char *name, const char *yaml, int nargs, char **args, tpdiff_config *cfg) {
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

#endif
