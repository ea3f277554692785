/* diffusion.h — the single-stage (vanilla) diffusion forms: training inputs and targets. The
 * temporal pyramid builds on these (MATH.md section 5; with K = 1 it reduces to them exactly). */
#ifndef TPDIFF_DIFFUSION_H
#define TPDIFF_DIFFUSION_H

#include <stddef.h>

/* Rectified flow: x_t = (1 - t) x0 + t eps and the velocity target v = eps - x0, per clip i with
 * t[i] and clip_elems values each. All arrays [B, clip_elems]. */
void rf_training_pair(float *x_t, float *target, const float *x0, const float *eps, const float *t, int B,
                      size_t clip_elems);

#endif
