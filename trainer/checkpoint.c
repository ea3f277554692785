/* checkpoint.c — writing, verifying and loading checkpoints (layout in checkpoint.h). */
#include "trainer/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "data/shard_internal.h"

/* The tensor groups, in file order; ema is optional. */
static const char *const tensor_groups[] = {"params", "ema", "adam_m", "adam_v"};
enum { GROUP_PARAMS, GROUP_EMA, GROUP_M, GROUP_V, GROUP_COUNT };

uint32_t checkpoint_crc32(const void *data, size_t bytes) {
  uLong c = crc32(0L, Z_NULL, 0);
  const unsigned char *p = data;
  while (bytes) { /* crc32 takes a uInt length */
    uInt chunk = bytes > (1u << 30) ? (1u << 30) : (uInt)bytes;
    c = crc32(c, p, chunk);
    p += chunk;
    bytes -= chunk;
  }
  return (uint32_t)c;
}

void checkpoint_path(char *out, size_t size, const char *dir, long step) {
  snprintf(out, size, "%s/ckpt-%07ld.h5", dir, step);
}

/* ---- writing ---------------------------------------------------------------------------------- */

/* A scalar attribute of file type `type` from the native value at v. */
static int write_attr(hid_t obj, const char *name, hid_t type, hid_t mem_type, const void *v) {
  hid_t s = H5Screate(H5S_SCALAR);
  hid_t a = s < 0 ? -1 : H5Acreate2(obj, name, type, s, H5P_DEFAULT, H5P_DEFAULT);
  int rc = a < 0 || H5Awrite(a, mem_type, v) < 0 ? -1 : 0;
  if (a >= 0) H5Aclose(a);
  if (s >= 0) H5Sclose(s);
  return rc;
}

static int write_attr_i64(hid_t obj, const char *name, int64_t v) {
  return write_attr(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

static int write_attr_str(hid_t obj, const char *name, const char *v) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, strlen(v) + 1);
  hid_t s = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
  int rc = a < 0 || H5Awrite(a, t, v) < 0 ? -1 : 0;
  if (a >= 0) H5Aclose(a);
  H5Sclose(s);
  H5Tclose(t);
  return rc;
}

static int write_crc(hid_t d, const void *data, size_t bytes) {
  uint32_t crc = checkpoint_crc32(data, bytes);
  return write_attr(d, "crc32", H5T_STD_U32LE, H5T_NATIVE_UINT32, &crc);
}

/* One dataset of `rank` dims with its crc32 attribute. */
static int write_dataset(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, int rank, const hsize_t *dims,
                         const void *data, size_t bytes) {
  hid_t s = H5Screate_simple(rank, dims, NULL);
  hid_t d = s < 0 ? -1 : H5Dcreate2(loc, name, file_type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  int rc = d < 0 || H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0 ||
                   write_crc(d, data, bytes) < 0
               ? -1
               : 0;
  if (d >= 0) H5Dclose(d);
  if (s >= 0) H5Sclose(s);
  return rc;
}

static int write_tensor_group(hid_t file, const char *group, const dit_model *m, const float *host) {
  hid_t g = H5Gcreate2(file, group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) return -1;
  int rc = 0;
  for (int i = 0; i < m->num_params && rc == 0; i++) {
    const dit_param *p = &m->params[i];
    hsize_t dims[2] = {(hsize_t)p->shape[0], (hsize_t)p->shape[1]};
    rc = write_dataset(g, p->name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, p->ndim, dims, host + p->offset,
                       p->numel * sizeof(float));
  }
  H5Gclose(g);
  return rc;
}

/* fsync of a file or folder by path. */
static int sync_path(const char *path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  int saved = errno;
  close(fd);
  errno = saved;
  return rc;
}

/* Fills file's contents; -1 on the first HDF5 failure (the caller reads errno and the HDF5 stack). */
static int write_contents(hid_t f, const trainer *tr, const checkpoint_meta *meta, const checkpoint_rank_state *ranks,
                          int world, float *host, char *what, size_t what_size) {
  const dit_model *m = &tr->model;
  const tpdiff_backend *be = tr->be;
  size_t bytes = m->num_floats * sizeof(float);
  snprintf(what, what_size, "attributes");
  if (write_attr_str(f, "format", CHECKPOINT_FORMAT) || write_attr_i64(f, "version", CHECKPOINT_VERSION) ||
      write_attr_i64(f, "step", meta->step) || write_attr_i64(f, "world_size", world) ||
      write_attr_i64(f, "adam_step", tr->opt.step) || write_attr_i64(f, "stream_position", meta->stream_position) ||
      write_attr_i64(f, "skipped_steps", meta->skipped_steps) ||
      write_attr_i64(f, "nonfinite_in_a_row", meta->nonfinite_in_a_row))
    return -1;
  size_t len = 0;
  char *text = config_yaml_text(&tr->cfg, &len);
  snprintf(what, what_size, "/config");
  if (!text) return -1;
  hsize_t cdims[1] = {len};
  int rc = write_dataset(f, "config", H5T_STD_U8LE, H5T_NATIVE_UCHAR, 1, cdims, text, len);
  free(text);
  if (rc) return -1;
  const float *from[GROUP_COUNT] = {m->weights, tr->opt.ema, tr->opt.m, tr->opt.v};
  for (int g = 0; g < GROUP_COUNT; g++) {
    if (!from[g]) continue;
    snprintf(what, what_size, "/%s", tensor_groups[g]);
    if (be->copy_to_host(host, from[g], bytes) != 0) {
      snprintf(what, what_size, "/%s (copy from the %s backend: %s)", tensor_groups[g], be->name, be->last_error());
      return -1;
    }
    if (write_tensor_group(f, tensor_groups[g], m, host)) return -1;
  }
  int64_t *rows = malloc(sizeof(int64_t) * 4 * (size_t)world);
  snprintf(what, what_size, "/ranks");
  if (!rows) return -1;
  for (int r = 0; r < world; r++) {
    rows[4 * r + 0] = ranks[r].rank;
    rows[4 * r + 1] = ranks[r].seed;
    rows[4 * r + 2] = ranks[r].next_step;
    rows[4 * r + 3] = ranks[r].stream_position;
  }
  hsize_t rdims[2] = {(hsize_t)world, 4};
  rc = write_dataset(f, "ranks", H5T_STD_I64LE, H5T_NATIVE_INT64, 2, rdims, rows, sizeof(int64_t) * 4 * world);
  free(rows);
  return rc;
}

/* Writes bytes to tmp, fsyncs it and renames it to path: 0, or -1 with errno set and tmp removed. */
static int write_file_atomically(const char *tmp, const char *path, const void *bytes, size_t size, char *what,
                                 size_t what_size) {
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    snprintf(what, what_size, "creating %s", tmp);
    return -1;
  }
  const char *p = bytes;
  size_t left = size;
  while (left) {
    ssize_t n = write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      snprintf(what, what_size, "writing %s", tmp);
      goto fail;
    }
    p += n;
    left -= (size_t)n;
  }
  if (fsync(fd) != 0) {
    snprintf(what, what_size, "fsync of %s", tmp);
    goto fail;
  }
  if (close(fd) != 0) {
    fd = -1;
    snprintf(what, what_size, "closing %s", tmp);
    goto fail;
  }
  fd = -1;
  if (rename(tmp, path) != 0) {
    snprintf(what, what_size, "renaming %s", tmp);
    goto fail;
  }
  return 0;
fail:;
  int saved = errno;
  if (fd >= 0) close(fd);
  unlink(tmp);
  errno = saved;
  return -1;
}

int checkpoint_write(const char *dir, const trainer *tr, const checkpoint_meta *meta,
                     const checkpoint_rank_state *ranks, int world, char *err, size_t err_size) {
  char path[TPDIFF_PATH_MAX + 32], tmp[TPDIFF_PATH_MAX + 40], what[TPDIFF_PATH_MAX + 128] = "";
  checkpoint_path(path, sizeof path, dir, meta->step);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  float *host = malloc(tr->model.num_floats * sizeof(float));
  if (!host) {
    snprintf(err, err_size, "%s: out of memory for the host copy of %zu parameters", path, tr->model.num_floats);
    return -1;
  }
  /* The file is built in memory (HDF5's core driver) and written with plain write() calls: a full
   * disk or a file-size limit then fails one write() with its errno, and HDF5 never holds a file
   * whose close failed (which leaves the library unable to shut down cleanly). */
  shard_h5_quiet();
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_core(fapl, (size_t)64 << 20, 0);
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  int rc = f < 0 ? -1 : write_contents(f, tr, meta, ranks, world, host, what, sizeof what);
  free(host);
  void *image = NULL;
  ssize_t size = -1;
  if (rc == 0 && H5Fflush(f, H5F_SCOPE_GLOBAL) >= 0) size = H5Fget_file_image(f, NULL, 0);
  if (size > 0) image = malloc((size_t)size);
  if (rc == 0 && (!image || H5Fget_file_image(f, image, (size_t)size) != size)) {
    rc = -1;
    snprintf(what, sizeof what, "building the file image (%zd bytes) in memory", size);
  }
  if (f >= 0) H5Fclose(f);
  if (f < 0 || rc != 0) {
    free(image);
    snprintf(err, err_size, "%s: cannot build the checkpoint (%s); the previous checkpoints are unchanged", path,
             f < 0 ? "HDF5 cannot create a file in memory" : what);
    return -1;
  }
  errno = 0;
  rc = write_file_atomically(tmp, path, image, (size_t)size, what, sizeof what);
  free(image);
  if (rc != 0) {
    snprintf(err, err_size, "%s: cannot write the checkpoint (%s: %s); the previous checkpoints are unchanged", path,
             what, strerror(errno));
    return -1;
  }
  sync_path(dir); /* the rename itself reaches the disk */
  return 0;
}

/* ---- listing and pruning ---------------------------------------------------------------------- */

/* step of a name "ckpt-NNNNNNN.h5" (any number of digits), or -1. */
static long step_of_name(const char *name) {
  if (strncmp(name, "ckpt-", 5) != 0) return -1;
  const char *p = name + 5;
  char *end;
  errno = 0;
  long step = strtol(p, &end, 10);
  if (end == p || errno || strcmp(end, ".h5") != 0 || step < 0) return -1;
  return step;
}

typedef struct {
  long step;
  char *path;
} listed;

static int by_step_descending(const void *a, const void *b) {
  long x = ((const listed *)a)->step, y = ((const listed *)b)->step;
  return x < y ? 1 : x > y ? -1 : 0;
}

int checkpoint_list(const char *dir, char ***paths, int *count, char *err, size_t err_size) {
  *paths = NULL;
  *count = 0;
  DIR *d = opendir(dir);
  if (!d) {
    if (errno == ENOENT) return 0;
    snprintf(err, err_size, "%s: cannot list checkpoints: %s", dir, strerror(errno));
    return -1;
  }
  listed *items = NULL;
  int n = 0, cap = 0, rc = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL && rc == 0) {
    long step = step_of_name(e->d_name);
    if (step < 0) continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 16;
      listed *grown = realloc(items, sizeof *items * (size_t)cap);
      if (!grown) {
        rc = -1;
        break;
      }
      items = grown;
    }
    size_t len = strlen(dir) + strlen(e->d_name) + 2;
    items[n].path = malloc(len);
    if (!items[n].path) {
      rc = -1;
      break;
    }
    snprintf(items[n].path, len, "%s/%s", dir, e->d_name);
    items[n++].step = step;
  }
  closedir(d);
  char **out = rc == 0 ? malloc(sizeof *out * (size_t)(n ? n : 1)) : NULL;
  if (!out) {
    for (int i = 0; i < n; i++) free(items[i].path);
    free(items);
    snprintf(err, err_size, "%s: out of memory listing checkpoints", dir);
    return -1;
  }
  if (n) qsort(items, (size_t)n, sizeof *items, by_step_descending); /* items is NULL when n is 0 */
  for (int i = 0; i < n; i++) out[i] = items[i].path;
  free(items);
  *paths = out;
  *count = n;
  return 0;
}

int checkpoint_prune(const char *dir, int keep, char *err, size_t err_size) {
  char **paths;
  int n;
  if (checkpoint_list(dir, &paths, &n, err, err_size) != 0) return -1;
  int rc = 0;
  for (int i = 0; i < n; i++) {
    if (i >= keep && unlink(paths[i]) != 0 && errno != ENOENT && rc == 0) {
      snprintf(err, err_size, "%s: cannot delete an old checkpoint: %s", paths[i], strerror(errno));
      rc = -1;
    }
    free(paths[i]);
  }
  free(paths);
  /* temporaries of writes that never finished (a crash or kill mid-write) */
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    size_t len = strlen(e->d_name);
    if (strncmp(e->d_name, "ckpt-", 5) != 0 || len < 8 || strcmp(e->d_name + len - 7, ".h5.tmp") != 0) continue;
    char path[TPDIFF_PATH_MAX + 300];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  if (d) closedir(d);
  return rc;
}
