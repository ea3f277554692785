/* shard_write.c — the shard writer: one clip per chunk at every pyramid level, Fletcher32 on every
 * dataset, written under "<path>.tmp.<pid>", fsynced and renamed (shard.h). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/shard_internal.h"

#define LABEL_CHUNK 1024 /* labels and source strings: small, read one element at a time */

struct shard_writer {
  char path[SHARD_PATH_BYTES], tmp[SHARD_PATH_BYTES + 32];
  shard_layout layout;
  shard_write_options opt;
  hid_t file, level[SHARD_MAX_LEVELS], labels, source, f16, str;
  long clips;
  size_t plane;   /* H * W * C: one frame */
  float *stored0; /* level 0 in stored units as float [T * plane] */
  void *stage;    /* one level of one clip in the file's dtype */
};

static void set_err(char *err, size_t err_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t err_size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, err_size, fmt, ap);
  va_end(ap);
}

/* Closes every HDF5 handle the writer holds; returns -1 when closing the file failed (a failed final
 * flush: the file is incomplete). */
static int close_handles(shard_writer *w) {
  for (int l = 0; l < SHARD_MAX_LEVELS; l++)
    if (w->level[l] >= 0) H5Dclose(w->level[l]), w->level[l] = -1;
  if (w->labels >= 0) H5Dclose(w->labels), w->labels = -1;
  if (w->source >= 0) H5Dclose(w->source), w->source = -1;
  if (w->f16 >= 0) H5Tclose(w->f16), w->f16 = -1;
  if (w->str >= 0) H5Tclose(w->str), w->str = -1;
  int rc = 0;
  if (w->file >= 0) rc = H5Fclose(w->file) < 0 ? -1 : 0, w->file = -1;
  return rc;
}

static void free_writer(shard_writer *w) {
  free(w->stored0);
  free(w->stage);
  free(w);
}

void shard_writer_abort(shard_writer *w) {
  if (!w) return;
  shard_h5_quiet();
  close_handles(w);
  H5Eclear2(H5E_DEFAULT);
  unlink(w->tmp);
  free_writer(w);
}

/* A chunked dataset growing along its first axis, Fletcher32 last in the pipeline (so the checksum
 * covers the compressed bytes and a damaged chunk is caught before inflate sees it). */
static hid_t create_growing(shard_writer *w, const char *name, hid_t type, int rank, const hsize_t *chunk, int compress,
                            char *err, size_t err_size) {
  hsize_t dims[5] = {0}, maxdims[5];
  for (int i = 0; i < rank; i++) dims[i] = i ? chunk[i] : 0, maxdims[i] = i ? chunk[i] : H5S_UNLIMITED;
  hid_t space = H5Screate_simple(rank, dims, maxdims), dcpl = H5Pcreate(H5P_DATASET_CREATE), d = -1;
  /* No modification times in the object headers: the same clips give the same bytes. */
  int ok = space >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, rank, chunk) >= 0 && H5Pset_obj_track_times(dcpl, 0) >= 0;
  if (ok && compress && w->opt.deflate_level > 0)
    ok = H5Pset_shuffle(dcpl) >= 0 && H5Pset_deflate(dcpl, (unsigned)w->opt.deflate_level) >= 0;
  /* HDF5 cannot filter variable-length data (the strings live in the global heap), so source is the
   * one dataset without a checksum. */
  if (ok && H5Tis_variable_str(type) <= 0) ok = H5Pset_fletcher32(dcpl) >= 0;
  if (ok) d = H5Dcreate2(w->file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (d < 0) {
    char prefix[SHARD_PATH_BYTES + 128];
    snprintf(prefix, sizeof prefix, "%s: cannot create dataset %s", w->path, name);
    shard_h5_error(err, err_size, prefix);
  }
  if (space >= 0) H5Sclose(space);
  if (dcpl >= 0) H5Pclose(dcpl);
  return d;
}

static int write_attr(shard_writer *w, const char *name, hid_t file_type, hid_t mem_type, const void *value, char *err,
                      size_t err_size) {
  hid_t space = H5Screate(H5S_SCALAR), a = -1;
  int ok = space >= 0 && (a = H5Acreate2(w->file, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
           H5Awrite(a, mem_type, value) >= 0;
  if (!ok) {
    char prefix[SHARD_PATH_BYTES + 128];
    snprintf(prefix, sizeof prefix, "%s: cannot write attribute %s", w->path, name);
    shard_h5_error(err, err_size, prefix);
  }
  if (a >= 0) H5Aclose(a);
  if (space >= 0) H5Sclose(space);
  return ok ? 0 : -1;
}

/* The attributes go in at creation: they are known now, and an incomplete file never reaches the
 * final name anyway. Strings are variable-length UTF-8 and numbers 64-bit, as h5py writes them. */
static int write_attributes(shard_writer *w, char *err, size_t err_size) {
  const char *format = SHARD_FORMAT, *dtype = shard_dtype_name(w->layout.dtype);
  long long version = SHARD_VERSION;
  const shard_layout *l = &w->layout;
  if (write_attr(w, "format", w->str, w->str, &format, err, err_size) ||
      write_attr(w, "version", H5T_STD_I64LE, H5T_NATIVE_LLONG, &version, err, err_size) ||
      write_attr(w, "fps", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &l->fps, err, err_size) ||
      write_attr(w, "dtype", w->str, w->str, &dtype, err, err_size) ||
      write_attr(w, "scale", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &l->scale, err, err_size) ||
      write_attr(w, "shift", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &l->shift, err, err_size))
    return -1;
  return 0;
}

static hid_t file_type_of(shard_writer *w) {
  return w->layout.dtype == SHARD_UINT8 ? H5T_STD_U8LE : w->layout.dtype == SHARD_FLOAT16 ? w->f16 : H5T_IEEE_F32LE;
}

shard_writer *shard_writer_open(const char *path, const shard_layout *layout, const shard_write_options *opt, char *err,
                                size_t err_size) {
  shard_h5_quiet();
  if (!path) {
    set_err(err, err_size, "shard writer: no path given");
    return NULL;
  }
  if (shard_layout_check(layout, path, err, err_size) != 0) return NULL;
  if (opt && (opt->deflate_level < 0 || opt->deflate_level > 9)) {
    set_err(err, err_size, "%s: deflate level %d is outside 0..9", path, opt->deflate_level);
    return NULL;
  }
  shard_writer *w = calloc(1, sizeof *w);
  if (!w) {
    set_err(err, err_size, "%s: out of memory", path);
    return NULL;
  }
  w->file = w->labels = w->source = w->f16 = w->str = -1;
  for (int l = 0; l < SHARD_MAX_LEVELS; l++) w->level[l] = -1;
  int n = snprintf(w->path, sizeof w->path, "%s", path);
  int m = snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%ld", path, (long)getpid());
  if (n < 0 || (size_t)n >= sizeof w->path || m < 0 || (size_t)m >= sizeof w->tmp) {
    set_err(err, err_size, "%s: path too long", path);
    free_writer(w);
    return NULL;
  }
  w->layout = *layout;
  if (opt) w->opt = *opt;
  w->plane = (size_t)layout->height * layout->width * layout->channels;
  size_t clip = (size_t)layout->frames * w->plane;
  w->stored0 = malloc(clip * sizeof(float));
  w->stage = malloc(clip * shard_dtype_bytes(layout->dtype));
  if (!w->stored0 || !w->stage) {
    set_err(err, err_size, "%s: out of memory for a clip of %zu values", path, clip);
    free_writer(w);
    return NULL;
  }
  /* STRONG: H5Fclose really closes (and flushes) the file before we fsync and rename it. */
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl >= 0 && H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) >= 0)
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  if (w->file < 0) {
    char prefix[SHARD_PATH_BYTES + 64];
    snprintf(prefix, sizeof prefix, "%s: cannot create: %s", w->tmp, errno ? strerror(errno) : "HDF5 refused");
    shard_h5_error(err, err_size, prefix);
    if (fapl >= 0) H5Pclose(fapl);
    free_writer(w);
    return NULL;
  }
  H5Pclose(fapl);
  w->f16 = shard_f16_type();
  w->str = H5Tcopy(H5T_C_S1);
  if (w->f16 < 0 || w->str < 0 || H5Tset_size(w->str, H5T_VARIABLE) < 0 || H5Tset_cset(w->str, H5T_CSET_UTF8) < 0) {
    shard_h5_error(err, err_size, "shard writer: cannot build the float16 and string types");
    shard_writer_abort(w);
    return NULL;
  }
  for (int l = 0; l < layout->levels; l++) {
    char name[16];
    snprintf(name, sizeof name, "level%d", l);
    hsize_t chunk[5] = {1, (hsize_t)(layout->frames >> l), (hsize_t)layout->height, (hsize_t)layout->width,
                        (hsize_t)layout->channels};
    if ((w->level[l] = create_growing(w, name, file_type_of(w), 5, chunk, 1, err, err_size)) < 0) {
      shard_writer_abort(w);
      return NULL;
    }
  }
  hsize_t one_chunk[1] = {LABEL_CHUNK};
  if (layout->has_labels &&
      (w->labels = create_growing(w, "labels", H5T_STD_I32LE, 1, one_chunk, 0, err, err_size)) < 0) {
    shard_writer_abort(w);
    return NULL;
  }
  if ((w->source = create_growing(w, "source", w->str, 1, one_chunk, 0, err, err_size)) < 0 ||
      write_attributes(w, err, err_size) != 0) {
    shard_writer_abort(w);
    return NULL;
  }
  return w;
}

/* Writes `values` as row `row` of the growing dataset d (already extended to row + 1). */
static int write_row(shard_writer *w, hid_t d, const char *name, hid_t mem_type, const void *values, char *err,
                     size_t err_size) {
  hid_t fspace = H5Dget_space(d), mspace = -1;
  int rank = fspace >= 0 ? H5Sget_simple_extent_ndims(fspace) : -1, ok = rank >= 1 && rank <= 5;
  hsize_t start[5] = {0}, count[5];
  if (ok) {
    H5Sget_simple_extent_dims(fspace, count, NULL);
    start[0] = (hsize_t)w->clips;
    count[0] = 1;
    mspace = H5Screate_simple(rank, count, NULL);
    ok = mspace >= 0 && H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
         H5Dwrite(d, mem_type, mspace, fspace, H5P_DEFAULT, values) >= 0;
  }
  if (!ok) {
    char prefix[SHARD_PATH_BYTES + 128];
    snprintf(prefix, sizeof prefix, "%s: %s: cannot write clip %ld", w->path, name, w->clips);
    shard_h5_error(err, err_size, prefix);
  }
  if (mspace >= 0) H5Sclose(mspace);
  if (fspace >= 0) H5Sclose(fspace);
  return ok ? 0 : -1;
}

static int extend(shard_writer *w, hid_t d, const char *name, char *err, size_t err_size) {
  hsize_t dims[5];
  hid_t space = H5Dget_space(d);
  int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
  if (rank >= 1 && rank <= 5) H5Sget_simple_extent_dims(space, dims, NULL);
  if (space >= 0) H5Sclose(space);
  dims[0] = (hsize_t)w->clips + 1;
  if (rank < 1 || rank > 5 || H5Dset_extent(d, dims) < 0) {
    char prefix[SHARD_PATH_BYTES + 128];
    snprintf(prefix, sizeof prefix, "%s: %s: cannot grow to %ld clips", w->path, name, w->clips + 1);
    shard_h5_error(err, err_size, prefix);
    return -1;
  }
  return 0;
}

/* Stores the float values v[n] (stored units) in the file's dtype into w->stage. uint8 rounds half
 * away from zero after clamping to 0..255; float16 rounds to nearest even. */
static int quantise(shard_writer *w, const float *v, size_t n, int level, char *err, size_t err_size) {
  if (w->layout.dtype == SHARD_UINT8) {
    uint8_t *o = w->stage;
    for (size_t i = 0; i < n; i++) o[i] = (uint8_t)(v[i] <= 0 ? 0 : v[i] >= 255 ? 255 : floorf(v[i] + 0.5f));
  } else if (w->layout.dtype == SHARD_FLOAT16) {
    uint16_t *o = w->stage;
    for (size_t i = 0; i < n; i++) {
      o[i] = shard_f32_to_f16(v[i]);
      if ((o[i] & 0x7c00u) == 0x7c00u) {
        set_err(err, err_size, "%s: clip %ld, level %d: stored value %g does not fit float16 (|v| <= 65504)", w->path,
                w->clips, level, v[i]);
        return -1;
      }
    }
  } else {
    memcpy(w->stage, v, n * sizeof(float));
  }
  return 0;
}

static hid_t mem_type_of(shard_writer *w) {
  return w->layout.dtype == SHARD_UINT8     ? H5T_NATIVE_UCHAR
         : w->layout.dtype == SHARD_FLOAT16 ? w->f16
                                            : H5T_NATIVE_FLOAT;
}

int shard_writer_append(shard_writer *w, const float *clip_thwc, int label, const char *source, char *err,
                        size_t err_size) {
  shard_h5_quiet();
  if (!w || !clip_thwc) {
    set_err(err, err_size, "shard writer: %s", !w ? "no writer" : "no clip data (NULL pointer)");
    return -1;
  }
  const shard_layout *L = &w->layout;
  size_t n0 = (size_t)L->frames * w->plane;
  for (size_t i = 0; i < n0; i++) {
    if (!isfinite(clip_thwc[i])) {
      set_err(err, err_size, "%s: clip %ld: value %zu is not finite (%g)", w->path, w->clips, i, clip_thwc[i]);
      return -1;
    }
    float s = (float)(((double)clip_thwc[i] - L->shift) / L->scale);
    if (L->dtype == SHARD_UINT8) s = s <= 0 ? 0 : s >= 255 ? 255 : floorf(s + 0.5f);
    w->stored0[i] = s;
  }
  if (L->dtype == SHARD_FLOAT16) /* level 0 as stored, so every coarser level averages what the file holds */
    for (size_t i = 0; i < n0; i++) w->stored0[i] = shard_f16_to_f32(shard_f32_to_f16(w->stored0[i]));
  for (int l = 0; l < L->levels; l++) {
    char name[16];
    snprintf(name, sizeof name, "level%d", l);
    int group = 1 << l, frames = L->frames >> l;
    size_t n = (size_t)frames * w->plane;
    /* Down operator in stored units: value = stored * scale + shift is affine, so this is the same
     * mean as in model units, and exact for uint8 (sums of at most 2^7 bytes). */
    float *level = l == 0 ? w->stored0 : NULL, *tmp = NULL;
    if (l > 0) {
      if (!(tmp = malloc(n * sizeof(float)))) {
        set_err(err, err_size, "%s: out of memory for level %d", w->path, l);
        return -1;
      }
      for (int t = 0; t < frames; t++)
        for (size_t i = 0; i < w->plane; i++) {
          float sum = 0;
          for (int g = 0; g < group; g++) sum += w->stored0[((size_t)t * group + g) * w->plane + i];
          tmp[(size_t)t * w->plane + i] = sum / (float)group;
        }
      level = tmp;
    }
    int rc = quantise(w, level, n, l, err, err_size);
    free(tmp);
    if (rc != 0 || extend(w, w->level[l], name, err, err_size) != 0 ||
        write_row(w, w->level[l], name, mem_type_of(w), w->stage, err, err_size) != 0)
      return -1;
  }
  if (w->labels >= 0) {
    int32_t lab = label;
    if (extend(w, w->labels, "labels", err, err_size) != 0 ||
        write_row(w, w->labels, "labels", H5T_NATIVE_INT32, &lab, err, err_size) != 0)
      return -1;
  }
  const char *text = source ? source : "";
  if (extend(w, w->source, "source", err, err_size) != 0 ||
      write_row(w, w->source, "source", w->str, &text, err, err_size) != 0)
    return -1;
  w->clips++;
  return 0;
}

/* fsyncs the folder holding path, so the rename itself survives a crash. Best effort. */
static void sync_parent(const char *path) {
  char copy[SHARD_PATH_BYTES];
  snprintf(copy, sizeof copy, "%s", path);
  int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

int shard_writer_close(shard_writer *w, char *err, size_t err_size) {
  shard_h5_quiet();
  if (!w) {
    set_err(err, err_size, "shard writer: no writer");
    return -1;
  }
  errno = 0;
  if (H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0 || close_handles(w) != 0) {
    char prefix[SHARD_PATH_BYTES + 64];
    snprintf(prefix, sizeof prefix, "%s: write failed%s%s", w->path, errno ? ": " : "", errno ? strerror(errno) : "");
    shard_h5_error(err, err_size, prefix);
    shard_writer_abort(w);
    return -1;
  }
  int fd = open(w->tmp, O_RDONLY), e = 0;
  if (fd < 0 || fsync(fd) != 0) e = errno;
  if (fd >= 0) close(fd);
  if (!e && rename(w->tmp, w->path) != 0) e = errno;
  if (e) {
    set_err(err, err_size, "%s: cannot finish writing: %s", w->path, strerror(e));
    unlink(w->tmp);
    free_writer(w);
    return -1;
  }
  sync_parent(w->path);
  free_writer(w);
  return 0;
}
