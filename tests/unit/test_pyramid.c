/* test_pyramid.c — the temporal-pyramid math (MATH.md, checklist of section 9, items 1-16 and 24)
 * against the specification: frame operators, schedules and windows, renoise coefficients and
 * pathwise identity, Monte-Carlo laws with negative controls, training pairs, oracle samplers,
 * the K = 1 reduction to vanilla, the cost model, and the float kernels behind them.
 *
 * Pure-math properties are checked twice: with double-precision helpers written here from the
 * MATH.md definitions (tolerances of section 9, ~1e-12) and through the float kernels and
 * model/pyramid.c (float rounding, ~1e-6). Each case prints `PASS name ...` or `FAIL name ...`;
 * the program exits 1 if any case failed. Errors are normwise: max|got - want| / max|want|. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "model/pyramid.h"
#include "tests/unit/test_report.h"

#define SQRT2 1.41421356237309504880
#define PI 3.14159265358979323846

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double maxd(double a, double b) { return a > b || isnan(a) ? a : b; }

/* normwise error of float data against double truth */
static double err_fd(const float *got, const double *want, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    num = maxd(num, fabs((double)got[i] - want[i]));
    den = maxd(den, fabs(want[i]));
  }
  return num / (den > 1e-300 ? den : 1e-300);
}
static double err_dd(const double *got, const double *want, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    num = maxd(num, fabs(got[i] - want[i]));
    den = maxd(den, fabs(want[i]));
  }
  return num / (den > 1e-300 ? den : 1e-300);
}
static size_t bits_differ(const float *a, const float *b, size_t n) {
  size_t d = 0;
  for (size_t i = 0; i < n; i++) d += memcmp(a + i, b + i, sizeof(float)) != 0;
  return d;
}

static uint64_t stream_next = 1000;
static float *randn_f(size_t n) {
  float *x = malloc(n * sizeof(float));
  k_fill_normal(x, n, 7, stream_next++, 0);
  return x;
}
static double *to_d(const float *x, size_t n) {
  double *d = malloc(n * sizeof(double));
  for (size_t i = 0; i < n; i++) d[i] = x[i];
  return d;
}
static double *randn_d(size_t n) {
  float *f = randn_f(n);
  double *d = to_d(f, n);
  free(f);
  return d;
}

/* Synthetic latent video as in reference/pyramid_mc.py: per sample an AR(1) process over frames
 * (rho = 0.9) plus a per-sample offset 1 + 0.7 N(0,1). x is [N, F], row-major. */
static void make_video(float *x, int N, int F, uint64_t stream) {
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
static void d_down(double *o, const double *x, int N, int F) {
  for (int n = 0; n < N; n++)
    for (int j = 0; j < F / 2; j++) o[n * (F / 2) + j] = (x[n * F + 2 * j] + x[n * F + 2 * j + 1]) / 2;
}
static void d_dn(double *o, const double *x, int N, int F) {
  for (int n = 0; n < N; n++)
    for (int j = 0; j < F / 2; j++) o[n * (F / 2) + j] = (x[n * F + 2 * j] + x[n * F + 2 * j + 1]) / SQRT2;
}
static void d_hi(double *o, const double *x, int N, int F) {
  for (int n = 0; n < N; n++)
    for (int j = 0; j < F / 2; j++) o[n * (F / 2) + j] = (x[n * F + 2 * j] - x[n * F + 2 * j + 1]) / SQRT2;
}
static void d_up(double *o, const double *y, int N, int Fc) {
  for (int n = 0; n < N; n++)
    for (int j = 0; j < Fc; j++) o[n * 2 * Fc + 2 * j] = o[n * 2 * Fc + 2 * j + 1] = y[n * Fc + j];
}
static void d_anti(double *o, const double *y, int N, int Fc) {
  for (int n = 0; n < N; n++)
    for (int j = 0; j < Fc; j++) {
      o[n * 2 * Fc + 2 * j] = y[n * Fc + j];
      o[n * 2 * Fc + 2 * j + 1] = -y[n * Fc + j];
    }
}
static void d_P(double *o, const double *x, int N, int F) {
  double *t = malloc((size_t)N * F / 2 * sizeof(double));
  d_down(t, x, N, F);
  d_up(o, t, N, F / 2);
  free(t);
}
static double dotd(const double *a, const double *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

/* =============================================================================================
 * Operators (items 1-3) and the kernels behind them
 * ============================================================================================= */

/* naive reference of each frame kernel on [bc, T, plane], in double */
static void naive_frames(int op, double *o, const float *in, int bc, int T, int plane) {
  for (int c = 0; c < bc; c++)
    for (int p = 0; p < plane; p++) {
      if (op <= 2) {
        for (int j = 0; j < T / 2; j++) {
          double a = in[((size_t)c * T + 2 * j) * plane + p], b = in[((size_t)c * T + 2 * j + 1) * plane + p];
          double r = op == 0 ? (a + b) / 2 : op == 1 ? (a + b) / SQRT2 : (a - b) / SQRT2;
          o[((size_t)c * (T / 2) + j) * plane + p] = r;
        }
      } else {
        for (int j = 0; j < T; j++) {
          double a = in[((size_t)c * T + j) * plane + p];
          o[((size_t)c * 2 * T + 2 * j) * plane + p] = a;
          o[((size_t)c * 2 * T + 2 * j + 1) * plane + p] = op == 3 ? a : -a;
        }
      }
    }
}
static void run_frames(int op, float *o, const float *in, int bc, int T, int plane) {
  switch (op) {
    case 0:
      k_frames_pair_mean(o, in, bc, T, plane);
      break;
    case 1:
      k_frames_pair_sum_norm(o, in, bc, T, plane);
      break;
    case 2:
      k_frames_pair_diff_norm(o, in, bc, T, plane);
      break;
    case 3:
      k_frames_repeat(o, in, bc, T, plane);
      break;
    default:
      k_frames_antisym(o, in, bc, T, plane);
      break;
  }
}

static void test_frames_kernels_vs_naive(void) {
  static const char *names[5] = {"pair_mean", "pair_sum_norm", "pair_diff_norm", "repeat", "antisym"};
  const int shapes[2][3] = {{6, 8, 35}, {4, 16, 4096}}; /* small, and large enough for the threads */
  for (int op = 0; op < 5; op++) {
    double worst = 0;
    for (int s = 0; s < 2; s++) {
      int bc = shapes[s][0], T = shapes[s][1], plane = shapes[s][2];
      size_t nin = (size_t)bc * T * plane, nout = op <= 2 ? nin / 2 : 2 * nin;
      float *in = randn_f(nin), *o = malloc(nout * sizeof(float));
      double *want = malloc(nout * sizeof(double));
      run_frames(op, o, in, bc, T, plane);
      naive_frames(op, want, in, bc, T, plane);
      /* elementwise relative error: these are single correctly-rounded operations */
      for (size_t i = 0; i < nout; i++) {
        double d = fabs(o[i] - want[i]), r = fabs(want[i]) > 1e-30 ? d / fabs(want[i]) : d;
        worst = maxd(worst, r);
      }
      free(in);
      free(o);
      free(want);
    }
    char name[64];
    snprintf(name, sizeof name, "kernel_frames_%s_vs_definition", names[op]);
    /* pair ops round once (<= 2^-24 relative); repeat / antisym are exact copies */
    report(name, worst, op <= 2 ? 6.0e-8 : 0.0, "(elementwise relative, [bc,T,plane] layout)");
  }
}

static void test_frames_thread_invariance(void) {
  const int bc = 8, T = 8, plane = 4096;
  size_t n = (size_t)bc * T * plane;
  float *in = randn_f(n), *a = malloc(2 * n * sizeof(float)), *b = malloc(2 * n * sizeof(float));
  float *y = randn_f(n), *z = randn_f(n), *ca = malloc(n * sizeof(float)), *cb = malloc(n * sizeof(float));
  double c[12];
  for (int i = 0; i < 12; i++) c[i] = 0.1 * (i + 1) - 0.55;
  size_t diff = 0;
  int saved = omp_get_max_threads();
  for (int op = 0; op < 5; op++) {
    size_t nout = op <= 2 ? n / 2 : 2 * n;
    omp_set_num_threads(1);
    run_frames(op, a, in, bc, T, plane);
    omp_set_num_threads(saved > 1 ? saved : 2);
    run_frames(op, b, in, bc, T, plane);
    diff += bits_differ(a, b, nout);
  }
  omp_set_num_threads(1);
  k_combine3_per_clip(ca, in, y, z, c, 4, n / 4);
  omp_set_num_threads(saved > 1 ? saved : 2);
  k_combine3_per_clip(cb, in, y, z, c, 4, n / 4);
  omp_set_num_threads(saved);
  diff += bits_differ(ca, cb, n);
  check("kernel_frames_combine3_thread_invariant", diff == 0, "differing_values=%zu (1 vs %d threads)", diff,
        saved > 1 ? saved : 2);
  free(in);
  free(a);
  free(b);
  free(y);
  free(z);
  free(ca);
  free(cb);
}

/* item 1: Down(Up(y)) == y exactly */
static void test_item1_down_up(void) {
  const int bc = 5, Tc = 4, plane = 33;
  size_t n = (size_t)bc * Tc * plane;
  float *y = randn_f(n), *u = malloc(2 * n * sizeof(float)), *d = malloc(n * sizeof(float));
  /* scale values over the whole float range, including subnormals and near-overflow values */
  const float special[] = {0.0f,          -0.0f,          1e-45f, -3e-39f, 1.17549435e-38f,
                           3.4028235e38f, -3.4028235e38f, 1e30f,  -7e-20f, 1.0f};
  for (size_t i = 0; i < n; i++) y[i] *= powf(10.0f, (float)((int)(i % 61) - 30));
  for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) y[i] = special[i];
  k_frames_repeat(u, y, bc, Tc, plane);
  k_frames_pair_mean(d, u, bc, 2 * Tc, plane);
  size_t nd = bits_differ(d, y, n);
  /* the same with the double helpers */
  double *yd = randn_d(64), *ud = malloc(128 * sizeof(double)), *dd = malloc(64 * sizeof(double));
  d_up(ud, yd, 8, 8);
  d_down(dd, ud, 8, 16);
  size_t ndd = 0;
  for (int i = 0; i < 64; i++) ndd += dd[i] != yd[i];
  check("op1_down_up_identity_exact", nd == 0 && ndd == 0,
        "float_kernel_bits_differ=%zu/%zu (incl. subnormal, +-FLT_MAX, signed zero) double_differ=%zu", nd, n, ndd);
  free(y);
  free(u);
  free(d);
  free(yd);
  free(ud);
  free(dd);
}

/* item 2: P idempotent and symmetric */
static void test_item2_projector(void) {
  const int N = 64, F = 16;
  size_t n = (size_t)N * F;
  /* double */
  double *x = randn_d(n), *z = randn_d(n), *px = malloc(n * sizeof(double)), *ppx = malloc(n * sizeof(double)),
         *pz = malloc(n * sizeof(double));
  d_P(px, x, N, F);
  d_P(ppx, px, N, F);
  d_P(pz, z, N, F);
  double idem = err_dd(ppx, px, n);
  double l = dotd(px, z, n), r = dotd(x, pz, n);
  double sym = fabs(l - r) / maxd(fabs(l), 1.0);
  report("op2_P_idempotent_double", idem, 1e-15, NULL);
  report("op2_P_symmetric_double", sym, 1e-12, "<Px,z>=%.12f <x,Pz>=%.12f", l, r);
  /* float kernels: P P x == P x bit for bit (a repeated pair averages to itself exactly) */
  float *xf = randn_f(n), *zf = randn_f(n), *h = malloc(n / 2 * sizeof(float)), *pxf = malloc(n * sizeof(float)),
        *ppxf = malloc(n * sizeof(float)), *pzf = malloc(n * sizeof(float));
  k_frames_pair_mean(h, xf, N, F, 1);
  k_frames_repeat(pxf, h, N, F / 2, 1);
  k_frames_pair_mean(h, pxf, N, F, 1);
  k_frames_repeat(ppxf, h, N, F / 2, 1);
  k_frames_pair_mean(h, zf, N, F, 1);
  k_frames_repeat(pzf, h, N, F / 2, 1);
  size_t nd = bits_differ(ppxf, pxf, n);
  double lf = 0, rf = 0, mag = 0;
  for (size_t i = 0; i < n; i++) {
    lf += (double)pxf[i] * zf[i];
    rf += (double)xf[i] * pzf[i];
    mag += fabs((double)xf[i] * zf[i]);
  }
  check("op2_P_idempotent_float_kernels_exact", nd == 0, "bits_differ=%zu/%zu", nd, n);
  report("op2_P_symmetric_float_kernels", fabs(lf - rf) / mag, 1e-6, "(relative to sum|x z|)");
  free(x);
  free(z);
  free(px);
  free(ppx);
  free(pz);
  free(xf);
  free(zf);
  free(h);
  free(pxf);
  free(ppxf);
  free(pzf);
}

/* item 3: n == (Up(Dn n) + A(Hi n)) / sqrt2 and ||n||^2 == ||Dn n||^2 + ||Hi n||^2 */
static void test_item3_decomposition(void) {
  const int N = 128, F = 8;
  size_t n = (size_t)N * F;
  double *x = randn_d(n), *dn = malloc(n / 2 * sizeof(double)), *hi = malloc(n / 2 * sizeof(double)),
         *u = malloc(n * sizeof(double)), *a = malloc(n * sizeof(double)), *rec = malloc(n * sizeof(double));
  d_dn(dn, x, N, F);
  d_hi(hi, x, N, F);
  d_up(u, dn, N, F / 2);
  d_anti(a, hi, N, F / 2);
  for (size_t i = 0; i < n; i++) rec[i] = (u[i] + a[i]) / SQRT2;
  double e1 = err_dd(rec, x, n);
  double nn = dotd(x, x, n), nd = dotd(dn, dn, n / 2), nh = dotd(hi, hi, n / 2);
  double e2 = fabs(nn - nd - nh) / nn;
  report("op3_reconstruction_double", e1, 1e-12, NULL);
  report("op3_energy_split_double", e2, 1e-12, "||n||^2=%.6f", nn);
  /* float kernels with a plane > 1 */
  const int bc = 6, T = 8, plane = 21;
  size_t m = (size_t)bc * T * plane;
  float *xf = randn_f(m), *dnf = malloc(m / 2 * sizeof(float)), *hif = malloc(m / 2 * sizeof(float)),
        *uf = malloc(m * sizeof(float)), *af = malloc(m * sizeof(float));
  double *want = to_d(xf, m), *got = malloc(m * sizeof(double));
  k_frames_pair_sum_norm(dnf, xf, bc, T, plane);
  k_frames_pair_diff_norm(hif, xf, bc, T, plane);
  k_frames_repeat(uf, dnf, bc, T / 2, plane);
  k_frames_antisym(af, hif, bc, T / 2, plane);
  double sn = 0, sd = 0, sh = 0;
  for (size_t i = 0; i < m; i++) {
    got[i] = ((double)uf[i] + af[i]) / SQRT2;
    sn += (double)xf[i] * xf[i];
  }
  for (size_t i = 0; i < m / 2; i++) {
    sd += (double)dnf[i] * dnf[i];
    sh += (double)hif[i] * hif[i];
  }
  report("op3_reconstruction_float_kernels", err_dd(got, want, m), 2e-7, NULL);
  report("op3_energy_split_float_kernels", fabs(sn - sd - sh) / sn, 1e-6, NULL);
  free(x);
  free(dn);
  free(hi);
  free(u);
  free(a);
  free(rec);
  free(xf);
  free(dnf);
  free(hif);
  free(uf);
  free(af);
  free(want);
  free(got);
}

/* MATH.md section 2 matrix identities, with the matrices read off the float kernels (F = 8):
 * Dn = sqrt2 Down, Up = sqrt2 Dn^T, Dn Dn^T = I, Hi Hi^T = I, Dn Hi^T = 0. */
static void test_operator_matrices(void) {
  enum { F = 8, Fc = 4 };
  double Dn[Fc][F], Dw[Fc][F], Hi[Fc][F], Up[F][Fc];
  float e[F], o[F];
  for (int col = 0; col < F; col++) {
    for (int f = 0; f < F; f++) e[f] = f == col ? 1.0f : 0.0f;
    k_frames_pair_sum_norm(o, e, 1, F, 1);
    for (int j = 0; j < Fc; j++) Dn[j][col] = o[j];
    k_frames_pair_mean(o, e, 1, F, 1);
    for (int j = 0; j < Fc; j++) Dw[j][col] = o[j];
    k_frames_pair_diff_norm(o, e, 1, F, 1);
    for (int j = 0; j < Fc; j++) Hi[j][col] = o[j];
  }
  for (int col = 0; col < Fc; col++) {
    for (int j = 0; j < Fc; j++) e[j] = j == col ? 1.0f : 0.0f;
    k_frames_repeat(o, e, 1, Fc, 1);
    for (int f = 0; f < F; f++) Up[f][col] = o[f];
  }
  double err = 0;
  for (int i = 0; i < Fc; i++)
    for (int f = 0; f < F; f++) {
      err = maxd(err, fabs(Dn[i][f] - SQRT2 * Dw[i][f]));
      err = maxd(err, fabs(Up[f][i] - SQRT2 * Dn[i][f]));
    }
  for (int i = 0; i < Fc; i++)
    for (int j = 0; j < Fc; j++) {
      double dd = 0, hh = 0, dh = 0;
      for (int f = 0; f < F; f++) {
        dd += Dn[i][f] * Dn[j][f];
        hh += Hi[i][f] * Hi[j][f];
        dh += Dn[i][f] * Hi[j][f];
      }
      err = maxd(err, fabs(dd - (i == j)));
      err = maxd(err, fabs(hh - (i == j)));
      err = maxd(err, fabs(dh));
    }
  /* entries are 1/sqrt2 rounded to float once: 2^-25 relative */
  report("op_matrix_identities_float_kernels", err, 1e-7,
         "(Dn=sqrt2 Down, Up=sqrt2 Dn^T, DnDn^T=I, HiHi^T=I, DnHi^T=0)");
}

/* MATH.md section 2: Dn and Hi of iid N(0,1) are independent N(0,1); Down has variance 1/2 */
static void test_noise_pyramid_law(void) {
  const size_t N = 2000000;
  float *n = malloc(2 * N * sizeof(float)), *dn = malloc(N * sizeof(float)), *hi = malloc(N * sizeof(float)),
        *dw = malloc(N * sizeof(float));
  k_fill_normal(n, 2 * N, 21, 1, 0);
  k_frames_pair_sum_norm(dn, n, (int)N, 2, 1);
  k_frames_pair_diff_norm(hi, n, (int)N, 2, 1);
  k_frames_pair_mean(dw, n, (int)N, 2, 1);
  double sdd = 0, shh = 0, sdh = 0, sww = 0;
  for (size_t i = 0; i < N; i++) {
    sdd += (double)dn[i] * dn[i];
    shh += (double)hi[i] * hi[i];
    sdh += (double)dn[i] * hi[i];
    sww += (double)dw[i] * dw[i];
  }
  sdd /= N;
  shh /= N;
  sdh /= N;
  sww /= N;
  /* 5 sigma of a variance estimate at N = 2e6: 5 sqrt(2/N) = 0.005 */
  double err = maxd(maxd(fabs(sdd - 1), fabs(shh - 1)), maxd(fabs(sdh), fabs(sww - 0.5) * 2));
  report("op_noise_pyramid_law_mc", err, 0.005, "var(Dn n)=%.4f var(Hi n)=%.4f cov=%+.4f var(Down n)=%.4f (N=%zu)", sdd,
         shh, sdh, sww, N);
  free(n);
  free(dn);
  free(hi);
  free(dw);
}

/* =============================================================================================
 * combine3 (the one kernel every pair / renoise goes through)
 * ============================================================================================= */
static void test_combine3(void) {
  const int B = 3;
  const size_t ce = 100003; /* several blocks per clip, odd tail */
  size_t n = B * ce;
  float *x = randn_f(n), *y = randn_f(n), *z = randn_f(n), *o = malloc(n * sizeof(float)),
        *w = malloc(n * sizeof(float));
  double c[9] = {0.3, -1.7, 0.123456789, 1.0, 1e-3, -2.5, -0.75, 0.0, 1.0 / 3.0};
  k_combine3_per_clip(o, x, y, z, c, B, ce);
  for (int b = 0; b < B; b++) {
    float c0 = (float)c[3 * b], c1 = (float)c[3 * b + 1], c2 = (float)c[3 * b + 2];
    for (size_t i = b * ce; i < (b + 1) * ce; i++) w[i] = ((c0 * x[i]) + (c1 * y[i])) + (c2 * z[i]);
  }
  size_t d1 = bits_differ(o, w, n);
  check("combine3_formula_bit_exact", d1 == 0, "bits_differ=%zu/%zu (((c0 x)+(c1 y))+(c2 z), c rounded once)", d1, n);

  /* c2 = 0: equals c0 x + c1 y bit for bit, for finite z, z NULL, and z full of NaN/Inf */
  double c2z[9] = {0.3, -1.7, 0.0, 0.999, 1e-3, 0.0, -0.75, 0.5, 0.0};
  for (int b = 0; b < B; b++) {
    float c0 = (float)c2z[3 * b], c1 = (float)c2z[3 * b + 1];
    for (size_t i = b * ce; i < (b + 1) * ce; i++) w[i] = (c0 * x[i]) + (c1 * y[i]);
  }
  size_t d2 = 0;
  k_combine3_per_clip(o, x, y, z, c2z, B, ce);
  d2 += bits_differ(o, w, n);
  k_combine3_per_clip(o, x, y, NULL, c2z, B, ce);
  d2 += bits_differ(o, w, n);
  float *bad = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) bad[i] = i % 2 ? NAN : -INFINITY;
  k_combine3_per_clip(o, x, y, bad, c2z, B, ce);
  d2 += bits_differ(o, w, n);
  /* signed zero: x = -0 with c0 = 1 and y = +0 with c1 = ... a skipped +0*z would turn -0 into +0 */
  float xs[2] = {-0.0f, -0.0f}, ys[2] = {-0.0f, 0.0f}, zs[2] = {1.0f, 1.0f}, os[2], ws[2];
  double cs[3] = {1.0, 1.0, 0.0};
  k_combine3_per_clip(os, xs, ys, zs, cs, 1, 2);
  for (int i = 0; i < 2; i++) ws[i] = 1.0f * xs[i] + 1.0f * ys[i];
  d2 += bits_differ(os, ws, 2);
  check("combine3_zero_c2_bit_identical_two_term", d2 == 0,
        "bits_differ=%zu (finite z, z NULL, z=NaN/-Inf, signed zeros)", d2);

  /* y NULL with c1 = 0 */
  double cy[9] = {0.3, 0.0, 2.0, -1.0, 0.0, 0.5, 0.25, 0.0, 0.0};
  for (int b = 0; b < B; b++) {
    float c0 = (float)cy[3 * b], c2 = (float)cy[3 * b + 2];
    for (size_t i = b * ce; i < (b + 1) * ce; i++) w[i] = c2 != 0.0f ? (c0 * x[i]) + (c2 * z[i]) : c0 * x[i];
  }
  k_combine3_per_clip(o, x, NULL, z, cy, B, ce);
  size_t d3 = bits_differ(o, w, n);
  check("combine3_y_null_absent", d3 == 0, "bits_differ=%zu", d3);

  /* aliasing: out == x, out == y, out == z */
  k_combine3_per_clip(w, x, y, z, c, B, ce);
  size_t d4 = 0;
  float *t = malloc(n * sizeof(float));
  memcpy(t, x, n * sizeof(float));
  k_combine3_per_clip(t, t, y, z, c, B, ce);
  d4 += bits_differ(t, w, n);
  memcpy(t, y, n * sizeof(float));
  k_combine3_per_clip(t, x, t, z, c, B, ce);
  d4 += bits_differ(t, w, n);
  memcpy(t, z, n * sizeof(float));
  k_combine3_per_clip(t, x, y, t, c, B, ce);
  d4 += bits_differ(t, w, n);
  check("combine3_in_place_alias", d4 == 0, "bits_differ=%zu (out aliasing x, y, z)", d4);
  free(x);
  free(y);
  free(z);
  free(o);
  free(w);
  free(bad);
  free(t);
}

/* =============================================================================================
 * Schedules and windows (items 4-7)
 * ============================================================================================= */
static const char *form_name(diffusion_form f) { return f == DIFFUSION_RF ? "rf" : "vp"; }

static double snr(diffusion_form f, double t) {
  double a = diffusion_a(f, t), b = diffusion_b(f, t);
  return a * a / (b * b);
}

static void test_item4_min_start(void) {
  for (int fi = 0; fi < 2; fi++) {
    diffusion_form f = (diffusion_form)fi;
    double e_cb = 0, e_ratio = 0;
    for (int i = 1; i <= 99; i++) {
      double e = i / 100.0;
      double s = pyramid_min_start(f, e), sb = pyramid_min_start_bisect(f, e);
      e_cb = maxd(e_cb, fabs(s - sb));
      e_ratio = maxd(e_ratio, fabs(snr(f, s) / snr(f, e) - 0.5));
    }
    /* also check the schedule itself: a^2 + b^2 = 1 for VP, a + b = 1 for RF; endpoints exact */
    int ends = diffusion_a(f, 0.0) == 1.0 && diffusion_b(f, 0.0) == 0.0 && diffusion_a(f, 1.0) == 0.0 &&
               diffusion_b(f, 1.0) == 1.0 && diffusion_log_snr(f, 0.0) == INFINITY &&
               diffusion_log_snr(f, 1.0) == -INFINITY;
    char name[64];
    snprintf(name, sizeof name, "sched4_min_start_closed_vs_bisect_%s", form_name(f));
    report(name, e_cb, 1e-12, "(e = 0.01..0.99)");
    snprintf(name, sizeof name, "sched4_min_start_snr_ratio_half_%s", form_name(f));
    report(name, e_ratio, 1e-12, "max|SNR(S(e))/SNR(e) - 0.5|");
    snprintf(name, sizeof name, "sched_endpoints_exact_%s", form_name(f));
    check(name, ends, "a(0)=1 b(0)=0 a(1)=0 b(1)=1 lnSNR(0)=+inf lnSNR(1)=-inf");
  }
  double s = pyramid_min_start(DIFFUSION_RF, 1.0 / 3.0);
  report("sched5_rf_S_one_third_is_sqrt2_minus_1", fabs(s - (SQRT2 - 1)), 1e-15, "S(1/3)=%.17g", s);
}

static int windows_ok(const pyramid_schedule *p, char *why, size_t why_size) {
  int K = p->stages;
  if (p->start[0] != 1.0) return snprintf(why, why_size, "s_0=%g", p->start[0]), 0;
  if (p->end[K - 1] != 0.0) return snprintf(why, why_size, "e_{K-1}=%g", p->end[K - 1]), 0;
  for (int k = 0; k < K; k++) {
    if (!(p->end[k] < p->start[k] && p->start[k] <= 1.0)) return snprintf(why, why_size, "stage %d", k), 0;
    if (k > 0 && !(p->end[k] < p->end[k - 1])) return snprintf(why, why_size, "ends %d", k), 0;
    if (k > 0 && !(p->start[k] < p->start[k - 1])) return snprintf(why, why_size, "starts %d", k), 0;
    if (k > 0 && p->start[k] != pyramid_min_start(p->form, p->end[k - 1])) return snprintf(why, why_size, "S %d", k), 0;
    /* the start is noisier than where the previous stage stopped */
    if (k > 0 && !(p->start[k] > p->end[k - 1])) return snprintf(why, why_size, "overlap %d", k), 0;
    if (p->stride[k] != 1 << (K - 1 - k)) return snprintf(why, why_size, "stride %d", k), 0;
  }
  return 1;
}

static void test_item6_windows(void) {
  int bad = 0, checked = 0;
  char why[128] = "";
  const double custom[4][3] = {{0}, {0.5}, {0.8, 0.25}, {0.9, 0.5, 0.1}};
  for (int fi = 0; fi < 2; fi++)
    for (int K = 1; K <= 4; K++)
      for (int use_custom = 0; use_custom < 2; use_custom++) {
        pyramid_schedule p;
        char err[256];
        int rc = pyramid_schedule_init(&p, (diffusion_form)fi, K, use_custom ? custom[K - 1] : NULL,
                                       use_custom ? K - 1 : 0, err, sizeof err);
        checked++;
        if (rc != 0 || !windows_ok(&p, why, sizeof why)) bad++;
        if (!use_custom) /* nominal equal cuts */
          for (int k = 0; k + 1 < K; k++)
            if (fabs(p.end[k] - (double)(K - 1 - k) / K) > 1e-15) bad++;
        if (use_custom)
          for (int k = 0; k + 1 < K; k++)
            if (p.end[k] != custom[K - 1][k]) bad++;
      }
  check("sched6_windows_nested", bad == 0,
        "schedules=%d violations=%d (0=e_{K-1}<...<e_0, e_k<s_k<=1, s_0=1, s_k=S(e_{k-1})>e_{k-1}, m_k=2^(K-1-k)) %s",
        checked, bad, why);

  /* K = 1: [0, 1] and t(r) = r exactly; the sampler grid is vanilla's 1 - i/n */
  pyramid_schedule p1;
  pyramid_schedule_init(&p1, DIFFUSION_RF, 1, NULL, 0, NULL, 0);
  int k1 = p1.stages == 1 && p1.start[0] == 1.0 && p1.end[0] == 0.0 && p1.stride[0] == 1;
  for (int i = 0; i <= 1000; i++) {
    double r = i / 1000.0;
    k1 &= pyramid_time(&p1, 0, r) == r;
    k1 &= pyramid_time(&p1, 0, 1.0 - i / 1000.0) == 1.0 - i / 1000.0;
  }
  check("sched16_k1_window_and_time_vanilla", k1, "[e,s]=[%g,%g] t(r)==r bit-exact", p1.end[0], p1.start[0]);
}

static void test_worked_example(void) {
  /* MATH.md section 3, K = 3, nominal cuts 2/3 and 1/3 */
  struct {
    diffusion_form f;
    double s1, s2, a1, ba1, a2, ba2;
  } ex[2] = {{DIFFUSION_RF, 0.738796, 0.414214, 0.783612, 0.522408, 0.878680, 0.292893},
             {DIFFUSION_VP, 0.753248, 0.435906, 0.755929, 0.654654, 0.894427, 0.447214}};
  for (int i = 0; i < 2; i++) {
    pyramid_schedule p;
    char err[256];
    int rc = pyramid_schedule_init(&p, ex[i].f, 3, NULL, 0, err, sizeof err);
    renoise_coeffs r1, r2;
    rc |= pyramid_renoise_coeffs(p.form, p.end[0], p.start[1], 1, &r1);
    rc |= pyramid_renoise_coeffs(p.form, p.end[1], p.start[2], 1, &r2);
    double e = 0;
    e = maxd(e, fabs(p.end[0] - 0.666667));
    e = maxd(e, fabs(p.end[1] - 0.333333));
    e = maxd(e, fabs(p.end[2] - 0.0));
    e = maxd(e, fabs(p.start[0] - 1.0));
    e = maxd(e, fabs(p.start[1] - ex[i].s1));
    e = maxd(e, fabs(p.start[2] - ex[i].s2));
    e = maxd(e, fabs(r1.alpha - ex[i].a1));
    e = maxd(e, fabs(r1.beta_anti - ex[i].ba1));
    e = maxd(e, fabs(r2.alpha - ex[i].a2));
    e = maxd(e, fabs(r2.beta_anti - ex[i].ba2));
    e = maxd(e, fabs(r1.beta_iso) + fabs(r2.beta_iso));
    if (ex[i].f == DIFFUSION_RF) e = maxd(e, fabs(p.start[2] - (SQRT2 - 1)) * 1e6);  /* exact identity */
    if (ex[i].f == DIFFUSION_VP) e = maxd(e, fabs(r1.alpha - 1 / sqrt(1.75)) * 1e6); /* closed forms */
    if (ex[i].f == DIFFUSION_VP) e = maxd(e, fabs(r2.alpha - 1 / sqrt(1.25)) * 1e6);
    char name[64];
    snprintf(name, sizeof name, "sched_worked_example_K3_%s", form_name(ex[i].f));
    report(name, rc ? INFINITY : e, 1e-6, "s1=%.6f s2=%.6f alpha=%.6f/%.6f beta_anti=%.6f/%.6f beta_iso=%g/%g",
           p.start[1], p.start[2], r1.alpha, r2.alpha, r1.beta_anti, r2.beta_anti, r1.beta_iso, r2.beta_iso);
  }
  /* PF-style virtual-time boundaries for RF K = 3 (MATH.md 5.3): 1 -> 0.7109 -> 0.3592 -> 0 */
  pyramid_schedule p;
  pyramid_schedule_init(&p, DIFFUSION_RF, 3, NULL, 0, NULL, 0);
  double L[3], tot = 0;
  for (int k = 0; k < 3; k++) tot += L[k] = p.start[k] - p.end[k];
  double b1 = 1 - L[0] / tot, b2 = 1 - (L[0] + L[1]) / tot;
  report("sched_virtual_time_boundaries_rf_K3", maxd(fabs(b1 - 0.7109), fabs(b2 - 0.3592)), 5e-5, "%.4f %.4f", b1, b2);
}

static void test_schedule_validation(void) {
  struct {
    const char *what;
    int K;
    double cuts[4];
    int ncuts;
    int null_cuts;
  } bad[] = {
      {"K=0", 0, {0}, 0, 1},
      {"K=5", 5, {0}, 0, 1},
      {"K=-1", -1, {0}, 0, 1},
      {"wrong_count_3_for_K3", 3, {0.7, 0.5, 0.2}, 3, 0},
      {"wrong_count_1_for_K3", 3, {0.5}, 1, 0},
      {"cuts_for_K1", 1, {0.5}, 1, 0},
      {"increasing", 3, {0.3, 0.6}, 2, 0},
      {"equal", 3, {0.5, 0.5}, 2, 0},
      {"cut_is_1", 3, {1.0, 0.5}, 2, 0},
      {"cut_is_0", 3, {0.5, 0.0}, 2, 0},
      {"negative", 2, {-0.5}, 1, 0},
      {"nan", 2, {NAN}, 1, 0},
      {"null_with_count", 3, {0}, 2, 1},
  };
  int nbad = (int)(sizeof bad / sizeof bad[0]), ok = 1;
  char first[300] = "";
  for (int i = 0; i < nbad; i++) {
    pyramid_schedule p;
    char err[256] = "";
    int rc = pyramid_schedule_init(&p, DIFFUSION_RF, bad[i].K, bad[i].null_cuts ? NULL : bad[i].cuts, bad[i].ncuts, err,
                                   sizeof err);
    int good_msg = err[0] != '\0' && strchr(err, '\n') == NULL && strstr(err, "expected") != NULL;
    if (rc != -1 || !good_msg) {
      ok = 0;
      printf("      %s: rc=%d err='%s'\n", bad[i].what, rc, err);
    }
    if (i == 6) snprintf(first, sizeof first, "%s", err);
  }
  /* valid configurations return 0 with an empty message; a NULL err is allowed */
  pyramid_schedule p;
  char err[256] = "x";
  double cuts[2] = {0.6, 0.2};
  ok &= pyramid_schedule_init(&p, DIFFUSION_VP, 3, cuts, 2, err, sizeof err) == 0 && err[0] == '\0';
  ok &= pyramid_schedule_init(&p, DIFFUSION_RF, 3, cuts, 0, NULL, 0) == 0; /* ncuts 0: nominal cuts */
  ok &= pyramid_schedule_init(&p, DIFFUSION_RF, 7, NULL, 0, NULL, 0) == -1;
  ok &= pyramid_schedule_init(&p, (diffusion_form)5, 2, NULL, 0, err, sizeof err) == -1 && strstr(err, "expected");
  check("sched_validation_errors", ok, "%d bad configs refused with one line naming what was expected, e.g. '%s'", nbad,
        first);
}

/* item 7: grid-snapped starts. (a) library: s snapped up to a grid of 1000 t values, (b) the
 * discrete DDPM grid of MATH.md 3 with a generic renoise written here. */
static void test_item7_grid_snapped(void) {
  int ok = 1, n = 0;
  double worst_ratio = 0, min_iso2 = INFINITY;
  for (int fi = 0; fi < 2; fi++) {
    diffusion_form f = (diffusion_form)fi;
    for (int i = 1; i <= 19; i++) {
      double e = i / 20.0, smin = pyramid_min_start(f, e);
      double sg = ceil(smin * 1000.0) / 1000.0;
      if (sg > 1.0) sg = 1.0;
      renoise_coeffs rc;
      int r = pyramid_renoise_coeffs(f, e, sg, 0, &rc);
      double ratio = snr(f, sg) / snr(f, e);
      double a_e = diffusion_a(f, e), b_e = diffusion_b(f, e), b_s = diffusion_b(f, sg);
      double iso2 = b_s * b_s - 2 * rc.alpha * rc.alpha * b_e * b_e;
      worst_ratio = maxd(worst_ratio, ratio);
      if (iso2 < min_iso2) min_iso2 = iso2;
      ok &= r == 0 && ratio <= 0.5 + 1e-12 && rc.beta_iso >= 0 && fabs(rc.beta_iso * rc.beta_iso - iso2) < 1e-12;
      ok &= fabs(rc.alpha * a_e - diffusion_a(f, sg)) < 1e-12;
      /* one grid step below the snapped start violates the constraint and is refused */
      double below = sg - 1e-3;
      if (below > smin + 1e-9 || below < smin - 1e-9)
        ok &= (below < smin) == (pyramid_renoise_coeffs(f, e, below, 0, &rc) == -1);
      n++;
    }
  }
  check("sched7_grid_snapped_start_library", ok && min_iso2 >= -1e-15,
        "boundaries=%d max SNR ratio=%.6f (<= 0.5) min beta_iso^2=%.3g (>= 0)", n, worst_ratio, min_iso2);

  /* (b) DDPM linear betas 1e-4..0.02, 1000 steps; ends at i = 666 and 333 */
  static double A[1000], Bc[1000], S[1000];
  double abar = 1.0;
  for (int i = 0; i < 1000; i++) {
    double beta = 1e-4 + (0.02 - 1e-4) * i / 999.0;
    abar *= 1 - beta;
    A[i] = sqrt(abar);
    Bc[i] = sqrt(1 - abar);
    S[i] = abar / (1 - abar);
  }
  const int ends[2] = {666, 333}, want_s[2] = {716, 403};
  const double want[2][3] = {{0.70518, 0.70130, 0.10436}, {0.76998, 0.63558, 0.05631}};
  double err = 0;
  int okb = 1;
  char txt[200] = "";
  for (int k = 0; k < 2; k++) {
    int ie = ends[k], is = 0;
    while (is < 1000 && !(S[is] <= 0.5 * S[ie])) is++;
    double alpha = A[is] / A[ie], ba = alpha * Bc[ie], iso2 = Bc[is] * Bc[is] - 2 * alpha * alpha * Bc[ie] * Bc[ie];
    okb &= is == want_s[k] && S[is] / S[ie] <= 0.5 && iso2 >= 0;
    err = maxd(err, maxd(fabs(alpha - want[k][0]), maxd(fabs(ba - want[k][1]), fabs(sqrt(iso2) - want[k][2]))));
    size_t l = strlen(txt);
    snprintf(txt + l, sizeof txt - l, "i%d->i%d ratio=%.4f alpha=%.5f beta_anti=%.5f beta_iso=%.5f; ", ie, is,
             S[is] / S[ie], alpha, ba, sqrt(iso2));
  }
  report("sched7_grid_snapped_start_ddpm_discrete", okb ? err : INFINITY, 1e-5, "%s", txt);
}

/* =============================================================================================
 * Renoise coefficients (item 8) and the pathwise identity (item 9)
 * ============================================================================================= */
static void test_item8_renoise_coeffs(void) {
  for (int fi = 0; fi < 2; fi++) {
    diffusion_form f = (diffusion_form)fi;
    double e_sig = 0, e_var = 0, e_closed = 0;
    int exact_zero = 1, gamma_one = 1, all_ok = 1;
    for (int i = 1; i <= 49; i++) {
      double e = i / 50.0, smin = pyramid_min_start(f, e);
      const double fr[4] = {0.0, 0.1, 0.5, 0.9}; /* minimal, then more noise than minimal */
      for (int m = 0; m < 4; m++) {
        double s = smin + fr[m] * (1.0 - smin);
        renoise_coeffs rc;
        int r = pyramid_renoise_coeffs(f, e, s, m == 0, &rc);
        all_ok &= r == 0;
        double a_e = diffusion_a(f, e), b_e = diffusion_b(f, e), a_s = diffusion_a(f, s), b_s = diffusion_b(f, s);
        e_sig = maxd(e_sig, fabs(rc.alpha * a_e - a_s));
        e_var = maxd(e_var, fabs(2 * rc.alpha * rc.alpha * b_e * b_e + rc.beta_iso * rc.beta_iso - b_s * b_s));
        all_ok &= fabs(rc.beta_anti - rc.alpha * b_e) <= 1e-15;
        if (m == 0) {
          exact_zero &= rc.beta_iso == 0.0;
          double g = rc.beta_anti * rc.beta_anti / (rc.beta_anti * rc.beta_anti + rc.beta_iso * rc.beta_iso);
          gamma_one &= g == 1.0;
          double alpha_closed = f == DIFFUSION_RF ? 1 / (1 + (SQRT2 - 1) * e) : 1 / sqrt(1 + b_e * b_e);
          e_closed = maxd(e_closed, fabs(rc.alpha - alpha_closed));
          e_closed = maxd(e_closed, fabs(b_s - SQRT2 * rc.alpha * b_e)); /* b(s) = sqrt2 alpha b(e) */
        } else {
          all_ok &= rc.beta_iso > 0;
        }
      }
    }
    char name[64];
    snprintf(name, sizeof name, "renoise8_coeff_identities_%s", form_name(f));
    report(name, all_ok ? maxd(maxd(e_sig, e_var), e_closed) : INFINITY, 1e-12,
           "max|alpha a_e - a_s|=%.2g max|2alpha^2b_e^2+beta_iso^2-b_s^2|=%.2g closed-form=%.2g", e_sig, e_var,
           e_closed);
    snprintf(name, sizeof name, "renoise8_minimal_beta_iso_zero_gamma_one_%s", form_name(f));
    check(name, exact_zero && gamma_one, "beta_iso==0 exactly: %s, PF gamma==1 exactly: %s", exact_zero ? "yes" : "no",
          gamma_one ? "yes" : "no");
    /* refusals: s below S(e), s == e, a minimal flag on a clearly non-minimal s, e = 1 */
    renoise_coeffs rc;
    double e = 0.4, smin = pyramid_min_start(f, e);
    int ref = pyramid_renoise_coeffs(f, e, smin - 1e-6, 0, &rc) == -1 &&
              pyramid_renoise_coeffs(f, e, e, 0, &rc) == -1 &&
              pyramid_renoise_coeffs(f, e, 0.5 * (smin + 1), 1, &rc) == -1 &&
              pyramid_renoise_coeffs(f, 1.0, 1.0, 0, &rc) == -1 &&
              pyramid_renoise_coeffs(f, e, smin + 1e-15, 0, &rc) == 0 && rc.beta_iso == 0.0;
    snprintf(name, sizeof name, "renoise8_refuses_violations_%s", form_name(f));
    check(name, ref, "(s<S(e), s=e, minimal flag on s>S(e), e=1 refused; rounding residue at S(e) -> beta_iso=0)");
  }
}

/* item 9, double: renoise(a_e X_{k-1} + b_e Dn(eps_k), zeta = Hi(eps_k)) == a_s P X_k + b_s eps_k */
static void test_item9_pathwise_double(void) {
  const int N = 500, F = 8;
  size_t n = (size_t)N * F;
  float *xf = malloc(n * sizeof(float));
  make_video(xf, N, F, 31);
  double *X = to_d(xf, n), *eps = randn_d(n), *Xc = malloc(n / 2 * sizeof(double)),
         *ec = malloc(n / 2 * sizeof(double)), *zeta = malloc(n / 2 * sizeof(double)),
         *xe = malloc(n / 2 * sizeof(double)), *u = malloc(n * sizeof(double)), *a = malloc(n * sizeof(double)),
         *got = malloc(n * sizeof(double)), *want = malloc(n * sizeof(double)), *PX = malloc(n * sizeof(double));
  d_down(Xc, X, N, F);
  d_dn(ec, eps, N, F);
  d_hi(zeta, eps, N, F);
  d_up(PX, Xc, N, F / 2);
  double worst = 0;
  for (int fi = 0; fi < 2; fi++) {
    diffusion_form f = (diffusion_form)fi;
    const double es[4] = {0.2, 1.0 / 3, 2.0 / 3, 0.9};
    for (int i = 0; i < 4; i++) {
      double e = es[i], s = pyramid_min_start(f, e);
      renoise_coeffs rc;
      pyramid_renoise_coeffs(f, e, s, 1, &rc);
      for (size_t q = 0; q < n / 2; q++) xe[q] = diffusion_a(f, e) * Xc[q] + diffusion_b(f, e) * ec[q];
      d_up(u, xe, N, F / 2);
      d_anti(a, zeta, N, F / 2);
      for (size_t q = 0; q < n; q++) {
        got[q] = rc.alpha * u[q] + rc.beta_anti * a[q] + rc.beta_iso * 0.0;
        want[q] = diffusion_a(f, s) * PX[q] + diffusion_b(f, s) * eps[q];
      }
      worst = maxd(worst, err_dd(got, want, n));
    }
  }
  report("renoise9_pathwise_identity_double", worst, 1e-12, "(rf+vp, e in {0.2,1/3,2/3,0.9})");
  free(xf);
  free(X);
  free(eps);
  free(Xc);
  free(ec);
  free(zeta);
  free(xe);
  free(u);
  free(a);
  free(got);
  free(want);
  free(PX);
}

/* item 9 through the float kernels: every stage boundary of K = 2..4 with [B, C, T, H, W] data */
static void test_item9_pathwise_kernels(void) {
  const int B = 2, C = 3, H = 4, W = 5, plane = H * W;
  for (int fi = 0; fi < 2; fi++) {
    diffusion_form f = (diffusion_form)fi;
    double worst = 0;
    int boundaries = 0;
    for (int K = 2; K <= 4; K++) {
      pyramid_schedule p;
      pyramid_schedule_init(&p, f, K, NULL, 0, NULL, 0);
      for (int k = 1; k < K; k++) {
        const int Tk = 2 * k + 2, Tc = Tk / 2; /* any even frame count */
        size_t nk = (size_t)B * C * Tk * plane, nc = nk / 2;
        float *Xk = malloc(nk * sizeof(float)), *eps = randn_f(nk), *Xc = malloc(nc * sizeof(float)),
              *ec = malloc(nc * sizeof(float)), *zeta = malloc(nc * sizeof(float)), *xe = malloc(nc * sizeof(float)),
              *xs = malloc(nk * sizeof(float)), *scr = malloc(nk * sizeof(float)), *PX = malloc(nk * sizeof(float));
        make_video(Xk, B * C * plane, Tk, 40 + k); /* synthetic values: the identity is exact for any data */
        k_frames_pair_mean(Xc, Xk, B * C, Tk, plane);
        k_frames_pair_sum_norm(ec, eps, B * C, Tk, plane);
        k_frames_pair_diff_norm(zeta, eps, B * C, Tk, plane);
        k_frames_repeat(PX, Xc, B * C, Tc, plane);
        double e = p.end[k - 1], s = p.start[k];
        renoise_coeffs rc;
        pyramid_renoise_coeffs(f, e, s, 1, &rc);
        double ce[3] = {diffusion_a(f, e), diffusion_b(f, e), 0.0};
        k_combine3_per_clip(xe, Xc, ec, NULL, ce, 1, nc); /* end point of stage k-1 */
        pyramid_renoise(tpdiff_cpu_backend(), &rc, xe, zeta, NULL, B, C, Tc, H, W, xs, scr);
        double *want = malloc(nk * sizeof(double));
        for (size_t q = 0; q < nk; q++)
          want[q] = diffusion_a(f, s) * (double)PX[q] + diffusion_b(f, s) * (double)eps[q];
        worst = maxd(worst, err_fd(xs, want, nk));
        boundaries++;
        free(Xk);
        free(eps);
        free(Xc);
        free(ec);
        free(zeta);
        free(xe);
        free(xs);
        free(scr);
        free(PX);
        free(want);
      }
    }
    char name[64];
    snprintf(name, sizeof name, "renoise9_pathwise_identity_kernels_%s", form_name(f));
    report(name, worst, 2e-6, "(pyramid_renoise, %d boundaries of K=2..4, zeta=Hi(eps_k))", boundaries);
  }
}

/* =============================================================================================
 * Monte Carlo (items 10, 11): N = 1e6 videos of F = 8 frames
 * ============================================================================================= */
typedef struct {
  double var_lo, var_hi, max_corr, pair_corr, max_mean, coef, xcov;
} mc_stats;

/* R = x_s - a_s S per frame; S = Up(X_{k-1}); stats over N samples (frames are columns). */
static mc_stats mc_measure(const float *xs, const float *S, double a_s, double b_s, int N, int F) {
  enum { FM = 8 };
  double sr[FM] = {0}, srr[FM][FM] = {{0}}, ss[FM] = {0}, srs[FM] = {0};
  double gS = 0, gX = 0, gSX = 0, gSS = 0;
#pragma omp parallel
  {
    double lsr[FM] = {0}, lrr[FM][FM] = {{0}}, lss[FM] = {0}, lrs[FM] = {0}, lgS = 0, lgX = 0, lgSX = 0, lgSS = 0;
#pragma omp for schedule(static)
    for (int n = 0; n < N; n++) {
      double r[FM];
      for (int f = 0; f < F; f++) {
        double x = xs[(size_t)n * F + f], s = S[(size_t)n * F + f];
        r[f] = x - a_s * s;
        lsr[f] += r[f];
        lss[f] += s;
        lrs[f] += r[f] * s;
        lgS += s;
        lgX += x;
        lgSX += s * x;
        lgSS += s * s;
      }
      for (int f = 0; f < F; f++)
        for (int g = 0; g <= f; g++) lrr[f][g] += r[f] * r[g];
    }
#pragma omp critical
    {
      for (int f = 0; f < F; f++) {
        sr[f] += lsr[f];
        ss[f] += lss[f];
        srs[f] += lrs[f];
        for (int g = 0; g <= f; g++) srr[f][g] += lrr[f][g];
      }
      gS += lgS;
      gX += lgX;
      gSX += lgSX;
      gSS += lgSS;
    }
  }
  mc_stats st = {INFINITY, -INFINITY, 0, 0, 0, 0, 0};
  double cov[FM][FM];
  for (int f = 0; f < F; f++)
    for (int g = 0; g <= f; g++) cov[f][g] = cov[g][f] = srr[f][g] / N - (sr[f] / N) * (sr[g] / N);
  for (int f = 0; f < F; f++) {
    double v = cov[f][f] / (b_s * b_s);
    if (v < st.var_lo) st.var_lo = v;
    if (v > st.var_hi) st.var_hi = v;
    st.max_mean = maxd(st.max_mean, fabs(sr[f] / N));
    st.xcov = maxd(st.xcov, fabs(srs[f] / N - (sr[f] / N) * (ss[f] / N)));
    for (int g = 0; g < f; g++) st.max_corr = maxd(st.max_corr, fabs(cov[f][g] / sqrt(cov[f][f] * cov[g][g])));
  }
  for (int j = 0; j < F / 2; j++)
    st.pair_corr += cov[2 * j][2 * j + 1] / sqrt(cov[2 * j][2 * j] * cov[2 * j + 1][2 * j + 1]) / (F / 2);
  double M = (double)N * F, mS = gS / M, mX = gX / M;
  st.coef = (gSX / M - mS * mX) / (gSS / M - mS * mS); /* pooled OLS slope of x_s on S */
  return st;
}

static void test_item10_11_monte_carlo(void) {
  const int N = 1000000, F = 8, Fc = F / 2;
  const size_t n = (size_t)N * F, nc = n / 2;
  double t0 = now_s();
  float *Xk = malloc(n * sizeof(float)), *Xc = malloc(nc * sizeof(float)), *S = malloc(n * sizeof(float)),
        *nce = malloc(nc * sizeof(float)), *xe = malloc(nc * sizeof(float)), *zeta = malloc(nc * sizeof(float)),
        *eta = malloc(n * sizeof(float)), *xs = malloc(n * sizeof(float)), *scr = malloc(n * sizeof(float));
  make_video(Xk, N, F, 77);
  k_frames_pair_mean(Xc, Xk, N, F, 1); /* X_{k-1} */
  k_frames_repeat(S, Xc, N, Fc, 1);    /* P X_k */
  printf("      (MC data: N=%d videos, F=%d, AR(1) rho=0.9 + offset, %.2f s)\n", N, F, now_s() - t0);
  struct {
    diffusion_form f;
    double e;
    int extra;
  } cases[4] = {
      {DIFFUSION_RF, 2.0 / 3, 0}, {DIFFUSION_RF, 1.0 / 3, 1}, {DIFFUSION_VP, 1.0 / 3, 0}, {DIFFUSION_VP, 2.0 / 3, 1}};
  for (int c = 0; c < 4; c++) {
    double tc = now_s();
    diffusion_form f = cases[c].f;
    double e = cases[c].e, s = pyramid_min_start(f, e);
    if (cases[c].extra) s = s + 0.5 * (1 - s); /* more noise than minimal: beta_iso > 0 */
    renoise_coeffs rc;
    pyramid_renoise_coeffs(f, e, s, !cases[c].extra, &rc);
    double a_e = diffusion_a(f, e), b_e = diffusion_b(f, e), a_s = diffusion_a(f, s), b_s = diffusion_b(f, s);
    uint64_t st0 = 100 + 10 * c;
    k_fill_normal(nce, nc, 5, st0, 0);
    k_fill_normal(zeta, nc, 5, st0 + 1, 0);
    double ce[3] = {a_e, b_e, 0};
    k_combine3_per_clip(xe, Xc, nce, NULL, ce, 1, nc);
    if (rc.beta_iso > 0) k_fill_normal(eta, n, 5, st0 + 2, 0);
    pyramid_renoise(tpdiff_cpu_backend(), &rc, xe, zeta, rc.beta_iso > 0 ? eta : NULL, 1, N, Fc, 1, 1, xs, scr);
    mc_stats st = mc_measure(xs, S, a_s, b_s, N, F);
    double secs = now_s() - tc;
    char name[96];
    snprintf(name, sizeof name, "mc10_renoise_law_%s_e%.3f_%s", form_name(f), e, cases[c].extra ? "extra" : "minimal");
    int ok = st.var_lo >= 0.99 && st.var_hi <= 1.01 && st.max_corr < 0.01 && fabs(st.coef - a_s) <= 0.005 &&
             st.xcov < 0.01 && st.max_mean < 0.006 && fabs(st.pair_corr) < 0.01 && secs < 10.0;
    check(name, ok,
          "s=%.4f beta_iso=%.4f var/b_s^2=[%.4f,%.4f] max|corr|=%.4f pair_corr=%+.4f |mean|=%.4f "
          "OLS-a_s=%+.5f xcov=%.5f time=%.2fs",
          s, rc.beta_iso, st.var_lo, st.var_hi, st.max_corr, st.pair_corr, st.max_mean, st.coef - a_s, st.xcov, secs);
  }

  /* item 11, negative controls at RF e = 2/3, minimal s */
  {
    double tc = now_s();
    diffusion_form f = DIFFUSION_RF;
    double e = 2.0 / 3, s = pyramid_min_start(f, e);
    double a_e = diffusion_a(f, e), b_e = diffusion_b(f, e), a_s = diffusion_a(f, s), b_s = diffusion_b(f, s);
    k_fill_normal(nce, nc, 5, 900, 0);
    double ce[3] = {a_e, b_e, 0};
    k_combine3_per_clip(xe, Xc, nce, NULL, ce, 1, nc);
    /* (a) no renoise: the upsampled state as it is; residual against its own signal a_e S */
    k_frames_repeat(xs, xe, N, Fc, 1);
    mc_stats none = mc_measure(xs, S, a_e, b_e, N, F);
    /* (b) iid top-up to the right variance: alpha Up(x_e) + sqrt(b_s^2 - alpha^2 b_e^2) eta */
    double alpha = a_s / a_e;
    k_fill_normal(eta, n, 5, 901, 0);
    double ci[3] = {alpha, sqrt(b_s * b_s - alpha * alpha * b_e * b_e), 0};
    k_combine3_per_clip(xs, xs, eta, NULL, ci, 1, n);
    mc_stats iid = mc_measure(xs, S, a_s, b_s, N, F);
    double secs = now_s() - tc;
    check("mc11_negative_control_no_renoise_pair_corr_1", none.pair_corr > 0.99, "pair_corr=%+.4f", none.pair_corr);
    check("mc11_negative_control_iid_topup_pair_corr_half", iid.pair_corr >= 0.49 && iid.pair_corr <= 0.51 && secs < 10,
          "pair_corr=%+.4f (theory (alpha b_e)^2/b_s^2=%.4f) var/b_s^2=[%.4f,%.4f] time=%.2fs", iid.pair_corr,
          alpha * alpha * b_e * b_e / (b_s * b_s), iid.var_lo, iid.var_hi, secs);
  }
  free(Xk);
  free(Xc);
  free(S);
  free(nce);
  free(xe);
  free(zeta);
  free(eta);
  free(xs);
  free(scr);
}

/* =============================================================================================
 * Training pairs (items 12-14), oracle samplers (15), K = 1 (16)
 * ============================================================================================= */

/* The MATH.md 5.1 definitions, in double, from x_s and x_e (independent of pyramid_pair_coeffs). */
typedef struct {
  double a_s, b_s, a_e, b_e, D;
} pair_win;
static pair_win window_of(const pyramid_schedule *p, int k) {
  pair_win w;
  double e = p->end[k], s = p->start[k];
  w.a_s = diffusion_a(p->form, s);
  w.b_s = diffusion_b(p->form, s);
  w.a_e = diffusion_a(p->form, e);
  w.b_e = diffusion_b(p->form, e);
  w.D = w.a_s * w.b_e - w.a_e * w.b_s;
  return w;
}
/* from endpoints: x0h = (b_e x_s - b_s x_e)/D, epsh = (a_s x_e - a_e x_s)/D */
static void ref_hat(const pair_win *w, double xs, double xe, double *x0h, double *epsh) {
  *x0h = (w->b_e * xs - w->b_s * xe) / w->D;
  *epsh = (w->a_s * xe - w->a_e * xs) / w->D;
}

typedef struct {
  int N, F; /* stage data: N rows of F frames */
  double *X, *eps, *S, *xs, *xe;
} stage_data;

static stage_data make_stage(const pyramid_schedule *p, int k, int N, int F, uint64_t seed) {
  stage_data d;
  d.N = N;
  d.F = F;
  size_t n = (size_t)N * F;
  float *xf = malloc(n * sizeof(float));
  make_video(xf, N, F, seed);
  d.X = to_d(xf, n);
  free(xf);
  d.eps = randn_d(n);
  d.S = malloc(n * sizeof(double));
  if (k == 0)
    memcpy(d.S, d.X, n * sizeof(double));
  else
    d_P(d.S, d.X, N, F);
  d.xs = malloc(n * sizeof(double));
  d.xe = malloc(n * sizeof(double));
  pair_win w = window_of(p, k);
  for (size_t i = 0; i < n; i++) {
    d.xs[i] = w.a_s * d.S[i] + w.b_s * d.eps[i];
    d.xe[i] = w.a_e * d.X[i] + w.b_e * d.eps[i];
  }
  return d;
}
static void free_stage(stage_data *d) {
  free(d->X);
  free(d->eps);
  free(d->S);
  free(d->xs);
  free(d->xe);
}

static void test_items12_14_pairs_double(void) {
  double e_def = 0, e_end = 0, e_rf = 0, e_lin = 0, e_gauss = 0, e_w = 0, e_vp = 0, e_last = 0, e_stage0 = 0;
  int exact_b = 1, rf_b_is_t = 1, cases = 0;
  for (int fi = 0; fi < 2; fi++)
    for (int K = 1; K <= 4; K++) {
      diffusion_form f = (diffusion_form)fi;
      pyramid_schedule p;
      pyramid_schedule_init(&p, f, K, NULL, 0, NULL, 0);
      for (int k = 0; k < K; k++) {
        stage_data d = make_stage(&p, k, 40, 8, 200 + 10 * K + k);
        size_t n = (size_t)d.N * d.F;
        pair_win w = window_of(&p, k);
        double e = p.end[k], s = p.start[k];
        const double rs[6] = {0.0, 0.1, 0.37, 0.5, 0.93, 1.0};
        for (int ri = 0; ri < 6; ri++) {
          double r = rs[ri], t = pyramid_time(&p, k, r);
          double c[6];
          pyramid_pair_coeffs(&p, k, t, c);
          double a_t = diffusion_a(f, t), b_t = diffusion_b(f, t);
          exact_b &= c[1] == b_t;
          if (f == DIFFUSION_RF) rf_b_is_t &= c[1] == t;
          e_gauss = maxd(e_gauss, fabs(c[0] + c[2] - a_t)); /* rest is a(t) [(1-w) X + w S] */
          if (k > 0) {
            double wt = w.a_s / (a_t * w.D) * (a_t * w.b_e - b_t * w.a_e);
            e_w = maxd(e_w, fabs(c[2] / a_t - wt));
            if (f == DIFFUSION_RF) e_w = maxd(e_w, fabs(wt - (1 - s) / (1 - t) * (t - e) / (s - e)));
            if (ri == 0) e_w = maxd(e_w, fabs(c[2]));
            if (ri == 5) e_w = maxd(e_w, fabs(c[2] / a_t - 1));
          }
          for (size_t i = 0; i < n; i++) {
            double xt = c[0] * d.X[i] + c[1] * d.eps[i] + c[2] * d.S[i];
            double tg = c[3] * d.X[i] + c[4] * d.eps[i] + c[5] * d.S[i];
            double x0h, epsh;
            ref_hat(&w, d.xs[i], d.xe[i], &x0h, &epsh);
            double xt_ref = a_t * x0h + b_t * epsh;
            double tg_ref = f == DIFFUSION_RF ? epsh - x0h : a_t * epsh - b_t * x0h;
            e_def = maxd(e_def, maxd(fabs(xt - xt_ref), fabs(tg - tg_ref)));
            if (ri == 0) e_end = maxd(e_end, fabs(xt - d.xe[i]));
            if (ri == 5) e_end = maxd(e_end, fabs(xt - d.xs[i]));
            if (f == DIFFUSION_RF) {
              e_rf = maxd(e_rf, fabs(tg - (d.xs[i] - d.xe[i]) / (s - e)));
              e_rf = maxd(e_rf, fabs(tg - (epsh - x0h)));
              e_lin = maxd(e_lin, fabs(xt - ((1 - r) * d.xe[i] + r * d.xs[i])));
            } else {
              /* v round trip: a x_t - b v* = x0h, b x_t + a v* = epsh */
              e_vp = maxd(e_vp, fabs(a_t * xt - b_t * tg - x0h));
              e_vp = maxd(e_vp, fabs(b_t * xt + a_t * tg - epsh));
            }
            if (k == K - 1 && k > 0) { /* last stage: x0h = X, epsh = eps - (a_s/b_s)(X - PX) */
              e_last = maxd(e_last, fabs(x0h - d.X[i]));
              e_last = maxd(e_last, fabs(epsh - (d.eps[i] - w.a_s / w.b_s * (d.X[i] - d.S[i]))));
              /* ... and through the coefficients: x0h = x_t - t v (RF) or a x_t - b v (VP) */
              double x0c = f == DIFFUSION_RF ? xt - t * tg : a_t * xt - b_t * tg;
              e_last = maxd(e_last, fabs(x0c - d.X[i]));
            }
          }
          if (k == 0) /* stage 0: x0h = X_0, epsh = eps_0 exactly in the coefficients */
            e_stage0 = maxd(e_stage0, fabs(c[2]) + fabs(c[5]) + fabs(c[0] - a_t) +
                                          (f == DIFFUSION_RF ? fabs(c[3] + 1) + fabs(c[4] - 1)
                                                             : fabs(c[3] + b_t) + fabs(c[4] - a_t)));
          cases++;
        }
        free_stage(&d);
      }
    }
  report("pair_coeffs_match_math_5_1_definition", e_def, 1e-12, "(x_t, target vs x0h/epsh from x_s, x_e; %d cases)",
         cases);
  report("pair12_endpoints_double", e_end, 1e-12, "x_t(r=0)=x_e, x_t(r=1)=x_s");
  report("pair13_rf_velocity_double", e_rf, 1e-12, "v*=(x_s-x_e)/(s-e)=epsh-x0h");
  report("pair_rf_linear_in_r_double", e_lin, 1e-12, "x_t=(1-r)x_e+r x_s");
  check("pair14_gaussian_coeff_is_b_t", exact_b && rf_b_is_t && e_gauss <= 1e-15,
        "c[1]==b(t) exactly: %s, RF c[1]==t exactly: %s, |c0+c2-a(t)|=%.2g", exact_b ? "yes" : "no",
        rf_b_is_t ? "yes" : "no", e_gauss);
  report("pair14_blend_weight_w", e_w, 1e-12, "w(t)=(a_s/(a D))(a b_e - b a_e), w(e)=0, w(s)=1, RF closed form");
  report("pair_vp_v_round_trip_double", e_vp, 1e-12, "a x_t - b v = x0h, b x_t + a v = epsh");
  report("pair_last_stage_closed_form", e_last, 1e-12, "x0h=X, epsh=eps-(a_s/b_s)(X-PX)");
  report("pair_stage0_vanilla_coeffs", e_stage0, 0.0, "x0h=X_0, epsh=eps_0");
}

/* pyramid_training_pair (float kernels, [B,C,T,H,W]) against the double definition */
static void test_items12_13_pairs_kernels(void) {
  const int B = 3, C = 2, H = 3, W = 4, plane = H * W;
  double e_end = 0, e_gen = 0, e_rf = 0;
  for (int fi = 0; fi < 2; fi++)
    for (int K = 1; K <= 4; K++) {
      diffusion_form f = (diffusion_form)fi;
      pyramid_schedule p;
      pyramid_schedule_init(&p, f, K, NULL, 0, NULL, 0);
      for (int k = 0; k < K; k++) {
        const int T = 8;
        size_t n = (size_t)B * C * T * plane, ce = n / B;
        float *X = malloc(n * sizeof(float)), *eps = randn_f(n), *xt = malloc(n * sizeof(float)),
              *tg = malloc(n * sizeof(float)), *scr = malloc(n * sizeof(float)), *h = malloc(n / 2 * sizeof(float)),
              *S = malloc(n * sizeof(float));
        make_video(X, B * C * plane, T, 300 + K * 10 + k);
        if (k > 0) {
          k_frames_pair_mean(h, X, B * C, T, plane);
          k_frames_repeat(S, h, B * C, T / 2, plane);
        } else {
          memcpy(S, X, n * sizeof(float));
        }
        pair_win w = window_of(&p, k);
        double e = p.end[k], s = p.start[k];
        double *want_xt = malloc(n * sizeof(double)), *want_tg = malloc(n * sizeof(double)),
               *want_v = malloc(n * sizeof(double));
        /* clip 0 at r = 0, clip 1 at r = 1, clip 2 at r = 0.4 */
        float t[3] = {(float)e, (float)s, (float)pyramid_time(&p, k, 0.4)};
        pyramid_training_pair(tpdiff_cpu_backend(), &p, k, X, eps, t, B, C, T, H, W, xt, tg, scr);
        for (int b = 0; b < B; b++) {
          double tb = t[b], a_t = diffusion_a(f, tb), b_t = diffusion_b(f, tb);
          for (size_t i = b * ce; i < (b + 1) * ce; i++) {
            double xs = w.a_s * S[i] + w.b_s * eps[i], xe = w.a_e * X[i] + w.b_e * eps[i], x0h, epsh;
            ref_hat(&w, xs, xe, &x0h, &epsh);
            want_xt[i] = a_t * x0h + b_t * epsh;
            want_tg[i] = f == DIFFUSION_RF ? epsh - x0h : a_t * epsh - b_t * x0h;
            want_v[i] = (xs - xe) / (s - e);
            if (b == 0) want_xt[i + 0] = xe; /* r = 0 reproduces x_e (up to t rounded to float) */
            if (b == 1) want_xt[i + 0] = xs;
          }
        }
        e_end = maxd(e_end, maxd(err_fd(xt, want_xt, ce), err_fd(xt + ce, want_xt + ce, ce)));
        e_gen = maxd(e_gen, maxd(err_fd(xt, want_xt, n), err_fd(tg, want_tg, n)));
        if (f == DIFFUSION_RF) e_rf = maxd(e_rf, err_fd(tg, want_v, n));
        free(X);
        free(eps);
        free(xt);
        free(tg);
        free(scr);
        free(h);
        free(S);
        free(want_xt);
        free(want_tg);
        free(want_v);
      }
    }
  report("pair12_endpoints_training_pair_kernels", e_end, 2e-6, "(float; t passed as float)");
  report("pair_training_pair_kernels_vs_definition", e_gen, 2e-6, "(x_t and target, all stages K=1..4, rf+vp)");
  report("pair13_rf_velocity_kernels", e_rf, 2e-6, "target vs (x_s-x_e)/(s-e)");
}

/* item 16: K = 1 is vanilla bit for bit */
static void test_item16_k1_vanilla(void) {
  const int B = 8, C = 3, T = 8, H = 4, W = 4;
  size_t n = (size_t)B * C * T * H * W, ce = n / B;
  float *X = randn_f(n), *eps = randn_f(n), *xt = malloc(n * sizeof(float)), *tg = malloc(n * sizeof(float)),
        *vx = malloc(n * sizeof(float)), *vt = malloc(n * sizeof(float)), *scr = malloc(n * sizeof(float));
  float t[8] = {0.0f, 1.0f, 1e-30f, 0.3f, 0.5f, 0.999999f, 0.0f, 0.0f};
  k_fill_uniform(t + 6, 2, 3, 3, 0);
  for (int fi = 0; fi < 2; fi++) {
    diffusion_form f = (diffusion_form)fi;
    pyramid_schedule p;
    pyramid_schedule_init(&p, f, 1, NULL, 0, NULL, 0);
    int coeff_ok = 1;
    for (int b = 0; b < B; b++) {
      double c[6], td = t[b];
      pyramid_pair_coeffs(&p, 0, td, c);
      double a = diffusion_a(f, td), bb = diffusion_b(f, td);
      if (f == DIFFUSION_RF)
        coeff_ok &= c[0] == 1 - td && c[1] == td && c[2] == 0 && c[3] == -1 && c[4] == 1 && c[5] == 0;
      else
        coeff_ok &= c[0] == a && c[1] == bb && c[2] == 0 && c[3] == -bb && c[4] == a && c[5] == 0;
    }
    for (int i = 0; i < 1000 && f == DIFFUSION_RF; i++) {
      double c[6], td = i / 999.0;
      pyramid_pair_coeffs(&p, 0, td, c);
      coeff_ok &= c[0] == 1 - td && c[1] == td && c[2] == 0 && c[3] == -1 && c[4] == 1 && c[5] == 0;
    }
    memset(scr, 0xff, n * sizeof(float)); /* NaN garbage: stage 0 must not read it */
    pyramid_training_pair(tpdiff_cpu_backend(), &p, 0, X, eps, t, B, C, T, H, W, xt, tg, scr);
    for (int b = 0; b < B; b++) {
      float tb = t[b];
      float a = f == DIFFUSION_RF ? 1.0f - tb : (float)diffusion_a(f, tb);
      float bb = f == DIFFUSION_RF ? tb : (float)diffusion_b(f, tb);
      for (size_t i = b * ce; i < (b + 1) * ce; i++) {
        vx[i] = a * X[i] + bb * eps[i];
        vt[i] = f == DIFFUSION_RF ? eps[i] - X[i] : a * eps[i] - bb * X[i];
      }
    }
    size_t dx = bits_differ(xt, vx, n), dt = bits_differ(tg, vt, n);
    char name[64];
    snprintf(name, sizeof name, "pair16_k1_bit_identical_vanilla_%s", form_name(f));
    check(name, coeff_ok && dx == 0 && dt == 0,
          "coeffs exact: %s; x_t bits differ %zu/%zu, target %zu/%zu (t incl. 0, 1, 1e-30)", coeff_ok ? "yes" : "no",
          dx, n, dt, n);
  }
  free(X);
  free(eps);
  free(xt);
  free(tg);
  free(vx);
  free(vt);
  free(scr);
}

/* item 15: oracle samplers land on x_e exactly (double) / to float rounding (kernels) */
static void test_item15_oracle_samplers(void) {
  const int ns[3] = {1, 3, 10};
  for (int fi = 0; fi < 2; fi++) {
    diffusion_form f = (diffusion_form)fi;
    double worst_d = 0, worst_f = 0;
    int runs = 0;
    for (int K = 1; K <= 3; K += 2) {
      pyramid_schedule p;
      pyramid_schedule_init(&p, f, K, NULL, 0, NULL, 0);
      for (int k = 0; k < K; k++) {
        /* double: targets from x_s (and the oracle's x_e), MATH.md 6.1 update rules */
        stage_data d = make_stage(&p, k, 16, 8, 500 + 10 * K + k);
        size_t n = (size_t)d.N * d.F;
        pair_win w = window_of(&p, k);
        double e = p.end[k], s = p.start[k];
        double *x = malloc(n * sizeof(double));
        for (int q = 0; q < 3; q++) {
          int nk = ns[q];
          memcpy(x, d.xs, n * sizeof(double));
          for (int i = 0; i < nk; i++) {
            double t = e + (1.0 - (double)i / nk) * (s - e), t2 = e + (1.0 - (double)(i + 1) / nk) * (s - e);
            double a = diffusion_a(f, t), b = diffusion_b(f, t), a2 = diffusion_a(f, t2), b2 = diffusion_b(f, t2);
            for (size_t j = 0; j < n; j++) {
              if (f == DIFFUSION_RF) {
                double v = (d.xs[j] - d.xe[j]) / (s - e);
                x[j] += (t2 - t) * v;
              } else {
                double x0h, epsh;
                ref_hat(&w, d.xs[j], d.xe[j], &x0h, &epsh);
                double v = a * epsh - b * x0h;
                double x0p = a * x[j] - b * v, ep = b * x[j] + a * v;
                x[j] = a2 * x0p + b2 * ep;
              }
            }
          }
          worst_d = maxd(worst_d, err_dd(x, d.xe, n));
          runs++;
        }
        free(x);
        free_stage(&d);

        /* float: the regression targets of pyramid_training_pair drive the same loop */
        const int Bf = 2, Cf = 2, T = 8, H = 2, W = 3, plane = H * W;
        size_t m = (size_t)Bf * Cf * T * plane;
        float *X = malloc(m * sizeof(float)), *eps = randn_f(m), *xf = malloc(m * sizeof(float)),
              *tg = malloc(m * sizeof(float)), *scr = malloc(m * sizeof(float)), *tmp = malloc(m * sizeof(float));
        make_video(X, Bf * Cf * plane, T, 600 + 10 * K + k);
        double *xe = malloc(m * sizeof(double));
        for (size_t j = 0; j < m; j++) xe[j] = w.a_e * (double)X[j] + w.b_e * (double)eps[j];
        for (int q = 0; q < 3; q++) {
          int nk = ns[q];
          float ts[2] = {(float)s, (float)s};
          pyramid_training_pair(tpdiff_cpu_backend(), &p, k, X, eps, ts, Bf, Cf, T, H, W, xf, tg, scr); /* x at t = s is x_s */
          for (int i = 0; i < nk; i++) {
            double t = e + (1.0 - (double)i / nk) * (s - e), t2 = e + (1.0 - (double)(i + 1) / nk) * (s - e);
            float tt[2] = {(float)t, (float)t};
            pyramid_training_pair(tpdiff_cpu_backend(), &p, k, X, eps, tt, Bf, Cf, T, H, W, tmp, tg, scr);
            if (f == DIFFUSION_RF) {
              float dt = (float)(t2 - t);
              for (size_t j = 0; j < m; j++) xf[j] = xf[j] + dt * tg[j];
            } else {
              float a = (float)diffusion_a(f, t), b = (float)diffusion_b(f, t), a2 = (float)diffusion_a(f, t2),
                    b2 = (float)diffusion_b(f, t2);
              for (size_t j = 0; j < m; j++) {
                float x0p = a * xf[j] - b * tg[j], ep = b * xf[j] + a * tg[j];
                xf[j] = a2 * x0p + b2 * ep;
              }
            }
          }
          worst_f = maxd(worst_f, err_fd(xf, xe, m));
        }
        free(X);
        free(eps);
        free(xf);
        free(tg);
        free(scr);
        free(tmp);
        free(xe);
      }
    }
    char name[64];
    snprintf(name, sizeof name, "sampler15_oracle_%s_double", f == DIFFUSION_RF ? "rf_euler" : "vp_ddim_v");
    report(name, worst_d, 1e-12, "(n_k in {1,3,10}, all stages of K=1 and K=3, %d runs)", runs);
    snprintf(name, sizeof name, "sampler15_oracle_%s_float_kernels", f == DIFFUSION_RF ? "rf_euler" : "vp_ddim_v");
    report(name, worst_f, 3e-6, "(targets from pyramid_training_pair)");
  }
}

/* The whole pyramid with the oracle: stage 0 from its start, n_k steps per stage, exact renoise
 * with zeta = Hi(eps_k) at each boundary, ends on the full-rate data X. */
static void test_pyramid_end_to_end(void) {
  for (int fi = 0; fi < 2; fi++)
    for (int K = 2; K <= 4; K++) {
      diffusion_form f = (diffusion_form)fi;
      pyramid_schedule p;
      pyramid_schedule_init(&p, f, K, NULL, 0, NULL, 0);
      const int Bf = 2, Cf = 2, T = 8, H = 2, W = 2, plane = H * W, nk = 3;
      const int bc = Bf * Cf;
      size_t m = (size_t)bc * T * plane;
      float *lvX[PYRAMID_MAX_STAGES], *lvE[PYRAMID_MAX_STAGES];
      lvX[K - 1] = malloc(m * sizeof(float));
      make_video(lvX[K - 1], bc * plane, T, 700 + K);
      lvE[K - 1] = randn_f(m);
      for (int k = K - 2; k >= 0; k--) {
        size_t mk = m >> (K - 1 - k);
        lvX[k] = malloc(mk * sizeof(float));
        lvE[k] = malloc(mk * sizeof(float));
        k_frames_pair_mean(lvX[k], lvX[k + 1], bc, T >> (K - 2 - k), plane);
        k_frames_pair_sum_norm(lvE[k], lvE[k + 1], bc, T >> (K - 2 - k), plane);
      }
      float *x = malloc(m * sizeof(float)), *tg = malloc(m * sizeof(float)), *scr = malloc(m * sizeof(float)),
            *tmp = malloc(m * sizeof(float)), *zeta = malloc(m * sizeof(float));
      double *xd = malloc(m * sizeof(double)), *tmpd = malloc(m * sizeof(double));
      /* the double track has its own levels, built in double from the full-rate data, so that
       * eps_{k-1} = Dn(eps_k) holds exactly there (the float levels carry one rounding each) */
      double *dX[PYRAMID_MAX_STAGES], *dE[PYRAMID_MAX_STAGES];
      dX[K - 1] = to_d(lvX[K - 1], m);
      dE[K - 1] = to_d(lvE[K - 1], m);
      for (int k = K - 2; k >= 0; k--) {
        int Tin = T >> (K - 2 - k);
        dX[k] = malloc((m >> (K - 1 - k)) * sizeof(double));
        dE[k] = malloc((m >> (K - 1 - k)) * sizeof(double));
        for (int c = 0; c < bc; c++)
          for (int j = 0; j < Tin / 2; j++)
            for (int q = 0; q < plane; q++) {
              size_t o = ((size_t)c * (Tin / 2) + j) * plane + q, i0 = ((size_t)c * Tin + 2 * j) * plane + q;
              dX[k][o] = (dX[k + 1][i0] + dX[k + 1][i0 + plane]) / 2;
              dE[k][o] = (dE[k + 1][i0] + dE[k + 1][i0 + plane]) / SQRT2;
            }
      }
      /* double track: the same state evolution with the MATH.md formulas */
      int Tk = T >> (K - 1);
      size_t mk = (size_t)bc * Tk * plane;
      {
        float ts[2] = {1.0f, 1.0f};
        pyramid_training_pair(tpdiff_cpu_backend(), &p, 0, lvX[0], lvE[0], ts, Bf, Cf, Tk, H, W, x, tg, scr);
        pair_win w = window_of(&p, 0);
        for (size_t j = 0; j < mk; j++) xd[j] = w.a_s * dX[0][j] + w.b_s * dE[0][j];
      }
      for (int k = 0; k < K; k++) {
        Tk = T >> (K - 1 - k);
        mk = (size_t)bc * Tk * plane;
        double e = p.end[k], s = p.start[k];
        pair_win w = window_of(&p, k);
        if (k > 0) {
          renoise_coeffs rc;
          pyramid_renoise_coeffs(f, p.end[k - 1], s, 1, &rc);
          k_frames_pair_diff_norm(zeta, lvE[k], bc, Tk, plane);
          memcpy(tmp, x, mk / 2 * sizeof(float));
          pyramid_renoise(tpdiff_cpu_backend(), &rc, tmp, zeta, NULL, Bf, Cf, Tk / 2, H, W, x, scr);
          /* double renoise on the [bc*plane-major] layout: frames are strided by plane */
          memcpy(tmpd, xd, mk / 2 * sizeof(double));
          for (int c = 0; c < bc; c++)
            for (int j = 0; j < Tk / 2; j++)
              for (int q = 0; q < plane; q++) {
                double xe = tmpd[((size_t)c * (Tk / 2) + j) * plane + q];
                double e0 = dE[k][((size_t)c * Tk + 2 * j) * plane + q],
                       e1 = dE[k][((size_t)c * Tk + 2 * j + 1) * plane + q];
                double z = (e0 - e1) / SQRT2;
                xd[((size_t)c * Tk + 2 * j) * plane + q] = rc.alpha * xe + rc.beta_anti * z;
                xd[((size_t)c * Tk + 2 * j + 1) * plane + q] = rc.alpha * xe - rc.beta_anti * z;
              }
        }
        /* stage data in double for the oracle */
        double *S = malloc(mk * sizeof(double));
        for (int c = 0; c < bc; c++)
          for (int j = 0; j < Tk; j++)
            for (int q = 0; q < plane; q++) {
              size_t i = ((size_t)c * Tk + j) * plane + q;
              if (k == 0) {
                S[i] = dX[k][i];
              } else {
                size_t i0 = ((size_t)c * Tk + (j & ~1)) * plane + q, i1 = i0 + plane;
                S[i] = (dX[k][i0] + dX[k][i1]) / 2;
              }
            }
        for (int i = 0; i < nk; i++) {
          double t = e + (1.0 - (double)i / nk) * (s - e), t2 = e + (1.0 - (double)(i + 1) / nk) * (s - e);
          double a = diffusion_a(f, t), b = diffusion_b(f, t), a2 = diffusion_a(f, t2), b2 = diffusion_b(f, t2);
          float tt[2] = {(float)t, (float)t};
          pyramid_training_pair(tpdiff_cpu_backend(), &p, k, lvX[k], lvE[k], tt, Bf, Cf, Tk, H, W, tmp, tg, scr);
          for (size_t j = 0; j < mk; j++) {
            double xs = w.a_s * S[j] + w.b_s * dE[k][j], xe = w.a_e * dX[k][j] + w.b_e * dE[k][j], x0h, epsh;
            ref_hat(&w, xs, xe, &x0h, &epsh);
            if (f == DIFFUSION_RF) {
              xd[j] += (t2 - t) * (epsh - x0h);
              x[j] = x[j] + (float)(t2 - t) * tg[j];
            } else {
              double v = a * epsh - b * x0h, x0p = a * xd[j] - b * v, ep = b * xd[j] + a * v;
              xd[j] = a2 * x0p + b2 * ep;
              float af = (float)a, bf = (float)b, x0f = af * x[j] - bf * tg[j], epf = bf * x[j] + af * tg[j];
              x[j] = (float)a2 * x0f + (float)b2 * epf;
            }
          }
        }
        free(S);
      }
      double *Xd = to_d(lvX[K - 1], m);
      double ed = err_dd(xd, Xd, m), ef = err_fd(x, Xd, m);
      char name[80];
      snprintf(name, sizeof name, "sampler15_pyramid_end_to_end_%s_K%d_double", form_name(f), K);
      report(name, ed, 1e-12, "(oracle, 3 steps/stage, pathwise renoise, lands on X)");
      snprintf(name, sizeof name, "sampler15_pyramid_end_to_end_%s_K%d_float_kernels", form_name(f), K);
      report(name, ef, 2e-6, NULL);
      for (int k = 0; k < K; k++) {
        free(lvX[k]);
        free(lvE[k]);
        free(dX[k]);
        free(dE[k]);
      }
      free(x);
      free(tg);
      free(scr);
      free(tmp);
      free(zeta);
      free(xd);
      free(tmpd);
      free(Xd);
    }
}

/* =============================================================================================
 * Cost model (item 24)
 * ============================================================================================= */
static void test_item24_cost(void) {
  double e3 = 0, e2 = 0;
  int k1 = 1;
  for (int i = 0; i <= 100; i++) {
    double x = i / 100.0;
    e3 = maxd(e3, fabs(pyramid_cost_ratio(3, x) - (7.0 / 12 * (1 - x) + 21.0 / 48 * x)));
    e2 = maxd(e2, fabs(pyramid_cost_ratio(2, x) - (0.75 - 0.125 * x)));
    k1 &= pyramid_cost_ratio(1, x) == 1.0;
  }
  double e4 = maxd(fabs(pyramid_cost_ratio(4, 0) - 15.0 / 32), fabs(pyramid_cost_ratio(4, 1) - 85.0 / 256));
  double e_half = fabs(pyramid_cost_ratio(3, 4.0 / 7) - 0.5);
  report("cost24_rho_K3_closed_form", maxd(maxd(e3, e2), maxd(e4, e_half)), 1e-15,
         "rho(3,0)=%.4f rho(3,4/7)=%.4f rho(3,1)=%.4f, K=2 0.75-0.125x, K=4 %.4f..%.4f", pyramid_cost_ratio(3, 0),
         pyramid_cost_ratio(3, 4.0 / 7), pyramid_cost_ratio(3, 1), pyramid_cost_ratio(4, 0), pyramid_cost_ratio(4, 1));
  check("cost24_rho_K1_is_1", k1, "rho(1, x) == 1 exactly for x in [0, 1]");
}

int main(void) {
  double t0 = now_s();
  test_frames_kernels_vs_naive();
  test_frames_thread_invariance();
  test_item1_down_up();
  test_item2_projector();
  test_item3_decomposition();
  test_operator_matrices();
  test_noise_pyramid_law();
  test_combine3();
  test_item4_min_start();
  test_item6_windows();
  test_worked_example();
  test_schedule_validation();
  test_item7_grid_snapped();
  test_item8_renoise_coeffs();
  test_item9_pathwise_double();
  test_item9_pathwise_kernels();
  test_items12_14_pairs_double();
  test_items12_13_pairs_kernels();
  test_item15_oracle_samplers();
  test_pyramid_end_to_end();
  test_item16_k1_vanilla();
  test_item24_cost();
  test_item10_11_monte_carlo();
  test_summary("test_pyramid", "%.2f s, %d threads", now_s() - t0, omp_get_max_threads());
  return test_exit_code();
}
