/* cpu_backend.c — the CPU backend's table (backend.h): the k_* kernels themselves, with host
 * memory (malloc/free/memcpy/memset) as "device" memory, so code written against the table runs on
 * either backend unchanged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/backend.h"
#include "kernels/kernels.h"

static char cpu_error[256];     /* first unread error, "" when none */
static char cpu_error_out[256]; /* what last_error() returned last */

/* 64-byte alignment (a cache line, one AVX-512 load), as the activation arena always had. */
static void *cpu_alloc(size_t bytes) {
  size_t rounded = (bytes + 63) & ~(size_t)63;
  void *p = aligned_alloc(64, rounded ? rounded : 64);
  if (!p && cpu_error[0] == '\0')
    snprintf(cpu_error, sizeof cpu_error, "cpu backend: out of memory allocating %zu bytes", bytes);
  return p;
}

static void cpu_free(void *ptr) { free(ptr); }

static int cpu_copy(void *dst, const void *src, size_t bytes) {
  if (bytes) memmove(dst, src, bytes);
  return 0;
}

static int cpu_fill_zero(void *ptr, size_t bytes) {
  if (bytes) memset(ptr, 0, bytes);
  return 0;
}

static int cpu_synchronize(void) { return 0; } /* every op has finished when it returns */

/* Free = the kernel's MemAvailable (what can be allocated without swapping, page cache included);
 * where /proc is missing, the free pages. */
static int cpu_memory_info(size_t *free_bytes, size_t *total_bytes) {
  long page = sysconf(_SC_PAGESIZE), avail = sysconf(_SC_AVPHYS_PAGES), total = sysconf(_SC_PHYS_PAGES);
  if (page <= 0 || avail < 0 || total <= 0) return -1;
  *free_bytes = (size_t)avail * (size_t)page;
  *total_bytes = (size_t)total * (size_t)page;
  FILE *f = fopen("/proc/meminfo", "r");
  if (f) {
    char line[128];
    unsigned long long kib;
    while (fgets(line, sizeof line, f))
      if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1) {
        *free_bytes = (size_t)kib * 1024;
        break;
      }
    fclose(f);
  }
  return 0;
}

static const char *cpu_last_error(void) {
  memcpy(cpu_error_out, cpu_error, sizeof cpu_error_out);
  cpu_error[0] = '\0';
  return cpu_error_out;
}

static size_t cpu_attention_probs_floats(int B, int N, int H) { return (size_t)B * (size_t)H * (size_t)N * (size_t)N; }

/* The CPU computes in fp32 only (kernels.h is the fp32 specification). */
static int cpu_set_precision(tpdiff_precision precision, char *err, size_t err_size) {
  if (precision == TPDIFF_FP32) return 0;
  if (err && err_size)
    snprintf(err, err_size,
             "train.precision: bf16 needs the CUDA backend (train.device: cuda on a machine with a GPU); the CPU "
             "backend computes in fp32 only");
  return -1;
}

/* fp32 only: the matmuls read the master weights themselves. */
static int cpu_set_master_weights(const float *weights, size_t n) {
  (void)weights, (void)n;
  return 0;
}

/* Every CPU op works in the caller's buffers (attention's N x N scratch is the model's arena). */
static size_t cpu_scratch_bytes(const tpdiff_scratch_shape *s) {
  (void)s;
  return 0;
}

static char cpu_device[64];

static const tpdiff_backend cpu_table = {
    .abi = TPDIFF_BACKEND_ABI,
    .name = "cpu",
    .device = cpu_device,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .copy_to_device = cpu_copy,
    .copy_to_host = cpu_copy,
    .copy_device = cpu_copy,
    .fill_zero = cpu_fill_zero,
    .synchronize = cpu_synchronize,
    .memory_info = cpu_memory_info,
    .last_error = cpu_last_error,
    .set_precision = cpu_set_precision,
    .set_master_weights = cpu_set_master_weights,
    .scratch_bytes = cpu_scratch_bytes,
    .linear_forward = k_linear_forward,
    .linear_gelu_forward = k_linear_gelu_forward,
    .linear_backward = k_linear_backward,
    .linear_backward_gelu = k_linear_backward_gelu,
    .layernorm_modulate_forward = k_layernorm_modulate_forward,
    .layernorm_modulate_backward = k_layernorm_modulate_backward,
    .gelu_forward = k_gelu_forward,
    .gelu_backward = k_gelu_backward,
    .silu_forward = k_silu_forward,
    .silu_backward = k_silu_backward,
    .gated_residual_forward = k_gated_residual_forward,
    .gated_residual_backward = k_gated_residual_backward,
    .add_rows_broadcast = k_add_rows_broadcast,
    .add = k_add,
    .scale = k_scale,
    .attention_forward = k_attention_forward,
    .attention_backward = k_attention_backward,
    .attention_probs_floats = cpu_attention_probs_floats,
    .attention_scratch_floats = k_attention_scratch_floats,
    .patchify = k_patchify,
    .unpatchify = k_unpatchify,
    .sincos_table = k_sincos_table,
    .embedding_add = k_embedding_add,
    .embedding_backward = k_embedding_backward,
    .mse_loss = k_mse_loss,
    .adamw_step = k_adamw_step,
    .sum_squares = k_sum_squares,
    .frames_pair_mean = k_frames_pair_mean,
    .frames_pair_sum_norm = k_frames_pair_sum_norm,
    .frames_pair_diff_norm = k_frames_pair_diff_norm,
    .frames_repeat = k_frames_repeat,
    .frames_antisym = k_frames_antisym,
    .combine3_per_clip = k_combine3_per_clip,
    .fill_normal = k_fill_normal,
    .fill_uniform = k_fill_uniform,
};

const tpdiff_backend *tpdiff_cpu_backend(void) {
  /* The description names the thread count, which is known only at run time. */
  if (cpu_device[0] == '\0') snprintf(cpu_device, sizeof cpu_device, "CPU (%d threads)", k_num_threads());
  return &cpu_table;
}
