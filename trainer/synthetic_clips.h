/* synthetic_clips.h — a small in-memory set of moving-square clips, the training fixture used
 * while no data set is configured (data.path empty). */
#ifndef TPDIFF_SYNTHETIC_CLIPS_H
#define TPDIFF_SYNTHETIC_CLIPS_H

#include <stdint.h>

typedef struct {
  int count, channels, frames, height, width, classes;
  float *pixels; /* [count, C, T, H, W] in [-1, 1] */
  int *labels;   /* [count]: the square's colour index mod classes (0 when unconditional) */
} synthetic_clips;

/* Each clip: one square of a random colour and size on a dark background, moving at constant
 * velocity and bouncing off the borders, so consecutive frames are strongly correlated (as in
 * real video). Deterministic in seed. Returns 0 or -1 (no memory). */
int synthetic_clips_create(synthetic_clips *s, int count, int channels, int frames, int height, int width,
                           int classes, uint64_t seed);
void synthetic_clips_destroy(synthetic_clips *s);

#endif
