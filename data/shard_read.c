/* shard_read.c — the shard reader: validates a shard's schema once at open, then reads one clip of
 * one level per call through a hyperslab (only that clip's chunk of that level is read), converted
 * to float model units, channels first (shard.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/shard_internal.h"

struct shard_reader {
  char path[SHARD_PATH_BYTES];
  hid_t file, level[SHARD_MAX_LEVELS], labels, f16;
  shard_layout layout;
  long clips;
  void *scratch; /* one clip of level 0 in the file's dtype */
};

static void set_err(char *err, size_t err_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t err_size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, err_size, fmt, ap);
  va_end(ap);
}

void shard_reader_close(shard_reader *r) {
  if (!r) return;
  shard_h5_quiet();
  for (int l = 0; l < SHARD_MAX_LEVELS; l++)
    if (r->level[l] >= 0) H5Dclose(r->level[l]);
  if (r->labels >= 0) H5Dclose(r->labels);
  if (r->f16 >= 0) H5Tclose(r->f16);
  if (r->file >= 0) H5Fclose(r->file);
  H5Eclear2(H5E_DEFAULT);
  free(r->scratch);
  free(r);
}

/* ---- attributes --------------------------------------------------------------------------- */

/* Opens attribute name of the file root as a single value; -1 with err when absent or not scalar. */
static hid_t open_attr(shard_reader *r, const char *name, const char *expected, char *err, size_t err_size) {
  htri_t has = H5Aexists(r->file, name);
  if (has <= 0) {
    H5Eclear2(H5E_DEFAULT);
    set_err(err, err_size, "%s: attribute %s is missing (expected %s)", r->path, name, expected);
    return -1;
  }
  hid_t a = H5Aopen(r->file, name, H5P_DEFAULT), space = a >= 0 ? H5Aget_space(a) : -1;
  hssize_t points = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
  if (space >= 0) H5Sclose(space);
  if (a < 0 || points != 1) {
    if (a >= 0) H5Aclose(a);
    H5Eclear2(H5E_DEFAULT);
    set_err(err, err_size, "%s: attribute %s holds %lld values (expected one: %s)", r->path, name, (long long)points,
            expected);
    return -1;
  }
  return a;
}

/* Reads a string attribute, fixed-length or variable-length (h5py writes str as variable-length UTF-8). */
static int read_string_attr(shard_reader *r, const char *name, const char *expected, char *out, size_t out_size,
                            char *err, size_t err_size) {
  hid_t a = open_attr(r, name, expected, err, err_size);
  if (a < 0) return -1;
  hid_t ft = H5Aget_type(a), mt = -1;
  int ok = 0;
  if (ft >= 0 && H5Tget_class(ft) == H5T_STRING) {
    mt = H5Tcopy(H5T_C_S1);
    if (H5Tis_variable_str(ft) > 0) {
      char *text = NULL;
      if (mt >= 0 && H5Tset_size(mt, H5T_VARIABLE) >= 0 && H5Tset_cset(mt, H5Tget_cset(ft)) >= 0 &&
          H5Aread(a, mt, &text) >= 0) {
        snprintf(out, out_size, "%s", text ? text : "");
        ok = 1;
      }
      if (text) H5free_memory(text);
    } else {
      size_t n = H5Tget_size(ft);
      char buf[256] = "";
      if (n > 0 && n < sizeof buf && mt >= 0 && H5Tset_size(mt, n) >= 0 && H5Aread(a, mt, buf) >= 0) {
        buf[n] = '\0';
        snprintf(out, out_size, "%s", buf);
        ok = 1;
      }
    }
  }
  if (!ok) {
    char type[64] = "?";
    if (ft >= 0) shard_h5_type_name(ft, type, sizeof type);
    set_err(err, err_size, "%s: attribute %s is %s (expected a string: %s)", r->path, name, type, expected);
  }
  if (mt >= 0) H5Tclose(mt);
  if (ft >= 0) H5Tclose(ft);
  H5Aclose(a);
  H5Eclear2(H5E_DEFAULT);
  return ok ? 0 : -1;
}

/* Reads an integer or float attribute as a double. */
static int read_number_attr(shard_reader *r, const char *name, const char *expected, double *out, char *err,
                            size_t err_size) {
  hid_t a = open_attr(r, name, expected, err, err_size);
  if (a < 0) return -1;
  hid_t ft = H5Aget_type(a);
  H5T_class_t cls = ft >= 0 ? H5Tget_class(ft) : H5T_NO_CLASS;
  int ok = (cls == H5T_INTEGER || cls == H5T_FLOAT) && H5Aread(a, H5T_NATIVE_DOUBLE, out) >= 0;
  if (!ok) {
    char type[64] = "?";
    if (ft >= 0) shard_h5_type_name(ft, type, sizeof type);
    set_err(err, err_size, "%s: attribute %s is %s (expected a number: %s)", r->path, name, type, expected);
  }
  if (ft >= 0) H5Tclose(ft);
  H5Aclose(a);
  H5Eclear2(H5E_DEFAULT);
  return ok ? 0 : -1;
}

/* ---- datasets ----------------------------------------------------------------------------- */

static void dims_text(char *out, size_t out_size, int rank, const hsize_t *dims) {
  size_t used = (size_t)snprintf(out, out_size, "[");
  for (int i = 0; i < rank && used < out_size; i++)
    used += (size_t)snprintf(out + used, out_size - used, "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
  if (used < out_size) snprintf(out + used, out_size - used, "]");
}

/* Opens dataset name and returns its rank and dims (rank <= 5); -1 with err when absent. */
static hid_t open_dataset(shard_reader *r, const char *name, const char *expected, int *rank, hsize_t *dims, char *err,
                          size_t err_size) {
  htri_t has = H5Lexists(r->file, name, H5P_DEFAULT);
  hid_t d = has > 0 ? H5Dopen2(r->file, name, H5P_DEFAULT) : -1;
  if (d < 0) {
    H5Eclear2(H5E_DEFAULT);
    set_err(err, err_size, "%s: dataset %s is missing (expected %s)", r->path, name, expected);
    return -1;
  }
  hid_t space = H5Dget_space(d);
  *rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
  if (*rank >= 0 && *rank <= 5) H5Sget_simple_extent_dims(space, dims, NULL);
  if (space >= 0) H5Sclose(space);
  if (*rank < 0 || *rank > 5) {
    set_err(err, err_size, "%s: dataset %s has rank %d (expected %s)", r->path, name, *rank, expected);
    H5Dclose(d);
    H5Eclear2(H5E_DEFAULT);
    return -1;
  }
  return d;
}

/* Opens and checks every level against level 0 and the dtype attribute. */
static int open_levels(shard_reader *r, char *err, size_t err_size) {
  shard_layout *L = &r->layout;
  hsize_t dims0[5];
  int rank;
  const char *shape5 = "[N, T, H, W, C] clips, frames, height, width, channels";
  if ((r->level[0] = open_dataset(r, "level0", shape5, &rank, dims0, err, err_size)) < 0) return -1;
  char shape[128];
  dims_text(shape, sizeof shape, rank, dims0);
  if (rank != 5) {
    set_err(err, err_size, "%s: dataset level0 has shape %s (expected rank 5: %s)", r->path, shape, shape5);
    return -1;
  }
  if (dims0[0] > (hsize_t)1 << 40 || dims0[1] < 1 || dims0[2] < 1 || dims0[3] < 1 || dims0[4] < 1 ||
      dims0[1] > (1u << 30) || dims0[2] > (1u << 30) || dims0[3] > (1u << 30) || dims0[4] > (1u << 30) ||
      (double)dims0[1] * dims0[2] * dims0[3] * dims0[4] > (double)SHARD_MAX_CLIP_ELEMENTS) {
    set_err(err, err_size, "%s: dataset level0 has shape %s (expected non-empty clips of at most %lu values)", r->path,
            shape, SHARD_MAX_CLIP_ELEMENTS);
    return -1;
  }
  r->clips = (long)dims0[0];
  L->frames = (int)dims0[1], L->height = (int)dims0[2], L->width = (int)dims0[3], L->channels = (int)dims0[4];
  for (int l = 1; l < SHARD_MAX_LEVELS; l++) {
    char name[16];
    snprintf(name, sizeof name, "level%d", l);
    if (H5Lexists(r->file, name, H5P_DEFAULT) <= 0) break;
    L->levels = l + 1;
  }
  L->levels = L->levels < 1 ? 1 : L->levels;
  for (int l = 0; l < SHARD_MAX_LEVELS + 1; l++) {
    char name[16];
    snprintf(name, sizeof name, "level%d", l);
    if (l >= L->levels && H5Lexists(r->file, name, H5P_DEFAULT) > 0) {
      if (l >= SHARD_MAX_LEVELS)
        set_err(err, err_size, "%s: dataset %s exists (expected at most %d levels)", r->path, name, SHARD_MAX_LEVELS);
      else
        set_err(err, err_size, "%s: dataset level%d is missing (expected levels 0..%d without gaps: %s exists)",
                r->path, L->levels, l, name);
      return -1;
    }
  }
  H5Eclear2(H5E_DEFAULT);
  for (int l = 0; l < L->levels; l++) {
    char name[16], expected[160];
    snprintf(name, sizeof name, "level%d", l);
    hsize_t want[5] = {dims0[0], dims0[1] >> l, dims0[2], dims0[3], dims0[4]}, dims[5];
    char want_text[128];
    dims_text(want_text, sizeof want_text, 5, want);
    snprintf(expected, sizeof expected, "%s: level 0 frames %d / 2^%d", want_text, L->frames, l);
    if (l > 0 && (r->level[l] = open_dataset(r, name, expected, &rank, dims, err, err_size)) < 0) return -1;
    if (l > 0 && (rank != 5 || memcmp(dims, want, sizeof want) != 0 || (dims0[1] % (1u << l)) != 0)) {
      dims_text(shape, sizeof shape, rank, dims);
      if (dims0[1] % (1u << l) != 0)
        set_err(err, err_size, "%s: dataset %s exists but level 0 frames %d are not divisible by 2^%d", r->path, name,
                L->frames, l);
      else
        set_err(err, err_size, "%s: dataset %s has shape %s (expected %s)", r->path, name, shape, expected);
      return -1;
    }
    hid_t t = H5Dget_type(r->level[l]);
    int dt = t >= 0 ? shard_dtype_of_h5(t) : -1;
    char tname[64] = "?";
    if (t >= 0) shard_h5_type_name(t, tname, sizeof tname), H5Tclose(t);
    if (dt != (int)L->dtype) {
      set_err(err, err_size, "%s: dataset %s stores %s (expected %s, as attribute dtype says)", r->path, name, tname,
              shard_dtype_name(L->dtype));
      return -1;
    }
  }
  return 0;
}

static int open_labels(shard_reader *r, char *err, size_t err_size) {
  if (H5Lexists(r->file, "labels", H5P_DEFAULT) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return 0;
  }
  char expected[64], shape[128], tname[64] = "?";
  snprintf(expected, sizeof expected, "[%ld] int32", r->clips);
  int rank;
  hsize_t dims[5];
  if ((r->labels = open_dataset(r, "labels", expected, &rank, dims, err, err_size)) < 0) return -1;
  hid_t t = H5Dget_type(r->labels);
  int is_int = t >= 0 && H5Tget_class(t) == H5T_INTEGER;
  if (t >= 0) shard_h5_type_name(t, tname, sizeof tname), H5Tclose(t);
  dims_text(shape, sizeof shape, rank, dims);
  if (rank != 1 || (long)dims[0] != r->clips || !is_int) {
    set_err(err, err_size, "%s: dataset labels is %s %s (expected %s)", r->path, tname, shape, expected);
    return -1;
  }
  r->layout.has_labels = 1;
  return 0;
}

shard_reader *shard_reader_open(const char *path, shard_layout *layout, long *clips, char *err, size_t err_size) {
  shard_h5_quiet();
  if (!path) {
    set_err(err, err_size, "shard reader: no path given");
    return NULL;
  }
  shard_reader *r = calloc(1, sizeof *r);
  if (!r) {
    set_err(err, err_size, "%s: out of memory", path);
    return NULL;
  }
  r->file = r->labels = r->f16 = -1;
  for (int l = 0; l < SHARD_MAX_LEVELS; l++) r->level[l] = -1;
  snprintf(r->path, sizeof r->path, "%s", path);
  if ((r->file = shard_h5_open_readonly(path, err, err_size)) < 0) goto fail;
  char format[128], dtype[64];
  double version;
  shard_layout *L = &r->layout;
  if (read_string_attr(r, "format", "\"" SHARD_FORMAT "\"", format, sizeof format, err, err_size)) goto fail;
  if (strcmp(format, SHARD_FORMAT) != 0) {
    set_err(err, err_size, "%s: attribute format is \"%s\" (expected \"%s\")", path, format, SHARD_FORMAT);
    goto fail;
  }
  if (read_number_attr(r, "version", "1", &version, err, err_size)) goto fail;
  if (version != SHARD_VERSION) {
    set_err(err, err_size, "%s: attribute version is %g (expected %d: this build reads shard version %d only)", path,
            version, SHARD_VERSION, SHARD_VERSION);
    goto fail;
  }
  if (read_string_attr(r, "dtype", "uint8, float16 or float32", dtype, sizeof dtype, err, err_size)) goto fail;
  int dt = shard_dtype_from_name(dtype);
  if (dt < 0) {
    set_err(err, err_size, "%s: attribute dtype is \"%s\" (expected uint8, float16 or float32)", path, dtype);
    goto fail;
  }
  L->dtype = (shard_dtype)dt;
  if (read_number_attr(r, "scale", "model value = stored * scale + shift", &L->scale, err, err_size) ||
      read_number_attr(r, "shift", "model value = stored * scale + shift", &L->shift, err, err_size) ||
      read_number_attr(r, "fps", "frames per second", &L->fps, err, err_size))
    goto fail;
  if (open_levels(r, err, err_size) || open_labels(r, err, err_size)) goto fail;
  if (shard_layout_check(L, path, err, err_size)) goto fail;
  if ((r->f16 = shard_f16_type()) < 0) {
    shard_h5_error(err, err_size, "shard reader: cannot build the float16 type");
    goto fail;
  }
  r->scratch = malloc(shard_clip_bytes(L, 0));
  if (!r->scratch) {
    set_err(err, err_size, "%s: out of memory for one clip (%zu bytes)", path, shard_clip_bytes(L, 0));
    goto fail;
  }
  if (layout) *layout = *L;
  if (clips) *clips = r->clips;
  return r;
fail:
  shard_reader_close(r);
  return NULL;
}

int shard_read_clip(shard_reader *r, long index, int level, float *out_cthw, int *label, char *err, size_t err_size) {
  shard_h5_quiet();
  if (!r || !out_cthw) {
    set_err(err, err_size, "shard reader: %s", !r ? "no reader" : "no output buffer (NULL pointer)");
    return -1;
  }
  const shard_layout *L = &r->layout;
  if (level < 0 || level >= L->levels) {
    set_err(err, err_size, "%s: level %d does not exist (the shard has levels 0..%d)", r->path, level, L->levels - 1);
    return -1;
  }
  if (index < 0 || index >= r->clips) {
    set_err(err, err_size, "%s: level%d: clip %ld is out of range (the shard holds %ld)", r->path, level, index,
            r->clips);
    return -1;
  }
  int T = L->frames >> level;
  size_t plane = (size_t)L->height * L->width, C = (size_t)L->channels;
  hsize_t start[5] = {(hsize_t)index, 0, 0, 0, 0};
  hsize_t count[5] = {1, (hsize_t)T, (hsize_t)L->height, (hsize_t)L->width, (hsize_t)L->channels};
  hid_t mem_type = L->dtype == SHARD_UINT8 ? H5T_NATIVE_UCHAR : L->dtype == SHARD_FLOAT16 ? r->f16 : H5T_NATIVE_FLOAT;
  /* The memory space has the selection's own 5-D shape: HDF5 then copies the chunk as a block; a
   * flat 1-D memory space sends it through its per-element chunk mapping (about 10x slower). */
  hid_t fspace = H5Dget_space(r->level[level]), mspace = H5Screate_simple(5, count, NULL);
  int ok = fspace >= 0 && mspace >= 0 && H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
           H5Dread(r->level[level], mem_type, mspace, fspace, H5P_DEFAULT, r->scratch) >= 0;
  if (!ok) {
    char prefix[SHARD_PATH_BYTES + 128];
    snprintf(prefix, sizeof prefix, "%s: level%d: cannot read clip %ld", r->path, level, index);
    int checksum = shard_h5_error(err, err_size, prefix);
    if (checksum)
      set_err(err, err_size, "%s: level%d: clip %ld: checksum mismatch (the stored bytes are damaged)", r->path, level,
              index);
  }
  if (mspace >= 0) H5Sclose(mspace);
  if (fspace >= 0) H5Sclose(fspace);
  if (!ok) return -1;
  /* [T, H, W, C] stored -> [C, T, H, W] model units */
  float scale = (float)L->scale, shift = (float)L->shift;
  for (size_t tp = 0; tp < (size_t)T * plane; tp++)
    for (size_t c = 0; c < C; c++) {
      size_t i = tp * C + c;
      float s = L->dtype == SHARD_UINT8     ? (float)((const uint8_t *)r->scratch)[i]
                : L->dtype == SHARD_FLOAT16 ? shard_f16_to_f32(((const uint16_t *)r->scratch)[i])
                                            : ((const float *)r->scratch)[i];
      out_cthw[c * (size_t)T * plane + tp] = s * scale + shift;
    }
  if (label) *label = 0;
  if (r->labels >= 0) {
    hsize_t lstart[1] = {(hsize_t)index}, lcount[1] = {1};
    int value = 0;
    fspace = H5Dget_space(r->labels);
    mspace = H5Screate_simple(1, lcount, NULL);
    ok = fspace >= 0 && mspace >= 0 && H5Sselect_hyperslab(fspace, H5S_SELECT_SET, lstart, NULL, lcount, NULL) >= 0 &&
         H5Dread(r->labels, H5T_NATIVE_INT, mspace, fspace, H5P_DEFAULT, &value) >= 0;
    if (!ok) {
      char prefix[SHARD_PATH_BYTES + 128];
      snprintf(prefix, sizeof prefix, "%s: labels: cannot read clip %ld", r->path, index);
      if (shard_h5_error(err, err_size, prefix))
        set_err(err, err_size, "%s: labels: clip %ld: checksum mismatch (the stored bytes are damaged)", r->path,
                index);
    }
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    if (!ok) return -1;
    if (label) *label = value;
  }
  return 0;
}
