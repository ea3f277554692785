/* mpi_train_check.c — data-parallel training checked against itself, under mpirun:
 *
 *   mpi_train_check grad CONFIG [--key=value ...]
 *       kGradStep steps on every rank with the gradient reduced by comm/; rank 0 then takes the same
 *       steps on one process over the same global batches (world · train.microbatches microbatches)
 *       and compares the last step's gradients: normwise relative error of the gradient and of the
 *       loss, limit 1e-6 (train.grad_clip must be 0, so the step leaves the reduced gradient in
 *       place). Not the first step: the model starts adaLN-Zero (every gate 0), so at step 1 the
 *       gradient of most of each block is exactly 0 and a bucket reduced before its layers'
 *       gradients were written would pass unnoticed.
 *   mpi_train_check steps CONFIG [--key=value ...]
 *       train.steps steps; rank 0 prints "loss <step> <value %.9e>" per step, then every rank's
 *       weights, AdamW moments and EMA are compared bit for bit with rank 0's.
 *
 * Both run on the backend train.device names (the CPU by default; `cuda` with libtpdiff_cuda.so, or
 * the emulated backend through $TPDIFF_CUDA_LIB) and reduce as tpdiff-train does: MPI, or NCCL where
 * libtpdiff_nccl.so loads, with train.comm_dtype on the wire (bf16: the gradient limit is 2^-8
 * instead of 1e-6, for the rounding of each rank's part and of the mean).
 *
 * Prints PASS/FAIL lines from rank 0 (tests/run_all.sh counts them); exit status 1 when a case failed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "comm/comm.h"
#include "tests/unit/test_report.h"
#include "trainer/batch.h"
#include "trainer/clip_source.h"
#include "trainer/device.h"
#include "trainer/trainer.h"

static const tpdiff_backend *g_backend; /* train.device's */

typedef struct {
  batch_builder builder;
  clip_source source;
  long step;
} run_data;

static int next_microbatch(void *ctx, int micro, stage_microbatch *out, char *err, size_t err_size) {
  run_data *d = ctx;
  return batch_build(&d->builder, d->step, micro, out, err, err_size);
}

/* A trainer and its data for cfg as rank of world (reduce NULL: one process). Exits on failure. */
static void open_run(trainer *tr, run_data *d, const tpdiff_config *cfg, int rank, int world, comm_world *comm) {
  char err[1024];
  if (trainer_create(tr, cfg, g_backend, err, sizeof err) != 0 ||
      clip_source_open(&d->source, cfg, err, sizeof err) != 0 ||
      batch_builder_create(&d->builder, cfg, &tr->schedule, d->source, rank, world, err, sizeof err) != 0)
    comm_abort(comm, 1, "setting up the run: %s", err);
  if (comm) {
    comm_reduce_configure(comm, g_backend, cfg->train_comm_bucket_mb, strcmp(cfg->train_comm_dtype, "bf16") == 0);
    tr->reduce = comm_grad_reduce;
    /* TPDIFF_CHECK_NO_OVERLAP=1: every bucket after the backward, as without comm_grad_ready */
    const char *no = getenv("TPDIFF_CHECK_NO_OVERLAP");
    tr->ready = no && no[0] == '1' ? NULL : comm_grad_ready;
    tr->reduce_ctx = comm;
  }
}

static void close_run(trainer *tr, run_data *d) {
  batch_builder_destroy(&d->builder);
  clip_source_close(&d->source);
  trainer_destroy(tr);
}

static step_stats step_or_abort(trainer *tr, run_data *d, long step, comm_world *comm) {
  d->step = step;
  step_stats st = trainer_step(tr, tr->cfg.train_microbatches, next_microbatch, d);
  if (st.failed) comm_abort(comm, 1, "step %ld: %s", step, st.error);
  return st;
}

/* A host copy of n floats of the backend's memory (the caller frees it). Exits on failure. */
static float *to_host(comm_world *comm, const float *buffer, size_t n) {
  float *host = malloc(n * sizeof(float));
  if (!host || g_backend->copy_to_host(host, buffer, n * sizeof(float)) != 0)
    comm_abort(comm, 1, "copying %zu floats to the host: %s", n, host ? g_backend->last_error() : "out of memory");
  return host;
}

static double rel_error(const float *a, const float *b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - (double)b[i];
    num += d * d;
    den += (double)b[i] * (double)b[i];
  }
  return sqrt(num / (den > 0 ? den : 1));
}

enum { kGradStep = 3 };

static void check_gradient(comm_world *comm, const tpdiff_config *cfg) {
  static trainer tr, ref;
  static run_data d, rd;
  if (cfg->train_grad_clip != 0) comm_abort(comm, 2, "the grad check needs --train.grad_clip=0");
  open_run(&tr, &d, cfg, comm->rank, comm->world, comm);
  step_stats st = {0};
  for (long step = 1; step <= kGradStep; step++) st = step_or_abort(&tr, &d, step, comm);
  if (comm->rank == 0) {
    /* the same global batch on one process: microbatch g = rank · M + micro for every rank */
    tpdiff_config one = *cfg;
    one.train_microbatches = cfg->train_microbatches * comm->world;
    open_run(&ref, &rd, &one, 0, 1, NULL);
    step_stats rs = {0};
    for (long step = 1; step <= kGradStep; step++) rs = step_or_abort(&ref, &rd, step, comm);
    size_t n = tr.model.num_floats;
    char name[128];
    snprintf(name, sizeof name, "reduced gradient = single-process gradient at step %d (%d ranks x %d microbatches)",
             kGradStep, comm->world, cfg->train_microbatches);
    float *grads = to_host(comm, tr.model.grads, n), *ref_grads = to_host(comm, ref.model.grads, n);
    int bf16_wire = strcmp(cfg->train_comm_dtype, "bf16") == 0 && strcmp(g_backend->name, "cpu") != 0;
    report(name, rel_error(grads, ref_grads, n), bf16_wire ? 1.0 / 256 : 1e-6, "%zu floats, %ld clips, %s on %s", n,
           st.clips, bf16_wire ? "bf16 wire" : "fp32", g_backend->name);
    free(grads);
    free(ref_grads);
    float a = (float)st.loss, b = (float)rs.loss;
    snprintf(name, sizeof name, "step loss over all ranks = single-process loss (%d ranks)", comm->world);
    report(name, rel_error(&a, &b, 1), 1e-6, "%.9f vs %.9f", st.loss, rs.loss);
    check("step clips = single-process clips", st.clips == rs.clips, "%ld vs %ld", st.clips, rs.clips);
    close_run(&ref, &rd);
  }
  close_run(&tr, &d);
}

/* Rank r's copy of buffer equals rank 0's, bit for bit: 1 on every rank when all do. */
static int same_everywhere(comm_world *comm, const float *buffer, size_t n) {
  float *zero = malloc(n * sizeof(float));
  if (!zero) comm_abort(comm, 1, "out of memory");
  memcpy(zero, buffer, n * sizeof(float));
  MPI_Bcast(zero, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
  int mine = memcmp(zero, buffer, n * sizeof(float)) == 0, all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  free(zero);
  return all;
}

static void check_steps(comm_world *comm, const tpdiff_config *cfg) {
  static trainer tr;
  static run_data d;
  open_run(&tr, &d, cfg, comm->rank, comm->world, comm);
  int finite = 1;
  for (long step = 1; step <= cfg->train_steps; step++) {
    step_stats st = step_or_abort(&tr, &d, step, comm);
    finite &= isfinite(st.loss) && !st.skipped;
    if (comm->rank == 0) printf("loss %ld %.9e\n", step, st.loss);
  }
  size_t n = tr.model.num_floats;
  struct {
    const char *what;
    const float *buffer;
  } parts[] = {{"weights", tr.model.weights}, {"AdamW m", tr.opt.m}, {"AdamW v", tr.opt.v}, {"EMA", tr.opt.ema}};
  char name[160];
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    if (!parts[i].buffer) continue;
    float *host = to_host(comm, parts[i].buffer, n);
    int same = same_everywhere(comm, host, n);
    free(host);
    snprintf(name, sizeof name, "%s bit-identical on all %d ranks after %d steps", parts[i].what, comm->world,
             cfg->train_steps);
    if (comm->rank == 0) check(name, same, "%zu floats", n);
  }
  if (comm->rank == 0) check("every step finite", finite, NULL);
  close_run(&tr, &d);
}

int main(int argc, char **argv) {
  static comm_world comm;
  char err[1024];
  if (comm_init(&comm, &argc, &argv, "mpi_train_check", err, sizeof err) != 0) {
    fprintf(stderr, "mpi_train_check: %s\n", err);
    return 1;
  }
  if (argc < 3 || (strcmp(argv[1], "grad") != 0 && strcmp(argv[1], "steps") != 0)) {
    if (comm.rank == 0) fprintf(stderr, "usage: mpi_train_check grad|steps CONFIG [--key=value ...]\n");
    comm_finalize(&comm);
    return 2;
  }
  static tpdiff_config cfg;
  if (config_load(&cfg, argv[2], argc - 3, argv + 3, err, sizeof err) != 0) comm_abort(&comm, 2, "%s", err);
  comm_set_timeout(&comm, cfg.train_comm_timeout);
  if (strcmp(cfg.train_device, "cpu") != 0) comm_pick_gpu(&comm);
  char notice[1024] = "", why[512] = "";
  g_backend = device_open("train.device", cfg.train_device, notice, sizeof notice, err, sizeof err);
  if (!g_backend) comm_abort(&comm, 2, "%s", err);
  if (notice[0] && comm.rank == 0) printf("# %s\n", notice);
  tpdiff_precision precision = strcmp(cfg.train_precision, "bf16") == 0 ? TPDIFF_BF16 : TPDIFF_FP32;
  if (g_backend->set_precision(precision, why, sizeof why) != 0) comm_abort(&comm, 2, "%s", why);
  if (comm.rank == 0) printf("# backend: %s on %s\n", g_backend->name, g_backend->device);
  /* tpdiff-train's rule (trainer/train_main.c): the global count split evenly over the ranks */
  if (cfg.train_global_microbatches > 0) {
    if (cfg.train_global_microbatches % comm.world != 0) comm_abort(&comm, 2, "train.global_microbatches is not divisible by the world size");
    cfg.train_microbatches = cfg.train_global_microbatches / comm.world;
  }
  if (strcmp(argv[1], "grad") == 0)
    check_gradient(&comm, &cfg);
  else
    check_steps(&comm, &cfg);
  int failures = test_failures;
  MPI_Bcast(&failures, 1, MPI_INT, 0, MPI_COMM_WORLD);
  fflush(stdout);
  comm_finalize(&comm);
  return failures ? 1 : 0;
}
