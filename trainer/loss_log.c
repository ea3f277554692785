/* loss_log.c — train.out/log.tsv (trainer/loss_log.h). */
#include "trainer/loss_log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "data/atomic_file.h"

static void write_header(FILE *f, int stages) {
  fprintf(f, "step\tloss");
  for (int k = 0; k < stages; k++) fprintf(f, "\tloss_s%d", k);
  fprintf(f, "\tgrad_norm\tlr\tskipped\n");
}

/* Rewrites path keeping the header and the rows of steps <= done. */
static int keep_rows(const char *path, int stages, long done, char *err, size_t err_size) {
  FILE *in = fopen(path, "r");
  if (!in) return 0; /* nothing logged yet */
  atomic_file af;
  if (atomic_file_open(&af, path, err, err_size) != 0) {
    fclose(in);
    return -1;
  }
  write_header(af.f, stages);
  char *line = NULL;
  size_t cap = 0;
  while (getline(&line, &cap, in) > 0) {
    char *end;
    long step = strtol(line, &end, 10);
    if (end != line && *end == '\t' && step >= 1 && step <= done) fputs(line, af.f);
  }
  free(line);
  fclose(in);
  return atomic_file_commit(&af, err, err_size);
}

int loss_log_open(loss_log *log, const char *dir, int stages, long done, char *err, size_t err_size) {
  memset(log, 0, sizeof *log);
  log->stages = stages;
  snprintf(log->path, sizeof log->path, "%s/log.tsv", dir);
  if (done > 0 && keep_rows(log->path, stages, done, err, err_size) != 0) return -1;
  log->f = fopen(log->path, done > 0 ? "a" : "w");
  if (!log->f) {
    snprintf(err, err_size, "%s: cannot write: %s", log->path, strerror(errno));
    return -1;
  }
  if (done == 0 || ftell(log->f) == 0) write_header(log->f, stages);
  fflush(log->f);
  return 0;
}

int loss_log_append(loss_log *log, long step, const step_stats *st, char *err, size_t err_size) {
  fprintf(log->f, "%ld\t%.17g", step, st->loss);
  for (int k = 0; k < log->stages; k++) {
    if (st->stage_count[k])
      fprintf(log->f, "\t%.17g", st->stage_loss_sum[k] / st->stage_count[k]);
    else
      fprintf(log->f, "\t-");
  }
  fprintf(log->f, "\t%.17g\t%.17g\t%d\n", st->grad_norm, st->lr, st->skipped);
  if (fflush(log->f) != 0 || ferror(log->f)) {
    snprintf(err, err_size, "%s: cannot write: %s", log->path, strerror(errno));
    return -1;
  }
  return 0;
}

void loss_log_close(loss_log *log) {
  if (log->f) fclose(log->f);
  log->f = NULL;
}
