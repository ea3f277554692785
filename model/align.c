/* align.c — data-noise alignment (MATH.md section 7): an exact linear assignment solver and the
 * microbatch pairing of clips with candidate noises that minimises sum_i -<X_i, E_pi(i)>. */
#include "model/align.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

/* Shortest augmenting paths with row/column potentials (the Jonker-Volgenant / Hungarian scheme in
 * its compact O(n^3) form): rows are inserted one at a time; a Dijkstra-like search over reduced
 * costs cost[i][j] - u[i] - v[j] >= 0 finds the cheapest path to a free column, the potentials are
 * shifted so the path's edges become tight, and the path is flipped. After row n the potentials are
 * a dual certificate of optimality. Ties go to the lowest column index (strict <), so the result is
 * a deterministic function of the matrix. Arrays are 1-based with column 0 the virtual start. */
int lap_solve(const double *cost, int n, int *perm) {
  if (n <= 0) return 0;
  if (n == 1) {
    perm[0] = 0;
    return 0;
  }
  const size_t m = (size_t)n + 1;
  double *u = calloc(m, sizeof(double)), *v = calloc(m, sizeof(double)), *minv = malloc(m * sizeof(double));
  int *p = calloc(m, sizeof(int)), *way = calloc(m, sizeof(int));
  unsigned char *used = malloc(m);
  if (!u || !v || !minv || !p || !way || !used) {
    free(u);
    free(v);
    free(minv);
    free(p);
    free(way);
    free(used);
    return -1;
  }
  for (int i = 1; i <= n; i++) {
    p[0] = i;
    int j0 = 0;
    for (size_t j = 0; j < m; j++) {
      minv[j] = INFINITY;
      used[j] = 0;
    }
    do {
      used[j0] = 1;
      const int i0 = p[j0];
      const double *row = cost + (size_t)(i0 - 1) * n;
      const double ui0 = u[i0];
      double delta = INFINITY;
      int j1 = -1;
      for (int j = 1; j <= n; j++) {
        if (used[j]) continue;
        double cur = row[j - 1] - ui0 - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      if (j1 < 0) {
        /* Only reachable with non-finite costs (NaN compares false): take the first free-to-visit
         * column so the search still ends in at most n steps with a valid permutation. */
        for (int j = 1; j <= n && j1 < 0; j++)
          if (!used[j]) j1 = j;
        way[j1] = j0;
        delta = 0.0;
      }
      for (int j = 0; j <= n; j++) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (p[j0] != 0);
    do { /* flip the augmenting path back to the start */
      int j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0 != 0);
  }
  for (int j = 1; j <= n; j++) perm[p[j] - 1] = j - 1;
  free(u);
  free(v);
  free(minv);
  free(p);
  free(way);
  free(used);
  return 0;
}

/* Largest inner dimension handed to one GEMM: k_linear_forward takes int sizes. (Overridable at
 * compile time only so that the chunked path can be exercised with small D.) */
#ifndef ALIGN_GEMM_MAX_K
#define ALIGN_GEMM_MAX_K INT_MAX
#endif
/* Floats per staging buffer when D must be cut into chunks (64 MiB each). */
#ifndef ALIGN_CHUNK_FLOATS
#define ALIGN_CHUNK_FLOATS ((size_t)1 << 24)
#endif

/* G[i][j] = <X_i, E_j> in double for D > ALIGN_GEMM_MAX_K: the D axis is cut into chunks, each
 * chunk's rows are staged contiguously (k_linear_forward wants leading dimension = K), multiplied
 * with fp32 accumulation, and the chunk results are summed in double. */
static int gram_chunked(double *G, const float *X, const float *E, int B, size_t D) {
  size_t L = ALIGN_CHUNK_FLOATS / (size_t)B;
  if (L < 1) L = 1;
  if (L > (size_t)ALIGN_GEMM_MAX_K) L = (size_t)ALIGN_GEMM_MAX_K;
  if (L > D) L = D;
  float *xs = malloc((size_t)B * L * sizeof(float)), *es = malloc((size_t)B * L * sizeof(float));
  float *g = malloc((size_t)B * B * sizeof(float));
  if (!xs || !es || !g) {
    free(xs);
    free(es);
    free(g);
    return -1;
  }
  memset(G, 0, (size_t)B * B * sizeof(double));
  for (size_t off = 0; off < D; off += L) {
    const size_t len = D - off < L ? D - off : L;
    for (int i = 0; i < B; i++) {
      memcpy(xs + (size_t)i * len, X + (size_t)i * D + off, len * sizeof(float));
      memcpy(es + (size_t)i * len, E + (size_t)i * D + off, len * sizeof(float));
    }
    k_linear_forward(g, xs, es, NULL, B, (int)len, B);
    for (size_t q = 0; q < (size_t)B * B; q++) G[q] += g[q];
  }
  free(xs);
  free(es);
  free(g);
  return 0;
}

int align_noise(const float *X, const float *E, int B, size_t D, float *eps_out, int *perm) {
  if (B <= 0) return 0;
  if (B == 1 || D == 0) { /* nothing to choose: keep the draw as it is */
    for (int i = 0; i < B; i++) perm[i] = i;
    memcpy(eps_out, E, (size_t)B * D * sizeof(float));
    return 0;
  }
  const size_t bb = (size_t)B * B;
  double *cost = malloc(bb * sizeof(double));
  if (!cost) return -1;
  if (D <= (size_t)ALIGN_GEMM_MAX_K) {
    /* One GEMM, G = X E^T (fp32 accumulation); the LAP then runs on -G in double. Adding the row
     * and column constants ||X_i||^2 + ||E_j||^2 would give the squared distance and the same
     * optimal permutation, so they are not computed. */
    float *g = malloc(bb * sizeof(float));
    if (!g) {
      free(cost);
      return -1;
    }
    k_linear_forward(g, X, E, NULL, B, (int)D, B);
    for (size_t q = 0; q < bb; q++) cost[q] = -(double)g[q];
    free(g);
  } else {
    if (gram_chunked(cost, X, E, B, D) != 0) {
      free(cost);
      return -1;
    }
    for (size_t q = 0; q < bb; q++) cost[q] = -cost[q];
  }
  int rc = lap_solve(cost, B, perm);
  free(cost);
  if (rc != 0) return -1;
    /* Gather: each output row is a verbatim copy of one candidate, so the multiset is unchanged. */
#pragma omp parallel for schedule(static) if ((size_t)B * D > 1048576)
  for (int i = 0; i < B; i++) memcpy(eps_out + (size_t)i * D, E + (size_t)perm[i] * D, D * sizeof(float));
  return 0;
}
