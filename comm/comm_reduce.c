/* comm_reduce.c — the gradient reduction the trainer calls once per step (comm_grad_reduce): NCCL on
 * GPU memory where libtpdiff_nccl.so loads, otherwise MPI_Iallreduce on host memory, bucket by bucket
 * (several all-reduces in flight pipeline the transfer), every wait bounded by train.comm_timeout. */
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
  int n = 0;
  /* the step's totals (host doubles) travel beside the gradient on every path */
  MPI_Iallreduce(MPI_IN_PLACE, stats, stat_count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &req[n++]);
  if (c->nccl) {
    if (comm_nccl_allreduce_mean(c, grads, count, err, err_size) != 0) return -1;
  } else {
    float *host = grads;
    if (c->host_grads) {
      if (c->be->copy_to_host(c->host_grads, grads, count * sizeof(float)) != 0) {
        snprintf(err, err_size, "copying the gradient to the host: %s", c->be->last_error());
        return -1;
      }
      host = c->host_grads;
    }
    for (size_t off = 0; off < count; off += c->bucket_floats) {
      size_t len = count - off < c->bucket_floats ? count - off : c->bucket_floats;
      MPI_Iallreduce(MPI_IN_PLACE, host + off, (int)len, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req[n++]);
    }
    comm_wait(c, req, n, "the gradient all-reduce");
    n = 0;
    /* sum, then one scale: the mean over ranks. Every rank receives the same sum, so every rank
     * applies the same update and the replicas stay bit-identical. */
    float inv = 1.0f / (float)c->world;
    for (size_t i = 0; i < count; i++) host[i] *= inv;
    if (c->host_grads && c->be->copy_to_device(grads, c->host_grads, count * sizeof(float)) != 0) {
      snprintf(err, err_size, "copying the reduced gradient to the device: %s", c->be->last_error());
      return -1;
    }
  }
  if (n) comm_wait(c, req, n, "the all-reduce of the step's loss");
  c->reduce_seconds += comm_now() - t0;
  c->reduce_calls++;
  return 0;
}
