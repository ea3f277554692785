/* test_checkpoint.c — checkpoints (trainer/checkpoint.h) on the tiny model: a round trip keeps every
 * tensor and counter bit-identical; keep prunes; and damaged files are refused with a line naming
 * the file and the dataset, leaving the run's state untouched: truncated, a flipped byte in one
 * tensor, a missing dataset, a model of another shape, not a checkpoint at all, and a write that
 * hits a file-size limit (the earlier checkpoint stays loadable, no temporary is left). */
#include <hdf5.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "trainer/checkpoint.h"
#include "trainer/resume.h"
#include "tests/unit/dit_test_util.h"
#include "tests/unit/test_files.h"
#include "tests/unit/test_report.h"

static char dir[256];

/* The four state buffers of tr in host memory [4 * n]: weights, ema, m, v. */
static float *state_copy(const trainer *tr) {
  size_t n = tr->model.num_floats, bytes = n * sizeof(float);
  float *h = malloc(4 * bytes);
  const tpdiff_backend *be = tr->be;
  if (h && (be->copy_to_host(h, tr->model.weights, bytes) || be->copy_to_host(h + n, tr->opt.ema, bytes) ||
            be->copy_to_host(h + 2 * n, tr->opt.m, bytes) || be->copy_to_host(h + 3 * n, tr->opt.v, bytes))) {
    free(h);
    return NULL;
  }
  return h;
}

static int make_trainer(trainer *tr, const char *dim, char *err, size_t err_size) {
  tpdiff_config cfg;
  char out[300], o_dim[64];
  snprintf(out, sizeof out, "--train.out=%s", dir);
  snprintf(o_dim, sizeof o_dim, "--model.dim=%s", dim);
  char *args[] = {out, "--train.ema=0.9", o_dim};
  if (config_load(&cfg, "configs/tiny.yaml", 3, args, err, err_size) != 0) return -1;
  return trainer_create(tr, &cfg, tpdiff_cpu_backend(), err, err_size);
}

/* Fills weights, EMA and moments with distinct values (v positive) and sets the counters. */
static void scramble(trainer *tr, uint64_t seed) {
  size_t n = tr->model.num_floats;
  float *h = malloc(n * sizeof(float));
  float *to[4] = {tr->model.weights, tr->opt.ema, tr->opt.m, tr->opt.v};
  for (int i = 0; i < 4; i++) {
    k_fill_normal(h, n, seed, (uint64_t)i, 0);
    if (i == 3)
      for (size_t j = 0; j < n; j++) h[j] = h[j] * h[j];
    dit_test_zero_gaps(&tr->model, h); /* no parameter lives there: a round trip gives zeros back */
    tr->be->copy_to_device(to[i], h, n * sizeof(float));
  }
  free(h);
  tr->opt.step = 7;
  tr->skipped_steps = 2;
  tr->nonfinite_in_a_row = 1;
}

/* Flips one byte in the middle of dataset `name`'s data (contiguous layout: H5Dget_offset). */
static int flip_byte(const char *path, const char *name) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = f >= 0 ? H5Dopen2(f, name, H5P_DEFAULT) : -1;
  haddr_t at = d >= 0 ? H5Dget_offset(d) : HADDR_UNDEF;
  hsize_t size = d >= 0 ? H5Dget_storage_size(d) : 0;
  if (d >= 0) H5Dclose(d);
  if (f >= 0) H5Fclose(f);
  if (at == HADDR_UNDEF || size < 2) return -1;
  FILE *fp = fopen(path, "r+b");
  long pos = (long)(at + size / 2);
  int c = fp && fseek(fp, pos, SEEK_SET) == 0 ? fgetc(fp) : EOF;
  int rc = c != EOF && fseek(fp, pos, SEEK_SET) == 0 && fputc(c ^ 0x04, fp) != EOF ? 0 : -1;
  if (fp && fclose(fp) != 0) rc = -1;
  return rc;
}

static int delete_dataset(const char *path, const char *name) {
  hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  int rc = f >= 0 && H5Ldelete(f, name, H5P_DEFAULT) >= 0 ? 0 : -1;
  if (f >= 0) H5Fclose(f);
  return rc;
}

/* checkpoint_load of path into tr must fail with every needle in err and leave tr as `before`. */
static void expect_refused(const char *name, const char *path, trainer *tr, const float *before, const char *needle1,
                           const char *needle2) {
  char err[1024] = "";
  checkpoint_meta meta;
  int rc = checkpoint_load(path, tr, &meta, err, sizeof err);
  float *after = state_copy(tr);
  size_t bytes = 4 * tr->model.num_floats * sizeof(float);
  int untouched = after && memcmp(after, before, bytes) == 0 && tr->opt.step == 0;
  free(after);
  int ok = rc != 0 && strstr(err, path) && strstr(err, needle1) && (!needle2 || strstr(err, needle2)) &&
           !strchr(err, '\n') && untouched;
  if (ok)
    pass(name, "%s", err);
  else
    failf(name, "rc %d, state %s, message: %s", rc, untouched ? "untouched" : "CHANGED", err);
}

int main(void) {
  const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(dir, sizeof dir, "%s/test_checkpoint.XXXXXX", base);
  if (!mkdtemp(dir)) {
    failf("setup", "cannot create a temporary folder under %s", base);
    return 1;
  }
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  char err[1024] = "", path[600];
  static trainer a, b, other;
  if (make_trainer(&a, "64", err, sizeof err) != 0 || make_trainer(&b, "64", err, sizeof err) != 0 ||
      make_trainer(&other, "32", err, sizeof err) != 0) {
    failf("setup", "%s", err);
    return 1;
  }
  size_t n = a.model.num_floats;

  /* round trip */
  scramble(&a, 11);
  float *want = state_copy(&a), *fresh = state_copy(&b);
  int rc = save_checkpoint(&a, 12, 345, 3, path, sizeof path, err, sizeof err);
  checkpoint_meta meta = {0};
  if (rc == 0) rc = checkpoint_load(path, &b, &meta, err, sizeof err);
  float *got = state_copy(&b);
  int same = rc == 0 && got && memcmp(got, want, 4 * n * sizeof(float)) == 0;
  int counters = meta.step == 12 && meta.stream_position == 345 && meta.world == 3 && b.opt.step == 7 &&
                 b.skipped_steps == 2 && b.nonfinite_in_a_row == 1;
  check("round trip: weights, EMA, moments bit-identical; counters kept", same && counters,
        "(%zu floats x 4; step %ld position %ld world %d adam step %d)%s%s", n, meta.step, meta.stream_position,
        meta.world, b.opt.step, rc ? ": " : "", rc ? err : "");
  free(got);

  tpdiff_config cfg;
  long step = 0;
  rc = checkpoint_read_config(path, &cfg, &step, err, sizeof err);
  size_t l1 = 0, l2 = 0;
  char *t1 = config_yaml_text(&cfg, &l1), *t2 = config_yaml_text(&a.cfg, &l2);
  check("the stored config reads back equal", rc == 0 && step == 12 && t1 && t2 && l1 == l2 && memcmp(t1, t2, l1) == 0,
        "(%zu bytes)%s%s", l1, rc ? ": " : "", rc ? err : "");
  free(t1);
  free(t2);
  float *ema = malloc(n * sizeof(float));
  rc = checkpoint_read_weights(path, &a.model, 1, ema, err, sizeof err);
  check("checkpoint_read_weights gives the EMA", rc == 0 && memcmp(ema, want + n, n * sizeof(float)) == 0,
        rc ? "(%s)" : NULL, err);
  free(ema);

  /* keep */
  a.cfg.train_keep = 2;
  for (long s = 13; s <= 15; s++) save_checkpoint(&a, s, 0, 1, NULL, 0, err, sizeof err);
  char **paths;
  int count = 0;
  rc = checkpoint_list(dir, &paths, &count, err, sizeof err);
  char want14[600];
  checkpoint_path(want14, sizeof want14, dir, 14);
  check("keep=2 leaves the two newest, newest first", rc == 0 && count == 2 && strstr(paths[0], "ckpt-0000015.h5") &&
        strcmp(paths[1], want14) == 0, "(%d left)", count);
  for (int i = 0; i < count; i++) free(paths[i]);
  if (rc == 0) free(paths);

  /* damaged copies of step 15, each loaded into the fresh trainer c (state `fresh`) */
  static trainer c;
  make_trainer(&c, "64", err, sizeof err);
  char src[600], bad[600];
  checkpoint_path(src, sizeof src, dir, 15);
  snprintf(bad, sizeof bad, "%s/damaged.h5", dir);

  copy_file(src, bad);
  struct stat st;
  stat(bad, &st);
  if (truncate(bad, st.st_size / 2) != 0) failf("truncate", "cannot truncate %s", bad);
  expect_refused("a truncated checkpoint is refused", bad, &c, fresh, "truncated", NULL);

  copy_file(src, bad);
  if (flip_byte(bad, "adam_m/blocks.1.mlp.fc1.weight") != 0) failf("flip", "cannot flip a byte in %s", bad);
  expect_refused("a flipped byte in one tensor fails its checksum", bad, &c, fresh, "/adam_m/blocks.1.mlp.fc1.weight",
                 "checksum");

  copy_file(src, bad);
  if (delete_dataset(bad, "ema/final.linear.bias") != 0) failf("delete", "cannot delete a dataset in %s", bad);
  expect_refused("a missing dataset is named", bad, &c, fresh, "/ema/final.linear.bias", "missing");

  float *other_fresh = state_copy(&other);
  expect_refused("a model of another shape names the parameter and both shapes", src, &other, other_fresh,
                 "parameter x_embed.weight", "[64, 12]");
  free(other_fresh);

  FILE *junk = fopen(bad, "wb");
  if (junk) {
    fputs("not an HDF5 file\n", junk);
    fclose(junk);
  }
  expect_refused("a file that is not HDF5 is refused", bad, &c, fresh, "not a readable HDF5 file", NULL);

  /* a write that hits a file-size limit: reported with the reason; the earlier checkpoint stays */
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit old, lim;
  getrlimit(RLIMIT_FSIZE, &old);
  lim = old;
  lim.rlim_cur = (rlim_t)(st.st_size / 3);
  setrlimit(RLIMIT_FSIZE, &lim);
  rc = save_checkpoint(&a, 16, 0, 1, path, sizeof path, err, sizeof err);
  setrlimit(RLIMIT_FSIZE, &old);
  char tmp[700];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int no_tmp = access(tmp, F_OK) != 0 && access(path, F_OK) != 0;
  char why[1024] = "";
  int earlier = checkpoint_load(src, &c, &meta, why, sizeof why) == 0 && meta.step == 15;
  check("a write over the file-size limit fails naming the file and reason; earlier checkpoint loads",
        rc != 0 && strstr(err, "ckpt-0000016.h5") && strstr(err, "File too large") && no_tmp && earlier, "(%s%s%s)",
        err, earlier ? "" : "; earlier: ", earlier ? "" : why);

  free(want);
  free(fresh);
  trainer_destroy(&a);
  trainer_destroy(&b);
  trainer_destroy(&c);
  trainer_destroy(&other);
  remove_tree(dir);
  test_summary("test_checkpoint", NULL);
  return test_exit_code();
}
