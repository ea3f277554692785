/* nccl_api.h — the table libtpdiff_nccl.so exports (comm/nccl_reduce.cu), in plain C types, so the
 * binaries load it with dlopen and have no CUDA or NCCL link dependency (like libtpdiff_cuda.so). */
#ifndef TPDIFF_NCCL_API_H
#define TPDIFF_NCCL_API_H

#include <stddef.h>

#define TPDIFF_NCCL_ABI 2
#define TPDIFF_NCCL_ID_BYTES 128 /* sizeof(ncclUniqueId) */

typedef struct {
  int abi; /* TPDIFF_NCCL_ABI */
  /* NCCL's version as "2.28.9" */
  const char *(*version)(void);
  /* rank 0: a fresh unique id to broadcast. 0, or -1 with one line in err */
  int (*unique_id)(unsigned char id[TPDIFF_NCCL_ID_BYTES], char *err, size_t err_size);
  /* Joins the communicator of id as rank of world on the current device, waiting at most timeout_s
   * (non-blocking init, polled, aborted past the deadline). Gradients of `floats` floats are reduced
   * in buckets of bucket_floats on the library's own stream; bf16 != 0 sends bf16 (cast on the GPU,
   * summed by NCCL, cast back). Returns the state, or NULL with one line in err. */
  void *(*create)(const unsigned char id[TPDIFF_NCCL_ID_BYTES], int rank, int world, int bf16, size_t floats,
                  size_t bucket_floats, double timeout_s, char *err, size_t err_size);
  /* grads [count] (device memory, written by the legacy default stream) := their mean over ranks.
   * The reduction waits for stream 0's work so far (an event), runs bucket by bucket on the own
   * stream, and stream 0's later work waits for it; the call returns when it is done, or aborts the
   * communicator past timeout_s. 0, or -1 with one line in err. */
  int (*allreduce_mean)(void *state, float *grads, size_t count, double timeout_s, char *err, size_t err_size);
  void (*destroy)(void *state);
  /* Enqueues the reduction of grads[off, off + n) on the own stream, after stream 0's work so far
   * (an event), and returns at once: called for a bucket whose gradients the backward has finished
   * while it goes on with earlier layers. 0, or -1 with one line in err. */
  int (*begin)(void *state, float *grads, size_t off, size_t n, double timeout_s, char *err, size_t err_size);
  /* Makes stream 0's later work wait for every enqueued bucket and waits for them, at most timeout_s.
   * 0, or -1 with one line in err. */
  int (*finish)(void *state, double timeout_s, char *err, size_t err_size);
} tpdiff_nccl_api;

typedef const tpdiff_nccl_api *(*tpdiff_nccl_api_fn)(void);
#define TPDIFF_NCCL_API_SYMBOL "tpdiff_nccl_entry"

#endif
