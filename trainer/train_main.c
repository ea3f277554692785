/* train_main.c — `tpdiff-train CONFIG [--section.key=value ...]`, one process per rank (mpirun, srun,
 * or alone): starts MPI (comm/), reads and checks the config on every rank (the same config
 * everywhere, checked by a hash; the world-size rules), picks this rank's GPU, writes the resolved
 * copy into train.out from rank 0, then runs the training (trainer/train_run.c) with the gradient
 * reduced across ranks. A refusal is one line from the lowest failing rank and a non-zero exit on
 * every rank; a failure during training aborts the whole job naming the rank. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/make_dirs.h"
#include "comm/comm.h"
#include "data/atomic_file.h"
#include "data/shard.h"
#include "trainer/config.h"
#include "trainer/device.h"
#include "trainer/train_run.h"
#include "trainer/trainer.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: tpdiff-train CONFIG [--section.key=value ...] [--resume CKPT | --init FILE]\n"
          "       tpdiff-train --help-config   (every config key, its type, default and meaning)\n"
          "Trains the DiT of CONFIG (YAML); prints step, loss, grad norm, lr, time per step. Data parallel under\n"
          "mpirun -np N or srun (README: Multi-process training).\n"
          "A run whose train.out holds checkpoints resumes from the newest one that verifies.\n"
          "  --resume CKPT  resume from this checkpoint (it must verify)\n"
          "  --init FILE    start a new run from the weights of a checkpoint or a safetensors file (EMA when present)\n");
}

static int write_resolved_config(const tpdiff_config *cfg, const char *dir, char *err, size_t err_size) {
  char path[TPDIFF_PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/config.yaml", dir);
  atomic_file af;
  if (atomic_file_open(&af, path, err, err_size) != 0) return -1;
  config_write_yaml(cfg, af.f);
  return atomic_file_commit(&af, err, err_size);
}

/* Rejects settings this build cannot run yet, before anything is written. */
static int check_supported(const tpdiff_config *cfg, char *err, size_t err_size) {
  const char *o = cfg->source;
  if (strcmp(cfg->train_precision, "bf16") == 0 && strcmp(cfg->train_device, "cpu") == 0) {
    snprintf(err, err_size, "%s: train.precision: bf16 needs the CUDA backend (train.device: cpu computes in fp32)", o);
    return -1;
  }
  return 0;
}

/* The refusals that depend on the world size; the same answer on every rank. */
static int check_world(tpdiff_config *cfg, int world, char *err, size_t err_size) {
  const char *o = cfg->source;
  if (cfg->train_global_microbatches > 0) {
    if (cfg->train_global_microbatches % world != 0) {
      snprintf(err, err_size,
               "%s: train.global_microbatches=%d is not divisible by the world size %d; use a multiple of %d or "
               "another number of ranks",
               o, cfg->train_global_microbatches, world, world);
      return -1;
    }
    cfg->train_microbatches = cfg->train_global_microbatches / world;
  }
  long clips = cfg->data_synth_clips;
  const char *what = "data.synth_clips";
  if (cfg->data_path[0]) {
    shard_dataset d;
    char ignored[512];
    if (shard_dataset_open(&d, cfg->data_path, ignored, sizeof ignored) != 0) return 0; /* train_run says why */
    clips = d.total;
    shard_dataset_close(&d);
    what = "the data set's clips";
  }
  if (clips < world) {
    snprintf(err, err_size, "%s: %s = %ld is fewer than the %d ranks: every rank needs clips of its own", o, what,
             clips, world);
    return -1;
  }
  return 0;
}

/* Everything after MPI start-up; every rank returns the same status on a refusal. */
static int run(comm_world *comm, int argc, char **argv) {
  static tpdiff_config cfg;
  char err[TPDIFF_CONFIG_ERROR_MAX + 256] = "";
  /* --resume/--init take a path; everything else after CONFIG is a config override */
  start_options start = {NULL, NULL};
  char **overrides = calloc((size_t)argc, sizeof *overrides);
  int noverrides = 0, failed = !overrides;
  if (failed) snprintf(err, sizeof err, "out of memory");
  for (int i = 2; i < argc && !failed; i++) {
    const char **slot = strcmp(argv[i], "--resume") == 0 ? &start.resume
                        : strcmp(argv[i], "--init") == 0 ? &start.init
                                                          : NULL;
    if (!slot) {
      overrides[noverrides++] = argv[i];
      continue;
    }
    if (i + 1 >= argc) {
      snprintf(err, sizeof err, "%s needs a checkpoint path", argv[i]);
      failed = 1;
      break;
    }
    *slot = argv[++i];
  }
  failed = failed || config_load(&cfg, argv[1], noverrides, overrides, err, sizeof err) != 0 ||
           check_supported(&cfg, err, sizeof err) != 0;
  free(overrides);
  if (comm_agree(comm, failed, err) != 0) return 2;
  comm_set_timeout(comm, cfg.train_comm_timeout);
  /* before anything else collective: ranks that disagree on the config would train different models */
  char *text = config_yaml_text(&cfg, NULL);
  failed = !text;
  if (failed) snprintf(err, sizeof err, "out of memory");
  else failed = comm_check_same_text(comm, text, "the resolved config", err, sizeof err) != 0;
  free(text);
  if (comm_agree(comm, failed, err) != 0) return 2;
  if (comm_agree(comm, check_world(&cfg, comm->world, err, sizeof err) != 0, err) != 0) return 2;

  /* before anything is written: a device that cannot be used is a refusal like a bad key */
  if (strcmp(cfg.train_device, "cpu") != 0) comm_pick_gpu(comm);
  char notice[1024];
  const tpdiff_backend *be = device_open("train.device", cfg.train_device, notice, sizeof notice, err, sizeof err);
  if (comm_agree(comm, !be, err) != 0) return 2;
  if (notice[0] && comm->rank == 0) fprintf(stderr, "tpdiff-train: %s\n", notice);
  /* train.device: auto may have fallen back to the CPU, which refuses bf16 with one line */
  char why[512] = "";
  failed = be->set_precision(strcmp(cfg.train_precision, "bf16") == 0 ? TPDIFF_BF16 : TPDIFF_FP32, why, sizeof why) != 0;
  if (failed) snprintf(err, sizeof err, "%s: %s", cfg.source, why);
  if (comm_agree(comm, failed, err) != 0) return 2;
  /* a plan past the device's memory is refused before anything is written, too (every rank checks
   * its own device) */
  if (comm_agree(comm, trainer_check_fits(&cfg, be, err, sizeof err) != 0, err) != 0) return 1;

  /* rank 0 alone logs and writes; the others keep stderr for their errors */
  if (comm->rank != 0 && !freopen("/dev/null", "w", stdout)) {
    fprintf(stderr, "tpdiff-train: rank %d: cannot silence stdout\n", comm->rank);
    failed = 1;
  }
  if (comm->rank == 0) {
    printf("# tpdiff-train: resolved config (%s)\n", cfg.source);
    config_write_yaml(&cfg, stdout);
    if (comm->world > 1)
      printf("# ranks: %d (%d on this node), %d microbatches each, global batch %d microbatches\n", comm->world,
             comm->local_world, cfg.train_microbatches, cfg.train_microbatches * comm->world);
    fflush(stdout);
    failed = make_dirs(cfg.train_out, "train.out", err, sizeof err) != 0 || write_resolved_config(&cfg, cfg.train_out, err, sizeof err);
  }
  if (comm_agree(comm, failed, err) != 0) return 1;

  comm_reduce_configure(comm, be, cfg.train_comm_bucket_mb, strcmp(cfg.train_comm_dtype, "bf16") == 0);
  int several = comm->world > 1;
  train_parallel par = {comm->rank, comm->world, several ? comm_grad_reduce : NULL, several ? comm_grad_ready : NULL,
                        comm, several ? comm_max_int : NULL};
  int status = train_run(&cfg, be, &start, &par);
  /* a stop by signal (128 + signal) is agreed by every rank and checkpointed: a clean exit */
  if (status != 0 && status < 128 && comm->world > 1)
    comm_abort(comm, status, "training stopped (the line above says why)");
  if (comm->world > 1) {
    comm_barrier(comm, "the end-of-run barrier");
    if (comm->rank == 0 && comm->reduce_calls)
      printf("# comm: %ld gradient all-reduces, %.2f ms each on average, %.2f MB of gradient per rank each\n",
             comm->reduce_calls, 1000.0 * comm->reduce_seconds / comm->reduce_calls, comm->reduce_bytes / 1e6);
  }
  return status;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(argv[1], "--help-config") == 0) {
    config_write_help(stdout);
    return 0;
  }
  static comm_world comm;
  char err[1024];
  if (comm_init(&comm, &argc, &argv, "tpdiff-train", err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-train: %s\n", err);
    return 1;
  }
  int status = run(&comm, argc, argv);
  fflush(stdout);
  comm_finalize(&comm);
  return status;
}
