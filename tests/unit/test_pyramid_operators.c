/* test_pyramid_operators.c — the temporal-pyramid frame operators against the specification (MATH.md,
 * checklist of section 9, items 1-3 and 24): the frame kernels against naive references and across
 * thread counts, Down/Up, the projector P, the Dn/Hi decomposition and its matrices, the law of the
 * noise pyramid, combine3 (the one kernel every pair and renoise goes through), and the cost model.
 *
 * Pure-math properties are checked twice: with double-precision helpers written from the MATH.md
 * definitions (tolerances of section 9, ~1e-12) and through the float kernels and model/pyramid.c
 * (float rounding, ~1e-6). Each case prints `PASS name ...` or `FAIL name ...`; the program exits 1
 * if any case failed. Errors are normwise: max|got - want| / max|want|. Shared helpers:
 * tests/unit/pyramid_test_util.h. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/pyramid.h"
#include "tests/unit/pyramid_test_util.h"
#include "tests/unit/test_report.h"

/* =============================================================================================
 * Operators (items 1-3) and the kernels behind them
 * ============================================================================================= */

static double dotd(const double *a, const double *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

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
  test_item24_cost();
  test_summary("test_pyramid_operators", "%.2f s, %d threads", now_s() - t0, omp_get_max_threads());
  return test_exit_code();
}
