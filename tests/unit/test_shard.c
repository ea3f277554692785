/* test_shard.c — the HDF5 shard writer, reader and data-set opener (data/shard.h): round trips at every
 * level against an independent computation, damaged and malformed files, index.json disagreements and
 * writes that fail midway. Prints PASS/FAIL lines and exits 1 on a failure.
 *
 * Also a helper for tests/data/shard_interop.sh (h5py on the other side):
 *   test_shard --write SHARD DTYPE DEFLATE N T H W C INPUT.f32   writes a shard from raw float32 [N,T,H,W,C]
 *                                                                (labels i % 7, source "clip-i")
 *   test_shard --read SHARD OUTPREFIX                            writes OUTPREFIX.level<l>.f32 [N,C,T_l,H,W]
 *                                                                and OUTPREFIX.labels.i32, or prints the error */
#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/shard.h"

static int failures = 0;
static char tmp_root[256];

static void check(int ok, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void check(int ok, const char *name, const char *fmt, ...) {
  char detail[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  printf("%s %s: %s\n", ok ? "PASS" : "FAIL", name, detail);
  if (!ok) failures++;
}

/* ---- deterministic random numbers ------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t next_u64(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
static double uniform(void) { return (double)(next_u64() >> 11) / 9007199254740992.0; }

/* ---- the expected values, computed here independently of the writer ---------------------------- */

static double scale_of(shard_dtype d) { return d == SHARD_UINT8 ? 2.0 / 255.0 : d == SHARD_FLOAT16 ? 0.5 : 1.0; }
static double shift_of(shard_dtype d) { return d == SHARD_UINT8 ? -1.0 : d == SHARD_FLOAT16 ? 0.25 : 0.0; }

/* A stored value of dtype d, rounded from a double the way the format defines (uint8: half away from
 * zero after clamping; float16: nearest even, by the compiler's own _Float16; float32: nearest). */
static double store(shard_dtype d, double v) {
  if (d == SHARD_UINT8) return v <= 0 ? 0 : v >= 255 ? 255 : floor(v + 0.5);
  if (d == SHARD_FLOAT16) return (double)(_Float16)v;
  return (double)(float)v;
}

/* A random stored value whose model value (stored * scale + shift, in float) maps back to it exactly. */
static double random_stored(shard_dtype d) {
  if (d == SHARD_UINT8) return (double)(next_u64() % 256);
  if (d == SHARD_FLOAT16) return store(d, (uniform() * 2 - 1) * 3); /* exact in float: h * 0.5 + 0.25 */
  return (double)(float)(uniform() * 2 - 1);
}

/* ---- helpers ---------------------------------------------------------------------------------- */

static int one_line(const char *s) { return s[0] && !strchr(s, '\n'); }

/* Names of the files in folder, joined by spaces (for "nothing left behind" checks). */
static void list_folder(const char *folder, char *out, size_t out_size) {
  out[0] = '\0';
  DIR *d = opendir(folder);
  if (!d) return;
  struct dirent *e;
  size_t used = 0;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      used += (size_t)snprintf(out + used, used < out_size ? out_size - used : 0, "%s ", e->d_name);
  closedir(d);
}

static void make_folder(char *out, size_t out_size, const char *name) {
  snprintf(out, out_size, "%s/%s", tmp_root, name);
  mkdir(out, 0755);
}

static shard_layout make_layout(shard_dtype d, int has_labels) {
  shard_layout l = {.frames = 8,
                    .height = 5,
                    .width = 6,
                    .channels = 3,
                    .levels = 4,
                    .dtype = d,
                    .scale = scale_of(d),
                    .shift = shift_of(d),
                    .fps = 12.5,
                    .has_labels = has_labels};
  return l;
}

/* Writes a shard of `clips` random clips; stored0 receives the level-0 stored values [clips][T*H*W*C]
 * (NULL: not needed). 0 on success (err filled otherwise). */
static int write_random_shard(const char *path, const shard_layout *l, int deflate, int clips, double *stored0,
                              char *err, size_t err_size) {
  shard_write_options opt = {.deflate_level = deflate};
  shard_writer *w = shard_writer_open(path, l, &opt, err, err_size);
  if (!w) return -1;
  size_t n = (size_t)l->frames * l->height * l->width * l->channels;
  float *clip = malloc(n * sizeof *clip);
  for (int c = 0; c < clips; c++) {
    for (size_t i = 0; i < n; i++) {
      double s = random_stored(l->dtype);
      if (stored0) stored0[(size_t)c * n + i] = s;
      clip[i] = (float)s * (float)l->scale + (float)l->shift;
    }
    char source[64];
    snprintf(source, sizeof source, "synthetic.mp4:%d", c * 8);
    if (shard_writer_append(w, clip, 100 + c, source, err, err_size) != 0) {
      free(clip);
      shard_writer_abort(w);
      return -1;
    }
  }
  free(clip);
  return shard_writer_close(w, err, err_size);
}

/* Compares every clip at every level of shard path against stored0; returns mismatches (and the worst
 * difference in stored units through worst). f16_ulps counts float16 values one ulp off (allowed: the
 * writer sums in float, this test in double, so a mean within 2^-24 of a rounding tie may round apart). */
static long compare_shard(const char *path, const shard_layout *l, int clips, const double *stored0, int first_label,
                          double *worst, long *f16_ulps, char *err, size_t err_size) {
  shard_layout got;
  long n_clips;
  shard_reader *r = shard_reader_open(path, &got, &n_clips, err, err_size);
  if (!r) return -1;
  long bad = 0;
  if (n_clips != clips || got.levels != l->levels || got.dtype != l->dtype || got.has_labels != l->has_labels ||
      got.frames != l->frames || got.scale != l->scale || got.shift != l->shift || got.fps != l->fps) {
    snprintf(err, err_size, "layout differs: clips %ld levels %d dtype %d labels %d", n_clips, got.levels,
             (int)got.dtype, got.has_labels);
    shard_reader_close(r);
    return -1;
  }
  size_t plane = (size_t)l->height * l->width, C = (size_t)l->channels, n0 = (size_t)l->frames * plane * C;
  float *out = malloc(n0 * sizeof *out);
  for (int c = 0; c < clips; c++)
    for (int lev = 0; lev < l->levels; lev++) {
      int label = -1, T = l->frames >> lev, g = 1 << lev;
      if (shard_read_clip(r, c, lev, out, &label, err, err_size) != 0) {
        free(out);
        shard_reader_close(r);
        return -1;
      }
      if (label != (l->has_labels ? first_label + c : 0)) bad++;
      for (int t = 0; t < T; t++)
        for (size_t p = 0; p < plane; p++)
          for (size_t ch = 0; ch < C; ch++) {
            double sum = 0;
            for (int k = 0; k < g; k++) sum += stored0[(size_t)c * n0 + ((size_t)(t * g + k) * plane + p) * C + ch];
            double want = store(l->dtype, sum / g);
            float want_model = (float)want * (float)l->scale + (float)l->shift;
            float have = out[(ch * T + (size_t)t) * plane + p];
            double diff = fabs((double)have - (double)want_model) / l->scale;
            if (diff > *worst) *worst = diff;
            if (diff == 0) continue;
            double ulp = want == 0 ? 0x1p-24 : ldexp(1.0, ilogb(want) - 10);
            if (l->dtype == SHARD_FLOAT16 && lev > 0 && diff <= ulp * 1.0001)
              ++*f16_ulps;
            else if (diff > 1e-6 * (fabs(want) + 1))
              bad++;
          }
    }
  free(out);
  shard_reader_close(r);
  return bad;
}

/* ---- cases ------------------------------------------------------------------------------------ */

static void test_round_trip(void) {
  struct {
    shard_dtype dtype;
    int deflate, labels;
  } cases[] = {{SHARD_UINT8, 0, 1},   {SHARD_UINT8, 6, 0},   {SHARD_FLOAT16, 0, 0},
               {SHARD_FLOAT16, 4, 1}, {SHARD_FLOAT32, 0, 1}, {SHARD_FLOAT32, 1, 0}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    char folder[512], name[128], err[1024] = "";
    snprintf(name, sizeof name, "rt-%zu", k);
    make_folder(folder, sizeof folder, name);
    shard_layout l = make_layout(cases[k].dtype, cases[k].labels);
    size_t n0 = (size_t)l.frames * l.height * l.width * l.channels;
    int clips[2] = {3, 4};
    double *stored[2] = {NULL, NULL};
    char paths[2][600];
    const char *names[2] = {"shard-00000.h5", "shard-00001.h5"};
    long counts[2] = {3, 4};
    int ok = 1;
    for (int s = 0; s < 2 && ok; s++) {
      stored[s] = malloc(clips[s] * n0 * sizeof(double));
      snprintf(paths[s], sizeof paths[s], "%s/%s", folder, names[s]);
      ok = write_random_shard(paths[s], &l, cases[k].deflate, clips[s], stored[s], err, sizeof err) == 0;
    }
    ok = ok && shard_write_index(folder, &l, 2, names, counts, err, sizeof err) == 0;
    char what[160];
    snprintf(what, sizeof what, "round trip %s, deflate %d, %s",
             cases[k].dtype == SHARD_UINT8     ? "uint8"
             : cases[k].dtype == SHARD_FLOAT16 ? "float16"
                                               : "float32",
             cases[k].deflate, cases[k].labels ? "labels" : "no labels");
    shard_dataset d;
    ok = ok && shard_dataset_open(&d, folder, err, sizeof err) == 0;
    if (ok) {
      ok = d.count == 2 && d.total == 7 && d.clips[0] == 3 && d.clips[1] == 4 && d.layout.levels == 4 &&
           d.layout.dtype == l.dtype && d.layout.has_labels == l.has_labels;
      if (!ok)
        snprintf(err, sizeof err, "data set: %d shards, %ld clips, %d levels", d.count, d.total, d.layout.levels);
      shard_dataset_close(&d);
    }
    double worst = 0;
    long bad = 0, ulps = 0;
    for (int s = 0; s < 2 && ok; s++) {
      long b = compare_shard(paths[s], &l, clips[s], stored[s], 100, &worst, &ulps, err, sizeof err);
      if (b < 0)
        ok = 0;
      else
        bad += b;
    }
    check(ok && bad == 0, what,
          "%s%s%ld mismatches over 7 clips x 4 levels, worst %.3g stored units, %ld float16 "
          "values one ulp apart",
          ok ? "" : err, ok ? "" : "; ", bad, worst, ulps);
    for (int s = 0; s < 2; s++) free(stored[s]);
  }
  shard_layout l = make_layout(SHARD_FLOAT16, 0);
  check(shard_clip_bytes(&l, 0) == 8 * 5 * 6 * 3 * 2 && shard_clip_bytes(&l, 3) == 1 * 5 * 6 * 3 * 2 &&
            shard_clip_bytes(&l, 4) == 0,
        "shard_clip_bytes", "%zu / %zu / %zu bytes at levels 0 / 3 / 4", shard_clip_bytes(&l, 0),
        shard_clip_bytes(&l, 3), shard_clip_bytes(&l, 4));
}

/* The file offset and size of clip `clip`'s chunk of dataset `name`. */
static int chunk_location(const char *path, const char *name, int clip, haddr_t *addr, hsize_t *size) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = f >= 0 ? H5Dopen2(f, name, H5P_DEFAULT) : -1;
  hsize_t offset[5] = {(hsize_t)clip, 0, 0, 0, 0};
  unsigned mask = 0;
  int rc = d >= 0 && H5Dget_chunk_info_by_coord(d, offset, &mask, addr, size) >= 0 ? 0 : -1;
  if (d >= 0) H5Dclose(d);
  if (f >= 0) H5Fclose(f);
  return rc;
}

static void test_flipped_byte(int deflate) {
  char folder[512], path[600], err[1024] = "", what[128];
  snprintf(what, sizeof what, "flip-%d", deflate);
  make_folder(folder, sizeof folder, what);
  snprintf(path, sizeof path, "%s/shard-00000.h5", folder);
  shard_layout l = make_layout(SHARD_UINT8, 1);
  double *stored = malloc(4 * 8 * 5 * 6 * 3 * sizeof(double));
  int ok = write_random_shard(path, &l, deflate, 4, stored, err, sizeof err) == 0;
  haddr_t addr = 0;
  hsize_t size = 0;
  ok = ok && chunk_location(path, "level0", 2, &addr, &size) == 0 && size > 8;
  if (ok) {
    FILE *f = fopen(path, "r+b");
    long at = (long)(addr + size / 2);
    int c = f && fseek(f, at, SEEK_SET) == 0 ? fgetc(f) : EOF;
    ok = c != EOF && fseek(f, at, SEEK_SET) == 0 && fputc(c ^ 0x10, f) != EOF;
    if (f) fclose(f);
  }
  snprintf(what, sizeof what, "flipped byte in level0 clip 2 (%s)", deflate ? "deflate" : "no compression");
  shard_reader *r = ok ? shard_reader_open(path, NULL, NULL, err, sizeof err) : NULL;
  if (!r) {
    check(0, what, "setup failed: %s", err);
    free(stored);
    return;
  }
  float *out = malloc(8 * 5 * 6 * 3 * sizeof(float));
  int label;
  int rc = shard_read_clip(r, 2, 0, out, &label, err, sizeof err);
  char expected[700];
  snprintf(expected, sizeof expected, "%s: level0: clip 2: checksum mismatch", path);
  check(rc != 0 && strstr(err, expected) && one_line(err), what, "error: %s", rc ? err : "(none: read succeeded)");
  int others = 0;
  for (int c = 0; c < 4; c++)
    for (int lev = 0; lev < 4; lev++)
      if (!(c == 2 && lev == 0)) others += shard_read_clip(r, c, lev, out, &label, err, sizeof err) == 0;
  check(others == 15, "other clips of a damaged shard stay readable", "%d of 15 (clip, level) pairs read%s%s", others,
        others == 15 ? "" : "; last error: ", others == 15 ? "" : err);
  shard_reader_close(r);
  free(out);
  free(stored);
}

/* Applies edit to a fresh good shard and expects shard_reader_open to refuse it with a line holding
 * every one of the `want` fragments. */
typedef int (*shard_edit)(hid_t file);

static int recreate_dataset(hid_t f, const char *name, hid_t type, int rank, const hsize_t *dims) {
  if (H5Ldelete(f, name, H5P_DEFAULT) < 0) return -1;
  hid_t s = H5Screate_simple(rank, dims, NULL), d = H5Dcreate2(f, name, type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Sclose(s);
  if (d < 0) return -1;
  H5Dclose(d);
  return 0;
}
static int edit_missing_level1(hid_t f) { return H5Ldelete(f, "level1", H5P_DEFAULT); }
static int edit_missing_level0(hid_t f) { return H5Ldelete(f, "level0", H5P_DEFAULT); }
static int edit_int16_level0(hid_t f) {
  hsize_t dims[5] = {2, 8, 5, 6, 3};
  return recreate_dataset(f, "level0", H5T_STD_I16LE, 5, dims);
}
static int edit_wrong_frames_level1(hid_t f) {
  hsize_t dims[5] = {2, 3, 5, 6, 3};
  return recreate_dataset(f, "level1", H5T_STD_U8LE, 5, dims);
}
static int edit_rank4_level2(hid_t f) {
  hsize_t dims[4] = {2, 2, 5, 6};
  return recreate_dataset(f, "level2", H5T_STD_U8LE, 4, dims);
}
static int edit_short_labels(hid_t f) {
  hsize_t dims[1] = {1};
  return recreate_dataset(f, "labels", H5T_STD_I32LE, 1, dims);
}
static int edit_version_2(hid_t f) {
  long long v = 2;
  hid_t a = H5Aopen(f, "version", H5P_DEFAULT);
  int rc = a >= 0 && H5Awrite(a, H5T_NATIVE_LLONG, &v) >= 0 ? 0 : -1;
  if (a >= 0) H5Aclose(a);
  return rc;
}
static int edit_no_format(hid_t f) { return H5Adelete(f, "format"); }
static int edit_other_format(hid_t f) {
  H5Adelete(f, "format");
  hid_t t = H5Tcopy(H5T_C_S1), s = H5Screate(H5S_SCALAR);
  H5Tset_size(t, 9);
  hid_t a = H5Acreate2(f, "format", t, s, H5P_DEFAULT, H5P_DEFAULT);
  int rc = a >= 0 && H5Awrite(a, t, "something") >= 0 ? 0 : -1;
  if (a >= 0) H5Aclose(a);
  H5Sclose(s), H5Tclose(t);
  return rc;
}
static int edit_dtype_attr(hid_t f) {
  H5Adelete(f, "dtype");
  hid_t t = H5Tcopy(H5T_C_S1), s = H5Screate(H5S_SCALAR);
  H5Tset_size(t, 7);
  hid_t a = H5Acreate2(f, "dtype", t, s, H5P_DEFAULT, H5P_DEFAULT);
  int rc = a >= 0 && H5Awrite(a, t, "float32") >= 0 ? 0 : -1;
  if (a >= 0) H5Aclose(a);
  H5Sclose(s), H5Tclose(t);
  return rc;
}

static void expect_refused(const char *what, shard_edit edit, const char *want1, const char *want2) {
  char folder[512], path[600], err[1024] = "";
  static int serial = 0;
  char name[32];
  snprintf(name, sizeof name, "bad-%d", serial++);
  make_folder(folder, sizeof folder, name);
  snprintf(path, sizeof path, "%s/shard-00000.h5", folder);
  shard_layout l = make_layout(SHARD_UINT8, 1);
  int ok = write_random_shard(path, &l, 0, 2, NULL, err, sizeof err) == 0;
  hid_t f = ok ? H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT) : -1;
  ok = f >= 0 && edit(f) == 0;
  if (f >= 0) H5Fclose(f);
  if (!ok) {
    check(0, what, "could not build the bad shard: %s", err);
    return;
  }
  shard_reader *r = shard_reader_open(path, NULL, NULL, err, sizeof err);
  check(!r && strstr(err, path) && strstr(err, want1) && (!want2 || strstr(err, want2)) && one_line(err), what,
        "error: %s", r ? "(none: opened)" : err);
  shard_reader_close(r);
  /* the data set opener passes the same line through */
  shard_dataset d;
  int rc = shard_dataset_open(&d, folder, err, sizeof err);
  check(rc != 0 && strstr(err, want1), "data set refuses it too", "%s: %s", what, rc ? err : "(opened)");
  if (rc == 0) shard_dataset_close(&d);
}

static void test_bad_files(void) {
  expect_refused("missing dataset level1", edit_missing_level1, "dataset level1 is missing", "level2 exists");
  expect_refused("missing dataset level0", edit_missing_level0, "dataset level0 is missing", "[N, T, H, W, C]");
  expect_refused("wrong dtype", edit_int16_level0, "dataset level0 stores int16", "expected uint8");
  expect_refused("wrong frame count at level 1", edit_wrong_frames_level1, "dataset level1 has shape [2, 3, 5, 6, 3]",
                 "expected [2, 4, 5, 6, 3]");
  expect_refused("wrong rank", edit_rank4_level2, "dataset level2 has shape [2, 2, 5, 6]", "expected [2, 2, 5, 6, 3]");
  expect_refused("labels of the wrong length", edit_short_labels, "dataset labels is int32 [1]", "expected [2] int32");
  expect_refused("wrong version", edit_version_2, "attribute version is 2", "expected 1");
  expect_refused("missing format attribute", edit_no_format, "attribute format is missing", "tpdiff-shard");
  expect_refused("wrong format attribute", edit_other_format, "attribute format is \"something\"", "tpdiff-shard");
  expect_refused("dtype attribute disagrees with the data", edit_dtype_attr, "dataset level0 stores uint8",
                 "expected float32");

  char folder[512], path[600], err[1024] = "";
  make_folder(folder, sizeof folder, "trunc");
  snprintf(path, sizeof path, "%s/shard-00000.h5", folder);
  shard_layout l = make_layout(SHARD_UINT8, 1);
  int ok = write_random_shard(path, &l, 0, 3, NULL, err, sizeof err) == 0;
  struct stat st;
  ok = ok && stat(path, &st) == 0 && truncate(path, st.st_size / 2) == 0;
  shard_reader *r = ok ? shard_reader_open(path, NULL, NULL, err, sizeof err) : NULL;
  check(ok && !r && strstr(err, path) && strstr(err, "truncated") && one_line(err), "truncated shard (half its bytes)",
        "error: %s", err);
  shard_reader_close(r);

  snprintf(path, sizeof path, "%s/not-hdf5.h5", folder);
  FILE *f = fopen(path, "w");
  fprintf(f, "this is a text file, not HDF5\n");
  fclose(f);
  r = shard_reader_open(path, NULL, NULL, err, sizeof err);
  check(!r && strstr(err, path) && strstr(err, "not an HDF5 file") && one_line(err), "a file that is not HDF5",
        "error: %s", err);
  shard_reader_close(r);
  snprintf(path, sizeof path, "%s/absent.h5", folder);
  r = shard_reader_open(path, NULL, NULL, err, sizeof err);
  check(!r && strstr(err, path) && strstr(err, "No such file") && one_line(err), "a shard that does not exist",
        "error: %s", err);
  shard_reader_close(r);

  /* out-of-range requests on a good shard */
  snprintf(path, sizeof path, "%s/good.h5", folder);
  ok = write_random_shard(path, &l, 0, 2, NULL, err, sizeof err) == 0;
  r = ok ? shard_reader_open(path, NULL, NULL, err, sizeof err) : NULL;
  float *out = malloc(8 * 5 * 6 * 3 * sizeof(float));
  int e1 = r ? shard_read_clip(r, 2, 0, out, NULL, err, sizeof err) : 0;
  int e1_ok = e1 && strstr(err, "clip 2 is out of range") && strstr(err, path);
  int e2 = r ? shard_read_clip(r, 0, 4, out, NULL, err, sizeof err) : 0;
  int e2_ok = e2 && strstr(err, "level 4 does not exist");
  check(r && e1_ok && e2_ok, "clip index and level out of range", "last error: %s", err);
  shard_reader_close(r);
  free(out);
}

static void test_writer_refusals(void) {
  char path[600], err[1024] = "";
  snprintf(path, sizeof path, "%s/refused.h5", tmp_root);
  shard_layout l = make_layout(SHARD_UINT8, 0);
  l.levels = 5; /* 8 frames cannot make 5 levels */
  shard_writer *w = shard_writer_open(path, &l, NULL, err, sizeof err);
  check(!w && strstr(err, "not divisible"), "writer refuses levels the frames cannot make", "error: %s", err);
  l = make_layout(SHARD_FLOAT16, 0);
  w = shard_writer_open(path, &l, NULL, err, sizeof err);
  float *clip = calloc(8 * 5 * 6 * 3, sizeof *clip);
  clip[7] = NAN;
  int rc1 = w ? shard_writer_append(w, clip, 0, "x", err, sizeof err) : 0;
  int ok1 = rc1 && strstr(err, "clip 0: value 7 is not finite");
  clip[7] = 1e6f; /* stored 2e6: beyond float16 */
  int rc2 = w ? shard_writer_append(w, clip, 0, "x", err, sizeof err) : 0;
  int ok2 = rc2 && strstr(err, "does not fit float16");
  check(w && ok1 && ok2, "writer refuses non-finite values and float16 overflow", "last error: %s", err);
  shard_writer_abort(w);
  free(clip);
  check(access(path, F_OK) != 0, "refused writes leave nothing", "%s %s", path,
        access(path, F_OK) ? "absent" : "exists");
}

static void test_index_disagreements(void) {
  char folder[512], err[1024] = "", path[700];
  make_folder(folder, sizeof folder, "index");
  shard_layout l = make_layout(SHARD_UINT8, 1);
  const char *names[3] = {"shard-00000.h5", "shard-00001.h5", "shard-00002.h5"};
  long counts[3] = {2, 3, 1};
  int ok = 1;
  for (int s = 0; s < 2 && ok; s++) {
    snprintf(path, sizeof path, "%s/%s", folder, names[s]);
    ok = write_random_shard(path, &l, 0, (int)counts[s], NULL, err, sizeof err) == 0;
  }
  shard_dataset d;
  /* no index.json: the shards are found by name (and the opener says so on stderr) */
  int rc = ok ? shard_dataset_open(&d, folder, err, sizeof err) : -1;
  check(rc == 0 && d.count == 2 && d.total == 5 && strstr(d.paths[1], "shard-00001.h5"),
        "folder without index.json: shards scanned", "%s", rc ? err : "2 shards, 5 clips");
  if (rc == 0) shard_dataset_close(&d);

  long wrong[2] = {2, 4};
  shard_write_index(folder, &l, 2, names, wrong, err, sizeof err);
  rc = shard_dataset_open(&d, folder, err, sizeof err);
  check(rc != 0 && strstr(err, "index.json") && strstr(err, "shard-00001.h5 holds 3 clips (index.json says 4)") &&
            one_line(err),
        "index.json with a wrong clip count", "error: %s", rc ? err : "(opened)");
  shard_layout other = l;
  other.frames = 16;
  shard_write_index(folder, &other, 2, names, counts, err, sizeof err);
  rc = shard_dataset_open(&d, folder, err, sizeof err);
  check(rc != 0 && strstr(err, "index.json") && strstr(err, "clip shape") && strstr(err, "shard-00000.h5"),
        "index.json with a wrong clip shape", "error: %s", rc ? err : "(opened)");
  other = l;
  other.dtype = SHARD_FLOAT32;
  shard_write_index(folder, &other, 2, names, counts, err, sizeof err);
  rc = shard_dataset_open(&d, folder, err, sizeof err);
  check(rc != 0 && strstr(err, "dtype uint8 (index.json says float32)"), "index.json with a wrong dtype", "error: %s",
        rc ? err : "(opened)");
  other = l;
  other.levels = 3;
  shard_write_index(folder, &other, 2, names, counts, err, sizeof err);
  rc = shard_dataset_open(&d, folder, err, sizeof err);
  check(rc != 0 && strstr(err, "4 levels (index.json says 3)"), "index.json with wrong levels", "error: %s",
        rc ? err : "(opened)");
  shard_write_index(folder, &l, 3, names, counts, err, sizeof err);
  rc = shard_dataset_open(&d, folder, err, sizeof err);
  check(rc != 0 && strstr(err, "index.json") && strstr(err, "\"shard-00002.h5\" is missing") && one_line(err),
        "index.json naming a missing shard", "error: %s", rc ? err : "(opened)");

  /* a shard that disagrees with the first one (no index: nothing else to compare with) */
  snprintf(path, sizeof path, "%s/index.json", folder);
  unlink(path);
  snprintf(path, sizeof path, "%s/shard-00002.h5", folder);
  shard_layout f32 = make_layout(SHARD_FLOAT32, 1);
  write_random_shard(path, &f32, 0, 1, NULL, err, sizeof err);
  rc = shard_dataset_open(&d, folder, err, sizeof err);
  check(rc != 0 && strstr(err, path) && strstr(err, "dtype float32 (the first shard shard-00000.h5 has uint8)"),
        "shards that disagree with each other", "error: %s", rc ? err : "(opened)");

  const char *bad_json[][2] = {
      {"{\"format\": \"tpdiff-dataset\", \"version\": 1, \"frames\": 8,", "byte"},
      {"[1, 2]", "expected a JSON object"},
      {"{\"format\": \"tpdiff-dataset\", \"version\": 2, \"frames\": 8, \"height\": 5, \"width\": 6, \"channels\": 3, "
       "\"levels\": 4, \"dtype\": \"uint8\", \"shards\": []}",
       "version is 2"},
      {"{\"format\": \"tpdiff-dataset\", \"version\": 1, \"frames\": 8, \"height\": 5, \"width\": 6, \"channels\": 3, "
       "\"levels\": 4, \"dtype\": \"uint8\"}",
       "key shards is missing"},
      {"{\"format\": \"tpdiff-dataset\", \"version\": 1, \"frames\": 8.5, \"height\": 5}", "expected an integer"},
      {"{\"format\": \"tpdiff-dataset\", \"version\": 1, \"frames\": 8, \"height\": 5, \"width\": 6, \"channels\": 3, "
       "\"levels\": 4, \"dtype\": \"uint8\", \"shards\": [{\"name\": \"../x.h5\", \"clips\": 1}]}",
       "not a plain file"},
      {"{\"format\": \"other\", \"version\": 1, \"frames\": 8, \"height\": 5, \"width\": 6, \"channels\": 3, "
       "\"levels\": 4, \"dtype\": \"uint8\", \"shards\": [], \"extra\": {\"a\": [1, null, true]}}",
       "format is \"other\""},
  };
  int parsed_right = 0;
  char last[1024] = "";
  for (size_t i = 0; i < sizeof bad_json / sizeof bad_json[0]; i++) {
    snprintf(path, sizeof path, "%s/index.json", folder);
    FILE *f = fopen(path, "w");
    fputs(bad_json[i][0], f);
    fclose(f);
    rc = shard_dataset_open(&d, folder, err, sizeof err);
    if (rc != 0 && strstr(err, "index.json") && strstr(err, bad_json[i][1]) && one_line(err))
      parsed_right++;
    else
      snprintf(last, sizeof last, "case %zu: %s", i, rc ? err : "(opened)");
  }
  if (!last[0]) snprintf(last, sizeof last, "e.g. %s", err);
  check(parsed_right == (int)(sizeof bad_json / sizeof bad_json[0]), "malformed index.json refused with the reason",
        "%d of %zu; %s", parsed_right, sizeof bad_json / sizeof bad_json[0], last);

  rc = shard_dataset_open(&d, path, err, sizeof err); /* index.json itself: a file, not a folder */
  check(rc != 0 && strstr(err, "not a folder") && strstr(err, path), "a data set path that is a file", "error: %s",
        err);
  make_folder(folder, sizeof folder, "empty");
  rc = shard_dataset_open(&d, folder, err, sizeof err);
  check(rc != 0 && strstr(err, "no index.json and no shard-*.h5") && strstr(err, folder), "a folder with no shards",
        "error: %s", err);
  snprintf(path, sizeof path, "%s/nowhere", tmp_root);
  rc = shard_dataset_open(&d, path, err, sizeof err);
  check(rc != 0 && strstr(err, "No such file"), "a data set folder that does not exist", "error: %s", err);
}

static void test_nothing_half_written(void) {
  char folder[512], path[600], err[1024] = "", left[2048];
  make_folder(folder, sizeof folder, "abort");
  snprintf(path, sizeof path, "%s/shard-00000.h5", folder);
  shard_layout l = make_layout(SHARD_UINT8, 1);
  shard_writer *w = shard_writer_open(path, &l, NULL, err, sizeof err);
  float *clip = calloc(8 * 5 * 6 * 3, sizeof *clip);
  int ok = w && shard_writer_append(w, clip, 1, "a", err, sizeof err) == 0 &&
           shard_writer_append(w, clip, 2, "b", err, sizeof err) == 0;
  list_folder(folder, left, sizeof left);
  int temp_seen = strstr(left, ".tmp.") != NULL && access(path, F_OK) != 0;
  shard_writer_abort(w);
  list_folder(folder, left, sizeof left);
  check(ok && temp_seen && left[0] == '\0', "writer aborted after 2 clips leaves nothing",
        "while writing only a temporary existed: %s; after abort: '%s'", temp_seen ? "yes" : "no", left);

  /* A write that fails for real: the file-size limit (in a child, with SIGXFSZ ignored so write()
   * returns EFBIG instead of killing the process). */
  make_folder(folder, sizeof folder, "fsize");
  snprintf(path, sizeof path, "%s/shard-00000.h5", folder);
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {64 << 10, 64 << 10};
    setrlimit(RLIMIT_FSIZE, &lim);
    shard_layout big = make_layout(SHARD_FLOAT32, 1);
    shard_writer *cw = shard_writer_open(path, &big, NULL, err, sizeof err);
    int failed = !cw;
    for (int c = 0; c < 200 && !failed; c++)
      if (shard_writer_append(cw, clip, c, "x", err, sizeof err) != 0) failed = 1, shard_writer_abort(cw);
    if (!failed) failed = shard_writer_close(cw, err, sizeof err) != 0;
    printf("      child: %s\n", failed ? err : "(no failure)");
    fflush(stdout);
    _exit(failed && one_line(err) && strstr(err, path) ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  list_folder(folder, left, sizeof left);
  check(WIFEXITED(status) && WEXITSTATUS(status) == 0 && left[0] == '\0',
        "write failing at the file-size limit leaves nothing", "child %s, folder holds '%s'",
        WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "saw one clear error" : "did not report the failure", left);
  free(clip);
}

/* ---- helper modes for the h5py interop script --------------------------------------------------- */

static int mode_write(int argc, char **argv) {
  if (argc != 11) {
    fprintf(stderr, "usage: test_shard --write SHARD DTYPE DEFLATE N T H W C INPUT.f32\n");
    return 2;
  }
  int dt = !strcmp(argv[3], "uint8") ? SHARD_UINT8 : !strcmp(argv[3], "float16") ? SHARD_FLOAT16 : SHARD_FLOAT32;
  long N = atol(argv[5]);
  shard_layout l = {.frames = atoi(argv[6]),
                    .height = atoi(argv[7]),
                    .width = atoi(argv[8]),
                    .channels = atoi(argv[9]),
                    .dtype = (shard_dtype)dt,
                    .fps = 24,
                    .has_labels = 1};
  l.scale = dt == SHARD_UINT8 ? 2.0 / 255.0 : 1.0;
  l.shift = dt == SHARD_UINT8 ? -1.0 : 0.0;
  for (l.levels = 1; l.levels < 4 && l.frames % (1 << l.levels) == 0; l.levels++) {
  }
  size_t n = (size_t)l.frames * l.height * l.width * l.channels;
  float *data = malloc(n * (size_t)N * sizeof(float));
  FILE *f = fopen(argv[10], "rb");
  if (!f || fread(data, sizeof(float), n * (size_t)N, f) != n * (size_t)N) {
    fprintf(stderr, "%s: short input\n", argv[10]);
    return 1;
  }
  fclose(f);
  char err[1024];
  shard_write_options opt = {.deflate_level = atoi(argv[4])};
  shard_writer *w = shard_writer_open(argv[2], &l, &opt, err, sizeof err);
  for (long i = 0; w && i < N; i++) {
    char source[64];
    snprintf(source, sizeof source, "clip-%ld", i);
    if (shard_writer_append(w, data + n * (size_t)i, (int)(i % 7), source, err, sizeof err) != 0) {
      shard_writer_abort(w);
      w = NULL;
    }
  }
  free(data);
  if (!w || shard_writer_close(w, err, sizeof err) != 0) {
    printf("%s\n", err);
    return 1;
  }
  return 0;
}

static int mode_read(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: test_shard --read SHARD OUTPREFIX\n");
    return 2;
  }
  char err[1024], path[4200];
  shard_layout l;
  long clips;
  shard_reader *r = shard_reader_open(argv[2], &l, &clips, err, sizeof err);
  if (!r) {
    printf("%s\n", err);
    return 1;
  }
  float *out = malloc(shard_clip_bytes(&l, 0) /
                      (l.dtype == SHARD_UINT8     ? 1
                       : l.dtype == SHARD_FLOAT16 ? 2
                                                  : 4) *
                      sizeof(float));
  int *labels = malloc((size_t)(clips ? clips : 1) * sizeof(int));
  int rc = 0;
  for (int lev = 0; lev < l.levels && !rc; lev++) {
    snprintf(path, sizeof path, "%s.level%d.f32", argv[3], lev);
    FILE *f = fopen(path, "wb");
    size_t n = (size_t)(l.frames >> lev) * l.height * l.width * l.channels;
    for (long i = 0; i < clips && !rc; i++) {
      rc = shard_read_clip(r, i, lev, out, &labels[i], err, sizeof err);
      if (!rc) fwrite(out, sizeof(float), n, f);
    }
    fclose(f);
  }
  snprintf(path, sizeof path, "%s.labels.i32", argv[3]);
  FILE *f = fopen(path, "wb");
  fwrite(labels, sizeof(int), (size_t)clips, f);
  fclose(f);
  if (rc)
    printf("%s\n", err);
  else
    printf("levels %d clips %ld dtype %d labels %d\n", l.levels, clips, (int)l.dtype, l.has_labels);
  free(out);
  free(labels);
  shard_reader_close(r);
  return rc ? 1 : 0;
}

int main(int argc, char **argv) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  if (argc > 1 && !strcmp(argv[1], "--write")) return mode_write(argc, argv);
  if (argc > 1 && !strcmp(argv[1], "--read")) return mode_read(argc, argv);
  snprintf(tmp_root, sizeof tmp_root, "%s/tpdiff-shard-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(tmp_root)) {
    printf("FAIL setup: cannot make a temporary folder: %s\n", strerror(errno));
    return 1;
  }
  test_round_trip();
  test_flipped_byte(0);
  test_flipped_byte(6);
  test_bad_files();
  test_writer_refusals();
  test_index_disagreements();
  test_nothing_half_written();
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
  if (system(cmd) != 0) printf("note: could not remove %s\n", tmp_root);
  printf("%s: %d failure(s)\n", failures ? "FAILED" : "ok", failures);
  return failures ? 1 : 0;
}
