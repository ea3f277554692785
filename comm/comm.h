/* comm.h — the data-parallel ranks of one job: MPI start-up, rank / local rank / GPU mapping, the
 * collectives tpdiff needs (each bounded by a timeout), the gradient reduction hook for the trainer
 * (MPI_Allreduce on host memory, NCCL on GPUs where libtpdiff_nccl.so loads), and the job-wide abort.
 *
 * No MPI type appears here, so only comm/ compiles against mpi.h. A process started without mpirun
 * or srun is a world of one that never starts MPI (every collective below is then local). Every
 * collective waits at most the timeout set by comm_set_timeout (train.comm_timeout); past it the job
 * is aborted with one line naming the rank, the collective and the timeout, never left hanging. */
#ifndef TPDIFF_COMM_H
#define TPDIFF_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/backend.h"

typedef struct comm_nccl comm_nccl; /* comm/comm_nccl_loader.c */

typedef struct {
  int mpi;                     /* MPI was started: a launcher (mpirun, srun --mpi=pmix) is present */
  int rank, world;             /* in MPI_COMM_WORLD */
  int local_rank, local_world; /* among the ranks sharing this node's memory (MPI_COMM_TYPE_SHARED) */
  int thread_level;            /* what MPI_Init_thread provided */
  double timeout_s;            /* per collective */
  const char *program;         /* prefix of every message, e.g. "tpdiff-train" */
  /* gradient reduction */
  const tpdiff_backend *be;
  double bucket_mib;
  int use_bf16;
  size_t bucket_floats;   /* floats per all-reduce bucket (0 until the first reduction) */
  float *host_grads;      /* staging for a device gradient when NCCL is absent */
  comm_nccl *nccl;        /* NULL: MPI on host memory */
  void *requests;         /* MPI_Request per bucket, plus one for the stats */
  int buckets;
  int next_bucket;        /* buckets [next_bucket, buckets) of this step are started */
  /* reduction accounting since comm_reduce_stats_reset */
  double reduce_seconds;
  long reduce_calls;
  size_t reduce_bytes; /* bytes of gradient each call reduces (per rank, in the wire precision) */
} comm_world;

/* Under a launcher starts MPI (MPI_THREAD_FUNNELED: only the main thread calls MPI; the shard
 * loader's reader thread never does) and fills rank, world, local_rank and local_world; without one,
 * a world of one (refused when srun started several tasks without PMIx). program prefixes every
 * message. 0, or -1 with one line in err. */
int comm_init(comm_world *c, int *argc, char ***argv, const char *program, char *err, size_t err_size);

/* Every later collective waits at most seconds (> 0). */
void comm_set_timeout(comm_world *c, double seconds);

/* One GPU per local rank: before the CUDA backend is loaded, narrows CUDA_VISIBLE_DEVICES to this
 * rank's device — entry local_rank of the list when it holds several (mpirun on a node of GPUs), the
 * list as it is when it holds one (srun --gpus-per-task), device local_rank when it is unset. Returns
 * the device index it picked in the original numbering (-1 when the list was already one device). */
int comm_pick_gpu(const comm_world *c);

/* Every rank passes whether it failed (and, if so, its one-line error). Returns 0 when no rank failed;
 * otherwise the lowest failing rank prints its line (with "rank R: " when the world has more than
 * one rank) to stderr and every rank gets -1. This is how a refusal that every rank finds (a bad key)
 * becomes one line from rank 0 and a non-zero exit everywhere. */
int comm_agree(comm_world *c, int failed, const char *error);

/* Refuses mismatched configs: the 64-bit FNV-1a hash of text (the resolved config) is compared
 * across ranks (one all-reduce of min and max). 0 when every rank has the same text; -1 on every
 * rank, with one line in err (the same on every rank), when not. */
int comm_check_same_text(comm_world *c, const char *text, const char *what, char *err, size_t err_size);

/* The reduction the trainer calls (grad_reduce_fn in trainer/trainer.h); ctx is a comm_world set up
 * configured by comm_reduce_configure. grads are replaced by their mean over ranks, stats by their sum. */
int comm_grad_reduce(void *ctx, float *grads, size_t count, double *stats, int stat_count, char *err,
                     size_t err_size);

/* The companion the trainer calls during the last microbatch's backward (grad_ready_fn): starts the
 * all-reduce of every bucket that lies wholly in grads [from_offset, count), on NCCL's stream on GPUs
 * (true overlap with the backward of earlier layers) or as MPI_Iallreduce on the CPU (progressed
 * when MPI is next entered). Aborts the job on an error. */
void comm_grad_ready(void *ctx, float *grads, size_t count, size_t from_offset);

/* Sets up comm_grad_reduce for gradients on backend be in buckets of bucket_mib MiB. The buffers and,
 * on a GPU backend, the NCCL communicator (libtpdiff_nccl.so, from a unique id that rank 0
 * broadcasts; wire precision bf16 when use_bf16) are made at the first call, when the gradient's size
 * is known; a GPU without NCCL reduces through host memory and MPI. Rank 0 prints one line "# comm:
 * ..." to stdout then, saying which path was taken. */
void comm_reduce_configure(comm_world *c, const tpdiff_backend *be, double bucket_mib, int use_bf16);
void comm_reduce_stats_reset(comm_world *c);

/* The largest of every rank's value (a timed all-reduce); ctx is a comm_world. Used so that every rank
 * acts on a stop signal after the same step, whichever ranks received it. */
int comm_max_int(void *ctx, int value);

/* A barrier bounded by the timeout (what names it in the timeout message). */
void comm_barrier(comm_world *c, const char *what);

/* Takes the whole job down: prints "<program>: rank R: <message>" to stderr and calls MPI_Abort
 * with code. Never returns. */
void comm_abort(const comm_world *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4), noreturn));

/* Frees the reduction buffers and finalizes MPI. */
void comm_finalize(comm_world *c);

/* The FNV-1a 64-bit hash of a string (exposed for the tests). */
uint64_t comm_hash_text(const char *text);

#endif
