/* bench_loader.c — the shard loader's throughput per pyramid level with one reader thread, next to
 * the raw read speed of the same files and to what training consumes.
 *
 *   bench_loader DATASET_DIR [TRAIN_CLIPS_PER_S]
 *
 * For each level: one epoch of microbatches of 16 clips through the loader (page cache warm, then
 * cold when the page cache can be dropped), clips/s and MB/s of stored bytes, bytes per clip. The
 * raw speed is read() of every shard file whole. TRAIN_CLIPS_PER_S (clips per second a training
 * run consumes, e.g. tpdiff-train's clips/s column) gives the headroom ratio; the goal is >= 5x. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "data/loader.h"

enum { CLIPS_PER_MICROBATCH = 16 };

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fixed_plan(void *ctx, long seq, int *level, int *clips, long *position) {
  *level = *(const int *)ctx;
  *clips = CLIPS_PER_MICROBATCH;
  *position = seq * CLIPS_PER_MICROBATCH;
  return 0;
}

/* Drops the page cache: 0, or -1 when this process may not (not root, or a container). */
static int drop_caches(void) {
  /* clean pages only: the shards were written (and fsynced by the writer) before the bench */
  int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
  if (fd < 0) return -1;
  int ok = write(fd, "3\n", 2) == 2;
  close(fd);
  return ok ? 0 : -1;
}

/* read() of every shard whole: MB/s, and the bytes read into *bytes. */
static double raw_read_mb_s(const shard_dataset *d, double *bytes) {
  static char buf[1 << 20];
  double t0 = now_seconds(), total = 0;
  for (int s = 0; s < d->count; s++) {
    int fd = open(d->paths[s], O_RDONLY);
    if (fd < 0) continue;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) total += (double)n;
    close(fd);
  }
  *bytes = total;
  return total / 1e6 / (now_seconds() - t0);
}

typedef struct {
  double clips_s, mb_s, bytes_per_clip;
  long clips;
} level_result;

static int run_level(const char *folder, int level, level_result *res, char *err, size_t err_size) {
  loader_options o = {.seed = 1,
                      .prefetch = 4,
                      .max_clips = CLIPS_PER_MICROBATCH,
                      .plan = fixed_plan,
                      .plan_ctx = &level};
  loader *l = loader_open(folder, &o, err, err_size);
  if (!l) return -1;
  const shard_layout *lay = &loader_dataset(l)->layout;
  size_t floats = (size_t)lay->channels * lay->frames * lay->height * lay->width * CLIPS_PER_MICROBATCH;
  float *clips = malloc(sizeof(float) * floats);
  int labels[CLIPS_PER_MICROBATCH];
  long indices[CLIPS_PER_MICROBATCH];
  loader_batch b = {.clips = clips, .labels = labels, .indices = indices};
  long microbatches = loader_dataset(l)->total / CLIPS_PER_MICROBATCH;
  if (microbatches < 1) microbatches = 1;
  double t0 = now_seconds();
  int rc = 0;
  for (long i = 0; i < microbatches && rc == 0; i++) rc = loader_next(l, &b, err, err_size);
  double seconds = now_seconds() - t0;
  loader_stats st;
  loader_get_stats(l, &st);
  loader_close(l);
  free(clips);
  if (rc) return -1;
  res->clips = microbatches * CLIPS_PER_MICROBATCH;
  res->clips_s = (double)res->clips / seconds;
  /* bytes of the delivered clips (the reader may have read a ring ahead: not counted) */
  res->bytes_per_clip = st.bytes[level] / (double)st.clips[level];
  res->mb_s = res->clips_s * res->bytes_per_clip / 1e6;
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_loader DATASET_DIR [TRAIN_CLIPS_PER_S]\n");
    return 2;
  }
  const char *folder = argv[1];
  double train_clips_s = argc > 2 ? atof(argv[2]) : 0;
  char err[1024];
  shard_dataset d;
  if (shard_dataset_open(&d, folder, err, sizeof err) != 0) {
    fprintf(stderr, "bench_loader: %s\n", err);
    return 1;
  }
  const shard_layout *lay = &d.layout;
  printf("# shard loader, one reader thread, prefetch 4, %d clips per microbatch\n", CLIPS_PER_MICROBATCH);
  printf("# data set %s: %ld clips of %dx%dx%dx%d (CxTxHxW), %d levels, %d shards\n", folder, d.total, lay->channels,
         lay->frames, lay->height, lay->width, lay->levels, d.count);
  int can_drop = drop_caches() == 0;
  double raw_bytes = 0, raw_cold = can_drop ? raw_read_mb_s(&d, &raw_bytes) : 0;
  raw_read_mb_s(&d, &raw_bytes); /* warms the page cache */
  double raw_warm = raw_read_mb_s(&d, &raw_bytes);
  printf("raw read() of the shard files: %.1f MB in all, warm %.0f MB/s", raw_bytes / 1e6, raw_warm);
  if (can_drop)
    printf(", cold %.0f MB/s\n", raw_cold);
  else
    printf("; cold not measured: dropping the page cache (/proc/sys/vm/drop_caches) is not permitted here\n");
  printf("%-5s %-5s %7s %12s %10s %12s %14s\n", "level", "cache", "frames", "bytes/clip", "clips/s", "MB/s",
         "vs level 0");
  double bytes0 = 0;
  int status = 0;
  for (int pass = 0; pass < (can_drop ? 2 : 1); pass++) {
    for (int level = 0; level < lay->levels; level++) {
      if (pass == 1) drop_caches();
      level_result r;
      if (run_level(folder, level, &r, err, sizeof err) != 0) {
        fprintf(stderr, "bench_loader: level %d: %s\n", level, err);
        status = 1;
        break;
      }
      if (level == 0) bytes0 = r.bytes_per_clip;
      printf("%-5d %-5s %7d %12.0f %10.0f %12.1f %13.4fx\n", level, pass ? "cold" : "warm", lay->frames >> level,
             r.bytes_per_clip, r.clips_s, r.mb_s, r.bytes_per_clip / bytes0);
      if (pass == 0 && level == 0 && train_clips_s > 0)
        printf(
            "      training consumes %.1f clips/s: the level-0 loader (the most expensive) is %.1fx that "
            "(goal >= 5x)\n",
            train_clips_s, r.clips_s / train_clips_s);
    }
  }
  if (lay->levels >= 4)
    printf("level 3 reads %.4f of level 0's bytes per clip (expected 1/8 = 0.1250)\n",
           (double)shard_clip_bytes(lay, 3) / (double)shard_clip_bytes(lay, 0));
  shard_dataset_close(&d);
  return status;
}
