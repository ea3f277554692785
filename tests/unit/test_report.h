/* test_report.h — the PASS/FAIL lines and their counters, shared by every unit test program of tests/unit.
 * Header-only (static inline) because the Makefile builds every .c file of tests/unit into a program of its
 * own: a shared .c file there would become one more program.
 *
 * Each case prints exactly one line that starts with "PASS <case>" or "FAIL <case>" (tests/run_all.sh counts
 * those lines, so a detail must never spill onto a line of its own: control characters in a line are
 * replaced by '?'). A detail argument is a printf format; NULL means no detail.
 *
 *   pass(name, fmt, ...)               PASS <name>                 or  PASS <name> (<detail>)
 *   failf(name, fmt, ...)              FAIL <name>: <detail>
 *   check(name, ok, fmt, ...)          PASS|FAIL <name>[ <detail>]
 *   report(name, err, limit, fmt, ...) PASS|FAIL <name> err=<err> limit=<limit>[ <detail>]
 *                                      passes when err <= limit; a NaN or infinite err never passes
 *   test_summary(program, fmt, ...)    <program>: <n> passed, <n> failed[, <detail>]   (not a PASS/FAIL line)
 *   test_exit_code()                   1 if any case failed, else 0: main's return value
 */
#ifndef TPDIFF_TEST_REPORT_H
#define TPDIFF_TEST_REPORT_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(__GNUC__)
#define TEST_REPORT_PRINTF(fmt_index) __attribute__((format(printf, fmt_index, fmt_index + 1)))
#else
#define TEST_REPORT_PRINTF(fmt_index)
#endif

/* Cases passed and failed so far in this program. */
static int test_passes, test_failures;

/* Prints "PASS|FAIL <name><fixed>[<open><detail><close>]" as one line and counts the case. The line is built
 * whole and printed with one call, so nothing of it can end up on a line of its own. */
static inline void test_report_line_(int ok, const char *name, const char *fixed, const char *open, const char *close,
                                     const char *fmt, va_list ap) {
  int has_detail = fmt && fmt[0];
  int detail_len = 0;
  if (has_detail) {
    va_list probe;
    va_copy(probe, ap);
    detail_len = vsnprintf(NULL, 0, fmt, probe);
    va_end(probe);
    if (detail_len < 0) has_detail = 0, detail_len = 0;
  }
  int head_len = snprintf(NULL, 0, "%s %s%s%s", ok ? "PASS" : "FAIL", name, fixed, has_detail ? open : "");
  int tail_len = snprintf(NULL, 0, "%s", has_detail ? close : "");
  size_t size = (size_t)head_len + (size_t)detail_len + (size_t)tail_len + 1;
  char *line = malloc(size);
  if (!line) { /* out of memory: the case still gets its line, without the detail */
    printf("%s %s\n", ok ? "PASS" : "FAIL", name);
  } else {
    int at = snprintf(line, size, "%s %s%s%s", ok ? "PASS" : "FAIL", name, fixed, has_detail ? open : "");
    if (has_detail) at += vsnprintf(line + at, size - (size_t)at, fmt, ap);
    snprintf(line + at, size - (size_t)at, "%s", has_detail ? close : "");
    for (char *p = line; *p; p++)
      if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    printf("%s\n", line);
    free(line);
  }
  if (ok)
    test_passes++;
  else
    test_failures++;
}

/* A case that passed: "PASS <name>", or "PASS <name> (<detail>)" when fmt is not NULL. */
TEST_REPORT_PRINTF(2) static inline void pass(const char *name, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  test_report_line_(1, name, "", " (", ")", fmt, ap);
  va_end(ap);
}

/* A case that failed: "FAIL <name>: <detail>" on one line whatever the detail holds. */
TEST_REPORT_PRINTF(2) static inline void failf(const char *name, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  test_report_line_(0, name, "", ": ", "", fmt, ap);
  va_end(ap);
}

/* A case decided by the caller: "PASS|FAIL <name>", then " <detail>" when fmt is not NULL. The detail is
 * printed either way, so it can show the measured values a pass was judged on. */
TEST_REPORT_PRINTF(3) static inline void check(const char *name, int ok, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  test_report_line_(ok, name, "", " ", "", fmt, ap);
  va_end(ap);
}

/* A numeric case: passes when err <= limit. `err <= limit` alone would already refuse a NaN err (or limit);
 * an infinite err is refused too, so a test can report INFINITY to mean "could not be measured". */
TEST_REPORT_PRINTF(4) static inline void report(const char *name, double err, double limit, const char *fmt, ...) {
  char fixed[96];
  snprintf(fixed, sizeof fixed, " err=%.3g limit=%.3g", err, limit);
  va_list ap;
  va_start(ap, fmt);
  test_report_line_(isfinite(err) && err <= limit, name, fixed, " ", "", fmt, ap);
  va_end(ap);
}

/* The summary line "<program>: <n> passed, <n> failed", then ", <detail>" when fmt is not NULL. */
TEST_REPORT_PRINTF(2) static inline void test_summary(const char *program, const char *fmt, ...) {
  printf("%s: %d passed, %d failed", program, test_passes, test_failures);
  if (fmt && fmt[0]) {
    va_list ap;
    va_start(ap, fmt);
    printf(", ");
    vprintf(fmt, ap);
    va_end(ap);
  }
  printf("\n");
}

/* main's return value: 1 if any case failed, else 0. */
static inline int test_exit_code(void) { return test_failures ? 1 : 0; }

#endif
