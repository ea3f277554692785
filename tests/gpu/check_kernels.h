/* check_kernels.h — what the files of the check_kernels program share: the backend under test and the
 * case counters, the comparisons that print the PASS/FAIL lines, device timing (TIME_OP) and the host
 * and device buffer helpers, all defined in check_kernels.c, and the op cases of check_kernels_dit.c
 * and check_kernels_train.c that its main runs. Private to tests/gpu/check_kernels*.c. */
#ifndef TPDIFF_CHECK_KERNELS_H
#define TPDIFF_CHECK_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "kernels/backend.h"

/* ---- harness (check_kernels.c) ----------------------------------------------------------------- */

extern const tpdiff_backend *dev; /* the backend under test */
extern int passed, failed;        /* comparison lines printed so far, by outcome */
extern int bf16_mode;             /* 1 while the bf16 cases run (set_precision(TPDIFF_BF16)) */
extern int timing_on;             /* 0 with --no-timing: TIME_OP then does nothing */

double now_us(void);                               /* monotonic clock, microseconds */
int selected(const char *op);                      /* 1 when op's cases run (no --only, or op contains its NAME) */
void finish(void);                                 /* prints the timing table and the summary line, then exits 0 or 1 */
void infra_fail(const char *op, const char *what); /* a FAIL line for a harness alloc/copy, then finish() */
/* Synchronizes after a device op: 1 when it succeeded; else a FAIL line and 0 (finish() when the
 * context is gone). */
int op_ok(const char *op, const char *shape);
/* PASS/FAIL `<op> <shape> err=...` for n floats against the CPU's: normwise error <= limit (1 on PASS). */
int compare(const char *op, const char *shape, const float *got, const float *want, size_t n, double limit);
/* The same for one double (a loss, a sum of squares). */
void compare_scalar(const char *op, const char *shape, double got, double want, double limit);
/* PASS/FAIL `<op>.deterministic <shape>`: two device runs gave the same bytes. */
void compare_bits(const char *op, const char *shape, const void *a, const void *b, size_t bytes);
/* Adds a row to the table of the slowest ops (TIME_OP's last step). */
void record_timing(const char *op, const char *shape, double gpu_us, double cpu_us);
int cmp_double(const void *a, const void *b); /* qsort order of doubles, ascending */

/* Host buffers (malloc; the caller frees): a failed allocation is a FAIL line and finish(). */
float *host_alloc(size_t n);                             /* n floats, uninitialised */
float *host_random(size_t n, float scale, float offset); /* n normal(0, scale) + offset, a fresh stream each */
/* Rounds x to bf16 values in place (round to nearest even), as the GPU's bf16 casts do. */
void host_round_bf16(float *x, size_t n);
float *host_copy(const float *src, size_t n);            /* a copy of src */
/* Device buffers (dev->alloc; the caller frees with dev->free): a failed alloc or copy is infra_fail. */
void *dev_alloc_bytes(const char *op, size_t bytes);                 /* uninitialised */
float *dev_upload(const char *op, const float *host, size_t n);      /* a device copy of host */
float *dev_poison(const char *op, size_t n);                         /* n floats of 0xFF bytes (NaN) */
float *dev_download(const char *op, const float *d, size_t n);       /* a host copy of d (free()) */
void dev_set(const char *op, float *d, const float *host, size_t n); /* copies host into d */

/* Time `call` on the device: one warm-up, then the median of 5 runs, each op + synchronize. The
 * op's outputs are garbage afterwards (accumulators keep accumulating): always after the checks. */
#define TIME_OP(op, shape, cpu_us, call)       \
  do {                                         \
    if (timing_on) {                           \
      double t_[5];                            \
      call;                                    \
      if (!op_ok(op, shape)) break;            \
      for (int r_ = 0; r_ < 5; r_++) {         \
        double t0_ = now_us();                 \
        call;                                  \
        dev->synchronize();                    \
        t_[r_] = now_us() - t0_;               \
      }                                        \
      if (!op_ok(op, shape)) break;            \
      qsort(t_, 5, sizeof t_[0], cmp_double);  \
      record_timing(op, shape, t_[2], cpu_us); \
    }                                          \
  } while (0)

/* ---- op cases: each compares one backend op with its CPU twin on fresh random inputs; `timed` also
 * times the device op (realistic sizes) --------------------------------------------------------- */

typedef void (*unary_fn)(float *out, const float *in, size_t n);
typedef void (*unary_bwd_fn)(float *d_in, const float *d_out, const float *in, size_t n);

/* check_kernels_dit.c */
void check_linear(int M, int K, int N, int with_bias, int with_din, int timed);
void check_linear_gelu(int M, int K, int N, int timed); /* check_kernels_mlp.c */
void check_linear_gelu_forward(int M, int K, int N, int timed); /* check_kernels_mlp.c */
void check_gelu_switches(void); /* TPDIFF_GELU and TPDIFF_DGELU with bad values are refused */
void check_layernorm(int B, int N, int D, int timed);
void check_activation(const char *name, unary_fn cpu_fwd, unary_fn gpu_fwd, unary_bwd_fn cpu_bwd, unary_bwd_fn gpu_bwd,
                      size_t n, int in_place, int timed);
void check_gated_residual(int B, int N, int D, int alias, int timed);
void check_adds(int B, int N, int D, int timed);
void check_attention(int B, int N, int D, int H, int timed);
void check_attention_switch(void); /* bf16 mode: TPDIFF_ATTN with a bad value is refused */
void check_patchify(int B, int C, int T, int H, int W, int p, int timed);
void check_sincos(int n, int d);
void check_embedding(int B, int D, int rows);

/* check_kernels_train.c */
void check_mse(size_t n, int timed);
void check_sum_squares(size_t n, int timed);
void check_adamw(size_t n, int timed);
void check_frames(int bc, int T, int plane, int timed);
void check_combine3(int B, size_t clip_elems, int variant, int timed);
void check_random(size_t n, uint64_t first, int timed);
void check_memory_info(void);

#endif
