/* comm_reduce.c — the gradient reduction the trainer calls once per step: NCCL on GPU memory where
 * libtpdiff_nccl.so loads, otherwise MPI_Iallreduce on host memory, bucket by bucket (several
 * all-reduces in flight pipeline the transfer), every wait bounded by train.comm_timeout. The buckets
 * whose gradients the last microbatch's backward has finished start during that backward
 * (comm_grad_ready), the rest after it (comm_grad_reduce, which also waits for all of them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm_internal.h"
#include "comm/comm_nccl.h"

void comm_reduce_configure(comm_world *c, const tpdiff_backend *be, double bucket_mib, int use_bf16) {
  c->be = be;
  c->bucket_mib = bucket_mib;
  c->use_bf16 = use_bf16;
}

/* The first reduction: buffers for `floats`, and NCCL on a GPU backend. 0, or -1 with err set. */
static int prepare(comm_world *c, size_t floats, char *err, size_t err_size) {
  size_t bucket = (size_t)(c->bucket_mib * 1048576.0 / sizeof(float));
  if (bucket < 1) bucket = 1;
  if (bucket > (size_t)1 << 30) bucket = (size_t)1 << 30; /* MPI counts are int */
  c->bucket_floats = bucket;
  c->buckets = (int)((floats + bucket - 1) / bucket);
  c->next_bucket = c->buckets;
  c->requests = calloc((size_t)c->buckets + 1, sizeof(MPI_Request));
  if (!c->requests) {
    snprintf(err, err_size, "out of memory for %d all-reduce requests", c->buckets + 1);
    return -1;
  }
  c->reduce_bytes = floats * sizeof(float);
  int on_host = strcmp(c->be->name, "cpu") == 0;
  char why[768] = "";
  if (!on_host) {
    c->nccl = comm_nccl_open(c, floats, bucket, c->use_bf16, why, sizeof why);
    if (c->nccl) {
      c->reduce_bytes = floats * (c->use_bf16 ? 2 : 4);
      if (c->rank == 0)
        printf("# comm: gradient all-reduce: NCCL %s over %d ranks, %s, %d buckets of %.1f MiB\n",
               comm_nccl_version(c->nccl), c->world, c->use_bf16 ? "bf16" : "fp32", c->buckets, c->bucket_mib);
      return 0;
    }
    c->host_grads = malloc(floats * sizeof(float));
    if (!c->host_grads) {
      snprintf(err, err_size, "out of memory for the %zu-float host copy of the gradient", floats);
      return -1;
    }
  }
  if (c->rank == 0)
    printf("# comm: gradient all-reduce: MPI_Allreduce over %d ranks, fp32, %d buckets of %.1f MiB%s%s%s\n", c->world,
           c->buckets, c->bucket_mib, on_host ? "" : " through host memory (NCCL: ", why,
           on_host ? (c->use_bf16 ? "; train.comm_dtype=bf16 applies to NCCL only" : "") : ")");
  fflush(stdout);
  return 0;
}

void comm_reduce_stats_reset(comm_world *c) {
  c->reduce_seconds = 0;
  c->reduce_calls = 0;
}

/* Starts bucket b of grads (count floats): NCCL, or MPI_Iallreduce in place on host memory. */
static int start_bucket(comm_world *c, float *grads, size_t count, int b, char *err, size_t err_size) {
  size_t off = (size_t)b * c->bucket_floats;
  size_t len = count - off < c->bucket_floats ? count - off : c->bucket_floats;
  if (c->nccl) return comm_nccl_begin(c, grads, off, len, err, err_size);
  MPI_Iallreduce(MPI_IN_PLACE, grads + off, (int)len, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                 &((MPI_Request *)c->requests)[b]);
  return 0;
}

void comm_grad_ready(void *ctx, float *grads, size_t count, size_t from_offset) {
  comm_world *c = ctx;
  char err[1024] = "";
  if (!c->mpi) return;
  if (!c->bucket_floats && prepare(c, count, err, sizeof err) != 0) comm_abort(c, 1, "%s", err);
  if (c->host_grads) return; /* a device gradient without NCCL goes through the host after the backward */
  while (c->next_bucket > 0 && (size_t)(c->next_bucket - 1) * c->bucket_floats >= from_offset) {
    c->next_bucket--;
    if (start_bucket(c, grads, count, c->next_bucket, err, sizeof err) != 0) comm_abort(c, 1, "%s", err);
  }
  /* Open MPI moves a message on only while some MPI call runs (no progress thread): poll the
   * buckets in flight at every finished layer range, so they travel during the backward instead of
   * all at its end. Completed requests become MPI_REQUEST_NULL, which the final wait accepts. */
  if (!c->nccl && c->next_bucket < c->buckets) {
    int done = 0;
    MPI_Testall(c->buckets - c->next_bucket, (MPI_Request *)c->requests + c->next_bucket, &done,
                MPI_STATUSES_IGNORE);
  }
}

int comm_grad_reduce(void *ctx, float *grads, size_t count, double *stats, int stat_count, char *err,
                     size_t err_size) {
  comm_world *c = ctx;
  if (!c->mpi) { /* a world of one: the mean over ranks is the gradient itself */
    c->reduce_calls++;
    return 0;
  }
  if (!c->bucket_floats && prepare(c, count, err, err_size) != 0) return -1;
  double t0 = comm_now();
  MPI_Request *req = c->requests;
  /* the step's totals (host doubles) travel beside the gradient on every path */
  MPI_Iallreduce(MPI_IN_PLACE, stats, stat_count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &req[c->buckets]);
  float *host = grads;
  if (c->host_grads) {
    if (c->be->copy_to_host(c->host_grads, grads, count * sizeof(float)) != 0) {
      snprintf(err, err_size, "copying the gradient to the host: %s", c->be->last_error());
      return -1;
    }
    host = c->host_grads;
  }
  /* the buckets the backward did not start (all of them without overlap) */
  while (c->next_bucket > 0) {
    c->next_bucket--;
    if (start_bucket(c, host, count, c->next_bucket, err, err_size) != 0) return -1;
  }
  c->next_bucket = c->buckets; /* the next step starts afresh */
  if (c->nccl) {
    /* the communicator is aborted: no rank can go on, so stop the job naming this rank, as a
     * timeout of the MPI path does */
    if (comm_nccl_finish(c, err, err_size) != 0) comm_abort(c, 3, "%s", err);
    comm_wait(c, &req[c->buckets], 1, "the all-reduce of the step's loss");
  } else {
    comm_wait(c, req, c->buckets + 1, "the gradient all-reduce");
    /* sum, then one scale: the mean over ranks. Every rank receives the same sum, so every rank
     * applies the same update and the replicas stay bit-identical. */
    float inv = 1.0f / (float)c->world;
    for (size_t i = 0; i < count; i++) host[i] *= inv;
    if (c->host_grads && c->be->copy_to_device(grads, c->host_grads, count * sizeof(float)) != 0) {
      snprintf(err, err_size, "copying the reduced gradient to the device: %s", c->be->last_error());
      return -1;
    }
  }
  c->reduce_seconds += comm_now() - t0;
  c->reduce_calls++;
  return 0;
}
