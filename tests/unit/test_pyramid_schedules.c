/* test_pyramid_schedules.c — the temporal-pyramid schedules and the renoise between stages against the
 * specification (MATH.md, checklist of section 9, items 4-11): minimal starts, stage windows, the
 * worked example, schedule validation, grid-snapped starts, renoise coefficients, the pathwise
 * identity, and the Monte-Carlo law of the renoised state with its negative controls.
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
 * Schedules and windows (items 4-7)
 * ============================================================================================= */

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

int main(void) {
  double t0 = now_s();
  /* randn_f's streams go on where test_pyramid_operators.c's end, as when the two were one
   * program: these cases keep the data their limits were checked on */
  stream_next = 1024;
  test_item4_min_start();
  test_item6_windows();
  test_worked_example();
  test_schedule_validation();
  test_item7_grid_snapped();
  test_item8_renoise_coeffs();
  test_item9_pathwise_double();
  test_item9_pathwise_kernels();
  test_item10_11_monte_carlo();
  test_summary("test_pyramid_schedules", "%.2f s, %d threads", now_s() - t0, omp_get_max_threads());
  return test_exit_code();
}
