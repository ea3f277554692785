/* random.c — Philox4x32-10 counter-based random numbers (Salmon et al., SC'11).
 *
 * Counter-based so that any element of any stream can be produced independently: the same
 * (key, stream, index) gives the same value at any thread count, on resume, and on the GPU. */
#include <math.h>

#include "kernels/kernels.h"

static void philox4x32_10(uint32_t ctr[4], uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)0xD2511F53u * ctr[0], p1 = (uint64_t)0xCD9E8D57u * ctr[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0, hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    uint32_t c0 = hi1 ^ ctr[1] ^ k0, c2 = hi0 ^ ctr[3] ^ k1;
    ctr[0] = c0;
    ctr[1] = lo1;
    ctr[2] = c2;
    ctr[3] = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

static void philox_block(uint32_t out[4], uint64_t key, uint64_t stream, uint64_t block) {
  out[0] = (uint32_t)block;
  out[1] = (uint32_t)(block >> 32);
  out[2] = (uint32_t)stream;
  out[3] = (uint32_t)(stream >> 32);
  philox4x32_10(out, (uint32_t)key, (uint32_t)(key >> 32));
}

/* (0, 1]: never 0, so log() in Box-Muller is finite. */
static inline float uniform_open0(uint32_t x) { return ((float)(x >> 8) + 1.0f) * (1.0f / 16777216.0f); }

void k_fill_uniform(float *out, size_t n, uint64_t key, uint64_t stream, uint64_t first) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    uint64_t idx = first + i;
    uint32_t r[4];
    philox_block(r, key, stream, idx / 4);
    out[i] = (float)(r[idx % 4] >> 8) * (1.0f / 16777216.0f);
  }
}

void k_fill_normal(float *out, size_t n, uint64_t key, uint64_t stream, uint64_t first) {
  /* Box-Muller on (u0,u1) -> lanes 0,1 and (u2,u3) -> lanes 2,3 of each 4-wide block. */
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    uint64_t idx = first + i;
    uint32_t r[4];
    philox_block(r, key, stream, idx / 4);
    int lane = (int)(idx % 4), pair = lane / 2;
    double u1 = uniform_open0(r[2 * pair]), u2 = uniform_open0(r[2 * pair + 1]);
    double radius = sqrt(-2.0 * log(u1)), angle = 6.283185307179586 * u2;
    out[i] = (float)(lane % 2 == 0 ? radius * cos(angle) : radius * sin(angle));
  }
}
