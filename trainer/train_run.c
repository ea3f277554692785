/* train_run.c — the training loop of tpdiff-train: starts or resumes the run, builds each step's
 * microbatches (stage draw, level, aligned noise), steps the optimizer, logs the loss per stage,
 * writes checkpoints (every train.ckpt_every steps, at the end, on SIGTERM/SIGUSR1) and samples
 * videos every train.sample_every steps and at the end. */
#include "trainer/train_run.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/shard.h"
#include "kernels/kernels.h"
#include "trainer/batch.h"
#include "trainer/batch_shards.h"
#include "trainer/clip_source.h"
#include "trainer/loss_log.h"
#include "trainer/resume.h"
#include "trainer/sample_round.h"
#include "trainer/trainer.h"

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
  batch_builder *builder;
  long step;
} step_source;

static int next_microbatch(void *ctx, int micro, stage_microbatch *out, char *err, size_t err_size) {
  step_source *src = ctx;
  return batch_build(src->builder, src->step, micro, out, err, err_size);
}

/* Loss per stage over the log window (stages are drawn at random, so a window may miss one). */
typedef struct {
  double loss_sum, stage_sum[PYRAMID_MAX_STAGES];
  int steps, stage_count[PYRAMID_MAX_STAGES];
  double seconds;
  long tokens, clips;
} log_window;

static void print_header(int K) {
  printf("%6s %9s", "step", "loss");
  for (int k = 0; k < K && K > 1; k++) printf("   loss_s%d", k);
  printf(" %9s %9s %9s %10s %8s\n", "grad_norm", "lr", "ms/step", "tokens/s", "clips/s");
  fflush(stdout);
}

static void print_window(long step, int K, const log_window *w, const step_stats *last) {
  printf("%6ld %9.5f", step, w->loss_sum / w->steps);
  for (int k = 0; k < K && K > 1; k++) {
    if (w->stage_count[k])
      printf(" %9.5f", w->stage_sum[k] / w->stage_count[k]);
    else
      printf(" %9s", "-");
  }
  printf(" %9.4f %9.2e %9.1f %10.0f %8.1f%s\n", last->grad_norm, last->lr, 1000.0 * w->seconds / w->steps,
         w->tokens / w->seconds, w->clips / w->seconds, last->skipped ? "  (skipped: non-finite)" : "");
  fflush(stdout);
}

/* The data set of data.path against the config's clip shape and stage count, before anything is
 * built: 0, or -1 with one line naming index.json and the key. */
static int check_dataset(const tpdiff_config *cfg, char *err, size_t err_size) {
  shard_dataset d;
  if (shard_dataset_open(&d, cfg->data_path, err, err_size) != 0) return -1;
  const shard_layout *l = &d.layout;
  struct {
    const char *key;
    int has, wants;
  } keys[] = {{"frames", l->frames, cfg->data_frames},
              {"height", l->height, cfg->data_height},
              {"width", l->width, cfg->data_width},
              {"channels", l->channels, cfg->data_channels}};
  int rc = 0;
  for (int i = 0; i < 4 && rc == 0; i++)
    if (keys[i].has != keys[i].wants) {
      snprintf(err, err_size,
               "%s/index.json: \"%s\" is %d but the config has data.%s=%d; set data.%s=%d or use a "
               "data set of that shape",
               cfg->data_path, keys[i].key, keys[i].has, keys[i].key, keys[i].wants, keys[i].key, keys[i].has);
      rc = -1;
    }
  if (rc == 0 && l->levels < cfg->pyramid_stages) {
    snprintf(err, err_size, "%s/index.json: \"levels\" is %d but pyramid.stages=%d needs one level per stage",
             cfg->data_path, l->levels, cfg->pyramid_stages);
    rc = -1;
  }
  if (rc == 0)
    printf("# data: %s: %ld clips in %d shards, %d levels, %s; on_error %s, prefetch %d\n", cfg->data_path, d.total,
           d.count, l->levels,
           l->dtype == SHARD_UINT8     ? "uint8"
           : l->dtype == SHARD_FLOAT16 ? "float16"
                                       : "float32",
           cfg->data_on_error, cfg->data_prefetch);
  shard_dataset_close(&d);
  return rc;
}

/* The signal that asked the run to stop (SIGTERM: the scheduler's end; SIGUSR1: SLURM's
 * pre-emption warning), acted on at the next step boundary: checkpoint, then exit. */
static volatile sig_atomic_t stop_signal;
static void on_stop_signal(int sig) { stop_signal = sig; }

static void install_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);
  /* a file-size limit makes a checkpoint write fail with EFBIG (reported) instead of killing the run */
  signal(SIGXFSZ, SIG_IGN);
}

/* Rank 0 writes the checkpoint for all: the replicas are identical and every rank's draws are
 * keyed by (seed, step, global microbatch), so one file holds the whole job's state. */
static int checkpoint_now(const trainer *tr, long step, long position, const train_parallel *par, char *err,
                          size_t err_size) {
  char path[TPDIFF_PATH_MAX + 32];
  if (par->rank != 0) return 0;
  if (save_checkpoint(tr, step, position, par->world, path, sizeof path, err, err_size) != 0) return -1;
  printf("# checkpoint %s\n", path);
  fflush(stdout);
  return 0;
}

int train_run(const tpdiff_config *cfg, const tpdiff_backend *be, const start_options *start,
              const train_parallel *par) {
  static const train_parallel one_process = {0, 1, NULL, NULL, NULL, NULL};
  if (!par) par = &one_process;
  char err[1024];
  static trainer tr;
  clip_source source;
  batch_builder builder;
  start_point sp;
  if (cfg->data_path[0] && check_dataset(cfg, err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-train: %s\n", err);
    return 2;
  }
  if (trainer_create(&tr, cfg, be, err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-train: %s\n", err);
    return 1;
  }
  if (start_run(&tr, start, &sp, err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-train: %s\n", err);
    trainer_destroy(&tr);
    return 1;
  }
  if (sp.resumed && sp.first_step > cfg->train_steps) {
    printf("# %s: train.steps=%d already done, nothing to run\n", sp.from, cfg->train_steps);
    trainer_destroy(&tr);
    return 0;
  }
  memset(&source, 0, sizeof source); /* with shards the builder reads the loader, not a source */
  if (!cfg->data_path[0] && clip_source_open(&source, cfg, err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-train: %s\n", err);
    trainer_destroy(&tr);
    return 1;
  }
  tr.reduce = par->reduce;
  tr.ready = par->ready;
  tr.reduce_ctx = par->reduce_ctx;
  if (batch_builder_create(&builder, cfg, &tr.schedule, source, par->rank, par->world, err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-train: %s\n", err);
    clip_source_close(&source);
    trainer_destroy(&tr);
    return 1;
  }
  loss_log log = {0};
  if ((cfg->data_path[0] &&
       batch_builder_open_shards(&builder, sp.first_step, sp.stream_position, err, sizeof err) != 0) ||
      (par->rank == 0 && loss_log_open(&log, cfg->train_out, cfg->pyramid_stages, sp.first_step - 1, err, sizeof err) != 0)) {
    fprintf(stderr, "tpdiff-train: %s\n", err);
    batch_builder_destroy(&builder);
    clip_source_close(&source);
    trainer_destroy(&tr);
    return 1;
  }
  int K = cfg->pyramid_stages;
  printf("# backend: %s on %s\n", be->name, be->device);
  printf("# model: %zu parameters, activation arena %.1f MiB, %d threads\n", tr.model.num_floats,
         dit_acts_allocated_bytes(tr.acts) / 1048576.0, k_num_threads());
  printf("# memory (%s, recompute %s): activations", be->name, cfg->train_recompute);
  for (int k = 0; k < tr.plan.stages; k++) printf(" s%d %.1f MiB", k, tr.plan.stage_acts_bytes[k] / 1048576.0);
  printf(", weights/gradients/optimizer %.1f MiB, microbatch %.1f MiB", tr.plan.state_bytes / 1048576.0,
         tr.plan.batch_bytes / 1048576.0);
  if (tr.plan.scratch_bytes) printf(", backend buffers %.1f MiB", tr.plan.scratch_bytes / 1048576.0);
  printf(", sampling %.1f MiB", tr.plan.sample_bytes / 1048576.0);
  printf("; total %.1f MiB", tr.plan.total_bytes / 1048576.0);
  if (tr.plan.free_bytes) printf(" of %.1f MiB free", tr.plan.free_bytes / 1048576.0);
  printf("\n");
  printf("# pyramid: %d stage%s (%s), schedule %s, align %s:", K, K > 1 ? "s" : "", cfg->diffusion_form,
         cfg->pyramid_schedule, cfg->pyramid_align);
  for (int k = 0; k < K; k++)
    printf(" [%d: t %.4f..%.4f, %d frames, %d clips]", k, tr.schedule.end[k], tr.schedule.start[k],
           dit_stage_frames(&tr.model.shape, k), batch_clips_for_stage(cfg, k));
  printf("\n");
  printf("# start: %s\n", sp.from[0] ? sp.from : "a new run");
  print_header(K);
  install_signals();

  int status = 0;
  log_window w = {0};
  long position = sp.stream_position;
  for (long step = sp.first_step; step <= cfg->train_steps; step++) {
    step_source src = {&builder, step};
    double t0 = now_seconds();
    step_stats st = trainer_step(&tr, cfg->train_microbatches, next_microbatch, &src);
    if (st.failed) {
      fprintf(stderr, "tpdiff-train: step %ld: %s\n", step, st.error);
      status = 1;
      break;
    }
    position += batch_step_clips(&builder, step);
    if (par->rank == 0 && loss_log_append(&log, step, &st, err, sizeof err) != 0) {
      fprintf(stderr, "tpdiff-train: step %ld: %s\n", step, err);
      status = 1;
      break;
    }
    w.seconds += now_seconds() - t0;
    w.steps++;
    w.loss_sum += st.loss;
    w.tokens += st.tokens;
    w.clips += st.clips;
    for (int k = 0; k < K; k++) {
      w.stage_sum[k] += st.stage_loss_sum[k];
      w.stage_count[k] += st.stage_count[k];
    }
    if (st.skipped && tr.nonfinite_in_a_row >= TRAIN_MAX_NONFINITE_IN_A_ROW) {
      fprintf(stderr, "tpdiff-train: step %ld: %ld non-finite steps in a row (loss %g, grad norm %g); stopping\n", step,
              tr.nonfinite_in_a_row, st.loss, st.grad_norm);
      if (checkpoint_now(&tr, step, position, par, err, sizeof err) != 0) fprintf(stderr, "tpdiff-train: %s\n", err);
      status = 1;
      break;
    }
    if (step % cfg->train_log_every == 0 || step == cfg->train_steps) {
      print_window(step, K, &w, &st);
      memset(&w, 0, sizeof w);
    }
    /* every rank stops after the same step, whichever of them the signal reached */
    int last = step == cfg->train_steps;
    int sig = par->agree_max ? par->agree_max(par->reduce_ctx, stop_signal) : stop_signal;
    if (last || sig || (cfg->train_ckpt_every > 0 && step % cfg->train_ckpt_every == 0)) {
      if (checkpoint_now(&tr, step, position, par, err, sizeof err) != 0) {
        fprintf(stderr, "tpdiff-train: step %ld: %s\n", step, err);
        status = 1;
        break;
      }
    }
    if (sig) {
      printf("# stopped by %s after step %ld; rerun the same command to resume\n", sig == SIGTERM ? "SIGTERM" : "SIGUSR1",
             step);
      status = 128 + sig;
      break;
    }
    if (par->rank == 0 && (last || (cfg->train_sample_every > 0 && step % cfg->train_sample_every == 0))) {
      if (sample_round(&tr, step, err, sizeof err) != 0) {
        fprintf(stderr, "tpdiff-train: step %ld: sampling: %s\n", step, err);
        status = 1;
        break;
      }
    }
  }
  if (tr.skipped_steps) printf("# %ld steps skipped for non-finite loss or gradient\n", tr.skipped_steps);
  if (batch_shards_skipped(&builder))
    printf("# %ld unreadable clips skipped (data.on_error=skip)\n", batch_shards_skipped(&builder));
  loss_log_close(&log);
  batch_builder_destroy(&builder);
  clip_source_close(&source);
  trainer_destroy(&tr);
  return status;
}
