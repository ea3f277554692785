/* test_check_where.c — the counts that follow a failing attention check on a GPU
 * (tests/gpu/check_kernels_where.c): they must point at the rows, columns, head and part that are
 * wrong, or a GPU run is read for the wrong fault. A known pattern is planted in a copy of
 * random values and the counts and the printed lines are compared with what was planted. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/gpu/check_kernels_where.h"
#include "tests/unit/test_report.h"

static size_t index_of(const where_layout *l, int b, int n, int part, int head, int c) {
  return ((((size_t)b * l->N + n) * l->parts + part) * l->H + head) * l->DH + c;
}

static int bins_equal(const size_t *got, const size_t *want, int count) {
  return memcmp(got, want, sizeof(size_t) * (size_t)count) == 0;
}

int main(void) {
  /* N = 70: a last 64-row block of 6 rows; DH = 24: a last 16-column block of 8 columns */
  where_layout l = {2, 70, 3, 2, 24};
  size_t n = (size_t)l.B * l.N * l.parts * l.H * l.DH;
  float *want = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
  uint64_t state = 12345;
  for (size_t i = 0; i < n; i++) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    want[i] = (float)((double)(state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
  }
  want[7] = 1.0f; /* max|cpu| is exactly 1: the threshold is the limit */
  memcpy(got, want, n * sizeof(float));

  where_counts w;
  where_count(got, want, &l, 1e-2, &w);
  check("where.identical", w.off == 0 && w.total == n && w.threshold == 1e-2, "off=%zu total=%zu threshold=%g", w.off,
        w.total, w.threshold);

  /* below the threshold: not off */
  for (size_t i = 0; i < n; i += 3) got[i] += 1e-3f;
  where_count(got, want, &l, 1e-2, &w);
  check("where.below-threshold", w.off == 0, "off=%zu", w.off);

  /* planted: k, head 1, rows n % 16 == 9 (n = 9, 25, 41, 57), columns c % 16 == 3 (c = 3, 19) */
  for (int b = 0; b < l.B; b++)
    for (int row = 9; row < l.N; row += 16)
      for (int c = 3; c < l.DH; c += 16) got[index_of(&l, b, row, 1, 1, c)] += 0.5f;
  where_count(got, want, &l, 1e-2, &w);
  size_t row16[16] = {0}, col16[16] = {0}, blocks[2] = {8, 8}, heads[2] = {0, 16};
  row16[9] = 16;
  col16[3] = 16;
  check("where.planted-counts",
        w.off == 16 && w.nonfinite == 0 && w.by_part[0] == 0 && w.by_part[1] == 16 && w.by_part[2] == 0 &&
            bins_equal(w.by_row16, row16, 16) && bins_equal(w.by_col16, col16, 16) &&
            bins_equal(w.by_col_block, blocks, 2) && bins_equal(w.by_head, heads, 2) && w.in_last_block == 0 &&
            w.last_block_rows == 6,
        "off=%zu parts %zu/%zu/%zu last-block %zu of %zu rows", w.off, w.by_part[0], w.by_part[1], w.by_part[2],
        w.in_last_block, w.last_block_rows);

  /* an unwritten (NaN-poisoned) value in the last block is off, counted as not finite, and the worst */
  size_t hole = index_of(&l, 1, 66, 2, 0, 5);
  memset(&got[hole], 0xFF, sizeof(float));
  /* a NaN the CPU has too is not a GPU fault */
  want[index_of(&l, 0, 0, 0, 0, 0)] = NAN;
  got[index_of(&l, 0, 0, 0, 0, 0)] = NAN;
  where_count(got, want, &l, 1e-2, &w);
  check("where.unwritten-value",
        w.off == 17 && w.nonfinite == 1 && w.worst == hole && isinf(w.worst_diff) && w.in_last_block == 1 &&
            w.by_part[2] == 1,
        "off=%zu nonfinite=%zu worst=%zu (want %zu) last-block %zu", w.off, w.nonfinite, w.worst, hole, w.in_last_block);

  char *text = NULL;
  size_t text_size = 0;
  FILE *f = open_memstream(&text, &text_size);
  where_print(f, &l, got, want, &w);
  fclose(f);
  int lines = 0;
  for (const char *p = text; *p; p++) lines += *p == '\n';
  check("where.printed",
        lines == 2 && strstr(text, "17 of 20160 values off") && strstr(text, "1 of them not finite") &&
            strstr(text, "worst [b 1, n 66, v, head 0, col 5]") && strstr(text, " q 0 k 16 v 1 |") &&
            strstr(text, "last 64-row block (6 rows) 1") &&
            strstr(text, "row%16 0 0 1 0 0 0 0 0 0 16 0 0 0 0 0 0 |") && strstr(text, "col/16 9 8 |") &&
            strstr(text, "head 1 16\n"),
        "got: %s", text);
  free(text);

  /* nothing off, nothing printed */
  memcpy(got, want, n * sizeof(float));
  where_count(got, want, &l, 1e-2, &w);
  text = NULL;
  f = open_memstream(&text, &text_size);
  where_print(f, &l, got, want, &w);
  fclose(f);
  check("where.silent-when-right", text_size == 0, "printed %zu bytes", text_size);
  free(text);

  free(want);
  free(got);
  test_summary("test_check_where", NULL);
  return test_exit_code();
}
