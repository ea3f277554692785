/* tables.cu — patchify/unpatchify (pure permutations), sin-cos position tables and learned
 * embedding lookups (kernels/cpu/patchify.c and tables.c).
 *
 * Host-side arguments stay on the host (backend.h): positions, indices. The sin-cos table is built
 * on the host in double with the CPU's own libm calls and uploaded, so both backends hold the same
 * bits; it is computed once per shape by the model, so the upload costs nothing that matters. */
#include <math.h>
#include <stdlib.h>

#include "kernels/cuda/cuda_internal.cuh"

namespace {

/* One thread per (token, patch element); tokens in blockIdx.y (grid-stride), elements in x, so the
 * token's (clip, frame, row, col) is computed once per token. Token element e = (c, py, px). */
template <bool TO_TOKENS>
__global__ void patch_permute_kernel(float *tokens, float *x, int B, int C, int T, int H, int W, int p) {
  const int hp = H / p, wp = W / p, P = C * p * p;
  const long long ntok = (long long)T * hp * wp, total = (long long)B * ntok;
  for (long long tok = blockIdx.y; tok < total; tok += gridDim.y) {
    long long b = tok / ntok, n = tok % ntok;
    int t = (int)(n / ((long long)hp * wp)), i = (int)(n / wp % hp), j = (int)(n % wp);
    float *tk = tokens + (size_t)tok * P;
    for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < P; e += gridDim.x * blockDim.x) {
      int c = e / (p * p), py = (e / p) % p, px = e % p;
      size_t xi = ((((size_t)b * C + c) * T + t) * H + (size_t)i * p + py) * W + (size_t)j * p + px;
      if (TO_TOKENS)
        tk[e] = x[xi];
      else
        x[xi] = tk[e];
    }
  }
}

void patch_permute(float *tokens, float *x, bool to_tokens, int B, int C, int T, int H, int W, int p) {
  if (B < 0 || C < 0 || T < 0 || H < 0 || W < 0 || p <= 0) {
    TCU_FAIL("%s: bad shape B=%d C=%d T=%d H=%d W=%d p=%d", to_tokens ? "patchify" : "unpatchify", B, C, T, H, W, p);
    return;
  }
  long long ntok = (long long)T * (H / p) * (W / p), total = (long long)B * ntok;
  int P = C * p * p;
  if (total == 0 || P == 0) return;
  long long gx = tcu_ceil_div(P, 64);
  if (gx > 16) gx = 16;
  dim3 grid((unsigned)gx, (unsigned)(total < 65535 ? total : 65535));
  /* 64 threads: a token has C·p·p = 12..64 elements in the configs */
  if (to_tokens)
    TCU_LAUNCH(grid, 64, 0, patch_permute_kernel<true>)(tokens, x, B, C, T, H, W, p);
  else
    TCU_LAUNCH(grid, 64, 0, patch_permute_kernel<false>)(tokens, x, B, C, T, H, W, p);
  LAUNCH_OK("patch_permute_kernel");
}

__global__ void embedding_add_kernel(float *out, const float *table, const int *index, int B, int D) {
  for (int b = blockIdx.y; b < B; b += gridDim.y) {
    const float *row = table + (size_t)index[b] * D;
    for (int d = blockIdx.x * blockDim.x + threadIdx.x; d < D; d += gridDim.x * blockDim.x)
      out[(size_t)b * D + d] = __fadd_rn(out[(size_t)b * D + d], row[d]);
  }
}

/* One thread per channel walks the clips in order: repeated indices add in the CPU's order, with no
 * atomics (deterministic), and B (clips per microbatch) is small. */
__global__ void embedding_backward_kernel(float *d_table, const float *d_out, const int *index, int B, int D) {
  for (int d = blockIdx.x * blockDim.x + threadIdx.x; d < D; d += gridDim.x * blockDim.x)
    for (int b = 0; b < B; b++) {
      float *t = d_table + (size_t)index[b] * D + d;
      *t = __fadd_rn(*t, d_out[(size_t)b * D + d]);
    }
}

const int *upload_index(const int *index_host, int B) {
  int *index = (int *)tcu_scratch(TCU_SCRATCH_INDEX, (size_t)B * sizeof(int));
  if (!index) return NULL;
  if (!CUDA_OK(cudaMemcpy(index, index_host, (size_t)B * sizeof(int), cudaMemcpyHostToDevice))) return NULL;
  return index;
}

}  // namespace

void tcu_patchify(float *tokens, const float *x, int B, int C, int T, int H, int W, int p) {
  patch_permute(tokens, (float *)x, true, B, C, T, H, W, p);
}

void tcu_unpatchify(float *x, const float *tokens, int B, int C, int T, int H, int W, int p) {
  patch_permute((float *)tokens, x, false, B, C, T, H, W, p);
}

void tcu_sincos_table(float *out, const double *positions_host, int n, int d) {
  if (n < 0 || d < 0) {
    TCU_FAIL("sincos_table: bad shape n=%d d=%d", n, d);
    return;
  }
  size_t count = (size_t)n * (size_t)d;
  if (count == 0) return;
  float *host = (float *)malloc(count * sizeof(float));
  if (!host) {
    TCU_FAIL("sincos_table: out of host memory (%zu bytes)", count * sizeof(float));
    return;
  }
  /* the CPU's loop (kernels/cpu/tables.c), same libm calls */
  int half = d / 2;
  for (int r = 0; r < n; r++)
    for (int i = 0; i < half; i++) {
      double w = pow(10000.0, -2.0 * i / (double)d);
      host[(size_t)r * d + i] = (float)sin(positions_host[r] * w);
      host[(size_t)r * d + half + i] = (float)cos(positions_host[r] * w);
    }
  /* an odd d leaves the last column unwritten on the CPU; write 0 there rather than garbage */
  if (d % 2)
    for (int r = 0; r < n; r++) host[(size_t)r * d + d - 1] = 0.0f;
  CUDA_OK(cudaMemcpy(out, host, count * sizeof(float), cudaMemcpyHostToDevice));
  free(host);
}

void tcu_embedding_add(float *out, const float *table, const int *index_host, int B, int D) {
  if (B < 0 || D < 0) {
    TCU_FAIL("embedding_add: bad shape B=%d D=%d", B, D);
    return;
  }
  if (B == 0 || D == 0) return;
  const int *index = upload_index(index_host, B);
  if (!index) return;
  long long gx = tcu_ceil_div(D, TCU_THREADS);
  if (gx > 16) gx = 16;
  dim3 grid((unsigned)gx, (unsigned)(B < 65535 ? B : 65535));
  TCU_LAUNCH(grid, TCU_THREADS, 0, embedding_add_kernel)(out, table, index, B, D);
  LAUNCH_OK("embedding_add_kernel");
}

void tcu_embedding_backward(float *d_table, const float *d_out, const int *index_host, int B, int D) {
  if (B < 0 || D < 0) {
    TCU_FAIL("embedding_backward: bad shape B=%d D=%d", B, D);
    return;
  }
  if (B == 0 || D == 0) return;
  const int *index = upload_index(index_host, B);
  if (!index) return;
  TCU_LAUNCH((unsigned)tcu_ceil_div(D, 128), 128, 0, embedding_backward_kernel)(d_table, d_out, index, B, D);
  LAUNCH_OK("embedding_backward_kernel");
}
