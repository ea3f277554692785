/* synthetic_clips.c — moving squares with a known generative process. */
#include "trainer/synthetic_clips.h"

#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

enum { SYNTH_PALETTE = 6, SYNTH_STREAM = 0x5e1 };

/* Reflects a coordinate into [0, limit] (bouncing). */
static float bounce(float p, float limit) {
  if (limit <= 0) return 0;
  float period = 2 * limit;
  p = p - period * (float)(int)(p / period);
  if (p < 0) p += period;
  return p <= limit ? p : period - p;
}

int synthetic_clips_create(synthetic_clips *s, int count, int channels, int frames, int height, int width,
                           int classes, uint64_t seed) {
  static const float palette[SYNTH_PALETTE][3] = {{1, -1, -1}, {-1, 1, -1}, {-1, -1, 1},
                                                  {1, 1, -1},  {-1, 1, 1},  {1, -1, 1}};
  memset(s, 0, sizeof *s);
  size_t clip = (size_t)channels * frames * height * width;
  s->pixels = malloc(clip * (size_t)count * sizeof(float));
  s->labels = calloc((size_t)count, sizeof(int));
  if (!s->pixels || !s->labels) {
    synthetic_clips_destroy(s);
    return -1;
  }
  s->count = count;
  s->channels = channels;
  s->frames = frames;
  s->height = height;
  s->width = width;
  s->classes = classes;
  for (int n = 0; n < count; n++) {
    float u[8];
    k_fill_uniform(u, 8, seed, SYNTH_STREAM, (uint64_t)n * 8);
    int colour = (int)(u[0] * SYNTH_PALETTE) % SYNTH_PALETTE;
    int side = 2 + (int)(u[1] * (float)(height < width ? height : width) / 3);
    float x0 = u[2] * (float)(width - side), y0 = u[3] * (float)(height - side);
    float vx = (u[4] - 0.5f) * 3.0f, vy = (u[5] - 0.5f) * 3.0f;
    s->labels[n] = classes > 0 ? colour % classes : 0;
    float *clipv = s->pixels + clip * (size_t)n;
    for (int t = 0; t < frames; t++) {
      int px = (int)(bounce(x0 + vx * (float)t, (float)(width - side)) + 0.5f);
      int py = (int)(bounce(y0 + vy * (float)t, (float)(height - side)) + 0.5f);
      for (int c = 0; c < channels; c++) {
        float fg = palette[colour][c % 3], bg = -0.8f;
        float *plane = clipv + ((size_t)c * frames + t) * height * width;
        for (int yy = 0; yy < height; yy++)
          for (int xx = 0; xx < width; xx++) {
            int inside = xx >= px && xx < px + side && yy >= py && yy < py + side;
            plane[(size_t)yy * width + xx] = inside ? fg : bg;
          }
      }
    }
  }
  return 0;
}

void synthetic_clips_destroy(synthetic_clips *s) {
  free(s->pixels);
  free(s->labels);
  memset(s, 0, sizeof *s);
}
