/* comm_nccl.h — the NCCL path of the gradient reduction, private to comm/: loads libtpdiff_nccl.so,
 * builds the communicator from a unique id that rank 0 broadcasts over MPI, and reduces through it. */
#ifndef TPDIFF_COMM_NCCL_H
#define TPDIFF_COMM_NCCL_H

#include <stddef.h>

#include "comm/comm.h"

/* Collective over every rank: each rank tries to load the library, the ranks agree (one that cannot
 * makes all fall back), then build the communicator. Returns the state, or NULL with one line in why
 * (the library is missing, ...) — the same decision on every rank. */
comm_nccl *comm_nccl_open(comm_world *c, size_t floats, size_t bucket_floats, int bf16, char *why, size_t why_size);

/* Enqueues the mean over ranks of grads[off, off + n) (device memory), after the backend's work so far.
 * 0, or -1 with one line in err. */
int comm_nccl_begin(comm_world *c, float *grads, size_t off, size_t n, char *err, size_t err_size);

/* Waits for every enqueued bucket (bounded by the timeout); later backend work waits for them too.
 * 0, or -1 with one line in err. */
int comm_nccl_finish(comm_world *c, char *err, size_t err_size);

/* NCCL's version string ("" when not loaded). */
const char *comm_nccl_version(const comm_nccl *n);

void comm_nccl_close(comm_nccl *n);

#endif
