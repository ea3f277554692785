/* pyramid.c — the temporal-pyramid math of MATH.md: schedules a(t), b(t), the minimal start S(e),
 * stage windows, per-clip training-pair coefficients (section 5.1), the training pair itself, the
 * exact renoise at a stage boundary (section 6.2) and the cost model (section 8).
 * Scalars in double on the host; every tensor pass goes through the caller's compute backend. */
#include "model/pyramid.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define PYR_PI 3.14159265358979323846
#define PYR_SQRT2 1.41421356237309504880
#define PYR_LN2 0.69314718055994530942

/* ---- schedules ------------------------------------------------------------------------------- */

/* VP cosine: a = cos(pi t/2), b = sin(pi t/2). Each is evaluated through whichever of sin / cos has
 * the argument nearer 0, so both endpoints are exact (a(1) = 0, not cos(pi/2) = 6e-17; b(0) = 0)
 * and the pair is symmetric under t -> 1 - t. */
static void vp_ab(double t, double *a, double *b) {
  if (t <= 0.5) {
    *a = cos(0.5 * PYR_PI * t);
    *b = sin(0.5 * PYR_PI * t);
  } else {
    double u = 1.0 - t; /* exact for t in [0.5, 1] (Sterbenz) */
    *a = sin(0.5 * PYR_PI * u);
    *b = cos(0.5 * PYR_PI * u);
  }
}

double diffusion_a(diffusion_form form, double t) {
  if (form == DIFFUSION_RF) return 1.0 - t;
  double a, b;
  vp_ab(t, &a, &b);
  return a;
}

double diffusion_b(diffusion_form form, double t) {
  if (form == DIFFUSION_RF) return t;
  double a, b;
  vp_ab(t, &a, &b);
  return b;
}

double diffusion_log_snr(diffusion_form form, double t) {
  double a = diffusion_a(form, t), b = diffusion_b(form, t);
  if (b == 0.0) return INFINITY;
  if (a == 0.0) return -INFINITY;
  return 2.0 * (log(fabs(a)) - log(fabs(b)));
}

double pyramid_min_start(diffusion_form form, double e) {
  if (e <= 0.0) return 0.0;
  if (e >= 1.0) return 1.0;
  if (form == DIFFUSION_RF) return PYR_SQRT2 * e / (1.0 + (PYR_SQRT2 - 1.0) * e);
  /* tan(pi e/2) = b/a; scaling it by sqrt 2 scales b/a by sqrt 2, i.e. SNR by 1/2. */
  return (2.0 / PYR_PI) * atan(PYR_SQRT2 * tan(0.5 * PYR_PI * e));
}

double pyramid_min_start_bisect(diffusion_form form, double e) {
  if (e <= 0.0) return 0.0;
  if (e >= 1.0) return 1.0;
  const double target = diffusion_log_snr(form, e) - PYR_LN2;
  double lo = e, hi = 1.0;
  /* ln SNR is strictly decreasing: the root lies in (e, 1). Halve until the bracket stops
   * shrinking (at most ~60 halvings reach adjacent doubles). */
  for (int it = 0; it < 200; it++) {
    double mid = 0.5 * (lo + hi);
    if (mid <= lo || mid >= hi) break;
    if (diffusion_log_snr(form, mid) > target)
      lo = mid;
    else
      hi = mid;
  }
  return 0.5 * (lo + hi);
}

/* ---- windows --------------------------------------------------------------------------------- */

static void set_err(char *err, size_t err_size, const char *msg) {
  if (err && err_size > 0) snprintf(err, err_size, "%s", msg);
}

int pyramid_schedule_init(pyramid_schedule *p, diffusion_form form, int stages, const double *cuts, int ncuts,
                          char *err, size_t err_size) {
  char msg[256];
  memset(p, 0, sizeof *p);
  if (err && err_size > 0) err[0] = '\0';
  if (form != DIFFUSION_RF && form != DIFFUSION_VP) {
    snprintf(msg, sizeof msg, "diffusion.form = %d: expected rf (%d) or vp (%d)", (int)form, DIFFUSION_RF,
             DIFFUSION_VP);
    set_err(err, err_size, msg);
    return -1;
  }
  if (stages < 1 || stages > PYRAMID_MAX_STAGES) {
    snprintf(msg, sizeof msg, "pyramid.stages = %d: expected 1..%d", stages, PYRAMID_MAX_STAGES);
    set_err(err, err_size, msg);
    return -1;
  }
  if (ncuts < 0 || (cuts == NULL && ncuts > 0)) {
    snprintf(msg, sizeof msg, "pyramid.cuts: %d cut points but no values; expected %d cut points in (0, 1) or none",
             ncuts, stages - 1);
    set_err(err, err_size, msg);
    return -1;
  }
  /* tau_0 = 1 > tau_1 > ... > tau_{K-1} > tau_K = 0 */
  double tau[PYRAMID_MAX_STAGES + 1];
  tau[0] = 1.0;
  tau[stages] = 0.0;
  if (cuts == NULL || ncuts == 0) {
    for (int k = 1; k < stages; k++) tau[k] = (double)(stages - k) / (double)stages; /* nominal k/K from t = 1 */
  } else {
    if (ncuts != stages - 1) {
      snprintf(msg, sizeof msg,
               "pyramid.cuts: got %d cut points, expected %d for %d stages (tau_1 > ... > tau_%d in (0, 1))", ncuts,
               stages - 1, stages, stages - 1);
      set_err(err, err_size, msg);
      return -1;
    }
    for (int k = 0; k < ncuts; k++) {
      if (!(cuts[k] > 0.0 && cuts[k] < 1.0)) { /* also rejects NaN */
        snprintf(msg, sizeof msg, "pyramid.cuts[%d] = %g: expected a value strictly inside (0, 1)", k, cuts[k]);
        set_err(err, err_size, msg);
        return -1;
      }
      if (k > 0 && !(cuts[k] < cuts[k - 1])) {
        snprintf(msg, sizeof msg,
                 "pyramid.cuts[%d] = %g after cuts[%d] = %g: expected strictly decreasing cut points "
                 "(noisiest first, e.g. 0.667, 0.333)",
                 k, cuts[k], k - 1, cuts[k - 1]);
        set_err(err, err_size, msg);
        return -1;
      }
      tau[k + 1] = cuts[k];
    }
  }
  p->form = form;
  p->stages = stages;
  for (int k = 0; k < stages; k++) {
    p->end[k] = tau[k + 1];
    p->start[k] = k == 0 ? 1.0 : pyramid_min_start(form, p->end[k - 1]);
    p->stride[k] = 1 << (stages - 1 - k);
  }
  return 0;
}

double pyramid_time(const pyramid_schedule *p, int stage, double r) {
  double e = p->end[stage], s = p->start[stage];
  return e + r * (s - e);
}

/* ---- renoise --------------------------------------------------------------------------------- */

int pyramid_renoise_coeffs(diffusion_form form, double e, double s, int minimal, renoise_coeffs *out) {
  double a_e = diffusion_a(form, e), b_e = diffusion_b(form, e);
  double a_s = diffusion_a(form, s), b_s = diffusion_b(form, s);
  out->alpha = out->beta_anti = out->beta_iso = 0.0;
  if (!(a_e > 0.0) || !isfinite(s) || !isfinite(e)) return -1; /* nothing left of the signal at e */
  double alpha = a_s / a_e, beta_anti = alpha * b_e;
  double iso2 = b_s * b_s - 2.0 * alpha * alpha * b_e * b_e;
  /* Rounding of the closed-form S(e) leaves a residue of ~1e-16 b_s^2; anything beyond 1e-12 of
   * b_s^2 below zero is a real violation of SNR(s) <= SNR(e)/2. */
  double tol = 1e-12 * b_s * b_s;
  if (iso2 < -tol) return -1;
  double beta_iso;
  if (minimal) {
    /* s == S(e): beta_iso is 0 by construction; sqrt of the rounding residue would add ~1e-8 of
     * spurious noise (MATH.md 6.2). A clearly non-minimal s with the flag set is a caller bug
     * that would silently drop noise variance, so it is refused. */
    if (iso2 > 1e-9 * b_s * b_s) return -1;
    beta_iso = 0.0;
  } else {
    beta_iso = iso2 <= tol ? 0.0 : sqrt(iso2);
  }
  out->alpha = alpha;
  out->beta_anti = beta_anti;
  out->beta_iso = beta_iso;
  return 0;
}

void pyramid_renoise(const tpdiff_backend *be, const renoise_coeffs *rc, const float *x_e, const float *zeta,
                     const float *eta, int B, int C, int Tc, int H, int W, float *x_s, float *scratch) {
  const int bc = B * C, plane = H * W;
  const size_t n = (size_t)bc * 2 * (size_t)Tc * (size_t)plane;
  be->frames_repeat(x_s, x_e, bc, Tc, plane);
  be->frames_antisym(scratch, zeta, bc, Tc, plane);
  /* Same coefficients for every clip, so the whole batch is one "clip" for the combination. */
  double c[3] = {rc->alpha, rc->beta_anti, rc->beta_iso};
  if (eta == NULL) c[2] = 0.0; /* contract: eta may be NULL only when beta_iso == 0 */
  be->combine3_per_clip(x_s, x_s, scratch, eta, c, 1, n);
}

/* ---- training pair --------------------------------------------------------------------------- */

void pyramid_pair_coeffs(const pyramid_schedule *p, int stage, double t, double c[6]) {
  const diffusion_form form = p->form;
  const double a_t = diffusion_a(form, t), b_t = diffusion_b(form, t);
  if (stage == 0) {
    /* S_0 = X_0: x0h = X and epsh = eps exactly (MATH.md 5.1 / 5.2), so the pair is vanilla
     * diffusion on [e_0, 1] and, for K = 1, bit for bit the vanilla formulas. */
    c[0] = a_t;
    c[1] = b_t;
    c[2] = 0.0;
    if (form == DIFFUSION_RF) {
      c[3] = -1.0;
      c[4] = 1.0;
    } else {
      c[3] = -b_t;
      c[4] = a_t;
    }
    c[5] = 0.0;
    return;
  }
  const double e = p->end[stage], s = p->start[stage];
  const double a_e = diffusion_a(form, e), b_e = diffusion_b(form, e);
  const double a_s = diffusion_a(form, s), b_s = diffusion_b(form, s);
  const double D = a_s * b_e - a_e * b_s; /* < 0 since s > e */
  const double g = a_s / D;
  /* x0h  = X + g b_e (S - X),  epsh = eps + g a_e (X - S):
   * x_t  = a_t x0h + b_t epsh = (a_t - w) X + b_t eps + w S, with w = g (a_t b_e - b_t a_e). */
  const double w = g * (a_t * b_e - b_t * a_e);
  c[0] = a_t - w;
  c[1] = b_t;
  c[2] = w;
  if (form == DIFFUSION_RF) {
    /* v* = epsh - x0h = (g (a_e + b_e) - 1) X + eps - g (a_e + b_e) S, and a_e + b_e = 1. */
    c[3] = g - 1.0;
    c[4] = 1.0;
    c[5] = -g;
  } else {
    /* v* = a_t epsh - b_t x0h = (q - b_t) X + a_t eps - q S, q = g (a_t a_e + b_t b_e). */
    const double q = g * (a_t * a_e + b_t * b_e);
    c[3] = q - b_t;
    c[4] = a_t;
    c[5] = -q;
  }
}

/* Clips per combination call: coefficient arrays live on the stack, so nothing is allocated per
 * step (a microbatch is rarely larger; bigger ones are done in groups). */
#define PAIR_GROUP 64

void pyramid_training_pair(const tpdiff_backend *be, const pyramid_schedule *p, int stage, const float *X,
                           const float *eps, const float *t, int B, int C, int T, int H, int W, float *x_t,
                           float *target, float *scratch) {
  const size_t clip_elems = (size_t)C * T * H * W;
  const float *S = NULL;
  if (stage > 0) {
    /* S_k = Up(Down(X_k)), from the stage's own level in float (MATH.md section 0). The half-size
     * Down(X_k) goes into target, which the second combination overwrites afterwards. */
    be->frames_pair_mean(target, X, B * C, T, H * W);
    be->frames_repeat(scratch, target, B * C, T / 2, H * W);
    S = scratch;
  }
  for (int b0 = 0; b0 < B; b0 += PAIR_GROUP) {
    const int nb = B - b0 < PAIR_GROUP ? B - b0 : PAIR_GROUP;
    double cx[3 * PAIR_GROUP], ct[3 * PAIR_GROUP];
    for (int i = 0; i < nb; i++) {
      double c[6];
      pyramid_pair_coeffs(p, stage, (double)t[b0 + i], c);
      for (int j = 0; j < 3; j++) {
        cx[3 * i + j] = c[j];
        ct[3 * i + j] = c[3 + j];
      }
    }
    const size_t off = (size_t)b0 * clip_elems;
    be->combine3_per_clip(x_t + off, X + off, eps + off, S ? S + off : NULL, cx, nb, clip_elems);
    be->combine3_per_clip(target + off, X + off, eps + off, S ? S + off : NULL, ct, nb, clip_elems);
  }
}

/* ---- cost model ------------------------------------------------------------------------------ */

double pyramid_cost_ratio(int stages, double attention_share) {
  if (stages < 1) return NAN;
  const double x = attention_share;
  double sum = 0.0;
  for (int k = 0; k < stages; k++) {
    double f = ldexp(1.0, -(stages - 1 - k)); /* T_k / T0 = 2^-(K-1-k) */
    sum += f + x * (f * f - f);               /* = (1-x) f + x f^2, written so that K = 1 gives exactly 1 */
  }
  return sum / stages;
}
