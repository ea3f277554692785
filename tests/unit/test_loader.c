/* test_loader.c — the shard loader (data/loader.h) on a small data set written here: every clip of an
 * epoch exactly once across simulated ranks sharing the global stream, reproducible order, the
 * requested level's values, exact resume from a sequence number, prefetch depth not changing the
 * stream, bad clips under skip and fail, a missing folder, and closing while the reader waits on a
 * full ring. Prints PASS/FAIL lines. */
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "data/loader.h"
#include "data/shard.h"
#include "tests/unit/test_report.h"

/* Two shards of 23 and 20 clips: 43 in all, so W = 2 and W = 3 do not divide an epoch. */
enum { FRAMES = 8, HEIGHT = 3, WIDTH = 4, CHANNELS = 2, LEVELS = 3, SHARD0 = 23, SHARD1 = 20, TOTAL = 43 };
#define CLIP_FLOATS ((size_t)FRAMES * HEIGHT * WIDTH * CHANNELS)

static char tmp_root[256];

static shard_layout test_layout(void) {
  shard_layout l = {.frames = FRAMES,
                    .height = HEIGHT,
                    .width = WIDTH,
                    .channels = CHANNELS,
                    .levels = LEVELS,
                    .dtype = SHARD_UINT8,
                    .scale = 2.0 / 255.0,
                    .shift = -1.0,
                    .fps = 8,
                    .has_labels = 1};
  return l;
}

/* Writes the data set into folder: clip i has pixel values depending on i, label i % 7. */
static int write_dataset(const char *folder, char *err, size_t err_size) {
  mkdir(folder, 0755);
  shard_layout lay = test_layout();
  const char *names[2] = {"shard-00000.h5", "shard-00001.h5"};
  long counts[2] = {SHARD0, SHARD1};
  float *clip = malloc(sizeof(float) * CLIP_FLOATS);
  long index = 0;
  for (int s = 0; s < 2; s++) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", folder, names[s]);
    shard_write_options o = {0};
    shard_writer *w = shard_writer_open(path, &lay, &o, err, err_size);
    if (!w) return free(clip), -1;
    for (long c = 0; c < counts[s]; c++, index++) {
      for (size_t i = 0; i < CLIP_FLOATS; i++)
        clip[i] = (float)((double)((index * 37 + (long)i * 11) % 256) * lay.scale + lay.shift);
      char source[64];
      snprintf(source, sizeof source, "clip-%ld", index);
      if (shard_writer_append(w, clip, (int)(index % 7), source, err, err_size) != 0) {
        shard_writer_abort(w);
        return free(clip), -1;
      }
    }
    if (shard_writer_close(w, err, err_size) != 0) return free(clip), -1;
  }
  free(clip);
  return shard_write_index(folder, &lay, 2, names, counts, err, err_size);
}

/* Plans: a fixed (level, clips) for rank `rank` of `world` (global microbatch seq * world + rank,
 * so the ranks interleave on the stream as the trainer's do), or a mixed sequence whose microbatches
 * start 8 positions apart (the 6th crosses into epoch 1). position_offset < 0 makes a bad plan. */
typedef struct {
  int level, clips, mixed, rank, world;
  long position_offset;
} plan_spec;
static const int mixed_clips[7] = {3, 5, 2, 7, 4, 6, 1};
static int plan(void *ctx, long seq, int *level, int *clips, long *position) {
  const plan_spec *p = ctx;
  if (p->mixed) {
    *level = (int)(seq % LEVELS);
    *clips = mixed_clips[seq % 7];
    *position = 8 * seq;
  } else {
    *level = p->level;
    *clips = p->clips;
    *position = (seq * (p->world ? p->world : 1) + p->rank) * p->clips;
  }
  *position += p->position_offset;
  return 0;
}

typedef struct {
  float *clips;
  int labels[8];
  long indices[8];
  loader_batch b;
} batch_buf;
static void batch_init(batch_buf *bb) {
  bb->clips = malloc(sizeof(float) * CLIP_FLOATS * 8);
  bb->b = (loader_batch){.clips = bb->clips, .labels = bb->labels, .indices = bb->indices};
}

static loader *open_loader(const char *folder, plan_spec *p, int rank, int world, uint64_t seed, int prefetch,
                           long first_seq, int skip, char *err, size_t err_size) {
  p->rank = rank;
  p->world = world;
  loader_options o = {.seed = seed,
                      .prefetch = prefetch,
                      .max_clips = 8,
                      .skip_bad = skip,
                      .plan = plan,
                      .plan_ctx = p,
                      .first_seq = first_seq};
  return loader_open(folder, &o, err, err_size);
}

/* The indices of n single-clip microbatches of (rank, world, seed), from stream position 0. */
static int read_indices(const char *folder, int rank, int world, uint64_t seed, long n, long *out, long *epochs,
                        int *labels_ok, char *err, size_t err_size) {
  plan_spec p = {0, 1, 0, 0, 0, 0};
  loader *l = open_loader(folder, &p, rank, world, seed, 3, 0, 0, err, err_size);
  if (!l) return -1;
  batch_buf bb;
  batch_init(&bb);
  int rc = 0;
  for (long i = 0; i < n && rc == 0; i++) {
    rc = loader_next(l, &bb.b, err, err_size);
    out[i] = bb.indices[0];
    if (epochs) epochs[i] = bb.b.epoch;
    if (labels_ok && bb.labels[0] != bb.indices[0] % 7) *labels_ok = 0;
  }
  free(bb.clips);
  loader_close(l);
  return rc;
}

static void test_epoch_cover(const char *folder) {
  for (int world = 1; world <= 3; world++) {
    char err[1024] = "";
    int seen[TOTAL] = {0}, labels_ok = 1, ok = 1;
    long epochs[TOTAL], got[TOTAL];
    for (int r = 0; r < world && ok; r++) {
      long per_rank = (TOTAL - r + world - 1) / world; /* global microbatches r, r + W, ... below TOTAL */
      ok = read_indices(folder, r, world, 1234, per_rank, got, epochs, &labels_ok, err, sizeof err) == 0;
      for (long i = 0; ok && i < per_rank; i++) {
        ok = epochs[i] == 0 && got[i] >= 0 && got[i] < TOTAL;
        if (ok) seen[got[i]]++;
      }
    }
    int once = 0, twice = 0;
    for (int i = 0; i < TOTAL; i++) once += seen[i] == 1, twice += seen[i] > 1;
    char name[64];
    snprintf(name, sizeof name, "epoch cover W=%d", world);
    check(name, ok && once == TOTAL && twice == 0 && labels_ok,
          "(%d clips seen once, %d more than once, expected all %d once; labels %s)%s%s", once, twice, TOTAL,
          labels_ok ? "match index % 7" : "WRONG", ok ? "" : ": ", ok ? "" : err);
  }
}

static void test_order(const char *folder) {
  char err[1024] = "";
  long a[2 * TOTAL], b[2 * TOTAL], c[2 * TOTAL], e[2 * TOTAL];
  int ok = read_indices(folder, 0, 1, 7, 2 * TOTAL, a, e, NULL, err, sizeof err) == 0 &&
           read_indices(folder, 0, 1, 7, 2 * TOTAL, b, NULL, NULL, err, sizeof err) == 0 &&
           read_indices(folder, 0, 1, 8, 2 * TOTAL, c, NULL, NULL, err, sizeof err) == 0;
  check("order reproducible for a seed", ok && memcmp(a, b, sizeof a) == 0, ok ? NULL : "(%s)", err);
  int same_seed = ok && memcmp(a, c, sizeof(long) * TOTAL) == 0;
  int same_epoch = ok && memcmp(a, a + TOTAL, sizeof(long) * TOTAL) == 0;
  check("order differs for another seed and another epoch", ok && !same_seed && !same_epoch && e[TOTAL] == 1,
        "(seed 7 vs 8 %s, epoch 0 vs 1 %s)", same_seed ? "same" : "differ", same_epoch ? "same" : "differ");
  long perm[TOTAL];
  loader_permutation(perm, TOTAL, 7, 1);
  check("epoch 1 follows loader_permutation", ok && memcmp(perm, a + TOTAL, sizeof perm) == 0, NULL);
}

/* The microbatches seq first..first+n-1 of the mixed plan, flattened for comparison. */
typedef struct {
  long seq[8], indices[8][8];
  int level[8], count[8], labels[8][8];
  long position[8], epoch[8];
  float *clips[8];
} stream;
static void stream_free(stream *s) {
  for (int i = 0; i < 8; i++) free(s->clips[i]);
}
static int read_stream(const char *folder, int prefetch, long first, int n, stream *s, char *err, size_t err_size) {
  memset(s, 0, sizeof *s);
  plan_spec p = {0, 0, 1, 0, 0, 0};
  loader *l = open_loader(folder, &p, 0, 1, 99, prefetch, first, 0, err, err_size);
  if (!l) return -1;
  batch_buf bb;
  batch_init(&bb);
  int rc = 0;
  for (int i = 0; i < n && rc == 0; i++) {
    rc = loader_next(l, &bb.b, err, err_size);
    if (rc) break;
    s->seq[i] = bb.b.seq;
    s->level[i] = bb.b.level;
    s->count[i] = bb.b.clips_count;
    s->position[i] = bb.b.position;
    s->epoch[i] = bb.b.epoch;
    memcpy(s->indices[i], bb.indices, sizeof bb.indices);
    memcpy(s->labels[i], bb.labels, sizeof bb.labels);
    size_t floats = CLIP_FLOATS / ((size_t)1 << bb.b.level) * (size_t)bb.b.clips_count;
    s->clips[i] = malloc(sizeof(float) * floats);
    memcpy(s->clips[i], bb.clips, sizeof(float) * floats);
  }
  free(bb.clips);
  loader_close(l);
  return rc;
}
static int same_microbatch(const stream *a, int i, const stream *b, int j) {
  if (a->seq[i] != b->seq[j] || a->level[i] != b->level[j] || a->count[i] != b->count[j] ||
      a->position[i] != b->position[j] || a->epoch[i] != b->epoch[j])
    return 0;
  size_t floats = CLIP_FLOATS / ((size_t)1 << a->level[i]) * (size_t)a->count[i];
  return memcmp(a->indices[i], b->indices[j], sizeof(long) * (size_t)a->count[i]) == 0 &&
         memcmp(a->labels[i], b->labels[j], sizeof(int) * (size_t)a->count[i]) == 0 &&
         memcmp(a->clips[i], b->clips[j], sizeof(float) * floats) == 0;
}

static void test_values(const char *folder) {
  char err[1024] = "";
  stream s;
  int ok = read_stream(folder, 2, 0, 7, &s, err, sizeof err) == 0;
  shard_reader *r[2] = {NULL, NULL};
  char path[600];
  for (int k = 0; k < 2 && ok; k++) {
    snprintf(path, sizeof path, "%s/shard-%05d.h5", folder, k);
    r[k] = shard_reader_open(path, NULL, NULL, err, sizeof err);
    ok = r[k] != NULL;
  }
  int mismatches = 0, compared = 0, levels_seen = 0;
  float *want = malloc(sizeof(float) * CLIP_FLOATS);
  for (int i = 0; i < 7 && ok; i++) {
    levels_seen |= 1 << s.level[i];
    size_t floats = CLIP_FLOATS >> s.level[i];
    for (int b = 0; b < s.count[i] && ok; b++) {
      long index = s.indices[i][b];
      int label = -1;
      ok = shard_read_clip(index < SHARD0 ? r[0] : r[1], index < SHARD0 ? index : index - SHARD0, s.level[i], want,
                           &label, err, sizeof err) == 0;
      mismatches +=
          ok && (memcmp(want, s.clips[i] + floats * (size_t)b, sizeof(float) * floats) != 0 || label != s.labels[i][b]);
      compared++;
    }
  }
  check("values at level l equal shard_read_clip of level l", ok && mismatches == 0 && levels_seen == 7,
        "(%d clips compared over levels mask %d, %d differ)%s%s", compared, levels_seen, mismatches, ok ? "" : ": ",
        ok ? "" : err);
  free(want);
  for (int k = 0; k < 2; k++) shard_reader_close(r[k]);
  stream_free(&s);
}

static void test_resume(const char *folder) {
  char err[1024] = "";
  stream full, resumed;
  /* microbatch 5 starts at 40 with 6 clips: it crosses from epoch 0 into epoch 1 */
  int ok = read_stream(folder, 3, 0, 7, &full, err, sizeof err) == 0;
  ok = ok && read_stream(folder, 3, full.seq[4], 3, &resumed, err, sizeof err) == 0;
  int same = ok;
  for (int i = 0; i < 3 && same; i++) same = same_microbatch(&full, 4 + i, &resumed, i);
  long perm1[TOTAL];
  loader_permutation(perm1, TOTAL, 99, 1);
  int crossed = ok && full.epoch[5] == 0 && full.epoch[6] == 1 && full.indices[5][5] == perm1[2];
  check("resume from microbatch 4 gives 4..6 identical, across the epoch boundary", same && crossed,
        "(microbatch 5 at position %ld epoch %ld, 6 at epoch %ld; crossing %s)%s%s", full.position[5], full.epoch[5],
        full.epoch[6], crossed ? "right" : "WRONG", ok ? "" : ": ", ok ? "" : err);
  stream_free(&full);
  stream_free(&resumed);
  stream p1, p8;
  ok = read_stream(folder, 1, 0, 7, &p1, err, sizeof err) == 0 && read_stream(folder, 8, 0, 7, &p8, err, sizeof err) == 0;
  same = ok;
  for (int i = 0; i < 7 && same; i++) same = same_microbatch(&p1, i, &p8, i);
  check("prefetch 1 and 8 give identical streams", same, ok ? NULL : "(%s)", err);
  stream_free(&p1);
  stream_free(&p8);
}

static int copy_file(const char *from, const char *to) {
  FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
  int ok = a && b;
  char buf[65536];
  size_t n;
  while (ok && (n = fread(buf, 1, sizeof buf, a)) > 0) ok = fwrite(buf, 1, n, b) == n;
  if (a) fclose(a);
  if (b) ok = fclose(b) == 0 && ok;
  return ok ? 0 : -1;
}

/* A copy of the data set with one byte of level0's chunk of data set clip `bad` (in shard 1) flipped. */
static int make_damaged(const char *folder, const char *damaged, long bad) {
  char from[700], to[700];
  mkdir(damaged, 0755);
  const char *names[3] = {"shard-00000.h5", "shard-00001.h5", "index.json"};
  for (int k = 0; k < 3; k++) {
    snprintf(from, sizeof from, "%s/%s", folder, names[k]);
    snprintf(to, sizeof to, "%s/%s", damaged, names[k]);
    if (copy_file(from, to) != 0) return -1;
  }
  snprintf(to, sizeof to, "%s/shard-00001.h5", damaged);
  hid_t f = H5Fopen(to, H5F_ACC_RDONLY, H5P_DEFAULT), d = f >= 0 ? H5Dopen2(f, "level0", H5P_DEFAULT) : -1;
  hsize_t offset[5] = {(hsize_t)(bad - SHARD0), 0, 0, 0, 0}, size = 0;
  haddr_t addr = 0;
  unsigned mask = 0;
  int rc = d >= 0 && H5Dget_chunk_info_by_coord(d, offset, &mask, &addr, &size) >= 0 && size > 8 ? 0 : -1;
  if (d >= 0) H5Dclose(d);
  if (f >= 0) H5Fclose(f);
  if (rc) return -1;
  FILE *fp = fopen(to, "r+b");
  long at = (long)(addr + size / 2);
  int c = fp && fseek(fp, at, SEEK_SET) == 0 ? fgetc(fp) : EOF;
  rc = c != EOF && fseek(fp, at, SEEK_SET) == 0 && fputc(c ^ 0x10, fp) != EOF ? 0 : -1;
  if (fp) fclose(fp);
  return rc;
}

static void test_bad_clip(const char *folder) {
  char damaged[600], err[1024] = "";
  long bad = SHARD0 + 5;
  snprintf(damaged, sizeof damaged, "%s/damaged", tmp_root);
  if (make_damaged(folder, damaged, bad) != 0) {
    failf("bad clip setup", "cannot damage a copy of the data set");
    return;
  }
  /* skip: two epochs of single clips at level 0; the bad clip is met twice, logged once */
  plan_spec p = {0, 1, 0, 0, 0, 0};
  loader *l = open_loader(damaged, &p, 0, 1, 5, 4, 0, 1, err, sizeof err);
  batch_buf bb;
  batch_init(&bb);
  int ok = l != NULL, seen_bad = 0, n = 0;
  for (; ok && n < 2 * (TOTAL - 1); n++) {
    ok = loader_next(l, &bb.b, err, sizeof err) == 0;
    seen_bad += ok && bb.indices[0] == bad;
  }
  long skipped = l ? loader_skipped(l) : -1;
  loader_close(l);
  check("on_error=skip skips and counts the damaged clip", ok && seen_bad == 0 && skipped == 2,
        "(%d microbatches, bad clip delivered %d times, skipped %ld, expected 2 over two epochs)%s%s", n, seen_bad,
        skipped, ok ? "" : ": ", ok ? "" : err);
  /* level 1 of the same clip is intact: a stage reads only its level */
  p.level = 1;
  l = open_loader(damaged, &p, 0, 1, 5, 4, 0, 0, err, sizeof err);
  ok = l != NULL;
  for (n = 0; ok && n < TOTAL; n++) ok = loader_next(l, &bb.b, err, sizeof err) == 0;
  check("the damaged clip's other levels read fine", ok, ok ? NULL : "(%s)", err);
  loader_close(l);
  /* fail: loader_next returns -1 naming the file and the clip, and keeps failing */
  p.level = 0;
  l = open_loader(damaged, &p, 0, 1, 5, 4, 0, 0, err, sizeof err);
  int rc = 0;
  for (n = 0; l && rc == 0 && n < TOTAL; n++) rc = loader_next(l, &bb.b, err, sizeof err);
  char file[700], clip[64];
  snprintf(file, sizeof file, "%s/shard-00001.h5", damaged);
  snprintf(clip, sizeof clip, "clip %ld", bad - SHARD0);
  int again = l && loader_next(l, &bb.b, err, sizeof err) != 0;
  check("on_error=fail stops naming the file and the clip",
        rc != 0 && strstr(err, file) && strstr(err, clip) && !strchr(err, '\n') && again, "(after %d microbatches: %s)",
        n, err);
  loader_close(l);
  free(bb.clips);
}

static void test_missing_and_close(const char *folder) {
  char err[1024] = "", missing[600];
  snprintf(missing, sizeof missing, "%s/no-such-folder", tmp_root);
  plan_spec p = {0, 2, 0, 0, 0, 0};
  loader *l = open_loader(missing, &p, 0, 1, 1, 2, 0, 0, err, sizeof err);
  check("a missing data set folder fails cleanly", !l && err[0] && !strchr(err, '\n') && strstr(err, missing), "(%s)",
        err);
  loader_close(l);
  /* the reader fills the ring and waits: close must still join it */
  l = open_loader(folder, &p, 0, 1, 1, 2, 0, 0, err, sizeof err);
  struct timespec pause = {0, 10 * 1000 * 1000};
  loader_stats st = {{0}, {0}, 0};
  for (int waited = 0; l && waited < 1000 && st.clips[0] < 4; waited++) { /* up to 10 s: slow sanitizer runs */
    nanosleep(&pause, NULL);
    loader_get_stats(l, &st);
  }
  nanosleep(&pause, NULL); /* the reader is now waiting for a free slot */
  loader_close(l);
  check("close joins a reader blocked on a full ring", l && st.clips[0] == 4, "(%ld clips read ahead, expected 4)",
        l ? st.clips[0] : -1L);
  /* a plan asking for more than max_clips fails instead of overflowing */
  p.clips = 9;
  l = open_loader(folder, &p, 0, 1, 1, 2, 0, 0, err, sizeof err);
  batch_buf bb;
  batch_init(&bb);
  int rc = l ? loader_next(l, &bb.b, err, sizeof err) : 0;
  check("a plan over max_clips is an error", rc != 0 && strstr(err, "9 clips"), "(%s)", err);
  loader_close(l);
  free(bb.clips);
  /* a plan naming a negative stream position fails instead of indexing before the permutation */
  p.clips = 1;
  p.position_offset = -5;
  l = open_loader(folder, &p, 0, 1, 1, 2, 0, 0, err, sizeof err);
  batch_init(&bb);
  rc = l ? loader_next(l, &bb.b, err, sizeof err) : 0;
  check("a negative stream position is an error", rc != 0 && strstr(err, "position -5"), "(%s)", err);
  loader_close(l);
  free(bb.clips);
}

static void remove_tree(const char *folder) {
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", folder);
  if (system(cmd) != 0) fprintf(stderr, "test_loader: could not remove %s\n", folder);
}

int main(void) {
  const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(tmp_root, sizeof tmp_root, "%s/test_loader.XXXXXX", base);
  if (!mkdtemp(tmp_root)) {
    failf("setup", "cannot create a temporary folder under %s", base);
    return 1;
  }
  char folder[600], err[1024] = "";
  snprintf(folder, sizeof folder, "%s/set", tmp_root);
  if (write_dataset(folder, err, sizeof err) != 0) {
    failf("setup", "writing the data set: %s", err);
    remove_tree(tmp_root);
    return 1;
  }
  test_epoch_cover(folder);
  test_order(folder);
  test_values(folder);
  test_resume(folder);
  test_bad_clip(folder);
  test_missing_and_close(folder);
  remove_tree(tmp_root);
  test_summary("test_loader", NULL);
  return test_exit_code();
}
