/* comm.c — MPI start-up, the local rank, the GPU of each local rank, the timed wait every collective
 * goes through, the start-up agreements (errors, config hash), the barrier and the job-wide abort. */
#include "comm/comm.h"

#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm/comm_internal.h"
#include "comm/comm_nccl.h"

double comm_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int comm_init(comm_world *c, int *argc, char ***argv, const char *program, char *err, size_t err_size) {
  memset(c, 0, sizeof *c);
  c->program = program;
  c->timeout_s = 300;
  c->world = 1;
  c->local_world = 1;
  /* Started without a launcher, the process is a world of one and never starts MPI: a singleton
   * MPI_Init would cost a start-up, need PMIx shared-memory files (which fail under a file-size
   * limit) and leave Open MPI's allocations to the leak checker of the sanitizer builds. */
  if (!getenv("PMIX_RANK") && !getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_RANK")) {
    const char *tasks = getenv("SLURM_STEP_NUM_TASKS");
    if (getenv("SLURM_STEP_ID") && tasks && atoi(tasks) > 1) {
      snprintf(err, err_size,
               "started by srun as one of %s tasks without PMIx, so the ranks cannot find each other; use "
               "srun --mpi=pmix (Debian's Open MPI supports only PMIx)",
               tasks);
      return -1;
    }
    return 0;
  }
  c->mpi = 1;
  /* FUNNELED: the shard loader's reader thread never calls MPI, only the main thread does. */
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &c->thread_level) != MPI_SUCCESS) {
    snprintf(err, err_size, "MPI_Init_thread failed (is the launcher's Open MPI the one this binary links?)");
    return -1;
  }
  if (c->thread_level < MPI_THREAD_FUNNELED) {
    snprintf(err, err_size, "MPI provides thread level %d, tpdiff needs MPI_THREAD_FUNNELED (%d)", c->thread_level,
             MPI_THREAD_FUNNELED);
    MPI_Finalize();
    return -1;
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
  MPI_Comm_size(MPI_COMM_WORLD, &c->world);
  /* The local rank comes from the ranks that share memory with this one, not from a launcher's
   * variables (OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID), so it is right under mpirun, srun and any
   * other launcher alike. A blocking split: MPI has no non-blocking one; a rank that never starts is
   * reported by the launcher. */
  MPI_Comm node;
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node) != MPI_SUCCESS) {
    snprintf(err, err_size, "rank %d: MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) failed", c->rank);
    return -1;
  }
  MPI_Comm_rank(node, &c->local_rank);
  MPI_Comm_size(node, &c->local_world);
  MPI_Comm_free(&node);
  return 0;
}

void comm_set_timeout(comm_world *c, double seconds) { c->timeout_s = seconds; }

void comm_abort(const comm_world *c, int code, const char *fmt, ...) {
  char line[1536];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fflush(stdout);
  if (!c->mpi) {
    fprintf(stderr, "%s: %s\n", c->program, line);
    exit(code);
  }
  fprintf(stderr, "%s: rank %d of %d: %s; aborting the job\n", c->program, c->rank, c->world, line);
  fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  _exit(code); /* MPI_Abort does not return; this keeps the promise if an implementation does */
}

void comm_wait(comm_world *c, MPI_Request *requests, int n, const char *what) {
  double deadline = comm_now() + c->timeout_s;
  long polls = 0;
  for (;;) {
    int done = 0;
    MPI_Testall(n, requests, &done, MPI_STATUSES_IGNORE);
    if (done) return;
    if (comm_now() > deadline)
      comm_abort(c, 3, "%s did not complete within train.comm_timeout = %g s (another rank stopped, hung or died)",
                 what, c->timeout_s);
    /* Spin briefly (a step's all-reduce usually finishes within microseconds of the last rank's
     * arrival), then sleep between polls so a waiting rank leaves the cores to ranks still computing
     * (oversubscribed runs). */
    if (++polls < 2000) {
      sched_yield();
    } else {
      struct timespec ts = {0, 100000};
      nanosleep(&ts, NULL);
    }
  }
}

int comm_pick_gpu(const comm_world *c) {
  const char *v = getenv("CUDA_VISIBLE_DEVICES");
  char buf[32];
  if (!v || !*v) {
    snprintf(buf, sizeof buf, "%d", c->local_rank);
    setenv("CUDA_VISIBLE_DEVICES", buf, 1);
    return c->local_rank;
  }
  int n = 1;
  for (const char *p = v; *p; p++) n += *p == ',';
  if (n == 1) return -1;
  int pick = c->local_rank % n;
  const char *p = v;
  for (int i = 0; i < pick; i++) p = strchr(p, ',') + 1;
  size_t len = strcspn(p, ",");
  char entry[256];
  snprintf(entry, sizeof entry, "%.*s", (int)(len < sizeof entry - 1 ? len : sizeof entry - 1), p);
  setenv("CUDA_VISIBLE_DEVICES", entry, 1);
  return pick;
}

int comm_agree(comm_world *c, int failed, const char *error) {
  int mine = failed ? c->rank : c->world, first = mine;
  if (c->mpi) {
    MPI_Request r;
    MPI_Iallreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD, &r);
    comm_wait(c, &r, 1, "the start-up check");
  }
  if (first == c->world) return 0;
  if (first == c->rank) {
    if (c->world > 1)
      fprintf(stderr, "%s: rank %d of %d: %s\n", c->program, c->rank, c->world, error);
    else
      fprintf(stderr, "%s: %s\n", c->program, error);
    fflush(stderr);
  }
  return -1;
}

uint64_t comm_hash_text(const char *text) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
    h ^= *p;
    h *= 0x100000001b3ULL;
  }
  return h;
}

int comm_check_same_text(comm_world *c, const char *text, const char *what, char *err, size_t err_size) {
  if (!c->mpi) return 0;
  uint64_t h = comm_hash_text(text);
  /* max of h and of ~h in one all-reduce: max(~h) = ~min(h), so every rank learns min and max */
  uint64_t mine[2] = {h, ~h}, all[2] = {0, 0};
  MPI_Request r;
  MPI_Iallreduce(mine, all, 2, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD, &r);
  comm_wait(c, &r, 1, "the config hash check");
  uint64_t hi = all[0], lo = ~all[1];
  if (hi == lo) return 0;
  snprintf(err, err_size,
           "%s differs between ranks (hash %016llx to %016llx over %d ranks); start every rank with the same "
           "config file and --key=value overrides",
           what, (unsigned long long)lo, (unsigned long long)hi, c->world);
  return -1;
}

int comm_max_int(void *ctx, int value) {
  comm_world *c = ctx;
  int all = value;
  if (!c->mpi) return value;
  MPI_Request r;
  MPI_Iallreduce(&value, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD, &r);
  comm_wait(c, &r, 1, "the stop-signal check");
  return all;
}

void comm_barrier(comm_world *c, const char *what) {
  if (!c->mpi) return;
  MPI_Request r;
  MPI_Ibarrier(MPI_COMM_WORLD, &r);
  comm_wait(c, &r, 1, what);
}

void comm_finalize(comm_world *c) {
  comm_nccl_close(c->nccl);
  c->nccl = NULL;
  free(c->host_grads);
  free(c->requests);
  c->host_grads = NULL;
  c->requests = NULL;
  if (c->mpi) MPI_Finalize();
  c->mpi = 0;
}
