/* backend.cu — the CUDA backend's table (backend.h): device discovery, memory, synchronisation,
 * error reporting, the backend-owned scratch buffers, and the one exported symbol,
 * tpdiff_cuda_backend(), which the binaries find with dlopen/dlsym (kernels/backend_loader.c).
 *
 * Built into libtpdiff_cuda.so with the CUDA runtime linked statically and -fvisibility=hidden, so
 * the library exports tpdiff_cuda_backend and nothing else of ours. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "kernels/cuda/cuda_internal.cuh"

tcu_device_state g_tcu = {-1, 0, NULL, NULL, 0, NULL, NULL, 0};

/* ---- errors ---------------------------------------------------------------------------------- */

static pthread_mutex_t g_error_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_error[1024];     /* first unread error, "" when none */
static char g_error_out[1024]; /* what last_error() returned last (stays valid until the next call) */

void tcu_fail(const char *file, int line, const char *fmt, ...) {
  pthread_mutex_lock(&g_error_lock);
  if (g_error[0] == '\0') {
    const char *base = strrchr(file, '/');
    int used = snprintf(g_error, sizeof g_error, "cuda backend (%s:%d): ", base ? base + 1 : file, line);
    if (used < 0 || (size_t)used >= sizeof g_error) used = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_error + used, sizeof g_error - (size_t)used, fmt, ap);
    va_end(ap);
    /* one line, whatever the pieces held */
    for (char *c = g_error; *c; c++)
      if (*c == '\n' || *c == '\r') *c = ' ';
  }
  pthread_mutex_unlock(&g_error_lock);
}

bool tcu_cuda_ok(cudaError_t err, const char *what, const char *file, int line) {
  if (err == cudaSuccess) return true;
  /* Clear the runtime's "last error" so that a later launch check does not report this failure
   * again as its own (sticky errors stay: the context is then unusable anyway). */
  (void)cudaGetLastError();
  tcu_fail(file, line, "%s: %s (%s)", what, cudaGetErrorString(err), cudaGetErrorName(err));
  return false;
}

bool tcu_cublas_ok(cublasStatus_t status, const char *what, const char *file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return true;
  tcu_fail(file, line, "%s: %s (%s)", what, cublasLtGetStatusString(status), cublasLtGetStatusName(status));
  return false;
}

static const char *be_last_error(void) {
  pthread_mutex_lock(&g_error_lock);
  memcpy(g_error_out, g_error, sizeof g_error_out);
  g_error[0] = '\0';
  pthread_mutex_unlock(&g_error_lock);
  return g_error_out;
}

/* ---- scratch buffers ------------------------------------------------------------------------- */

static void *g_scratch[TCU_SCRATCH_SLOTS];
static size_t g_scratch_bytes[TCU_SCRATCH_SLOTS];

/* What a slot allocates for a request of `bytes`: a quarter more, so that a slowly growing request
 * does not reallocate every call, in whole 256-byte units. */
size_t tcu_scratch_alloc_size(size_t bytes) {
  if (bytes == 0) return 0;
  return (bytes + bytes / 4 + 255) & ~(size_t)255;
}

/* Gives a slot's buffer back, waiting for the device first: an earlier op's kernel may still be
 * reading it. */
static void scratch_release(tcu_scratch_slot slot) {
  if (g_scratch[slot]) {
    CUDA_OK(cudaDeviceSynchronize());
    CUDA_OK(cudaFree(g_scratch[slot]));
  }
  g_scratch[slot] = NULL;
  g_scratch_bytes[slot] = 0;
}

void *tcu_scratch(tcu_scratch_slot slot, size_t bytes) {
  if (bytes <= g_scratch_bytes[slot]) return g_scratch[slot];
  size_t want = tcu_scratch_alloc_size(bytes);
  scratch_release(slot);
  void *p = NULL;
  cudaError_t err = cudaMalloc(&p, want);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    TCU_FAIL("cudaMalloc of %zu bytes of scratch: %s", want, cudaGetErrorString(err));
    return NULL;
  }
  g_scratch[slot] = p;
  g_scratch_bytes[slot] = want;
  return p;
}

/* backend.h scratch_bytes: every slot at the largest request the work makes of it, with the growth
 * rule's margin (NULL: what the slots hold now). The Linear casts exist in bf16 mode only, the
 * weight's only where the master weights' bf16 copy does not cover it (the EMA weights a sample
 * during training runs with, ...): planned anyway. */
static size_t be_scratch_bytes(const tpdiff_scratch_shape *s) {
  if (!s) {
    size_t held = 0;
    for (int i = 0; i < TCU_SCRATCH_SLOTS; i++) held += g_scratch_bytes[i];
    return held;
  }
  size_t need[TCU_SCRATCH_SLOTS] = {0};
  need[TCU_SCRATCH_COLSUM] = tcu_colsum_scratch_bound(s->sum_columns);
  need[TCU_SCRATCH_INDEX] = (size_t)(s->clips > 0 ? s->clips : 0) * sizeof(int);
  /* the sampler combines its videos 64 at a time whatever the training microbatch (model/sampler.c) */
  need[TCU_SCRATCH_COEF] = (size_t)(s->clips > 64 ? s->clips : 64) * 3 * sizeof(float);
  need[TCU_SCRATCH_ATTENTION] = tcu_attention_scratch_need(s->clips, s->tokens, s->dim, s->heads);
  if (g_tcu.bf16) {
    need[TCU_SCRATCH_BF16_IN] = s->linear_in * sizeof(__nv_bfloat16);
    need[TCU_SCRATCH_BF16_DOUT] = s->linear_out * sizeof(__nv_bfloat16);
    need[TCU_SCRATCH_BF16_W] = s->linear_weight * sizeof(__nv_bfloat16);
  }
  size_t total = 0;
  for (int i = 0; i < TCU_SCRATCH_SLOTS; i++) total += tcu_scratch_alloc_size(need[i]);
  return total;
}

/* ---- memory ---------------------------------------------------------------------------------- */

/* Plain device memory (never managed memory: oversubscribing managed memory can hang the GPU). */
static void *be_alloc(size_t bytes) {
  void *p = NULL;
  cudaError_t err = cudaMalloc(&p, bytes ? bytes : 1);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    (void)cudaGetLastError();
    TCU_FAIL("cudaMalloc of %zu bytes: %s (%zu of %zu MiB free)", bytes, cudaGetErrorString(err), free_b >> 20,
             total_b >> 20);
    return NULL;
  }
  return p;
}

static void be_free(void *ptr) {
  tcu_master_forget_if(ptr);
  if (ptr) CUDA_OK(cudaFree(ptr));
}

static int be_copy_to_device(void *dst, const void *src_host, size_t bytes) {
  if (bytes == 0) return 0;
  if (!CUDA_OK(cudaMemcpy(dst, src_host, bytes, cudaMemcpyHostToDevice))) return -1;
  tcu_master_note_write(dst, bytes); /* every write into backend memory: the weights' bf16 copy follows */
  return 0;
}

static int be_copy_to_host(void *dst_host, const void *src, size_t bytes) {
  if (bytes == 0) return 0;
  return CUDA_OK(cudaMemcpy(dst_host, src, bytes, cudaMemcpyDeviceToHost)) ? 0 : -1;
}

static int be_copy_device(void *dst, const void *src, size_t bytes) {
  if (bytes == 0) return 0;
  if (!CUDA_OK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice))) return -1;
  tcu_master_note_write(dst, bytes);
  return 0;
}

static int be_fill_zero(void *ptr, size_t bytes) {
  if (bytes == 0) return 0;
  if (!CUDA_OK(cudaMemset(ptr, 0, bytes))) return -1;
  tcu_master_note_write(ptr, bytes);
  return 0;
}

/* Waits for every queued op; an asynchronous fault (illegal address, ...) surfaces here. */
static int be_synchronize(void) { return CUDA_OK(cudaDeviceSynchronize()) ? 0 : -1; }

static int be_memory_info(size_t *free_bytes, size_t *total_bytes) {
  return CUDA_OK(cudaMemGetInfo(free_bytes, total_bytes)) ? 0 : -1;
}

/* ---- device discovery ------------------------------------------------------------------------ */

__global__ void probe_kernel(double *out) { *out = 42.0; }

/* Which device this process uses: TPDIFF_CUDA_DEVICE, else the launcher's local rank (so ranks of a
 * node spread over its GPUs), else 0. */
static int choose_device(int count) {
  const char *names[] = {"TPDIFF_CUDA_DEVICE", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "LOCAL_RANK"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const char *v = getenv(names[i]);
    if (v && *v) {
      char *end = NULL;
      long k = strtol(v, &end, 10);
      if (end != v && *end == '\0' && k >= 0) return (int)(i == 0 ? k : k % count);
    }
  }
  return 0;
}

static char g_device_name[320];
static tpdiff_backend g_table;
static int g_init_state; /* 0 not tried, 1 ready, -1 failed */
static char g_init_error[512];
static pthread_mutex_t g_init_lock = PTHREAD_MUTEX_INITIALIZER;

static int init_device(char *why, size_t why_size) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    snprintf(why, why_size, "no usable CUDA driver or device: cudaGetDeviceCount: %s (%s, error %d)",
             cudaGetErrorString(err), cudaGetErrorName(err), (int)err);
    return -1;
  }
  if (count <= 0) {
    snprintf(why, why_size, "no CUDA device found (cudaGetDeviceCount returned 0)");
    return -1;
  }
  int dev = choose_device(count);
  if (dev >= count) {
    snprintf(why, why_size, "TPDIFF_CUDA_DEVICE=%d but only %d CUDA device(s) exist", dev, count);
    return -1;
  }
  err = cudaSetDevice(dev);
  cudaDeviceProp prop;
  if (err == cudaSuccess) err = cudaGetDeviceProperties(&prop, dev);
  if (err != cudaSuccess) {
    snprintf(why, why_size, "CUDA device %d: %s (%s)", dev, cudaGetErrorString(err), cudaGetErrorName(err));
    return -1;
  }
  if (prop.major < 8) {
    snprintf(why, why_size, "CUDA device %d (%s) is sm_%d%d; libtpdiff_cuda.so is built for sm_80 and newer", dev,
             prop.name, prop.major, prop.minor);
    return -1;
  }
  g_tcu.device = dev;
  g_tcu.sm_count = prop.multiProcessorCount;

  /* Create the context now and prove that our kernels load on this device (a missing code image
   * would otherwise surface only at the first op). */
  double *probe = NULL;
  double host = 0.0;
  err = cudaMalloc((void **)&probe, sizeof(double));
  if (err == cudaSuccess) {
    TCU_LAUNCH(1, 1, 0, probe_kernel)(probe);
    err = cudaGetLastError();
    if (err == cudaSuccess) err = cudaMemcpy(&host, probe, sizeof host, cudaMemcpyDeviceToHost);
    cudaFree(probe);
  }
  if (err != cudaSuccess || host != 42.0) {
    snprintf(why, why_size, "CUDA device %d (%s, sm_%d%d): test kernel failed: %s", dev, prop.name, prop.major,
             prop.minor, err != cudaSuccess ? cudaGetErrorString(err) : "wrong result");
    (void)cudaGetLastError();
    return -1;
  }

  cublasStatus_t st = cublasLtCreate(&g_tcu.lt);
  if (st != CUBLAS_STATUS_SUCCESS) {
    snprintf(why, why_size, "cublasLtCreate: %s", cublasLtGetStatusString(st));
    return -1;
  }
  /* One workspace for every matmul, allocated once: cuBLASLt's split-K and some Hopper kernels need
   * it, and allocating per call would synchronise the device. */
  g_tcu.lt_workspace_bytes = (size_t)32 << 20;
  err = cudaMalloc(&g_tcu.lt_workspace, g_tcu.lt_workspace_bytes);
  if (err == cudaSuccess) err = cudaMalloc((void **)&g_tcu.reduce_partials, TCU_REDUCE_BLOCKS * sizeof(double));
  if (err == cudaSuccess) err = cudaMalloc((void **)&g_tcu.reduce_result, sizeof(double));
  if (err != cudaSuccess) {
    snprintf(why, why_size, "cudaMalloc of the backend's workspaces: %s", cudaGetErrorString(err));
    (void)cudaGetLastError();
    return -1;
  }
  snprintf(g_device_name, sizeof g_device_name, "%.200s (sm_%d%d, %.1f GiB)", prop.name, prop.major, prop.minor,
           (double)prop.totalGlobalMem / (double)(1ull << 30));
  return 0;
}

static int be_set_precision(tpdiff_precision precision, char *err, size_t err_size) {
  if (precision != TPDIFF_FP32 && precision != TPDIFF_BF16) {
    if (err && err_size) snprintf(err, err_size, "cuda backend: unknown precision %d (fp32 = 0, bf16 = 1)", (int)precision);
    return -1;
  }
  const bool was_bf16 = g_tcu.bf16;
  g_tcu.bf16 = precision == TPDIFF_BF16;
  if (!tcu_master_precision_changed()) {
    if (err && err_size) snprintf(err, err_size, "%s", be_last_error());
    g_tcu.bf16 = was_bf16; /* refused: the precision stays what it was */
    (void)tcu_master_precision_changed();
    return -1;
  }
  if (was_bf16 && !g_tcu.bf16) { /* back to fp32: the casts' buffers have no more use */
    scratch_release(TCU_SCRATCH_BF16_IN);
    scratch_release(TCU_SCRATCH_BF16_W);
    scratch_release(TCU_SCRATCH_BF16_DOUT);
  }
  return 0;
}

static void fill_table(void) {
  tpdiff_backend *t = &g_table;
  t->abi = TPDIFF_BACKEND_ABI;
  t->name = "cuda";
  t->device = g_device_name;
  t->alloc = be_alloc;
  t->free = be_free;
  t->copy_to_device = be_copy_to_device;
  t->copy_to_host = be_copy_to_host;
  t->copy_device = be_copy_device;
  t->fill_zero = be_fill_zero;
  t->synchronize = be_synchronize;
  t->memory_info = be_memory_info;
  t->last_error = be_last_error;
  t->set_precision = be_set_precision;
  t->set_master_weights = tcu_set_master_weights;
  t->scratch_bytes = be_scratch_bytes;
  t->linear_forward = tcu_linear_forward;
  t->linear_gelu_forward = tcu_linear_gelu_forward;
  t->linear_backward = tcu_linear_backward;
  t->linear_backward_gelu = tcu_linear_backward_gelu;
  t->layernorm_modulate_forward = tcu_layernorm_modulate_forward;
  t->layernorm_modulate_backward = tcu_layernorm_modulate_backward;
  t->gelu_forward = tcu_gelu_forward;
  t->gelu_backward = tcu_gelu_backward;
  t->silu_forward = tcu_silu_forward;
  t->silu_backward = tcu_silu_backward;
  t->gated_residual_forward = tcu_gated_residual_forward;
  t->gated_residual_backward = tcu_gated_residual_backward;
  t->add_rows_broadcast = tcu_add_rows_broadcast;
  t->add = tcu_add;
  t->scale = tcu_scale;
  t->attention_forward = tcu_attention_forward;
  t->attention_backward = tcu_attention_backward;
  t->attention_probs_floats = tcu_attention_probs_floats;
  t->attention_scratch_floats = tcu_attention_scratch_floats;
  t->patchify = tcu_patchify;
  t->unpatchify = tcu_unpatchify;
  t->sincos_table = tcu_sincos_table;
  t->embedding_add = tcu_embedding_add;
  t->embedding_backward = tcu_embedding_backward;
  t->mse_loss = tcu_mse_loss;
  t->adamw_step = tcu_adamw_step;
  t->sum_squares = tcu_sum_squares;
  t->frames_pair_mean = tcu_frames_pair_mean;
  t->frames_pair_sum_norm = tcu_frames_pair_sum_norm;
  t->frames_pair_diff_norm = tcu_frames_pair_diff_norm;
  t->frames_repeat = tcu_frames_repeat;
  t->frames_antisym = tcu_frames_antisym;
  t->combine3_per_clip = tcu_combine3_per_clip;
  t->fill_normal = tcu_fill_normal;
  t->fill_uniform = tcu_fill_uniform;
}

/* The exported entry point (backend.h). Safe to call more than once: the device is set up on the
 * first call, and a failure is remembered and reported again. */
extern "C" __attribute__((visibility("default"))) const tpdiff_backend *tpdiff_cuda_backend(char *err,
                                                                                            size_t err_size) {
  pthread_mutex_lock(&g_init_lock);
  if (g_init_state == 0) {
    if (init_device(g_init_error, sizeof g_init_error) == 0) {
      fill_table();
      g_init_state = 1;
    } else {
      g_init_state = -1;
    }
  }
  int state = g_init_state;
  pthread_mutex_unlock(&g_init_lock);
  if (state == 1) {
    if (err && err_size) err[0] = '\0';
    return &g_table;
  }
  if (err && err_size) snprintf(err, err_size, "%s", g_init_error);
  return NULL;
}
