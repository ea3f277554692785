/* check_kernels_where.h — where a failing attention result departs from its CPU twin.
 *
 * A wrong ldmatrix lane map, fragment index, tail mask or softmax scale in the flash kernels leaves
 * a pattern: only some rows of every 16-row mma tile, some columns of every 16-column block, the
 * last (partial) 64-row block, one of q/k/v in d_qkv. GPU time is scarce, so a FAIL line is
 * followed by the counts that tell these apart, without a second run. Plain C, no GPU: the CPU
 * test suite checks the counting (tests/unit/test_check_where.c). */
#ifndef TPDIFF_CHECK_KERNELS_WHERE_H
#define TPDIFF_CHECK_KERNELS_WHERE_H

#include <stddef.h>
#include <stdio.h>

/* values laid out [B][N][parts][H][DH]: out is parts = 1, d_qkv parts = 3 (q, k, v) */
typedef struct {
  int B, N, parts, H, DH;
} where_layout;

enum { WHERE_BINS = 16 };

typedef struct {
  double threshold;            /* |gpu - cpu| above this is "off": limit x max|cpu| (rel_err's norm) */
  size_t total, off, nonfinite; /* values; off ones; of them not finite where the CPU's is */
  size_t by_part[3];           /* q, k, v (parts = 3) or all in [0] */
  size_t by_head[WHERE_BINS];  /* head, the last bin holding heads >= 15 */
  size_t by_row16[16];         /* n mod 16: the row inside a 16-row mma tile */
  size_t by_col16[16];         /* c mod 16, c the column inside the head */
  size_t by_col_block[WHERE_BINS]; /* c / 16, the last bin holding the rest */
  size_t in_last_block;        /* rows of the last 64-row block (n >= 64 floor((N-1)/64)) */
  size_t last_block_rows;      /* how many rows that block has */
  size_t worst;                /* index of the largest difference (or the first non-finite) */
  double worst_diff;           /* +Inf where that value is not finite */
} where_counts;

/* Counts the values of got (n = B N parts H DH) that differ from want by more than limit x max|want|. */
void where_count(const float *got, const float *want, const where_layout *l, double limit, where_counts *w);

/* Two lines starting "  where:" (nothing when no value is off). */
void where_print(FILE *f, const where_layout *l, const float *got, const float *want, const where_counts *w);

#endif
