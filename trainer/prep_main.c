/* prep_main.c — `tpdiff-prep --out DIR [options] VIDEO_OR_FOLDER...`: decodes real video files
 * (data/video_decode) into clips of T frames and writes them as HDF5 shards with every pyramid level
 * (data/shard.h), plus DIR/index.json and, with class names, DIR/classes.txt.
 *
 * Several processes (mpirun -np N, srun): each rank reads its rank and world size from the
 * environment (OMPI_COMM_WORLD_RANK/SIZE, PMI_RANK/SIZE, PMIX_RANK or SLURM_PROCID with
 * SLURM_NTASKS; no MPI library is linked), every rank walks the same sorted file list, takes the files
 * i with i % size == rank and writes its own shards shard-RRRR-NNNNN.h5. When a rank is done it
 * writes DIR/.prep-rank-RRRR.done (temporary name, fsync, rename): the job's id (PMIX_NAMESPACE,
 * else OMPI_MCA_ess_base_jobid, else SLURM_JOB_ID.SLURM_STEP_ID), then one line per shard
 * "shard NAME CLIPS"; a rank that fails writes .prep-rank-RRRR.failed with its error line instead.
 * Rank 0 waits (polling every 0.2 s, --wait-s seconds at most, default 3600) until every rank's
 * marker with this job's id is there, then writes index.json listing all shards in rank order and
 * removes the markers. Markers of an earlier job carry another id and are ignored; a rank's own
 * stale marker is removed when it starts.
 *
 * This file: the command line, the run (clips appended to shards as they are decoded, progress) and
 * main; the input list and labels are trainer/prep_inputs.c, ranks and markers trainer/prep_ranks.c. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "data/shard.h"
#include "data/video_decode.h"
#include "trainer/prep_inputs.h"
#include "trainer/prep_ranks.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: tpdiff-prep --out DIR [--frames T] [--size HxW] [--fps F] [--levels L] [--stride S]\n"
          "                   [--clips-per-shard N] [--labels FILE.csv | --labels-from-folders]\n"
          "                   [--deflate 0..9] [--on-error fail|skip] [--max-clips-per-file N]\n"
          "                   [--threads N] [--wait-s SEC] VIDEO_OR_FOLDER...\n"
          "Decodes videos (anything FFmpeg opens; folders are searched for video file extensions) into clips\n"
          "of T frames, centre-cropped and resized to HxW, at F frames per second, and writes them to\n"
          "DIR/shard-NNNNN.h5 with pyramid levels 0..L (level l averages groups of 2^l frames) and DIR/index.json.\n"
          "  --frames T            frames per clip (16); divisible by 2^L\n"
          "  --size HxW            frame size (32x32)\n"
          "  --fps F               output frame rate, e.g. 8 or 30000/1001 (0 = each file's own rate)\n"
          "  --levels L            coarsest pyramid level (2: levels 0, 1, 2)\n"
          "  --stride S            frames between clip starts (T: back to back)\n"
          "  --clips-per-shard N   (256)\n"
          "  --labels FILE.csv     lines path,label; relative paths from the CSV's folder; label an integer or a\n"
          "                        class name (names are numbered in sorted order, see DIR/classes.txt); without\n"
          "                        VIDEO arguments the CSV lists the videos\n"
          "  --labels-from-folders the class is the sub-folder below the folder given (sorted -> 0..n-1)\n"
          "  --deflate 0..9        HDF5 deflate+shuffle level (0 = none)\n"
          "  --on-error fail|skip  a bad video stops the run (fail) or is logged, counted and skipped\n"
          "  --max-clips-per-file N  at most N clips from one video (0 = all)\n"
          "  --threads N           decoder threads per process (0 = one per core; default 0, 1 under MPI)\n"
          "  --wait-s SEC          rank 0 waits this long for the other ranks (3600)\n"
          "Under mpirun/srun each rank takes every size-th file and writes shard-RRRR-NNNNN.h5; rank 0 writes\n"
          "index.json once all ranks are done.\n");
}

static int fail_usage(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "tpdiff-prep: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  return 2;
}

/* "F" or "N/D" as frames per second, >= 0. */
static int parse_fps(const char *s, double *out) {
  char *end;
  errno = 0;
  double num = strtod(s, &end), den = 1.0;
  if (errno || end == s) return -1;
  if (*end == '/') {
    const char *d = end + 1;
    den = strtod(d, &end);
    if (end == d || den <= 0) return -1;
  }
  if (*end || !isfinite(num) || num < 0) return -1;
  *out = num / den;
  return 0;
}

/* ---- the run ------------------------------------------------------------------------------------ */

typedef struct {
  const char *out;
  int rank, size;
  shard_layout layout;
  shard_write_options wopt;
  long clips_per_shard;
  int fps_from_source;
  /* the shard being written */
  shard_writer *writer;
  long in_shard;
  /* finished shards */
  char **names;
  long *clips;
  int shards, shards_cap;
  /* progress */
  int label;
  long total_clips;
  int files_done, files_total, files_skipped;
  double bytes_done, bytes_total, file_bytes;
  video_info file_info;
  int frames;
  struct timespec start, last_report;
  int warned_fps;
  int write_failed; /* the last error came from the shard writer */
} prep_run;

static double seconds_since(const struct timespec *t) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - t->tv_sec) + (now.tv_nsec - t->tv_nsec) * 1e-9;
}

static void report(prep_run *p, int force) {
  if (!force && seconds_since(&p->last_report) < 1.0) return;
  clock_gettime(CLOCK_MONOTONIC, &p->last_report);
  double elapsed = seconds_since(&p->start);
  double rate = elapsed > 0 ? p->bytes_done / elapsed : 0;
  double left = rate > 0 ? (p->bytes_total - p->bytes_done) / rate : 0;
  char who[64] = "";
  if (p->size > 1) snprintf(who, sizeof who, "rank %d/%d: ", p->rank, p->size);
  fprintf(stderr, "tpdiff-prep: %sfiles %d/%d, %ld clips, %.1f MB/s, ETA %d:%02d%s\n", who, p->files_done,
          p->files_total, p->total_clips, rate / 1e6, (int)(left / 60), (int)fmod(left, 60.0), force ? " (done)" : "");
}

static int close_shard(prep_run *p, char *err) {
  if (!p->writer) return 0;
  shard_writer *w = p->writer;
  p->writer = NULL;
  if (shard_writer_close(w, err, PREP_ERR_SIZE) != 0) return -1;
  p->clips[p->shards - 1] = p->in_shard;
  p->in_shard = 0;
  return 0;
}

static int open_shard(prep_run *p, char *err) {
  if (p->shards == p->shards_cap) {
    int cap = p->shards_cap ? 2 * p->shards_cap : 16;
    char **names = realloc(p->names, sizeof *names * (size_t)cap);
    if (names) p->names = names;
    long *clips = realloc(p->clips, sizeof *clips * (size_t)cap);
    if (clips) p->clips = clips;
    if (!names || !clips) {
      snprintf(err, PREP_ERR_SIZE, "out of memory");
      return -1;
    }
    p->shards_cap = cap;
  }
  char name[64], path[PATH_MAX];
  if (p->size > 1) snprintf(name, sizeof name, "shard-%04d-%05d.h5", p->rank, p->shards);
  else snprintf(name, sizeof name, "shard-%05d.h5", p->shards);
  snprintf(path, sizeof path, "%s/%s", p->out, name);
  if (!(p->names[p->shards] = strdup(name))) {
    snprintf(err, PREP_ERR_SIZE, "out of memory");
    return -1;
  }
  p->clips[p->shards] = 0;
  p->shards++;
  if (p->fps_from_source) p->layout.fps = p->file_info.fps;
  p->writer = shard_writer_open(path, &p->layout, &p->wopt, err, PREP_ERR_SIZE);
  return p->writer ? 0 : -1;
}

static int append_clip(void *user, const float *clip, long start, const char *source, char *err, size_t err_size) {
  prep_run *p = user;
  if (p->fps_from_source && p->writer && fabs(p->file_info.fps - p->layout.fps) > 1e-6 && !p->warned_fps) {
    fprintf(stderr, "tpdiff-prep: warning: %s runs at %.4g fps, the shard at %.4g fps; pass --fps to resample\n",
            source, p->file_info.fps, p->layout.fps);
    p->warned_fps = 1;
  }
  p->write_failed = 1; /* until this clip is in */
  if (!p->writer && open_shard(p, err) != 0) return -1;
  if (shard_writer_append(p->writer, clip, p->label, source, err, err_size) != 0) return -1;
  p->in_shard++;
  p->total_clips++;
  if (p->in_shard >= p->clips_per_shard && close_shard(p, err) != 0) return -1;
  p->write_failed = 0;
  /* progress inside a long file: the share of its duration done so far */
  double expected = p->file_info.duration_s * p->file_info.fps;
  double share = expected > 0 ? (start + p->frames) / expected : 0;
  if (share > 1) share = 1;
  double saved = p->bytes_done;
  p->bytes_done += share * p->file_bytes;
  report(p, 0);
  p->bytes_done = saved;
  return 0;
}

int main(int argc, char **argv) {
  const char *out = NULL, *labels_csv = NULL, *on_error = "fail";
  long frames = 16, height = 32, width = 32, levels = 2, stride = 0, per_shard = 256, deflate = 0, max_clips = 0,
       threads = -1, wait_s = 3600;
  double fps = 0;
  int from_folders = 0;
  char **inputs = calloc((size_t)argc, sizeof *inputs);
  int n_inputs = 0;
  if (!inputs) return 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    }
    if (!strcmp(a, "--labels-from-folders")) {
      from_folders = 1;
      continue;
    }
    if (strncmp(a, "--", 2)) {
      inputs[n_inputs++] = argv[i];
      continue;
    }
    if (i + 1 >= argc) return fail_usage("%s: missing value (see --help)", a);
    const char *v = argv[++i];
    struct {
      const char *flag;
      long *target, lo, hi;
    } ints[] = {{"--frames", &frames, 1, 4096},           {"--levels", &levels, 0, SHARD_MAX_LEVELS - 1},
                {"--stride", &stride, 0, 1L << 30},        {"--clips-per-shard", &per_shard, 1, 1L << 30},
                {"--deflate", &deflate, 0, 9},             {"--max-clips-per-file", &max_clips, 0, 1L << 30},
                {"--threads", &threads, 0, 1024},          {"--wait-s", &wait_s, 1, 1L << 30}};
    int matched = 0;
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
      if (!strcmp(a, ints[k].flag)) {
        matched = 1;
        if (prep_parse_long(v, ints[k].lo, ints[k].hi, ints[k].target) != 0)
          return fail_usage("%s: expected an integer in %ld..%ld, got '%s'", a, ints[k].lo, ints[k].hi, v);
      }
    if (matched) continue;
    if (!strcmp(a, "--out")) {
      out = v;
    } else if (!strcmp(a, "--labels")) {
      labels_csv = v;
    } else if (!strcmp(a, "--on-error")) {
      on_error = v;
      if (strcmp(v, "fail") && strcmp(v, "skip")) return fail_usage("--on-error: expected fail or skip, got '%s'", v);
    } else if (!strcmp(a, "--fps")) {
      if (parse_fps(v, &fps) != 0) return fail_usage("--fps: expected a rate like 8, 29.97 or 30000/1001, got '%s'", v);
    } else if (!strcmp(a, "--size")) {
      char extra;
      if (sscanf(v, "%ldx%ld%c", &height, &width, &extra) != 2 || height < 1 || width < 1 || height > 16384 ||
          width > 16384)
        return fail_usage("--size: expected HxW (e.g. 32x32), got '%s'", v);
    } else {
      return fail_usage("%s: unknown option (see --help)", a);
    }
  }
  if (!out) return fail_usage("--out DIR is required (see --help)");
  if (labels_csv && from_folders) return fail_usage("--labels and --labels-from-folders exclude each other");
  if (!n_inputs && !labels_csv) return fail_usage("no videos or folders given (see --help)");
  if (frames % (1L << levels)) return fail_usage("--frames %ld is not divisible by 2^%ld (--levels)", frames, levels);

  char err[PREP_ERR_SIZE];
  int rank, size;
  if (prep_find_rank(&rank, &size, err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-prep: %s\n", err);
    return 2;
  }
  if (threads < 0) threads = size > 1 ? 1 : 0;

  /* every rank builds the same list */
  prep_file_list files = {0};
  for (int i = 0; i < n_inputs; i++) {
    struct stat st;
    if (stat(inputs[i], &st) == 0 && S_ISDIR(st.st_mode)) {
      if (prep_list_folder(&files, inputs[i], from_folders, err, sizeof err) != 0) {
        fprintf(stderr, "tpdiff-prep: %s\n", err);
        return 1;
      }
    } else {
      if (prep_list_add(&files, inputs[i]) != 0) return 1;
      if (from_folders) files.v[files.count - 1].label_name = prep_folder_class(inputs[i]);
    }
  }
  prep_csv_row *rows = NULL;
  int n_rows = 0;
  if (labels_csv) {
    if (prep_read_csv(labels_csv, &rows, &n_rows, err, sizeof err) != 0) {
      fprintf(stderr, "tpdiff-prep: %s\n", err);
      return 1;
    }
    if (!n_inputs)
      for (int r = 0; r < n_rows; r++)
        if (prep_list_add(&files, rows[r].path) != 0) return 1;
    prep_label_from_csv(&files, rows, n_rows, labels_csv);
  }
  char **class_names = NULL;
  int n_classes = 0;
  if ((from_folders || labels_csv) && prep_number_classes(&files, &class_names, &n_classes) != 0) return 1;
  if (files.count == 0) {
    fprintf(stderr, "tpdiff-prep: no video files found in %s%s\n", n_inputs ? inputs[0] : labels_csv,
            n_inputs > 1 ? " and the other arguments" : "");
    return 1;
  }

  if (mkdir(out, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "tpdiff-prep: %s: cannot create: %s\n", out, strerror(errno));
    return 1;
  }
  char token[256];
  prep_job_token(token, sizeof token);
  prep_remove_own_markers(out, rank);
  if (rank == 0 && n_classes > 0) { /* classes.txt: "index name" per line, as tpdiff-synth writes it */
    size_t len = 1;
    for (int c = 0; c < n_classes; c++) len += strlen(class_names[c]) + 16;
    char *text = malloc(len), *at = text;
    for (int c = 0; text && c < n_classes; c++) at += sprintf(at, "%d %s\n", c, class_names[c]);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/classes.txt", out);
    if (!text || prep_write_file_atomic(path, text, err, sizeof err) != 0) {
      fprintf(stderr, "tpdiff-prep: %s\n", text ? err : "out of memory");
      return 1;
    }
    free(text);
  }

  prep_run p = {0};
  p.out = out;
  p.rank = rank;
  p.size = size;
  p.layout = (shard_layout){.frames = (int)frames,
                            .height = (int)height,
                            .width = (int)width,
                            .channels = 3,
                            .levels = (int)levels + 1,
                            .dtype = SHARD_UINT8,
                            .scale = 2.0 / 255.0,
                            .shift = -1.0,
                            .fps = fps,
                            .has_labels = from_folders || labels_csv};
  p.wopt.deflate_level = (int)deflate;
  p.clips_per_shard = per_shard;
  p.fps_from_source = fps <= 0;
  p.frames = (int)frames;
  for (int i = rank; i < files.count; i += size) {
    struct stat st;
    p.files_total++;
    if (stat(files.v[i].path, &st) == 0) p.bytes_total += (double)st.st_size;
  }
  clock_gettime(CLOCK_MONOTONIC, &p.start);
  p.last_report = p.start;
  video_clip_options copt = {.frames = (int)frames, .stride = (int)stride, .max_clips = max_clips};
  copt.decode = video_decode_defaults();
  copt.decode.height = (int)height;
  copt.decode.width = (int)width;
  copt.decode.fps = fps;
  copt.decode.threads = (int)threads;
  int skip = !strcmp(on_error, "skip");
  for (int i = rank; i < files.count; i += size) {
    prep_file *f = &files.v[i];
    struct stat st;
    p.file_bytes = stat(f->path, &st) == 0 ? (double)st.st_size : 0;
    p.label = f->label < 0 ? 0 : f->label;
    long n = -1;
    if (f->problem) snprintf(err, sizeof err, "%s", f->problem);
    else n = video_clip_file(f->path, &copt, append_clip, &p, &p.file_info, err, sizeof err);
    if (n < 0) {
      if (!skip || p.write_failed) { /* a shard that cannot be written is never skipped */
        shard_writer_abort(p.writer);
        p.writer = NULL;
        fprintf(stderr, "tpdiff-prep: %s\n", err);
        if (size > 1) prep_mark_failed(out, rank, token, err);
        return 1;
      }
      p.files_skipped++;
      fprintf(stderr, "tpdiff-prep: skipped: %s\n", err);
    }
    p.files_done++;
    p.bytes_done += p.file_bytes;
    report(&p, 0);
  }
  if (close_shard(&p, err) != 0) {
    fprintf(stderr, "tpdiff-prep: %s\n", err);
    return 1;
  }
  report(&p, 1);
  if (p.files_skipped) fprintf(stderr, "tpdiff-prep: %d of %d files skipped\n", p.files_skipped, p.files_total);

  if (rank != 0) { /* hand the shard list to rank 0 */
    if (prep_mark_done(out, rank, token, p.names, p.clips, p.shards, err, sizeof err) != 0) {
      if (err[0]) fprintf(stderr, "tpdiff-prep: %s\n", err); /* "" when out of memory */
      return 1;
    }
    return 0;
  }
  char **all_names = NULL;
  long *all_clips = NULL;
  int all = 0;
  for (int s = 0; s < p.shards; s++) {
    all_names = realloc(all_names, sizeof *all_names * (size_t)(all + 1));
    all_clips = realloc(all_clips, sizeof *all_clips * (size_t)(all + 1));
    if (!all_names || !all_clips) return 1;
    all_names[all] = p.names[s];
    all_clips[all++] = p.clips[s];
  }
  if (size > 1 && prep_gather_ranks(out, size, token, (double)wait_s, &all_names, &all_clips, &all, err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-prep: %s\n", err);
    return 1;
  }
  long total = 0;
  for (int s = 0; s < all; s++) total += all_clips[s];
  if (total == 0) {
    fprintf(stderr, "tpdiff-prep: no clips written (every file was skipped or too short)\n");
    return 1;
  }
  if (shard_write_index(out, &p.layout, all, (const char *const *)all_names, all_clips, err, sizeof err) != 0) {
    fprintf(stderr, "tpdiff-prep: %s\n", err);
    return 1;
  }
  prep_remove_done_markers(out, size);
  printf("tpdiff-prep: %ld clips of %ldx%ldx%ldx3 (levels 0..%ld) in %d shards -> %s/index.json\n", total, frames,
         height, width, levels, all, out);
  return 0;
}
