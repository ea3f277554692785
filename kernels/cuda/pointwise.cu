/* pointwise.cu — GELU (tanh form), SiLU, gated residual, broadcast adds and scaling.
 *
 * All memory bound: grid-stride loops, one element per thread per iteration, coalesced. Each
 * formula is written in the CPU's order (kernels/cpu/pointwise.c) with rounded intrinsics
 * (__fmul_rn/__fadd_rn), which nvcc never contracts into FMAs, so GELU, the gated residual and the
 * adds give the CPU's bits; SiLU differs only through expf (CUDA's vs glibc's, both within 2 ulp).
 *
 * [B, N, D] kernels iterate over rows in blockIdx.y and over channels in x, so the clip index of a
 * row (for the strided gate rows) is one division per row, not a 64-bit division per element. */
#include "kernels/cuda/cuda_internal.cuh"

#define GELU_C 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f

namespace {

#define GRID_STRIDE(i, n) \
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

__device__ __forceinline__ float gelu_u(float x) {
  /* GELU_C * (x + GELU_A * x * x * x), left to right as in C */
  return __fmul_rn(GELU_C, __fadd_rn(x, __fmul_rn(__fmul_rn(__fmul_rn(GELU_A, x), x), x)));
}

__global__ void gelu_forward_kernel(float *out, const float *in, size_t n) {
  GRID_STRIDE(i, n) {
    float x = in[i];
    out[i] = __fmul_rn(__fmul_rn(0.5f, x), __fadd_rn(1.0f, tcu_tanh(gelu_u(x))));
  }
}

__global__ void gelu_backward_kernel(float *d_in, const float *d_out, const float *in, size_t n) {
  GRID_STRIDE(i, n) {
    float x = in[i];
    float th = tcu_tanh(gelu_u(x));
    float du = __fmul_rn(GELU_C, __fadd_rn(1.0f, __fmul_rn(__fmul_rn(3.0f * GELU_A, x), x)));
    float left = __fmul_rn(0.5f, __fadd_rn(1.0f, th));
    float right = __fmul_rn(__fmul_rn(__fmul_rn(0.5f, x), __fsub_rn(1.0f, __fmul_rn(th, th))), du);
    d_in[i] = __fmul_rn(d_out[i], __fadd_rn(left, right));
  }
}

__global__ void silu_forward_kernel(float *out, const float *in, size_t n) {
  GRID_STRIDE(i, n) {
    float x = in[i];
    out[i] = __fdiv_rn(x, __fadd_rn(1.0f, expf(-x)));
  }
}

__global__ void silu_backward_kernel(float *d_in, const float *d_out, const float *in, size_t n) {
  GRID_STRIDE(i, n) {
    float x = in[i];
    float s = __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-x)));
    d_in[i] = __fmul_rn(__fmul_rn(d_out[i], s), __fadd_rn(1.0f, __fmul_rn(x, __fsub_rn(1.0f, s))));
  }
}

__global__ void add_kernel(float *out, const float *a, const float *b, size_t n) {
  GRID_STRIDE(i, n) out[i] = __fadd_rn(a[i], b[i]);
}

__global__ void scale_kernel(float *x, float s, size_t n) { GRID_STRIDE(i, n) x[i] = __fmul_rn(x[i], s); }

#define ROW_LOOP(row, rows) for (long long row = blockIdx.y; row < (rows); row += gridDim.y)
#define CHANNEL_LOOP(d, D) for (int d = blockIdx.x * blockDim.x + threadIdx.x; d < (D); d += gridDim.x * blockDim.x)

/* out = x + gate ⊙ f; out may alias x (each element is read before it is written by its own thread). */
__global__ void gated_residual_forward_kernel(float *out, const float *x, const float *f, const float *gate,
                                              int gate_stride, long long rows, int N, int D) {
  ROW_LOOP(row, rows) {
    const float *g = gate + (row / N) * gate_stride;
    size_t base = (size_t)row * (size_t)D;
    CHANNEL_LOOP(d, D) out[base + d] = __fadd_rn(x[base + d], __fmul_rn(g[d], f[base + d]));
  }
}

__global__ void gated_residual_backward_df_kernel(float *d_f, const float *d_out, const float *gate, int gate_stride,
                                                  long long rows, int N, int D) {
  ROW_LOOP(row, rows) {
    const float *g = gate + (row / N) * gate_stride;
    size_t base = (size_t)row * (size_t)D;
    CHANNEL_LOOP(d, D) d_f[base + d] = __fmul_rn(d_out[base + d], g[d]);
  }
}

__global__ void add_rows_broadcast_kernel(float *x, const float *rows_table, long long rows, int N, int D) {
  ROW_LOOP(row, rows) {
    const float *r = rows_table + (size_t)(row % N) * (size_t)D;
    size_t base = (size_t)row * (size_t)D;
    CHANNEL_LOOP(d, D) x[base + d] = __fadd_rn(x[base + d], r[d]);
  }
}

dim3 rows_grid(long long rows, int D) {
  long long gx = tcu_ceil_div(D, TCU_THREADS);
  if (gx > 16) gx = 16;
  long long gy = rows < 65535 ? rows : 65535;
  return dim3((unsigned)(gx > 0 ? gx : 1), (unsigned)(gy > 0 ? gy : 1));
}

bool bnd_ok(const char *op, int B, int N, int D, int stride) {
  if (B < 0 || N < 0 || D < 0 || stride < 0) {
    TCU_FAIL("%s: bad shape B=%d N=%d D=%d stride=%d", op, B, N, D, stride);
    return false;
  }
  return true;
}

}  // namespace

void tcu_gelu_forward(float *out, const float *in, size_t n) {
  if (n == 0) return;
  TCU_LAUNCH(tcu_grid(n), TCU_THREADS, 0, gelu_forward_kernel)(out, in, n);
  LAUNCH_OK("gelu_forward_kernel");
}

void tcu_gelu_backward(float *d_in, const float *d_out, const float *in, size_t n) {
  if (n == 0) return;
  TCU_LAUNCH(tcu_grid(n), TCU_THREADS, 0, gelu_backward_kernel)(d_in, d_out, in, n);
  LAUNCH_OK("gelu_backward_kernel");
}

void tcu_silu_forward(float *out, const float *in, size_t n) {
  if (n == 0) return;
  TCU_LAUNCH(tcu_grid(n), TCU_THREADS, 0, silu_forward_kernel)(out, in, n);
  LAUNCH_OK("silu_forward_kernel");
}

void tcu_silu_backward(float *d_in, const float *d_out, const float *in, size_t n) {
  if (n == 0) return;
  TCU_LAUNCH(tcu_grid(n), TCU_THREADS, 0, silu_backward_kernel)(d_in, d_out, in, n);
  LAUNCH_OK("silu_backward_kernel");
}

void tcu_gated_residual_forward(float *out, const float *x, const float *f, const float *gate, int gate_stride, int B,
                                int N, int D) {
  if (!bnd_ok("gated_residual_forward", B, N, D, gate_stride)) return;
  long long rows = (long long)B * N;
  if (rows == 0 || D == 0) return;
  TCU_LAUNCH(rows_grid(rows, D), TCU_THREADS, 0, gated_residual_forward_kernel)
  (out, x, f, gate, gate_stride, rows, N, D);
  LAUNCH_OK("gated_residual_forward_kernel");
}

void tcu_gated_residual_backward(float *d_f, float *d_gate, const float *d_out, const float *f, const float *gate,
                                 int gate_stride, int B, int N, int D) {
  if (!bnd_ok("gated_residual_backward", B, N, D, gate_stride)) return;
  long long rows = (long long)B * N;
  if (rows == 0 || D == 0) return;
  TCU_LAUNCH(rows_grid(rows, D), TCU_THREADS, 0, gated_residual_backward_df_kernel)
  (d_f, d_out, gate, gate_stride, rows, N, D);
  if (!LAUNCH_OK("gated_residual_backward_df_kernel")) return;
  /* d_gate[b] += sum_n d_out ⊙ f: deterministic token sum (reduce.cu) */
  tcu_colsum_source src = {TCU_COLSUM_PRODUCT, d_out, f, NULL, NULL};
  tcu_colsum_accumulate(src, B, N, D, d_gate, NULL, gate_stride);
}

void tcu_add_rows_broadcast(float *x, const float *rows_table, int B, int N, int D) {
  if (!bnd_ok("add_rows_broadcast", B, N, D, 0)) return;
  long long rows = (long long)B * N;
  if (rows == 0 || D == 0) return;
  TCU_LAUNCH(rows_grid(rows, D), TCU_THREADS, 0, add_rows_broadcast_kernel)(x, rows_table, rows, N, D);
  LAUNCH_OK("add_rows_broadcast_kernel");
}

void tcu_add(float *out, const float *a, const float *b, size_t n) {
  if (n == 0) return;
  TCU_LAUNCH(tcu_grid(n), TCU_THREADS, 0, add_kernel)(out, a, b, n);
  LAUNCH_OK("add_kernel");
}

void tcu_scale(float *x, float s, size_t n) {
  if (n == 0) return;
  TCU_LAUNCH(tcu_grid(n), TCU_THREADS, 0, scale_kernel)(x, s, n);
  LAUNCH_OK("scale_kernel");
}
