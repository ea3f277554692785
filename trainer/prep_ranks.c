/* prep_ranks.c — tpdiff-prep's ranks (prep_ranks.h): rank and job id from the launcher's environment,
 * the completion markers in the output folder, and rank 0's wait for every other rank. */
#include "trainer/prep_ranks.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "data/atomic_file.h"

#include "trainer/prep_inputs.h" /* prep_parse_long */

static const char *env(const char *name) {
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

int prep_find_rank(int *rank, int *size, char *err, size_t err_size) {
  const char *pairs[][2] = {{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
                            {"PMI_RANK", "PMI_SIZE"},
                            {"PMIX_RANK", "SLURM_STEP_NUM_TASKS"},
                            {"PMIX_RANK", "SLURM_NTASKS"},
                            {"SLURM_PROCID", "SLURM_STEP_NUM_TASKS"},
                            {"SLURM_PROCID", "SLURM_NTASKS"}};
  *rank = 0;
  *size = 1;
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
    const char *r = env(pairs[i][0]), *s = env(pairs[i][1]);
    if (!r || !s) continue;
    long rv, sv;
    if (prep_parse_long(s, 1, 1 << 20, &sv) != 0 || prep_parse_long(r, 0, sv - 1, &rv) != 0) {
      snprintf(err, err_size, "%s=%s, %s=%s: not a rank within the world size", pairs[i][0], r, pairs[i][1], s);
      return -1;
    }
    *rank = (int)rv;
    *size = (int)sv;
    return 0;
  }
  if (env("PMIX_RANK") && !env("OMPI_COMM_WORLD_SIZE")) {
    snprintf(err, err_size, "PMIX_RANK is set but no world size (OMPI_COMM_WORLD_SIZE or SLURM_NTASKS)");
    return -1;
  }
  return 0;
}

void prep_job_token(char *out, size_t size) {
  const char *ns = env("PMIX_NAMESPACE"), *ompi = env("OMPI_MCA_ess_base_jobid"), *job = env("SLURM_JOB_ID"),
             *step = env("SLURM_STEP_ID");
  if (ns) snprintf(out, size, "%s", ns);
  else if (ompi) snprintf(out, size, "ompi-%s", ompi);
  else if (job) snprintf(out, size, "slurm-%s.%s", job, step ? step : "0");
  else snprintf(out, size, "none");
  for (char *p = out; *p; p++)
    if (isspace((unsigned char)*p)) *p = '_';
}

int prep_write_file_atomic(const char *path, const char *text, char *err, size_t err_size) {
  atomic_file af;
  if (atomic_file_open(&af, path, err, err_size) != 0) return -1;
  fputs(text, af.f);
  return atomic_file_commit(&af, err, err_size);
}

/* DIR/.prep-rank-RRRR.KIND: a rank's marker (KIND done or failed). */
static void marker_path(char *path, size_t size, const char *out, int rank, const char *kind) {
  snprintf(path, size, "%s/.prep-rank-%04d.%s", out, rank, kind);
}

void prep_remove_own_markers(const char *out, int rank) {
  char marker[PATH_MAX];
  marker_path(marker, sizeof marker, out, rank, "done");
  unlink(marker);
  marker_path(marker, sizeof marker, out, rank, "failed");
  unlink(marker);
}

void prep_mark_failed(const char *out, int rank, const char *token, const char *error) {
  char marker[PATH_MAX];
  marker_path(marker, sizeof marker, out, rank, "failed");
  char text[PREP_ERR_SIZE + 300];
  snprintf(text, sizeof text, "token %s\n%s\n", token, error);
  char e2[PREP_ERR_SIZE];
  prep_write_file_atomic(marker, text, e2, sizeof e2);
}

int prep_mark_done(const char *out, int rank, const char *token, char *const *names, const long *clips, int count,
                   char *err, size_t err_size) {
  size_t len = 300;
  for (int s = 0; s < count; s++) len += strlen(names[s]) + 40;
  char *text = malloc(len), *at = text;
  if (!text) {
    if (err_size) err[0] = 0;
    return -1;
  }
  at += sprintf(at, "token %s\n", token);
  for (int s = 0; s < count; s++) at += sprintf(at, "shard %s %ld\n", names[s], clips[s]);
  char marker[PATH_MAX];
  marker_path(marker, sizeof marker, out, rank, "done");
  int rc = prep_write_file_atomic(marker, text, err, err_size);
  free(text);
  return rc;
}

static double seconds_since(const struct timespec *t) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - t->tv_sec) + (now.tv_nsec - t->tv_nsec) * 1e-9;
}

int prep_gather_ranks(const char *out, int size, const char *token, double wait_s, char ***names, long **clips,
                      int *count, char *err, size_t err_size) {
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  int reported_wait = 0;
  for (int r = 1; r < size; r++) {
    char done[PATH_MAX], failed[PATH_MAX];
    marker_path(done, sizeof done, out, r, "done");
    marker_path(failed, sizeof failed, out, r, "failed");
    for (;;) {
      char line[PREP_ERR_SIZE + 64], tok[256] = "";
      FILE *f = fopen(failed, "r");
      if (f) {
        int mine = fgets(line, sizeof line, f) && sscanf(line, "token %255s", tok) == 1 && !strcmp(tok, token);
        if (mine && fgets(line, sizeof line, f)) {
          line[strcspn(line, "\n")] = 0;
          fclose(f);
          snprintf(err, err_size, "rank %d failed: %s", r, line);
          return -1;
        }
        fclose(f);
      }
      f = fopen(done, "r");
      if (f) {
        int mine = fgets(line, sizeof line, f) && sscanf(line, "token %255s", tok) == 1 && !strcmp(tok, token);
        if (mine) {
          char name[256];
          long n;
          while (fgets(line, sizeof line, f))
            if (sscanf(line, "shard %255s %ld", name, &n) == 2) {
              char **grown_names = realloc(*names, sizeof **names * (size_t)(*count + 1));
              if (grown_names) *names = grown_names;
              long *grown_clips = realloc(*clips, sizeof **clips * (size_t)(*count + 1));
              if (grown_clips) *clips = grown_clips;
              if (!grown_names || !grown_clips || !((*names)[*count] = strdup(name))) {
                fclose(f);
                snprintf(err, err_size, "out of memory");
                return -1;
              }
              (*clips)[(*count)++] = n;
            }
          fclose(f);
          break;
        }
        fclose(f);
      }
      if (seconds_since(&start) > wait_s) {
        snprintf(err, err_size, "%s: rank %d did not finish within %.0f s (no marker with job id %s); index.json not written",
                 out, r, wait_s, token);
        return -1;
      }
      if (!reported_wait && seconds_since(&start) > 2.0) {
        fprintf(stderr, "tpdiff-prep: rank 0: waiting for the other ranks to finish\n");
        reported_wait = 1;
      }
      struct timespec nap = {0, 200 * 1000 * 1000};
      nanosleep(&nap, NULL);
    }
  }
  return 0;
}

void prep_remove_done_markers(const char *out, int size) {
  char marker[PATH_MAX];
  for (int r = 1; r < size; r++) {
    marker_path(marker, sizeof marker, out, r, "done");
    unlink(marker);
  }
}
