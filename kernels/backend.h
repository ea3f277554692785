/* backend.h — a compute backend as a table of functions, so the binaries can load the CUDA
 * backend (libtpdiff_cuda.so) with dlopen and have no CUDA link dependency themselves.
 *
 * Every op has exactly the signature and the contract of its k_* twin in kernels.h, but its
 * tensor pointers are the backend's memory (device memory for CUDA, obtained from alloc()).
 * Scalar results (mse loss, sum of squares) are returned to the host, synchronously. Host-side
 * arguments stay host memory: k_sincos_table's positions, k_embedding_*'s index, k_combine3's
 * coefficients. A backend reports failures (launch errors, out of memory) through last_error(). */
#ifndef TPDIFF_BACKEND_H
#define TPDIFF_BACKEND_H

#include <stddef.h>
#include <stdint.h>

/* 3: set_precision (bf16 on CUDA), and CUDA's attention keeps the row log-sum-exp instead of the
 * probabilities (attention_probs_floats says how much). 4: set_master_weights, and attention_backward
 * takes the forward's output. 5: linear_backward_gelu. 6: scratch_bytes. 7: linear_gelu_forward. */
#define TPDIFF_BACKEND_ABI 7

/* The arithmetic of the matmuls: TPDIFF_FP32 everywhere (the CPU's only mode, CUDA's default), or
 * TPDIFF_BF16: matmul inputs rounded to bf16, fp32 accumulation and output; everything else
 * (activations as stored, norms, softmax statistics, reductions, AdamW, master weights) stays fp32. */
typedef enum { TPDIFF_FP32 = 0, TPDIFF_BF16 = 1 } tpdiff_precision;

/* The largest operands of a microbatch's ops, for scratch_bytes. */
typedef struct tpdiff_scratch_shape {
  int clips, tokens; /* the microbatch: `clips` clips of `tokens` tokens each */
  int dim, heads;    /* attention over `dim` channels in `heads` heads */
  size_t linear_in, linear_out, linear_weight; /* floats of the largest Linear input, output and weight */
  size_t sum_columns; /* the most columns one column-sum reduction produces (groups x width: bias and
                         adaLN gradients) */
} tpdiff_scratch_shape;

typedef struct tpdiff_backend {
  int abi; /* TPDIFF_BACKEND_ABI */
  const char *name;     /* "cpu", "cuda" */
  const char *device;   /* e.g. "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)" */

  /* memory: alloc returns NULL on failure (zero-initialised memory is NOT promised), aligned to at
   * least 64 bytes */
  void *(*alloc)(size_t bytes);
  void (*free)(void *ptr);
  int (*copy_to_device)(void *dst, const void *src_host, size_t bytes);
  int (*copy_to_host)(void *dst_host, const void *src, size_t bytes);
  int (*copy_device)(void *dst, const void *src, size_t bytes);
  int (*fill_zero)(void *ptr, size_t bytes);
  int (*synchronize)(void);
  /* bytes of backend memory free now and in total (host RAM for the CPU), so a caller can refuse a
   * plan that cannot fit before allocating it; 0, or -1 when unknown */
  int (*memory_info)(size_t *free_bytes, size_t *total_bytes);
  /* the first error since the last call, as one line ("" when none); clears it */
  const char *(*last_error)(void);
  /* Sets the precision of every later op (the trainer calls it once at start). Returns 0, or -1
   * with one line in err when this backend cannot compute in that precision. */
  int (*set_precision)(tpdiff_precision precision, char *err, size_t err_size);
  /* Names the model's flat fp32 master weights [n] (this backend's memory): in bf16 mode a backend
   * may keep its own bf16 copy of them for the matmuls, which it then keeps equal to bf16(weights)
   * through every write into them by this table (copy_to_device, copy_device, fill_zero,
   * adamw_step); nothing else may write into them (NCCL only ever writes gradients). n == 0 forgets
   * `weights` if they are the ones named (else does nothing); a later call replaces an earlier one.
   * 0, or -1 with last_error set when the copy cannot be allocated (the matmuls then cast per call). */
  int (*set_master_weights)(const float *weights, size_t n);
  /* Bytes of the backend's own buffers (per-call bf16 casts, attention operands, reduction partials:
   * allocated on first use and kept) that the ops need at most, in the current precision, for the
   * work `s` describes. A memory plan adds it. 0 for a backend that uses the caller's buffers only.
   * s == NULL: the bytes those buffers hold now (what the plan must not fall short of). */
  size_t (*scratch_bytes)(const struct tpdiff_scratch_shape *s);

  /* ops (see kernels.h for each contract) */
  void (*linear_forward)(float *out, const float *in, const float *weight, const float *bias, int M, int K, int N);
  void (*linear_gelu_forward)(float *pre, float *out, const float *in, const float *weight, const float *bias, int M,
                              int K, int N);
  void (*linear_backward)(float *d_in, float *d_weight, float *d_bias, const float *d_out, const float *in,
                          const float *weight, int M, int K, int N);
  void (*linear_backward_gelu)(float *d_pre, float *d_weight, float *d_bias, const float *d_out, const float *in,
                               const float *weight, const float *pre, int M, int K, int N);
  void (*layernorm_modulate_forward)(float *out, float *mean, float *rstd, const float *x, const float *shift,
                                     const float *scale, int cond_stride, int B, int N, int D, float eps);
  void (*layernorm_modulate_backward)(float *d_x_accumulate, float *d_shift, float *d_scale, const float *d_out,
                                      const float *x, const float *mean, const float *rstd, const float *scale,
                                      int cond_stride, int B, int N, int D);
  void (*gelu_forward)(float *out, const float *in, size_t n);
  void (*gelu_backward)(float *d_in, const float *d_out, const float *in, size_t n);
  void (*silu_forward)(float *out, const float *in, size_t n);
  void (*silu_backward)(float *d_in, const float *d_out, const float *in, size_t n);
  void (*gated_residual_forward)(float *out, const float *x, const float *f, const float *gate, int gate_stride,
                                 int B, int N, int D);
  void (*gated_residual_backward)(float *d_f, float *d_gate, const float *d_out, const float *f, const float *gate,
                                  int gate_stride, int B, int N, int D);
  void (*add_rows_broadcast)(float *x, const float *rows, int B, int N, int D);
  void (*add)(float *out, const float *a, const float *b, size_t n);
  void (*scale)(float *x, float s, size_t n);
  void (*attention_forward)(float *out, float *probs, const float *qkv, int B, int N, int D, int H);
  void (*attention_backward)(float *d_qkv, const float *d_out, const float *qkv, const float *out, const float *probs,
                             float *scratch, int B, int N, int D, int H);
  size_t (*attention_probs_floats)(int B, int N, int H);  /* size of `probs` this backend needs */
  size_t (*attention_scratch_floats)(int N);
  void (*patchify)(float *tokens, const float *x, int B, int C, int T, int H, int W, int p);
  void (*unpatchify)(float *x, const float *tokens, int B, int C, int T, int H, int W, int p);
  void (*sincos_table)(float *out, const double *positions_host, int n, int d);
  void (*embedding_add)(float *out, const float *table, const int *index_host, int B, int D);
  void (*embedding_backward)(float *d_table, const float *d_out, const int *index_host, int B, int D);
  double (*mse_loss)(float *d_pred, const float *pred, const float *target, size_t n, float grad_scale);
  void (*adamw_step)(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1,
                     float beta2, float eps, float weight_decay, int step);
  double (*sum_squares)(const float *x, size_t n);
  void (*frames_pair_mean)(float *out, const float *in, int bc, int T, int plane);
  void (*frames_pair_sum_norm)(float *out, const float *in, int bc, int T, int plane);
  void (*frames_pair_diff_norm)(float *out, const float *in, int bc, int T, int plane);
  void (*frames_repeat)(float *out, const float *in, int bc, int T, int plane);
  void (*frames_antisym)(float *out, const float *in, int bc, int T, int plane);
  void (*combine3_per_clip)(float *out, const float *x, const float *y, const float *z, const double *c_host, int B,
                            size_t clip_elems);
  void (*fill_normal)(float *out, size_t n, uint64_t key, uint64_t stream, uint64_t first);
  void (*fill_uniform)(float *out, size_t n, uint64_t key, uint64_t stream, uint64_t first);
} tpdiff_backend;

/* The CPU backend (kernels/cpu), always present. */
const tpdiff_backend *tpdiff_cpu_backend(void);

/* The symbol libtpdiff_cuda.so exports: returns its table, or NULL with one line in err when no
 * usable GPU is present (driver missing, no device, device too old). */
typedef const tpdiff_backend *(*tpdiff_cuda_backend_fn)(char *err, size_t err_size);
#define TPDIFF_CUDA_BACKEND_SYMBOL "tpdiff_cuda_backend"

/* Loads the CUDA backend: dlopen of `library` (NULL = search: $TPDIFF_CUDA_LIB, then
 * <dir of the running binary>/../build/lib/libtpdiff_cuda.so, <dir>/../lib/..., then the loader path).
 * Returns the table, or NULL with one line in err saying why (library missing, no GPU, ABI mismatch). */
const tpdiff_backend *tpdiff_load_cuda_backend(const char *library, char *err, size_t err_size);

#endif
