/* diffusion.c — vanilla rectified-flow training pairs. */
#include "model/diffusion.h"

void rf_training_pair(float *x_t, float *target, const float *x0, const float *eps, const float *t, int B,
                      size_t clip_elems) {
  for (int b = 0; b < B; b++) {
    float tb = t[b];
    size_t base = (size_t)b * clip_elems;
#pragma omp parallel for schedule(static) if (clip_elems > 65536)
    for (size_t i = 0; i < clip_elems; i++) {
      x_t[base + i] = (1.0f - tb) * x0[base + i] + tb * eps[base + i];
      target[base + i] = eps[base + i] - x0[base + i];
    }
  }
}
