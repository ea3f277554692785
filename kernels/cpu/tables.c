/* tables.c — sin-cos position tables and learned embedding lookups. */
#include <math.h>

#include "kernels/kernels.h"

void k_sincos_table(float *out, const double *positions, int n, int d) {
  int half = d / 2;
  for (int r = 0; r < n; r++)
    for (int i = 0; i < half; i++) {
      double w = pow(10000.0, -2.0 * i / (double)d);
      out[(size_t)r * d + i] = (float)sin(positions[r] * w);
      out[(size_t)r * d + half + i] = (float)cos(positions[r] * w);
    }
}

void k_embedding_add(float *out, const float *table, const int *index, int B, int D) {
  for (int b = 0; b < B; b++)
    for (int d = 0; d < D; d++) out[(size_t)b * D + d] += table[(size_t)index[b] * D + d];
}

void k_embedding_backward(float *d_table, const float *d_out, const int *index, int B, int D) {
  for (int b = 0; b < B; b++)
    for (int d = 0; d < D; d++) d_table[(size_t)index[b] * D + d] += d_out[(size_t)b * D + d];
}
