// nccl_reduce.cu — libtpdiff_nccl.so: the gradient all-reduce on GPUs (comm/nccl_api.h). One NCCL
// communicator per rank (one GPU per local rank), built non-blocking so start-up is bounded by the
// timeout; the flat gradient is reduced in buckets on the library's own stream, ordered after the
// backend's work on the legacy default stream by events, in fp32 or bf16 (cast on the GPU) with
// ncclAvg, so the result is the mean over ranks with no extra scaling pass. Buckets can be enqueued
// one by one while the backward of earlier layers still runs (begin), then waited for (finish).
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm/nccl_api.h"

// kernel<<<grid, block, smem, stream>>>(args...), written so that tests/emu, whose cuda_runtime.h comes
// first and defines its own, can run this file on the CPU with several ranks
#ifndef TCU_LAUNCH_STREAM
#define TCU_LAUNCH_STREAM(grid, block, smem, stream, ...) __VA_ARGS__<<<(grid), (block), (smem), (stream)>>>
#endif

namespace {

double now_seconds() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

struct nccl_state {
  ncclComm_t comm;
  cudaStream_t stream;
  cudaEvent_t grads_ready, reduced;
  __nv_bfloat16 *wire; // bf16 copy of the gradient, NULL in fp32
  size_t floats, bucket_floats;
};

// Waits until the communicator has no operation in progress, at most until deadline. 0 when done
// (err empty), -1 with one line in err on an NCCL error or past the deadline (the communicator is
// then aborted: a peer is gone and nothing more will complete).
int wait_comm(ncclComm_t comm, double deadline, const char *what, double timeout_s, char *err, size_t err_size) {
  for (;;) {
    ncclResult_t state = ncclSuccess;
    ncclResult_t r = ncclCommGetAsyncError(comm, &state);
    if (r != ncclSuccess) state = r;
    if (state == ncclSuccess) return 0;
    if (state != ncclInProgress) {
      snprintf(err, err_size, "NCCL %s: %s (%s)", what, ncclGetErrorString(state), ncclGetLastError(comm));
      ncclCommAbort(comm);
      return -1;
    }
    if (now_seconds() > deadline) {
      snprintf(err, err_size,
               "NCCL %s did not complete within train.comm_timeout = %g s (another rank stopped, hung or died)", what,
               timeout_s);
      ncclCommAbort(comm);
      return -1;
    }
    struct timespec ts = {0, 100000};
    nanosleep(&ts, NULL);
  }
}

__global__ void to_bf16(__nv_bfloat16 *out, const float *in, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    out[i] = __float2bfloat16(in[i]);
}

__global__ void from_bf16(float *out, const __nv_bfloat16 *in, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    out[i] = __bfloat162float(in[i]);
}

unsigned grid_for(size_t n) {
  size_t blocks = (n + 255) / 256;
  return (unsigned)(blocks < 4096 ? (blocks ? blocks : 1) : 4096);
}

const char *version_text() {
  static char text[32];
  int v = 0;
  ncclGetVersion(&v);
  snprintf(text, sizeof text, "%d.%d.%d", v / 10000, (v / 100) % 100, v % 100);
  return text;
}

int unique_id(unsigned char id[TPDIFF_NCCL_ID_BYTES], char *err, size_t err_size) {
  static_assert(sizeof(ncclUniqueId) == TPDIFF_NCCL_ID_BYTES, "ncclUniqueId size");
  ncclUniqueId u;
  ncclResult_t r = ncclGetUniqueId(&u);
  if (r != ncclSuccess) {
    snprintf(err, err_size, "ncclGetUniqueId: %s", ncclGetErrorString(r));
    return -1;
  }
  memcpy(id, &u, sizeof u);
  return 0;
}

void destroy(void *p) {
  nccl_state *s = (nccl_state *)p;
  if (!s) return;
  if (s->comm) ncclCommDestroy(s->comm);
  if (s->stream) cudaStreamDestroy(s->stream);
  if (s->grads_ready) cudaEventDestroy(s->grads_ready);
  if (s->reduced) cudaEventDestroy(s->reduced);
  cudaFree(s->wire);
  free(s);
}

void *create(const unsigned char id[TPDIFF_NCCL_ID_BYTES], int rank, int world, int bf16, size_t floats,
             size_t bucket_floats, double timeout_s, char *err, size_t err_size) {
  nccl_state *s = (nccl_state *)calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, err_size, "out of memory");
    return NULL;
  }
  s->floats = floats;
  s->bucket_floats = bucket_floats;
  cudaError_t ce = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking);
  if (ce == cudaSuccess) ce = cudaEventCreateWithFlags(&s->grads_ready, cudaEventDisableTiming);
  if (ce == cudaSuccess) ce = cudaEventCreateWithFlags(&s->reduced, cudaEventDisableTiming);
  if (ce == cudaSuccess && bf16) ce = cudaMalloc(&s->wire, floats * sizeof(__nv_bfloat16));
  if (ce != cudaSuccess) {
    snprintf(err, err_size, "CUDA for the NCCL reduction: %s", cudaGetErrorString(ce));
    destroy(s);
    return NULL;
  }
  ncclUniqueId u;
  memcpy(&u, id, sizeof u);
  // non-blocking: the init returns at once and is polled against the deadline, so a rank that never
  // joins makes this one fail with a message instead of hanging
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclResult_t r = ncclCommInitRankConfig(&s->comm, world, u, rank, &config);
  if (r != ncclSuccess && r != ncclInProgress) {
    snprintf(err, err_size, "ncclCommInitRankConfig (rank %d of %d): %s", rank, world, ncclGetErrorString(r));
    s->comm = NULL;
    destroy(s);
    return NULL;
  }
  if (wait_comm(s->comm, now_seconds() + timeout_s, "communicator start-up", timeout_s, err, err_size) != 0) {
    s->comm = NULL; // aborted
    destroy(s);
    return NULL;
  }
  return s;
}

int begin(void *p, float *grads, size_t off, size_t n, double timeout_s, char *err, size_t err_size) {
  nccl_state *s = (nccl_state *)p;
  if (!s->comm) {
    snprintf(err, err_size, "the NCCL communicator was aborted earlier");
    return -1;
  }
  if (off + n > s->floats) {
    snprintf(err, err_size, "NCCL all-reduce of floats [%zu, %zu), set up for %zu", off, off + n, s->floats);
    return -1;
  }
  // the backend computes on the legacy default stream: start after its work so far
  cudaEventRecord(s->grads_ready, 0);
  cudaStreamWaitEvent(s->stream, s->grads_ready, 0);
  ncclResult_t r;
  if (s->wire) {
    TCU_LAUNCH_STREAM(grid_for(n), 256, 0, s->stream, to_bf16)(s->wire + off, grads + off, n);
    r = ncclAllReduce(s->wire + off, s->wire + off, n, ncclBfloat16, ncclAvg, s->comm, s->stream);
  } else {
    r = ncclAllReduce(grads + off, grads + off, n, ncclFloat32, ncclAvg, s->comm, s->stream);
  }
  if (r != ncclSuccess && r != ncclInProgress) {
    snprintf(err, err_size, "ncclAllReduce (bucket at %zu): %s", off, ncclGetErrorString(r));
    ncclCommAbort(s->comm);
    s->comm = NULL;
    return -1;
  }
  // a non-blocking communicator may still be enqueueing: wait before the next call
  if (wait_comm(s->comm, now_seconds() + timeout_s, "all-reduce enqueue", timeout_s, err, err_size) != 0) {
    s->comm = NULL;
    return -1;
  }
  if (s->wire) TCU_LAUNCH_STREAM(grid_for(n), 256, 0, s->stream, from_bf16)(grads + off, s->wire + off, n);
  return 0;
}

int finish(void *p, double timeout_s, char *err, size_t err_size) {
  nccl_state *s = (nccl_state *)p;
  double deadline = now_seconds() + timeout_s;
  if (!s->comm) {
    snprintf(err, err_size, "the NCCL communicator was aborted earlier");
    return -1;
  }
  cudaEventRecord(s->reduced, s->stream);
  cudaStreamWaitEvent(0, s->reduced, 0); // the clip, AdamW and EMA after this see the mean
  // bounded wait: a peer that died leaves the kernel spinning, the event never completes
  for (;;) {
    cudaError_t q = cudaEventQuery(s->reduced);
    if (q == cudaSuccess) break;
    if (q != cudaErrorNotReady) {
      snprintf(err, err_size, "CUDA during the NCCL all-reduce: %s", cudaGetErrorString(q));
      return -1;
    }
    ncclResult_t state = ncclSuccess;
    ncclCommGetAsyncError(s->comm, &state);
    if (state != ncclSuccess && state != ncclInProgress) {
      snprintf(err, err_size, "NCCL all-reduce: %s (%s)", ncclGetErrorString(state), ncclGetLastError(s->comm));
      ncclCommAbort(s->comm);
      s->comm = NULL;
      return -1;
    }
    if (now_seconds() > deadline) {
      snprintf(err, err_size,
               "NCCL all-reduce did not complete within train.comm_timeout = %g s (another rank stopped, hung or died)",
               timeout_s);
      ncclCommAbort(s->comm);
      s->comm = NULL;
      return -1;
    }
    struct timespec ts = {0, 50000};
    nanosleep(&ts, NULL);
  }
  return 0;
}

int allreduce_mean(void *p, float *grads, size_t count, double timeout_s, char *err, size_t err_size) {
  nccl_state *s = (nccl_state *)p;
  for (size_t off = 0; off < count; off += s->bucket_floats)
    if (begin(p, grads, off, count - off < s->bucket_floats ? count - off : s->bucket_floats, timeout_s, err,
              err_size) != 0)
      return -1;
  return finish(p, timeout_s, err, err_size);
}

const tpdiff_nccl_api table = {TPDIFF_NCCL_ABI, version_text, unique_id, create, allreduce_mean, destroy, begin, finish};

} // namespace

extern "C" __attribute__((visibility("default"))) const tpdiff_nccl_api *tpdiff_nccl_entry(void) { return &table; }
