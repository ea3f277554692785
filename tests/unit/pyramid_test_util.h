/* pyramid_test_util.h — helpers shared by the temporal-pyramid test programs (test_pyramid_operators.c,
 * test_pyramid_schedules.c, test_pyramid_pairs.c): normwise errors, the random inputs and synthetic
 * latent videos they draw, and the frame operators of MATH.md written independently in double.
 * Header-only (static inline) because the Makefile builds every .c file of tests/unit into a program
 * of its own: a shared .c file there would become one more program. */
#ifndef TPDIFF_PYRAMID_TEST_UTIL_H
#define TPDIFF_PYRAMID_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "model/pyramid.h"

#define SQRT2 1.41421356237309504880

static inline double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static inline double maxd(double a, double b) { return a > b || isnan(a) ? a : b; }

/* normwise error of float data against double truth */
static inline double err_fd(const float *got, const double *want, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    num = maxd(num, fabs((double)got[i] - want[i]));
    den = maxd(den, fabs(want[i]));
  }
  return num / (den > 1e-300 ? den : 1e-300);
}
static inline double err_dd(const double *got, const double *want, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    num = maxd(num, fabs(got[i] - want[i]));
    den = maxd(den, fabs(want[i]));
  }
  return num / (den > 1e-300 ? den : 1e-300);
}
static inline size_t bits_differ(const float *a, const float *b, size_t n) {
  size_t d = 0;
  for (size_t i = 0; i < n; i++) d += memcmp(a + i, b + i, sizeof(float)) != 0;
  return d;
}

/* Stream of the next randn_f draw. A program that runs after others in the former single test program
 * sets its first stream where that program's counter stood, so that its cases see the same data. */
static uint64_t stream_next = 1000;
static inline float *randn_f(size_t n) {
  float *x = malloc(n * sizeof(float));
  k_fill_normal(x, n, 7, stream_next++, 0);
  return x;
}
static inline double *to_d(const float *x, size_t n) {
  double *d = malloc(n * sizeof(double));
  for (size_t i = 0; i < n; i++) d[i] = x[i];
  return d;
}
static inline double *randn_d(size_t n) {
  float *f = randn_f(n);
  double *d = to_d(f, n);
  free(f);
  return d;
}

/* Synthetic latent video as in reference/pyramid_mc.py: per sample an AR(1) process over frames
 * (rho = 0.9) plus a per-sample offset 1 + 0.7 N(0,1). x is [N, F], row-major. */
static inline void make_video(float *x, int N, int F, uint64_t stream) {
  const double rho = 0.9, innov = sqrt(1 - rho * rho);
  float *z = malloc((size_t)N * (F + 1) * sizeof(float));
  k_fill_normal(z, (size_t)N * (F + 1), 11, stream, 0);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float *zn = z + (size_t)n * (F + 1);
    double ar = zn[0], off = 1.0 + 0.7 * zn[F];
    x[(size_t)n * F] = (float)(off + ar);
    for (int f = 1; f < F; f++) {
      ar = rho * ar + innov * zn[f];
      x[(size_t)n * F + f] = (float)(off + ar);
    }
  }
  free(z);
}

/* ---- double-precision operators on [N, F] (the MATH.md definitions, written independently) ---- */
static inline void d_down(double *o, const double *x, int N, int F) {
  for (int n = 0; n < N; n++)
    for (int j = 0; j < F / 2; j++) o[n * (F / 2) + j] = (x[n * F + 2 * j] + x[n * F + 2 * j + 1]) / 2;
}
static inline void d_dn(double *o, const double *x, int N, int F) {
  for (int n = 0; n < N; n++)
    for (int j = 0; j < F / 2; j++) o[n * (F / 2) + j] = (x[n * F + 2 * j] + x[n * F + 2 * j + 1]) / SQRT2;
}
static inline void d_hi(double *o, const double *x, int N, int F) {
  for (int n = 0; n < N; n++)
    for (int j = 0; j < F / 2; j++) o[n * (F / 2) + j] = (x[n * F + 2 * j] - x[n * F + 2 * j + 1]) / SQRT2;
}
static inline void d_up(double *o, const double *y, int N, int Fc) {
  for (int n = 0; n < N; n++)
    for (int j = 0; j < Fc; j++) o[n * 2 * Fc + 2 * j] = o[n * 2 * Fc + 2 * j + 1] = y[n * Fc + j];
}
static inline void d_anti(double *o, const double *y, int N, int Fc) {
  for (int n = 0; n < N; n++)
    for (int j = 0; j < Fc; j++) {
      o[n * 2 * Fc + 2 * j] = y[n * Fc + j];
      o[n * 2 * Fc + 2 * j + 1] = -y[n * Fc + j];
    }
}
static inline void d_P(double *o, const double *x, int N, int F) {
  double *t = malloc((size_t)N * F / 2 * sizeof(double));
  d_down(t, x, N, F);
  d_up(o, t, N, F / 2);
  free(t);
}

/* "rf" or "vp": the schedule's part of a case name */
static inline const char *form_name(diffusion_form f) { return f == DIFFUSION_RF ? "rf" : "vp"; }

#endif
