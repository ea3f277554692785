/* pyramid.h — the temporal-pyramid diffusion math of MATH.md: noise schedules, stage windows with
 * the minimal start S(e), training endpoints / inputs / targets per stage, and the exact renoise
 * at a stage boundary. Scalars are computed in double on the host; tensor work goes through a
 * compute backend (kernels/backend.h), whose memory the tensor arguments are. Knows nothing of the
 * network: the trainer and the sampler combine it with the DiT. */
#ifndef TPDIFF_PYRAMID_H
#define TPDIFF_PYRAMID_H

#include <stddef.h>

#include "kernels/backend.h"

#define PYRAMID_MAX_STAGES 4

typedef enum { DIFFUSION_RF = 0, DIFFUSION_VP = 1 } diffusion_form;

/* x_t = a(t) X + b(t) eps. RF: a = 1 - t, b = t. VP cosine: a = cos(pi t / 2), b = sin(pi t / 2). */
double diffusion_a(diffusion_form form, double t);
double diffusion_b(diffusion_form form, double t);
/* ln SNR(t) = ln(a^2 / b^2); strictly decreasing; +inf at t = 0, -inf at a = 0. */
double diffusion_log_snr(diffusion_form form, double t);

/* Minimal start of the next stage, SNR(S(e)) = SNR(e) / 2 (MATH.md section 3), closed form. */
double pyramid_min_start(diffusion_form form, double e);
/* The same by bisection on the monotone ln SNR (any schedule; the test oracle). */
double pyramid_min_start_bisect(diffusion_form form, double e);

typedef struct {
  diffusion_form form;
  int stages;                        /* K */
  double start[PYRAMID_MAX_STAGES];  /* s_k: s_0 = 1, s_k = S(e_{k-1}) */
  double end[PYRAMID_MAX_STAGES];    /* e_k = tau_{k+1}; e_{K-1} = 0 */
  int stride[PYRAMID_MAX_STAGES];    /* m_k = 2^(K-1-k) */
} pyramid_schedule;

/* K in 1..PYRAMID_MAX_STAGES; cuts = the K-1 nominal cut points tau_1 > ... > tau_{K-1} in (0, 1),
 * or NULL / ncuts == 0 for equal cuts (k/K). Returns 0, or -1 with one line in err. */
int pyramid_schedule_init(pyramid_schedule *p, diffusion_form form, int stages, const double *cuts, int ncuts,
                          char *err, size_t err_size);

/* Renoise coefficients from the end e of a stage to the start s of the next (section 6.2):
 * alpha = a(s)/a(e), beta_anti = alpha b(e), beta_iso = sqrt(b(s)^2 - 2 alpha^2 b(e)^2).
 * minimal != 0 means s == S(e): beta_iso is then exactly 0 (no sqrt of a rounding residue).
 * Returns -1 when the constraint SNR(s) <= SNR(e)/2 is violated beyond rounding. */
typedef struct {
  double alpha, beta_anti, beta_iso;
} renoise_coeffs;
int pyramid_renoise_coeffs(diffusion_form form, double e, double s, int minimal, renoise_coeffs *out);

/* Per-clip coefficients of the stage-k training pair at time t (section 5.1), written so that
 *   x_t    = c[0] X_k + c[1] eps_k + c[2] S_k
 *   target = c[3] X_k + c[4] eps_k + c[5] S_k
 * with S_k = Up(Down(X_k)) (k >= 1; for k = 0, S_0 = X_0 and c[2] = c[5] = 0). The target is the
 * RF velocity v* = epsh - x0h or the VP v-prediction a(t) epsh - b(t) x0h. For K = 1 the
 * coefficients are exactly (1-t, t, 0, -1, 1, 0) (RF), so training is vanilla bit for bit. */
void pyramid_pair_coeffs(const pyramid_schedule *p, int stage, double t, double c[6]);

/* t of a stage-local position r in [0, 1]: t = e_k + r (s_k - e_k). */
double pyramid_time(const pyramid_schedule *p, int stage, double r);

/* Builds a stage-k microbatch on backend be: X [B, C, T_k, H, W] the stage's data level, eps
 * [B, C, T_k, H, W] the stage's noise; writes x_t and target (same shape). scratch holds
 * B·C·T_k·H·W floats (for S_k; unused at stage 0). X, eps, x_t, target, scratch are backend
 * memory; t [B] (per clip) is HOST memory, since it only sets the per-clip coefficients. */
void pyramid_training_pair(const tpdiff_backend *be, const pyramid_schedule *p, int stage, const float *X,
                           const float *eps, const float *t, int B, int C, int T, int H, int W, float *x_t,
                           float *target, float *scratch);

/* Exact renoise (section 6.2) on backend be: x_s [B, C, 2Tc, H, W] = alpha Up(x_e) + beta_anti A(zeta)
 * + beta_iso eta, with x_e [B, C, Tc, H, W], zeta [B, C, Tc, H, W], eta [B, C, 2Tc, H, W] (eta may be
 * NULL when beta_iso == 0). scratch holds B·C·2Tc·H·W floats. Every tensor is backend memory. */
void pyramid_renoise(const tpdiff_backend *be, const renoise_coeffs *rc, const float *x_e, const float *zeta,
                     const float *eta, int B, int C, int Tc, int H, int W, float *x_s, float *scratch);

/* Training-cost ratio of MATH.md section 8 (equal time per stage): per-stage cost
 * (1-x) T/T0 + x (T/T0)^2 averaged over the K stages; 1 for K = 1. */
double pyramid_cost_ratio(int stages, double attention_share);

#endif
