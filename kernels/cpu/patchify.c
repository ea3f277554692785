/* patchify.c — video [B, C, T, H, W] <-> tokens [B, N, C·p·p] (pure permutations). */
#include "kernels/kernels.h"

/* One loop nest serves both directions so the two index maps cannot disagree. */
static void patch_permute(float *tokens, float *x, int to_tokens, int B, int C, int T, int H, int W, int p) {
  int hp = H / p, wp = W / p, P = C * p * p;
  long ntok = (long)T * hp * wp;
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (long n = 0; n < ntok; n++) {
      int t = (int)(n / ((long)hp * wp)), i = (int)(n / wp % hp), j = (int)(n % wp);
      float *tok = tokens + ((size_t)b * ntok + n) * P;
      for (int c = 0; c < C; c++)
        for (int py = 0; py < p; py++) {
          float *px_row = x + ((((size_t)b * C + c) * T + t) * H + (size_t)i * p + py) * W + (size_t)j * p;
          float *tk = tok + ((size_t)c * p + py) * p;
          for (int px = 0; px < p; px++) {
            if (to_tokens)
              tk[px] = px_row[px];
            else
              px_row[px] = tk[px];
          }
        }
    }
}

void k_patchify(float *tokens, const float *x, int B, int C, int T, int H, int W, int p) {
  patch_permute(tokens, (float *)x, 1, B, C, T, H, W, p);
}

void k_unpatchify(float *x, const float *tokens, int B, int C, int T, int H, int W, int p) {
  patch_permute((float *)tokens, x, 0, B, C, T, H, W, p);
}
