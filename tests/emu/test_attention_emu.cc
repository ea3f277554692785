/* test_attention_emu.cc — the CUDA backend's attention (attention.cu and, in bf16 mode,
 * attention_bf16.cu and the flash kernels of attention_flash*.cu), its own code run on the CPU by
 * tests/emu, against the CPU backend's attention (the executable specification). Through the ops
 * the model calls (tcu_attention_forward / _backward), in fp32 and in bf16 with each TPDIFF_ATTN:
 *
 *   - forward output and backward d_qkv (with the forward's output and lse, and with out = NULL,
 *     where the backward recomputes O) against the CPU's on bf16-valued inputs, at the limits of
 *     tests/gpu/check_kernels.c: fp32 1e-5 forward, 1e-4 backward; bf16 1e-2 (P and dS are rounded
 *     to bf16 inside the kernels), the simple pair's fp32 backward 1e-4;
 *   - lse (what the backend keeps in `probs`) against the row log-sum-exp computed in float64;
 *   - every output element written (outputs start as NaN);
 *   - flash-scalar and flash-wide with the bits of the default flash kernels;
 *   - the launches' shared memory within what sm_80 allows a block.
 * The shapes are check_kernels' (head dimensions 4 to 128, padded to 16/32/64/(80)/128; N with a
 * partial last tile, one tile, several), at sizes the emulator runs in seconds. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_bf16.h>

#include "tests/emu/emu.h"
extern "C" {
#include "kernels/backend.h"
#include "kernels/kernels.h"
const tpdiff_backend *tpdiff_cuda_backend(char *err, size_t err_size); /* kernels/cuda/backend.cu */
}

static const tpdiff_backend *be; /* the CUDA backend, on the emulator */

static int passed, failed;

__attribute__((format(printf, 2, 3))) static void check(bool ok, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  printf("%s %s\n", ok ? "PASS" : "FAIL", line);
  ok ? passed++ : failed++;
}

static uint64_t g_state = 0x9e3779b97f4a7c15ull;
static float *random_bf16(size_t n) {
  float *x = (float *)malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) {
    g_state = g_state * 6364136223846793005ull + 1442695040888963407ull;
    const float u = (float)((double)(g_state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    x[i] = __bfloat162float(__float2bfloat16_rn(u)); /* the values the tensor cores multiply */
  }
  return x;
}
/* Outputs live in (emulated) device memory, NaN-filled: an element no kernel writes shows, and
 * TPDIFF_EMU_ORDER=check, which compares device memory, sees every output. */
static float *nan_filled(size_t n) {
  void *x = NULL;
  if (cudaMalloc(&x, n * sizeof(float)) != cudaSuccess) {
    printf("FAIL cudaMalloc of %zu floats\n", n);
    exit(1);
  }
  memset(x, 0xFF, n * sizeof(float));
  return (float *)x;
}

/* max |got - want| / max |want|; +Inf when got has a non-finite value where want is finite */
static double rel_err(const float *got, const float *want, size_t n) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(got[i]) && isfinite(want[i])) return INFINITY;
    num = fmax(num, fabs((double)got[i] - want[i]));
    den = fmax(den, fabs((double)want[i]));
  }
  return num / (den > 0.0 ? den : 1.0);
}
static double abs_err(const float *got, const double *want, size_t n) {
  double e = 0.0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(got[i])) return INFINITY;
    e = fmax(e, fabs(got[i] - want[i]));
  }
  return e;
}
static size_t bits_differ(const float *a, const float *b, size_t n) {
  size_t d = 0;
  for (size_t i = 0; i < n; i++) d += memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return d;
}

struct Mode {
  const char *name;
  int bf16;          /* set_precision(bf16) */
  const char *attn;  /* TPDIFF_ATTN (NULL: unset) */
  double fwd_limit, lse_limit, bwd_limit;
};
/* check_kernels' limits: fp32 differs from the CPU by summation order only; bf16 rounds P (and in the
 * flash backward dS) to bf16; the simple pair's backward is fp32 and recomputes the row statistics */
static const Mode kModes[] = {
    {"fp32", 0, NULL, 1e-5, 1e-4, 1e-4},
    {"bf16 flash", 1, NULL, 1e-2, 1e-2, 1e-2},
    {"bf16 flash-scalar", 1, "flash-scalar", 1e-2, 1e-2, 1e-2},
    {"bf16 flash-wide", 1, "flash-wide", 1e-2, 1e-2, 1e-2},
    {"bf16 simple", 1, "simple", 1e-2, 1e-2, 1e-4},
};
constexpr int kFlash = 1, kModeCount = sizeof kModes / sizeof kModes[0];

struct Result {
  float *out, *lse, *dqkv, *dqkv_rerun;
};

/* The backend's attention ops as the model calls them (attention.cu dispatches on the precision and
 * TPDIFF_ATTN): forward, backward with the forward's output and lse, backward with out = NULL. */
static void check_shape(int B, int N, int D, int H) {
  const int dh = D / H;
  const float scale = 1.0f / sqrtf((float)dh);
  const size_t nqkv = (size_t)B * N * 3 * D, nout = (size_t)B * N * D, nrows = (size_t)B * H * N;
  char shape[64];
  snprintf(shape, sizeof shape, "B=%d N=%d D=%d H=%d", B, N, D, H);
  float *qkv = random_bf16(nqkv), *dout = random_bf16(nout);

  /* the CPU backend's forward and backward (fp32) on the same bf16 values */
  float *out_cpu = (float *)malloc(nout * sizeof(float)), *dqkv_cpu = (float *)malloc(nqkv * sizeof(float));
  float *probs = (float *)malloc((size_t)B * H * N * N * sizeof(float));
  float *scratch = (float *)malloc(k_attention_scratch_floats(N) * sizeof(float));
  k_attention_forward(out_cpu, probs, qkv, B, N, D, H);
  k_attention_backward(dqkv_cpu, dout, qkv, out_cpu, probs, scratch, B, N, D, H);
  /* the row log-sum-exp in float64 (what the CUDA backend keeps in `probs`) */
  double *lse_ref = (double *)malloc(nrows * sizeof(double)), *s = (double *)malloc((size_t)N * sizeof(double));
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int i = 0; i < N; i++) {
        const float *q = qkv + ((size_t)b * N + i) * 3 * D + (size_t)h * dh;
        double m = -INFINITY, sum = 0.0;
        for (int j = 0; j < N; j++) {
          const float *k = qkv + ((size_t)b * N + j) * 3 * D + D + (size_t)h * dh;
          double dot = 0.0;
          for (int d = 0; d < dh; d++) dot += (double)q[d] * k[d];
          s[j] = dot * scale;
          m = fmax(m, s[j]);
        }
        for (int j = 0; j < N; j++) sum += exp(s[j] - m);
        lse_ref[((size_t)b * H + h) * N + i] = m + log(sum);
      }
  float *unused = (float *)malloc(sizeof(float));

  Result res[kModeCount];
  for (int v = 0; v < kModeCount; v++) {
    const Mode &mode = kModes[v];
    Result &r = res[v];
    char err[512] = "";
    if (be->set_precision(mode.bf16 ? TPDIFF_BF16 : TPDIFF_FP32, err, sizeof err) != 0) {
      check(false, "%s %s: set_precision: %s", shape, mode.name, err);
      continue;
    }
    if (mode.attn)
      setenv("TPDIFF_ATTN", mode.attn, 1);
    else
      unsetenv("TPDIFF_ATTN");
    r.out = nan_filled(nout);
    r.lse = nan_filled(be->attention_probs_floats(B, N, H));
    r.dqkv = nan_filled(nqkv);
    r.dqkv_rerun = nan_filled(nqkv);
    /* the inputs may stay in host memory: the emulator's device memory is host memory */
    be->attention_forward(r.out, r.lse, qkv, B, N, D, H);
    be->attention_backward(r.dqkv, dout, qkv, r.out, r.lse, unused, B, N, D, H);
    be->attention_backward(r.dqkv_rerun, dout, qkv, NULL, r.lse, unused, B, N, D, H);
    const char *why = be->last_error();
    if (be->synchronize() != 0 || (why && why[0])) {
      check(false, "%s %s: %s", shape, mode.name, why);
      continue;
    }
    double e = rel_err(r.out, out_cpu, nout);
    check(e <= mode.fwd_limit, "%s %s forward out: err=%.3g limit=%.0e", shape, mode.name, e, mode.fwd_limit);
    e = abs_err(r.lse, lse_ref, nrows);
    check(e <= mode.lse_limit, "%s %s forward lse: max abs err=%.3g limit=%.0e", shape, mode.name, e, mode.lse_limit);
    e = rel_err(r.dqkv, dqkv_cpu, nqkv);
    check(e <= mode.bwd_limit, "%s %s backward d_qkv: err=%.3g limit=%.0e", shape, mode.name, e, mode.bwd_limit);
    e = rel_err(r.dqkv_rerun, dqkv_cpu, nqkv);
    check(e <= mode.bwd_limit, "%s %s backward d_qkv, out = NULL (O recomputed): err=%.3g limit=%.0e", shape,
          mode.name, e, mode.bwd_limit);
    if (v > kFlash && mode.attn && strcmp(mode.attn, "simple") != 0) {
      const Result &f = res[kFlash];
      const size_t d_out = bits_differ(r.out, f.out, nout), d_lse = bits_differ(r.lse, f.lse, nrows),
                   d_dq = bits_differ(r.dqkv, f.dqkv, nqkv), d_rerun = bits_differ(r.dqkv_rerun, f.dqkv_rerun, nqkv);
      check(d_out + d_lse + d_dq + d_rerun == 0,
            "%s %s: the bits of TPDIFF_ATTN=flash (values differing: out %zu, lse %zu, d_qkv %zu, d_qkv with out = "
            "NULL %zu)",
            shape, mode.name, d_out, d_lse, d_dq, d_rerun);
    }
  }
  unsetenv("TPDIFF_ATTN");
  for (int v = 0; v < kModeCount; v++) {
    cudaFree(res[v].out);
    cudaFree(res[v].lse);
    cudaFree(res[v].dqkv);
    cudaFree(res[v].dqkv_rerun);
  }
  free(unused);
  free(qkv);
  free(dout);
  free(out_cpu);
  free(dqkv_cpu);
  free(probs);
  free(scratch);
  free(lse_ref);
  free(s);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0); /* every line out before a sanitizer's report ends the process */
  char err[512] = "";
  be = tpdiff_cuda_backend(err, sizeof err);
  if (!be) {
    printf("FAIL the CUDA backend on the emulator: %s\n", err);
    return 1;
  }
  const bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
  check_shape(1, 17, 12, 3);  /* head 4 -> 16; one partial tile */
  check_shape(2, 33, 20, 2);  /* head 10 -> 16; two clips */
  check_shape(1, 130, 128, 2); /* head 64; three tiles, the last with 2 keys */
  check_shape(1, 300, 144, 2); /* head 72 -> 80 (large.yaml's); flash-wide's last block half past the rows */
  if (!quick) {
    check_shape(2, 77, 96, 3);   /* head 32 */
    check_shape(1, 97, 256, 2);  /* head 128: flash-wide keeps one m-tile */
    check_shape(2, 65, 160, 2);  /* head 80 exactly */
    check_shape(1, 300, 128, 2); /* head 64 with 300 rows: flash-wide's dQ has two m-tiles */
  }
  const emu::Stats st = emu::stats();
  check(st.max_smem_bytes <= (size_t)emu::kSm80MaxDynamicSmem,
        "dynamic shared memory of every launch within sm_80's %d bytes a block: at most %zu (%zu launches, %zu blocks)",
        emu::kSm80MaxDynamicSmem, st.max_smem_bytes, st.launches, st.blocks);
  printf("test_attention_emu: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
