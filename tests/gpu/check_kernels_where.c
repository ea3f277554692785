/* check_kernels_where.c — the counts of check_kernels_where.h. */
#include "tests/gpu/check_kernels_where.h"

#include <math.h>
#include <string.h>

void where_count(const float *got, const float *want, const where_layout *l, double limit, where_counts *w) {
  memset(w, 0, sizeof *w);
  const size_t D = (size_t)l->H * l->DH, row = (size_t)l->parts * D;
  w->total = (size_t)l->B * l->N * row;
  double den = 0.0;
  for (size_t i = 0; i < w->total; i++)
    if (fabs(want[i]) > den) den = fabs(want[i]);
  w->threshold = limit * (den > 0.0 ? den : 1.0);
  const int last_start = l->N > 0 ? 64 * ((l->N - 1) / 64) : 0;
  w->last_block_rows = (size_t)(l->N - last_start);
  w->worst_diff = -1.0;
  for (size_t i = 0; i < w->total; i++) {
    double g = got[i], v = want[i];
    int bad_value = !isfinite(g) && isfinite(v);
    double d = bad_value ? INFINITY : fabs(g - v);
    if (!(d > w->threshold)) continue;
    if (d > w->worst_diff) {
      w->worst_diff = d;
      w->worst = i;
    }
    size_t in_row = i % row;
    int n = (int)((i / row) % (size_t)l->N);
    int part = (int)(in_row / D), head = (int)(in_row % D / (size_t)l->DH), c = (int)(in_row % (size_t)l->DH);
    w->off++;
    w->nonfinite += bad_value;
    w->by_part[part < 3 ? part : 2]++;
    w->by_head[head < WHERE_BINS - 1 ? head : WHERE_BINS - 1]++;
    w->by_row16[n % 16]++;
    w->by_col16[c % 16]++;
    w->by_col_block[c / 16 < WHERE_BINS - 1 ? c / 16 : WHERE_BINS - 1]++;
    w->in_last_block += n >= last_start;
  }
}

static void print_bins(FILE *f, const char *name, const size_t *bins, int count) {
  fprintf(f, " | %s", name);
  for (int i = 0; i < count; i++) fprintf(f, " %zu", bins[i]);
}

void where_print(FILE *f, const where_layout *l, const float *got, const float *want, const where_counts *w) {
  if (w->off == 0) return;
  const size_t D = (size_t)l->H * l->DH, row = (size_t)l->parts * D, i = w->worst;
  size_t in_row = i % row;
  static const char *const part_names[3] = {"q", "k", "v"};
  char part[8] = "";
  if (l->parts == 3) snprintf(part, sizeof part, "%s, ", part_names[in_row / D]);
  fprintf(f,
          "  where: %zu of %zu values off by more than %.3g (the limit x max|cpu|), %zu of them not finite; "
          "worst [b %zu, n %zu, %shead %zu, col %zu]: gpu %.6g cpu %.6g\n",
          w->off, w->total, w->threshold, w->nonfinite, i / row / (size_t)l->N, i / row % (size_t)l->N, part,
          in_row % D / (size_t)l->DH, in_row % (size_t)l->DH, got[i], want[i]);
  fprintf(f, "  where:");
  if (l->parts == 3) fprintf(f, " q %zu k %zu v %zu |", w->by_part[0], w->by_part[1], w->by_part[2]);
  fprintf(f, " last 64-row block (%zu rows) %zu", w->last_block_rows, w->in_last_block);
  print_bins(f, "row%16", w->by_row16, 16);
  print_bins(f, "col%16", w->by_col16, l->DH < 16 ? l->DH : 16);
  int blocks = (l->DH + 15) / 16;
  print_bins(f, "col/16", w->by_col_block, blocks < WHERE_BINS ? blocks : WHERE_BINS);
  print_bins(f, "head", w->by_head, l->H < WHERE_BINS ? l->H : WHERE_BINS);
  fprintf(f, "\n");
}
