/* resume.c — a run's starting point and its checkpoint writes (trainer/resume.h). */
#include "trainer/resume.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/weights_io.h"

/* --init: the weights of another run, from a checkpoint or an exported safetensors file (its EMA
 * when it has one: the weights one samples from), with fresh optimizer state; the EMA restarts from
 * the loaded weights. */
static int init_weights(trainer *tr, const char *path, start_point *sp, char *err, size_t err_size) {
  dit_model *m = &tr->model;
  float *host = malloc(m->num_floats * sizeof(float));
  if (!host) {
    snprintf(err, err_size, "%s: out of memory for %zu parameters", path, m->num_floats);
    return -1;
  }
  int used_ema = 0;
  int rc = weights_read_host(path, m, WEIGHTS_EMA_IF_PRESENT, host, &used_ema, err, err_size);
  if (rc == 0 && (dit_weights_from_host(m, host) != 0 ||
                  (tr->opt.ema && tr->be->copy_device(tr->opt.ema, m->weights, m->num_floats * sizeof(float)) != 0))) {
    snprintf(err, err_size, "%s: copying the weights to the %s backend failed: %s", path, tr->be->name,
             tr->be->last_error());
    rc = -1;
  }
  free(host);
  if (rc == 0) snprintf(sp->from, sizeof sp->from, "initialised from %s (%s weights)", path, used_ema ? "EMA" : "raw");
  return rc;
}

static int resume_from(trainer *tr, const char *path, start_point *sp, char *err, size_t err_size) {
  checkpoint_meta meta;
  if (checkpoint_load(path, tr, &meta, err, err_size) != 0) return -1;
  sp->first_step = meta.step + 1;
  sp->stream_position = meta.stream_position;
  sp->resumed = 1;
  snprintf(sp->from, sizeof sp->from, "resumed from %s (step %ld, written by %d rank%s)", path, meta.step, meta.world,
           meta.world > 1 ? "s" : "");
  return 0;
}

int start_run(trainer *tr, const start_options *opt, start_point *sp, char *err, size_t err_size) {
  memset(sp, 0, sizeof *sp);
  sp->first_step = 1;
  if (opt->resume && opt->init) {
    snprintf(err, err_size, "--resume and --init exclude each other (--resume continues a run, --init starts one)");
    return -1;
  }
  if (opt->init) return init_weights(tr, opt->init, sp, err, err_size);
  if (opt->resume) return resume_from(tr, opt->resume, sp, err, err_size);
  char **paths;
  int n;
  if (checkpoint_list(tr->cfg.train_out, &paths, &n, err, err_size) != 0) return -1;
  int rc = -1;
  for (int i = 0; i < n && rc != 0; i++) {
    char why[1024];
    rc = resume_from(tr, paths[i], sp, why, sizeof why);
    if (rc != 0) fprintf(stderr, "tpdiff-train: skipping a checkpoint that does not verify: %s\n", why);
  }
  for (int i = 0; i < n; i++) free(paths[i]);
  free(paths);
  if (n == 0) return 0; /* a new run */
  if (rc != 0)
    snprintf(err, err_size, "%s: %d checkpoint%s found and none verifies; refusing to start over them (move them "
             "away, or name one with --resume)", tr->cfg.train_out, n, n > 1 ? "s" : "");
  return rc;
}

int save_checkpoint(const trainer *tr, long step, long stream_position, int world, char *path_out, size_t path_size,
                    char *err, size_t err_size) {
  checkpoint_rank_state *rows = malloc(sizeof *rows * (size_t)world);
  if (!rows) {
    snprintf(err, err_size, "out of memory for %d rank rows", world);
    return -1;
  }
  /* every rank's stream is keyed by (seed, step, global microbatch): the rows are alike but for the rank */
  for (int r = 0; r < world; r++)
    rows[r] = (checkpoint_rank_state){r, tr->cfg.train_seed, step + 1, stream_position};
  checkpoint_meta meta = {.step = step,
                          .stream_position = stream_position,
                          .skipped_steps = tr->skipped_steps,
                          .nonfinite_in_a_row = tr->nonfinite_in_a_row,
                          .world = world};
  int rc = checkpoint_write(tr->cfg.train_out, tr, &meta, rows, world, err, err_size);
  free(rows);
  if (rc == 0) rc = checkpoint_prune(tr->cfg.train_out, tr->cfg.train_keep, err, err_size);
  if (path_out) checkpoint_path(path_out, path_size, tr->cfg.train_out, step);
  return rc;
}
