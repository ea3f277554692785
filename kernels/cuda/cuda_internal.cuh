/* cuda_internal.cuh — what the files of the CUDA backend share (not part of backend.h): error
 * recording, launch helpers, the backend's own device buffers, warp reductions, the device copies of
 * the CPU's exp/tanh approximations, and the declarations of every op (tcu_* = the k_* twin).
 *
 * Conventions of this rung (fp32):
 *   - every kernel and cuBLASLt call runs on the legacy default stream (stream 0), so ops, the
 *     synchronous cudaMemcpy of backend.cu and each other are ordered without events;
 *   - an op never returns an error code (the table's signatures are void, as on the CPU); it records
 *     the first failure with tcu_fail(), which last_error() hands out as one line;
 *   - reductions never use atomics: every sum runs in an order fixed by the shape alone, so the same
 *     inputs give the same bits on every run (exact resume relies on it). */
#ifndef TPDIFF_CUDA_INTERNAL_CUH
#define TPDIFF_CUDA_INTERNAL_CUH

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

/* ---- errors ----------------------------------------------------------------------------------- */

/* Records "file:line: message" unless an earlier error is still unread (the first one is the cause,
 * later ones are usually its consequences). Thread-safe. */
void tcu_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define TCU_FAIL(...) tcu_fail(__FILE__, __LINE__, __VA_ARGS__)

/* true when `err` is cudaSuccess, else records "<what>: <CUDA error name>: <description>". */
bool tcu_cuda_ok(cudaError_t err, const char *what, const char *file, int line);
#define CUDA_OK(call) tcu_cuda_ok((call), #call, __FILE__, __LINE__)
/* After a kernel launch: catches bad launch configurations (and sticky errors of earlier kernels). */
#define LAUNCH_OK(name) tcu_cuda_ok(cudaGetLastError(), "launch of " name, __FILE__, __LINE__)

bool tcu_cublas_ok(cublasStatus_t status, const char *what, const char *file, int line);
#define CUBLAS_OK(call) tcu_cublas_ok((call), #call, __FILE__, __LINE__)

/* ---- device state (backend.cu owns it) ------------------------------------------------------- */

struct tcu_device_state {
  int device;          /* CUDA ordinal in use */
  int sm_count;        /* multiprocessors, for grid-stride launch sizes */
  cublasLtHandle_t lt; /* one cuBLASLt handle for the process */
  void *lt_workspace;  /* cuBLASLt workspace, allocated once */
  size_t lt_workspace_bytes;
  double *reduce_partials; /* TCU_REDUCE_BLOCKS doubles: per-block partial sums */
  double *reduce_result;   /* one double: the final sum, copied to the host */
  int bf16;                /* set_precision(TPDIFF_BF16): the Linear layers multiply in bf16 */
};
extern tcu_device_state g_tcu;

/* Backend-owned device buffers that grow on demand (never shrink) and are reused by every call:
 * after the first steps of a run nothing is allocated inside the training loop. A slot is owned by
 * one op for the duration of its call only. Returns NULL (error recorded) when out of memory. */
enum tcu_scratch_slot {
  TCU_SCRATCH_COLSUM = 0,
  TCU_SCRATCH_INDEX,
  TCU_SCRATCH_COEF,
  TCU_SCRATCH_ATTENTION, /* attention: D_i = rowsum(dO ∘ O) and lse_i (2*B*H*N floats), and in bf16 mode the padded bf16 copies of q, k, v, dO */
  TCU_SCRATCH_BF16_IN,   /* bf16 copies of a Linear's input, */
  TCU_SCRATCH_BF16_W,    /* weight */
  TCU_SCRATCH_BF16_DOUT, /* and output gradient (bf16 mode only) */
  TCU_SCRATCH_SLOTS
};
void *tcu_scratch(tcu_scratch_slot slot, size_t bytes);
/* What a slot allocates for a request of `bytes` (its growth rule). */
size_t tcu_scratch_alloc_size(size_t bytes);
/* The largest request each op makes of its slot, for the plan (backend.h scratch_bytes). */
size_t tcu_attention_scratch_need(int B, int N, int D, int H);
size_t tcu_colsum_scratch_bound(size_t columns);

/* ---- launch helpers -------------------------------------------------------------------------- */

#define TCU_THREADS 256
/* Grid for a grid-stride loop over n items: enough blocks to fill the GPU a few times over, never
 * more than the items need. Results of element-wise kernels do not depend on it. */
static inline unsigned tcu_grid(size_t n, unsigned threads = TCU_THREADS) {
  size_t want = (n + threads - 1) / threads;
  size_t cap = (size_t)(g_tcu.sm_count > 0 ? g_tcu.sm_count : 132) * 16;
  if (want > cap) want = cap;
  return (unsigned)(want > 0 ? want : 1);
}
static inline long long tcu_ceil_div(long long a, long long b) { return (a + b - 1) / b; }

/* kernel<<<grid, block, smem>>>(args...) is written TCU_LAUNCH(grid, block, smem, kernel)(args...), and
 * the block's dynamic shared memory (128-byte aligned) declared TCU_DYNAMIC_SMEM(name), so that
 * tests/emu, which runs the backend on the CPU, can define its own (its cuda_runtime.h comes first).
 * The kernel comes last: a template-id's commas would split any other macro argument. The shared
 * memory is a macro, not a function returning the array: through a function nvcc derives other
 * address arithmetic for the flash backward kernels, and the dK/dV kernel with scalar loads then
 * spills 44 bytes at head dimension 64 on sm_80. */
#ifndef TCU_LAUNCH
#define TCU_LAUNCH(grid, block, smem, ...) __VA_ARGS__<<<(grid), (block), (smem)>>>
#define TCU_DYNAMIC_SMEM(name) extern __shared__ __align__(128) unsigned char name[]
#endif

/* Fixed grid of the deterministic full reductions (mse_loss, sum_squares): a constant, not derived
 * from the device, so every GPU sums in the same order. */
#define TCU_REDUCE_BLOCKS 1024
#define TCU_REDUCE_THREADS 256

#include "kernels/cuda/device_math.cuh"

/* out[i] = bf16(in[i]) (round to nearest even) on stream 0 (matmul.cu); false with the error
 * recorded when the launch fails. */
bool tcu_cast_bf16(__nv_bfloat16 *out, const float *in, size_t n);

/* ---- bf16 copy of the master weights (master_weights.cu) -----------------------------------------
 * backend.h set_master_weights. tcu_master_precision_changed: set_precision calls it (makes or drops
 * the copy; false with the error recorded when it cannot be allocated). note_write: after every
 * table write into backend memory (refreshes the overlapped part of the copy, if any).
 * forget_if: be_free of the named weights forgets them. tcu_master_bf16: the copy of p[0, n) when p
 * lies inside the named weights and a copy exists, else NULL (AdamW writes it).
 * tcu_master_bf16_for_matmul: the same unless TPDIFF_BF16_WEIGHTS=cast asks for per-call casts. */
int tcu_set_master_weights(const float *weights, size_t n);
bool tcu_master_precision_changed(void);
void tcu_master_note_write(const void *dst, size_t bytes);
void tcu_master_forget_if(const void *freed);
__nv_bfloat16 *tcu_master_bf16(const float *p, size_t n);
const __nv_bfloat16 *tcu_master_bf16_for_matmul(const float *weight, size_t n);

/* ---- matmul on cuBLASLt (matmul.cu) ---------------------------------------------------------------
 * Column-major C[m,n] = alpha op(A) op(B) + beta C, fp32 in and out, fp32 compute (no TF32), with
 * `batch` strided matrices (strides in elements; 0 when batch == 1). bias: optional vector of length
 * m added to every column (the BIAS epilogue where cuBLASLt has one, else a separate kernel).
 * Returns false (error recorded) on failure. */
bool tcu_gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *A, int lda, long long stride_a,
              const float *B, int ldb, long long stride_b, float beta, float *C, int ldc, long long stride_c, int batch,
              const float *bias);

/* ---- deterministic sums over tokens (reduce.cu) ---------------------------------------------------
 * dst[g*dst_stride + d] += sum over r < rows of value(g, r, d), for g < groups, d < width, with the
 * value supplied by one of the sources below. The rows are cut into chunks whose count depends only
 * on (groups, rows, width); each chunk is summed in row order by one thread, then the chunk sums in
 * chunk order: fixed order, no atomics. Up to two outputs share one pass. */
enum tcu_colsum_kind {
  TCU_COLSUM_ROWS,     /* value = a[(g*rows + r)*width + d]                  (bias gradient) */
  TCU_COLSUM_PRODUCT,  /* value = a[i] * b[i], i as above                     (gate gradient) */
  TCU_COLSUM_LAYERNORM /* value0 = dy[i]; value1 = dy[i] * (x[i] - mean[row]) * rstd[row]      */
};
struct tcu_colsum_source {
  tcu_colsum_kind kind;
  const float *a, *b;       /* ROWS: a; PRODUCT: a, b; LAYERNORM: a = dy, b = x */
  const float *mean, *rstd; /* LAYERNORM only, per row g*rows + r */
};
void tcu_colsum_accumulate(const tcu_colsum_source &src, int groups, int rows, int width, float *dst0, float *dst1,
                           long long dst_stride);

/* ---- ops (each the twin of the k_* function of the same name) ------------------------------------ */

void tcu_linear_forward(float *out, const float *in, const float *weight, const float *bias, int M, int K, int N);
void tcu_linear_gelu_forward(float *pre, float *out, const float *in, const float *weight, const float *bias, int M,
                             int K, int N);
void tcu_linear_backward(float *d_in, float *d_weight, float *d_bias, const float *d_out, const float *in,
                         const float *weight, int M, int K, int N);
void tcu_linear_backward_gelu(float *d_pre, float *d_weight, float *d_bias, const float *d_out, const float *in,
                              const float *weight, const float *pre, int M, int K, int N);
void tcu_layernorm_modulate_forward(float *out, float *mean, float *rstd, const float *x, const float *shift,
                                    const float *scale, int cond_stride, int B, int N, int D, float eps);
void tcu_layernorm_modulate_backward(float *d_x_accumulate, float *d_shift, float *d_scale, const float *d_out,
                                     const float *x, const float *mean, const float *rstd, const float *scale,
                                     int cond_stride, int B, int N, int D);
void tcu_gelu_forward(float *out, const float *in, size_t n);
void tcu_gelu_backward(float *d_in, const float *d_out, const float *in, size_t n);
void tcu_silu_forward(float *out, const float *in, size_t n);
void tcu_silu_backward(float *d_in, const float *d_out, const float *in, size_t n);
void tcu_gated_residual_forward(float *out, const float *x, const float *f, const float *gate, int gate_stride, int B,
                                int N, int D);
void tcu_gated_residual_backward(float *d_f, float *d_gate, const float *d_out, const float *f, const float *gate,
                                 int gate_stride, int B, int N, int D);
void tcu_add_rows_broadcast(float *x, const float *rows, int B, int N, int D);
void tcu_add(float *out, const float *a, const float *b, size_t n);
void tcu_scale(float *x, float s, size_t n);
void tcu_attention_forward(float *out, float *probs, const float *qkv, int B, int N, int D, int H);
void tcu_attention_backward(float *d_qkv, const float *d_out, const float *qkv, const float *out, const float *probs,
                            float *scratch, int B, int N, int D, int H);
size_t tcu_attention_probs_floats(int B, int N, int H);
/* bf16 mode's forward (attention_bf16.cu): same contract, head dimension padded to padded_dh. */
bool tcu_attention_forward_bf16(float *out, float *lse, const float *qkv, int B, int N, int D, int H, int padded_dh,
                                float scale);
size_t tcu_attention_scratch_floats(int N);
void tcu_patchify(float *tokens, const float *x, int B, int C, int T, int H, int W, int p);
void tcu_unpatchify(float *x, const float *tokens, int B, int C, int T, int H, int W, int p);
void tcu_sincos_table(float *out, const double *positions_host, int n, int d);
void tcu_embedding_add(float *out, const float *table, const int *index_host, int B, int D);
void tcu_embedding_backward(float *d_table, const float *d_out, const int *index_host, int B, int D);
double tcu_mse_loss(float *d_pred, const float *pred, const float *target, size_t n, float grad_scale);
void tcu_adamw_step(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                    float eps, float weight_decay, int step);
double tcu_sum_squares(const float *x, size_t n);
void tcu_frames_pair_mean(float *out, const float *in, int bc, int T, int plane);
void tcu_frames_pair_sum_norm(float *out, const float *in, int bc, int T, int plane);
void tcu_frames_pair_diff_norm(float *out, const float *in, int bc, int T, int plane);
void tcu_frames_repeat(float *out, const float *in, int bc, int T, int plane);
void tcu_frames_antisym(float *out, const float *in, int bc, int T, int plane);
void tcu_combine3_per_clip(float *out, const float *x, const float *y, const float *z, const double *c_host, int B,
                           size_t clip_elems);
void tcu_fill_normal(float *out, size_t n, uint64_t key, uint64_t stream, uint64_t first);
void tcu_fill_uniform(float *out, size_t n, uint64_t key, uint64_t stream, uint64_t first);

#endif
