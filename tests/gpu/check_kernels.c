/* check_kernels.c — every op of the CUDA backend's table against its CPU twin (kernels/cpu, the
 * executable specification), on fresh random inputs, for small odd shapes and one realistic size.
 *
 * A plain C program: no CUDA headers or libraries. It loads libtpdiff_cuda.so with
 * tpdiff_load_cuda_backend() (dlopen), like the binaries do.
 *
 * For each case: inputs come from k_fill_normal on the host; the CPU op runs on host copies; the
 * inputs are uploaded; every output the op must OVERWRITE is poisoned first (0xFF bytes = NaN, so an
 * element the GPU forgets to write can never pass), every buffer it must ACCUMULATE into gets the
 * same known values on both sides; the GPU op runs, its error state is checked, the outputs come
 * back and are compared normwise: err = max|gpu - cpu| / max|cpu| (NaN or Inf never passes), and
 * the count of elements whose bits differ is printed beside it. Limits: 0 (bit for bit) for data
 * movement, the frame operators and combine3; 1e-6 for element-wise math written to give the CPU's
 * bits (GELU, AdamW, gated residual, the MSE gradient) and for normals (CUDA's double libm); 1e-5
 * for SiLU (CUDA's expf) and for anything that sums (matmuls, layernorm, token sums); 1e-4 for
 * attention's backward (explained at the case); 1e-2 for the bf16 rung's Linear and attention
 * (bf16 operands); 1e-9 for the double-accumulated scalars. The reductions that feed parameter
 * gradients and the loss, and the bf16 attention backward, also run twice and must give the same
 * bits (determinism: exact resume depends on it).
 *
 *   check_kernels [--lib PATH] [--only NAME] [--cpu] [--quick] [--no-timing]
 *     --lib PATH   the backend library (default: the loader's search, backend.h)
 *     --only NAME  run only the cases whose op name contains NAME
 *     --cpu        check the CPU backend's table instead (tests this program where there is no GPU)
 *     --quick      the small shapes only (no realistic sizes, so no timing table)
 *
 * Output: one `PASS <op> <shape> err=...` / `FAIL ...` line per comparison, a table of the slowest
 * ops (GPU time, median of 5 runs after a warm-up, each timed with clock_gettime around the op and
 * a synchronize), then `N passed, N failed` last. Exit 0 when all passed, 1 when any failed, 3 with
 * one line when no GPU backend could be loaded.
 *
 * This file: main, the harness (bookkeeping, comparisons, timing, host and device buffers) and the
 * reporting. The op cases: check_kernels_dit.c (the DiT's layers) and check_kernels_train.c (loss,
 * optimizer, frame operators, random numbers, memory_info); check_kernels.h is what they share. */
#include "tests/gpu/check_kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/backend.h"
#include "kernels/kernels.h"

/* The fallback sgemm for GPU machines without OpenBLAS (CHECK_OWN_CBLAS=1) is tests/gpu/own_sgemm.c. */

/* ---- bookkeeping ------------------------------------------------------------------------------ */

const tpdiff_backend *dev;
int passed, failed;
static const char *only; /* --only */
int timing_on = 1;       /* --no-timing sets 0 */
int bf16_mode;
static int quick;        /* --quick: skip the realistic sizes */

#define MAX_TIMINGS 256
typedef struct {
  char label[128];
  double gpu_us, cpu_us;
} timing_row;
static timing_row timings[MAX_TIMINGS];
static int n_timings;

double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

int selected(const char *op) { return !only || strstr(op, only) != NULL; }

static void print_timings(void);

void finish(void) {
  print_timings();
  printf("%d passed, %d failed\n", passed, failed);
  fflush(stdout);
  exit(failed ? 1 : 0);
}

/* A failure of the harness's own allocations/copies: after it (typically a broken CUDA context)
 * nothing further can be trusted, so report and stop instead of cascading. */
void infra_fail(const char *op, const char *what) {
  const char *e = dev->last_error();
  printf("FAIL %s: %s failed: %s\n", op, what, e && e[0] ? e : "(no error recorded)");
  printf("stopping: the backend cannot continue after this error\n");
  failed++;
  finish();
}

/* After a GPU op: synchronize and read the error state. 0 and a FAIL line when the op failed; a
 * failed synchronize means the context is gone, so stop. */
int op_ok(const char *op, const char *shape) {
  int rc = dev->synchronize();
  const char *e = dev->last_error();
  if (rc == 0 && !(e && e[0])) return 1;
  printf("FAIL %s %s: backend error: %s\n", op, shape, e && e[0] ? e : "synchronize failed");
  failed++;
  if (rc != 0) {
    printf("stopping: the device context is unusable after %s\n", op);
    finish();
  }
  return 0;
}

/* Normwise relative error; NaN/Inf in `got` (where `want` is finite) gives +Inf. `exact_out`
 * receives the number of elements whose bits differ. */
static double rel_err(const float *got, const float *want, size_t n, size_t *differ_out) {
  double num = 0.0, den = 0.0;
  size_t differ = 0;
  for (size_t i = 0; i < n; i++) {
    double g = got[i], w = want[i];
    if (memcmp(&got[i], &want[i], sizeof(float)) != 0) differ++;
    if (!isfinite(g) && isfinite(w)) {
      num = INFINITY;
      continue;
    }
    double d = fabs(g - w);
    if (d > num) num = d;
    if (fabs(w) > den) den = fabs(w);
  }
  if (differ_out) *differ_out = differ;
  if (num == 0.0) return 0.0;
  return num / (den > 0.0 ? den : 1.0);
}

static int report(const char *op, const char *shape, double err, double limit, size_t differ, size_t n) {
  int ok = isfinite(err) && err <= limit;
  printf("%s %s %s err=%.3g limit=%.0e bits-differ=%zu/%zu\n", ok ? "PASS" : "FAIL", op, shape, err, limit, differ, n);
  if (ok)
    passed++;
  else
    failed++;
  return ok;
}

int compare(const char *op, const char *shape, const float *got, const float *want, size_t n, double limit) {
  size_t differ = 0;
  double err = rel_err(got, want, n, &differ);
  return report(op, shape, err, limit, differ, n);
}

void compare_scalar(const char *op, const char *shape, double got, double want, double limit) {
  double err = got == want ? 0.0 : fabs(got - want) / (fabs(want) > 0.0 ? fabs(want) : 1.0);
  if (!isfinite(got)) err = INFINITY;
  int ok = isfinite(err) && err <= limit;
  printf("%s %s %s err=%.3g limit=%.0e gpu=%.17g cpu=%.17g\n", ok ? "PASS" : "FAIL", op, shape, err, limit, got, want);
  if (ok)
    passed++;
  else
    failed++;
}

/* Two GPU runs of the same op on the same inputs must give the same bits. */
void compare_bits(const char *op, const char *shape, const void *a, const void *b, size_t bytes) {
  int ok = memcmp(a, b, bytes) == 0;
  printf("%s %s.deterministic %s %s\n", ok ? "PASS" : "FAIL", op, shape,
         ok ? "same bits on a second run" : "bits changed between two runs");
  if (ok)
    passed++;
  else
    failed++;
}

void record_timing(const char *op, const char *shape, double gpu_us, double cpu_us) {
  if (n_timings >= MAX_TIMINGS) return;
  snprintf(timings[n_timings].label, sizeof timings[0].label, "%.40s %.80s", op, shape);
  timings[n_timings].gpu_us = gpu_us;
  timings[n_timings].cpu_us = cpu_us;
  n_timings++;
}

int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int cmp_timing(const void *a, const void *b) {
  double x = ((const timing_row *)a)->gpu_us, y = ((const timing_row *)b)->gpu_us;
  return x < y ? 1 : x > y ? -1 : 0; /* slowest first */
}

static int cmp_label(const void *a, const void *b) {
  return strcmp(((const timing_row *)a)->label, ((const timing_row *)b)->label);
}

static void print_timings(void) {
  if (n_timings == 0) return;
  /* every bf16 row, sorted by name so that each op's variants (the default, TPDIFF_ATTN=flash-scalar,
   * flash-wide, simple; dgelu=kernel and epilogue, ...) stand side by side: what chooses the defaults */
  qsort(timings, (size_t)n_timings, sizeof timings[0], cmp_label);
  int n_bf16 = 0;
  for (int i = 0; i < n_timings; i++) {
    if (!strstr(timings[i].label, "bf16")) continue;
    if (n_bf16++ == 0) {
      printf("\nbf16 ops and their variants (device %s; median of 5, us)\n", dev->device);
      printf("  %-58s %12s\n", "op shape", "gpu_us");
    }
    printf("  %-58s %12.1f\n", timings[i].label, timings[i].gpu_us);
  }
  qsort(timings, (size_t)n_timings, sizeof timings[0], cmp_timing);
  int show = n_timings < 16 ? n_timings : 16;
  printf("\nslowest ops (device %s; median of 5, us; cpu = one run of the CPU twin here)\n", dev->device);
  printf("  %-58s %12s %12s\n", "op shape", "gpu_us", "cpu_us");
  for (int i = 0; i < show; i++)
    printf("  %-58s %12.1f %12.1f\n", timings[i].label, timings[i].gpu_us, timings[i].cpu_us);
  printf("\n");
}

/* ---- host and device buffers ------------------------------------------------------------------ */

static uint64_t next_stream = 1000;

/* Uninitialised: every use is a CPU op's output or is overwritten at once. */
float *host_alloc(size_t n) {
  float *x = malloc((n ? n : 1) * sizeof(float));
  if (!x) {
    printf("FAIL host allocation of %zu floats\n", n);
    failed++;
    finish();
  }
  return x;
}

/* n normal(0, scale) + offset values from a fresh Philox stream. */
float *host_random(size_t n, float scale, float offset) {
  float *x = host_alloc(n);
  k_fill_normal(x, n, 20240601, next_stream++, 0);
  for (size_t i = 0; i < n; i++) x[i] = x[i] * scale + offset;
  return x;
}

void host_round_bf16(float *x, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint32_t bits;
    memcpy(&bits, &x[i], sizeof bits);
    bits += 0x7FFFu + ((bits >> 16) & 1u); /* round to nearest even on the 16 dropped bits (finite x) */
    bits &= 0xFFFF0000u;
    memcpy(&x[i], &bits, sizeof bits);
  }
}

float *host_copy(const float *src, size_t n) {
  float *x = host_alloc(n);
  memcpy(x, src, n * sizeof(float));
  return x;
}

void *dev_alloc_bytes(const char *op, size_t bytes) {
  void *p = dev->alloc(bytes ? bytes : 4);
  if (!p) infra_fail(op, "alloc");
  return p;
}

float *dev_upload(const char *op, const float *host, size_t n) {
  float *d = dev_alloc_bytes(op, n * sizeof(float));
  if (n && dev->copy_to_device(d, host, n * sizeof(float)) != 0) infra_fail(op, "copy_to_device");
  return d;
}

/* A device buffer of n floats, every byte 0xFF (a NaN): what an op must overwrite. */
float *dev_poison(const char *op, size_t n) {
  float *h = host_alloc(n);
  memset(h, 0xFF, n * sizeof(float));
  float *d = dev_upload(op, h, n);
  free(h);
  return d;
}

float *dev_download(const char *op, const float *d, size_t n) {
  float *h = host_alloc(n);
  if (n && dev->copy_to_host(h, d, n * sizeof(float)) != 0) infra_fail(op, "copy_to_host");
  return h;
}

void dev_set(const char *op, float *d, const float *host, size_t n) {
  if (n && dev->copy_to_device(d, host, n * sizeof(float)) != 0) infra_fail(op, "copy_to_device");
}

/* ---- main ---------------------------------------------------------------------------------------- */

/* The bf16 rung: the ops with a bf16 path at their bf16 limits (Linear, the Linear + GELU forward
 * with the GELU as its own kernel and in the GELU_AUX_BIAS epilogue, the Linear + GELU backward
 * with gelu' as its own kernel and in the DGELU epilogue, and the flash attention forward and
 * backward at 1e-2), then the same flash kernels with their scalar fragment loads
 * (TPDIFF_ATTN=flash-scalar) and with two m-tiles per warp in the forward and dQ (flash-wide), each
 * at the same limits and with the default's bits, then the earlier bf16-mode attention that
 * TPDIFF_ATTN=simple selects (forward 1e-2, its fp32 backward 1e-4); all timed at base's shape beside
 * the flash kernels. A backend without bf16 (the CPU) must refuse it with one line. */
static void check_bf16(void) {
  char err[512] = "";
  int rc = dev->set_precision(TPDIFF_BF16, err, sizeof err);
  if (strcmp(dev->name, "cpu") == 0) {
    int ok = rc != 0 && strstr(err, "bf16 needs the CUDA backend") && !strchr(err, '\n');
    printf("%s set_precision bf16 refused by the cpu backend: rc=%d \"%s\"\n", ok ? "PASS" : "FAIL", rc, err);
    ok ? passed++ : failed++;
    return;
  }
  if (rc != 0) {
    printf("FAIL set_precision bf16: rc=%d %s\n", rc, err);
    failed++;
    return;
  }
  bf16_mode = 1;
  check_linear(17, 12, 20, 1, 1, 0);
  check_linear(33, 7, 5, 0, 1, 0);
  check_linear(5, 3, 1, 1, 0, 0);
  check_linear(129, 96, 40, 1, 1, 0);
  if (!quick) {
    check_linear(4096, 768, 768, 1, 1, 1);
    check_linear(4096, 768, 3072, 1, 1, 1);
    check_linear(4096, 3072, 768, 1, 1, 1);
  }
  check_linear_gelu_forward(17, 12, 20, 0); /* N not a multiple of 8: no GELU epilogue, the kernel runs */
  check_linear_gelu_forward(40, 24, 64, 0);
  if (!quick) check_linear_gelu_forward(4096, 768, 3072, 1);
  check_linear_gelu(17, 12, 20, 0); /* K not a multiple of 8: no DGELU epilogue, the kernel runs */
  check_linear_gelu(40, 64, 24, 0);
  if (!quick) check_linear_gelu(4096, 3072, 768, 1);
  check_gelu_switches();
  check_attention(1, 17, 12, 3, 0);
  check_attention(2, 33, 20, 2, 0);
  check_attention(1, 1100, 64, 4, 0);
  check_attention(2, 77, 96, 3, 0);
  check_attention(1, 130, 128, 2, 0);
  check_attention(1, 97, 256, 2, 0); /* head dimension 128 */
  check_attention(1, 300, 144, 2, 0); /* 72, large's: the flash kernels' DH = 80 */
  check_attention(2, 65, 160, 2, 0);  /* 80 exactly */
  if (!quick) {
    check_attention(1, 4096, 768, 12, 1);
    check_attention(1, 4097, 128, 2, 0);
  }
  static const char *const twins[] = {"flash-scalar", "flash-wide"}; /* N = 17 and 300: odd tile counts */
  for (int v = 0; v < 2; v++) {
    setenv("TPDIFF_ATTN", twins[v], 1);
    check_attention(1, 17, 12, 3, 0);
    check_attention(1, 1100, 64, 4, 0);
    check_attention(2, 77, 96, 3, 0);
    check_attention(1, 300, 144, 2, 0); /* flash-wide: 320 padded rows, the last block half past them */
    check_attention(1, 300, 128, 2, 0); /* the same at head dimension 64, where dQ is wide too */
    check_attention(1, 97, 256, 2, 0); /* head dimension 128: flash-wide keeps one m-tile */
    if (!quick) check_attention(1, 4096, 768, 12, 1);
  }
  setenv("TPDIFF_ATTN", "simple", 1);
  check_attention(1, 17, 12, 3, 0);
  check_attention(1, 130, 128, 2, 0);
  if (!quick) check_attention(1, 4096, 768, 12, 1);
  unsetenv("TPDIFF_ATTN");
  check_attention_switch();
  bf16_mode = 0;
  /* the bf16 Linear cases grew the casts' buffers; fp32 has no use for them and gives them back */
  const size_t held_bf16 = dev->scratch_bytes(NULL);
  rc = dev->set_precision(TPDIFF_FP32, err, sizeof err);
  const size_t held_fp32 = dev->scratch_bytes(NULL);
  const int ok = rc == 0 && held_fp32 < held_bf16;
  printf("%s set_precision fp32 after bf16: rc=%d, backend buffers %.2f MiB before, %.2f MiB after (want fewer)\n",
         ok ? "PASS" : "FAIL", rc, held_bf16 / 1048576.0, held_fp32 / 1048576.0);
  ok ? passed++ : failed++;
  /* fp32 is back: the first linear case again at the fp32 limit */
  check_linear(17, 12, 20, 1, 1, 0);
}

int main(int argc, char **argv) {
  const char *lib = NULL;
  int use_cpu = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--lib") && i + 1 < argc)
      lib = argv[++i];
    else if (!strcmp(argv[i], "--only") && i + 1 < argc)
      only = argv[++i];
    else if (!strcmp(argv[i], "--cpu"))
      use_cpu = 1;
    else if (!strcmp(argv[i], "--no-timing"))
      timing_on = 0;
    else if (!strcmp(argv[i], "--quick"))
      quick = 1;
    else {
      fprintf(stderr, "usage: %s [--lib PATH] [--only NAME] [--cpu] [--quick] [--no-timing]\n", argv[0]);
      return 2;
    }
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (use_cpu) {
    dev = tpdiff_cpu_backend();
  } else {
    char err[1024];
    dev = tpdiff_load_cuda_backend(lib, err, sizeof err);
    if (!dev) {
      printf("check_kernels: no GPU backend: %s\n", err);
      return 3;
    }
  }
  printf("backend %s on %s; CPU reference with %d threads\n", dev->name, dev->device, k_num_threads());

  /* cheap and exact first, so a broken build shows on the simplest op; realistic sizes (timed)
   * after the small odd shapes of each op */
  check_memory_info();
  check_random(1001, 3, 0);
  if (!quick) check_random(10000001, 1ull << 33, 1);
  check_adds(2, 17, 12, 0);
  if (!quick) check_adds(2, 2048, 768, 1);
  check_patchify(2, 3, 3, 10, 6, 2, 0);
  if (!quick) check_patchify(4, 3, 16, 64, 64, 4, 1);
  check_sincos(17, 12);
  if (!quick) check_sincos(4096, 768);
  check_embedding(5, 12, 7);
  if (!quick) check_embedding(64, 768, 1001);
  check_frames(3, 5, 35, 0);
  if (!quick) check_frames(12, 16, 4096, 1);
  for (int variant = 0; variant < 4; variant++) check_combine3(3, 1001, variant, 0);
  if (!quick) {
    check_combine3(4, (size_t)3 * 16 * 4096, 0, 1);
    check_combine3(4, (size_t)3 * 16 * 4096, 3, 0);
  }

  const size_t small = 1001, mlp_hidden = (size_t)4096 * 3072, cond = (size_t)64 * 768;
  check_activation("gelu", k_gelu_forward, dev->gelu_forward, k_gelu_backward, dev->gelu_backward, small, 0, 0);
  check_activation("gelu", k_gelu_forward, dev->gelu_forward, k_gelu_backward, dev->gelu_backward, small, 1, 0);
  if (!quick)
    check_activation("gelu", k_gelu_forward, dev->gelu_forward, k_gelu_backward, dev->gelu_backward, mlp_hidden, 0, 1);
  check_activation("silu", k_silu_forward, dev->silu_forward, k_silu_backward, dev->silu_backward, small, 0, 0);
  check_activation("silu", k_silu_forward, dev->silu_forward, k_silu_backward, dev->silu_backward, small, 1, 0);
  if (!quick)
    check_activation("silu", k_silu_forward, dev->silu_forward, k_silu_backward, dev->silu_backward, cond, 0, 1);
  check_gated_residual(2, 17, 12, 0, 0);
  check_gated_residual(2, 17, 12, 1, 0);
  check_gated_residual(3, 5, 33, 0, 0);
  if (!quick) check_gated_residual(2, 2048, 768, 0, 1);
  check_layernorm(2, 17, 12, 0);
  check_layernorm(3, 5, 33, 0);
  if (!quick) check_layernorm(2, 2048, 768, 1);
  check_mse(small, 0);
  if (!quick) check_mse((size_t)4 * 3 * 16 * 64 * 64, 1);
  check_sum_squares(small, 0);
  if (!quick) check_sum_squares(10000003, 1);
  check_adamw(small, 0);
  if (!quick) check_adamw(10000003, 1);

  check_linear(17, 12, 20, 1, 1, 0);
  check_linear(33, 7, 5, 0, 1, 0);
  check_linear(5, 3, 1, 1, 0, 0);
  if (!quick) {
    check_linear(4096, 768, 768, 1, 1, 1);  /* attention projection */
    check_linear(4096, 768, 3072, 1, 1, 1); /* MLP fc1 */
    check_linear(4096, 3072, 768, 1, 1, 1); /* MLP fc2 */
  }
  check_linear_gelu_forward(17, 12, 20, 0);
  check_linear_gelu_forward(40, 24, 64, 0);
  if (!quick) check_linear_gelu_forward(4096, 768, 3072, 1); /* MLP fc1 with the GELU after it */
  check_linear_gelu(17, 12, 20, 0);
  check_linear_gelu(40, 64, 24, 0);
  if (!quick) check_linear_gelu(4096, 3072, 768, 1); /* MLP fc2 with the GELU before it */
  check_gelu_switches();

  /* Head dimensions 4, 10, 16, 32, 64, 72, 128 (each flash kernel width, padded or full) and N that
   * are not multiples of the CUDA tiles (64-row blocks, 32-row shared tiles). */
  check_attention(1, 17, 12, 3, 0);
  check_attention(2, 33, 20, 2, 0);
  check_attention(1, 1100, 64, 4, 0);
  check_attention(2, 77, 96, 3, 0);
  check_attention(1, 130, 128, 2, 0);
  check_attention(1, 97, 256, 2, 0);
  check_attention(1, 300, 144, 2, 0);
  if (!quick) {
    check_attention(2, 1024, 768, 12, 1);
    check_attention(1, 4096, 768, 12, 1); /* base: N = 4096 tokens, 12 heads of 64 */
    check_attention(1, 4097, 128, 2, 0);  /* base's head dimension, one token past a whole tile */
  }
  check_bf16();

  finish();
  return 0;
}
