/* checkpoint_read.c — verifying and loading checkpoints (layout in checkpoint.h). Every dataset is
 * checked for presence, type, shape and checksum before any of it reaches the run, so a damaged file
 * is refused with a line that names it and never half-loaded. */
#include <hdf5.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/shard_internal.h"
#include "trainer/checkpoint.h"

static void shape_text(char *out, size_t size, int rank, const hsize_t *dims) {
  size_t used = (size_t)snprintf(out, size, "[");
  for (int i = 0; i < rank && used < size; i++)
    used += (size_t)snprintf(out + used, size - used, "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
  if (used < size) snprintf(out + used, size - used, "]");
}

static int read_attr_i64(hid_t f, const char *path, const char *name, int64_t *v, char *err, size_t err_size) {
  hid_t a = H5Aexists(f, name) > 0 ? H5Aopen(f, name, H5P_DEFAULT) : -1;
  int rc = a < 0 || H5Aread(a, H5T_NATIVE_INT64, v) < 0 ? -1 : 0;
  if (a >= 0) H5Aclose(a);
  if (rc) snprintf(err, err_size, "%s: attribute \"%s\" is missing or unreadable (not a complete checkpoint)", path, name);
  return rc;
}

/* Opens path and checks the format marker and version: the file id, or -1 with err set. */
static hid_t open_checkpoint(const char *path, char *err, size_t err_size) {
  shard_h5_quiet();
  FILE *probe = fopen(path, "rb");
  if (!probe) {
    snprintf(err, err_size, "%s: cannot open the checkpoint", path);
    return -1;
  }
  fclose(probe);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) {
    snprintf(err, err_size, "%s: not a readable HDF5 file (truncated or damaged)", path);
    return -1;
  }
  char format[64] = "";
  hid_t a = H5Aexists(f, "format") > 0 ? H5Aopen(f, "format", H5P_DEFAULT) : -1;
  hid_t t = a >= 0 ? H5Aget_type(a) : -1;
  int ok = t >= 0 && H5Tget_class(t) == H5T_STRING && H5Tget_size(t) < sizeof format;
  if (ok) {
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5Tget_size(t));
    ok = H5Aread(a, mt, format) >= 0;
    H5Tclose(mt);
  }
  if (t >= 0) H5Tclose(t);
  if (a >= 0) H5Aclose(a);
  int64_t version = 0;
  if (!ok || strcmp(format, CHECKPOINT_FORMAT) != 0) {
    snprintf(err, err_size, "%s: not a tpdiff checkpoint (attribute \"format\" is not \"%s\")", path,
             CHECKPOINT_FORMAT);
  } else if (read_attr_i64(f, path, "version", &version, err, err_size) == 0 && version != CHECKPOINT_VERSION) {
    snprintf(err, err_size, "%s: checkpoint version %" PRId64 ", this tpdiff reads version %d", path, version,
             CHECKPOINT_VERSION);
  } else if (version == CHECKPOINT_VERSION) {
    return f;
  }
  H5Fclose(f);
  return -1;
}

/* Reads dataset `name` (relative to f) of the expected type class and element size, checking its
 * shape against want_dims (when want_rank >= 0; else *got_dims receives it) and its checksum. */
static int read_checked(hid_t f, const char *path, const char *name, const char *what, H5T_class_t cls, size_t elem,
                        hid_t mem_type, int want_rank, const hsize_t *want_dims, void *out, size_t out_bytes,
                        char *err, size_t err_size) {
  /* H5Lexists on "a/b" fails when "a" is missing: test the group first */
  const char *slash = strchr(name, '/');
  if (slash) {
    char group[64];
    snprintf(group, sizeof group, "%.*s", (int)(slash - name), name);
    if (H5Lexists(f, group, H5P_DEFAULT) <= 0) {
      snprintf(err, err_size, "%s: group /%s is missing (needed for %s)", path, group, what);
      return -1;
    }
  }
  if (H5Lexists(f, name, H5P_DEFAULT) <= 0) {
    snprintf(err, err_size, "%s: dataset /%s is missing (%s)", path, name, what);
    return -1;
  }
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  if (d < 0) {
    snprintf(err, err_size, "%s: dataset /%s cannot be opened (damaged file)", path, name);
    return -1;
  }
  int rc = -1;
  hid_t t = H5Dget_type(d), s = H5Dget_space(d);
  hsize_t dims[H5S_MAX_RANK];
  int rank = s >= 0 ? H5Sget_simple_extent_ndims(s) : -1;
  if (t < 0 || s < 0 || rank < 0 || rank > H5S_MAX_RANK || H5Sget_simple_extent_dims(s, dims, NULL) < 0) {
    snprintf(err, err_size, "%s: dataset /%s has an unreadable type or shape (damaged file)", path, name);
  } else if (H5Tget_class(t) != cls || H5Tget_size(t) != elem) {
    snprintf(err, err_size, "%s: dataset /%s has elements of another type (expected %s of %zu bytes)", path, name,
             cls == H5T_FLOAT ? "floats" : "integers", elem);
  } else {
    int same = want_rank < 0 || rank == want_rank;
    for (int i = 0; same && want_rank >= 0 && i < rank; i++) same = dims[i] == want_dims[i];
    size_t count = 1;
    for (int i = 0; i < rank; i++) count *= (size_t)dims[i];
    if (!same) {
      char has[96], wants[96];
      shape_text(has, sizeof has, rank, dims);
      shape_text(wants, sizeof wants, want_rank, want_dims);
      snprintf(err, err_size, "%s: %s: the checkpoint has shape %s but the model has %s (a model of another shape)",
               path, what, has, wants);
    } else if (count * elem != out_bytes) {
      snprintf(err, err_size, "%s: dataset /%s holds %zu bytes, expected %zu", path, name, count * elem, out_bytes);
    } else if (H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
      snprintf(err, err_size, "%s: dataset /%s cannot be read (truncated or damaged file)", path, name);
    } else {
      uint32_t stored = 0;
      hid_t a = H5Aexists(d, "crc32") > 0 ? H5Aopen(d, "crc32", H5P_DEFAULT) : -1;
      if (a < 0 || H5Aread(a, H5T_NATIVE_UINT32, &stored) < 0) {
        snprintf(err, err_size, "%s: dataset /%s has no readable crc32 attribute", path, name);
      } else {
        uint32_t got = checkpoint_crc32(out, out_bytes);
        if (got != stored)
          snprintf(err, err_size, "%s: dataset /%s fails its checksum (stored crc32 %08x, computed %08x): the file is "
                   "damaged", path, name, stored, got);
        else
          rc = 0;
      }
      if (a >= 0) H5Aclose(a);
    }
  }
  if (t >= 0) H5Tclose(t);
  if (s >= 0) H5Sclose(s);
  H5Dclose(d);
  return rc;
}

/* Reads tensor group `group` into host in m's registry order; refuses tensors the model lacks. */
static int read_group(hid_t f, const char *path, const char *group, const dit_model *m, float *host, char *err,
                      size_t err_size) {
  /* the registry's alignment gaps hold no parameter and are not stored: they come back as the zeros
   * they must be (model/dit_params.c), not as whatever the caller's buffer held */
  memset(host, 0, m->num_floats * sizeof(float));
  for (int i = 0; i < m->num_params; i++) {
    const dit_param *p = &m->params[i];
    char name[DIT_NAME_MAX + 16], what[DIT_NAME_MAX + 40];
    snprintf(name, sizeof name, "%s/%s", group, p->name);
    snprintf(what, sizeof what, "parameter %s (/%s)", p->name, name);
    hsize_t dims[2] = {(hsize_t)p->shape[0], (hsize_t)p->shape[1]};
    if (read_checked(f, path, name, what, H5T_FLOAT, 4, H5T_NATIVE_FLOAT, p->ndim, dims, host + p->offset,
                     p->numel * sizeof(float), err, err_size))
      return -1;
  }
  H5G_info_t info;
  hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
  int rc = g >= 0 && H5Gget_info(g, &info) >= 0 ? 0 : -1;
  for (hsize_t i = 0; rc == 0 && info.nlinks > (hsize_t)m->num_params && i < info.nlinks; i++) {
    char name[256] = "";
    H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT);
    if (!dit_find_param(m, name)) {
      snprintf(err, err_size, "%s: /%s/%s is not a parameter of this model (a model of another shape: %llu tensors "
               "against the model's %d)", path, group, name, (unsigned long long)info.nlinks, m->num_params);
      rc = -1;
    }
  }
  if (g >= 0) H5Gclose(g);
  if (g < 0) snprintf(err, err_size, "%s: group /%s cannot be opened", path, group);
  return rc;
}

int checkpoint_has_ema(const char *path, int *has, char *err, size_t err_size) {
  hid_t f = open_checkpoint(path, err, err_size);
  if (f < 0) return -1;
  *has = H5Lexists(f, "ema", H5P_DEFAULT) > 0;
  H5Fclose(f);
  return 0;
}

static int read_config_text(hid_t f, const char *path, char **text, size_t *len, char *err, size_t err_size) {
  hid_t d = H5Lexists(f, "config", H5P_DEFAULT) > 0 ? H5Dopen2(f, "config", H5P_DEFAULT) : -1;
  hid_t s = d >= 0 ? H5Dget_space(d) : -1;
  hssize_t n = s >= 0 ? H5Sget_simple_extent_npoints(s) : -1;
  if (s >= 0) H5Sclose(s);
  if (d >= 0) H5Dclose(d);
  if (n < 0 || n > (1 << 24)) {
    snprintf(err, err_size, "%s: dataset /config is missing or unreadable", path);
    return -1;
  }
  *text = malloc((size_t)n + 1);
  if (!*text) {
    snprintf(err, err_size, "%s: out of memory for the config", path);
    return -1;
  }
  hsize_t dims[1] = {(hsize_t)n};
  if (read_checked(f, path, "config", "the stored config", H5T_INTEGER, 1, H5T_NATIVE_UCHAR, 1, dims, *text,
                   (size_t)n, err, err_size)) {
    free(*text);
    return -1;
  }
  (*text)[n] = '\0';
  *len = (size_t)n;
  return 0;
}

int checkpoint_read_config(const char *path, tpdiff_config *cfg, long *step, char *err, size_t err_size) {
  hid_t f = open_checkpoint(path, err, err_size);
  if (f < 0) return -1;
  char *text = NULL;
  size_t len = 0;
  int64_t s = 0;
  int rc = read_attr_i64(f, path, "step", &s, err, err_size);
  if (rc == 0) rc = read_config_text(f, path, &text, &len, err, err_size);
  H5Fclose(f);
  if (rc == 0) {
    char origin[TPDIFF_PATH_MAX + 16];
    snprintf(origin, sizeof origin, "%s:/config", path);
    rc = config_load_text(cfg, text, len, origin, err, err_size);
  }
  free(text);
  if (rc == 0 && step) *step = (long)s;
  return rc;
}

int checkpoint_read_weights(const char *path, const dit_model *m, int ema, float *host, char *err, size_t err_size) {
  hid_t f = open_checkpoint(path, err, err_size);
  if (f < 0) return -1;
  int rc = 0;
  if (ema && H5Lexists(f, "ema", H5P_DEFAULT) <= 0) {
    snprintf(err, err_size, "%s: the checkpoint holds no EMA weights (its run had train.ema=0); ask for the raw "
             "weights", path);
    rc = -1;
  }
  if (rc == 0) rc = read_group(f, path, ema ? "ema" : "params", m, host, err, err_size);
  H5Fclose(f);
  return rc;
}

int checkpoint_load(const char *path, trainer *tr, checkpoint_meta *meta, char *err, size_t err_size) {
  const dit_model *m = &tr->model;
  size_t n = m->num_floats, bytes = n * sizeof(float);
  hid_t f = open_checkpoint(path, err, err_size);
  if (f < 0) return -1;
  float *host = malloc(4 * bytes);
  int64_t step = 0, world = 0, adam_step = 0, position = 0, skipped = 0, in_a_row = 0;
  int rc = host ? 0 : -1;
  if (!host) snprintf(err, err_size, "%s: out of memory for the host copy", path);
  if (rc == 0)
    rc = read_attr_i64(f, path, "step", &step, err, err_size) ||
         read_attr_i64(f, path, "world_size", &world, err, err_size) ||
         read_attr_i64(f, path, "adam_step", &adam_step, err, err_size) ||
         read_attr_i64(f, path, "stream_position", &position, err, err_size) ||
         read_attr_i64(f, path, "skipped_steps", &skipped, err, err_size) ||
         read_attr_i64(f, path, "nonfinite_in_a_row", &in_a_row, err, err_size);
  if (rc == 0 && (step < 0 || world < 1 || adam_step < 0 || position < 0)) {
    snprintf(err, err_size, "%s: implausible attributes (step %" PRId64 ", world_size %" PRId64 ")", path, step, world);
    rc = -1;
  }
  int has_ema = H5Lexists(f, "ema", H5P_DEFAULT) > 0;
  if (rc == 0 && has_ema != (tr->opt.ema != NULL)) {
    snprintf(err, err_size, "%s: the checkpoint %s EMA weights but this run %s (train.ema)", path,
             has_ema ? "holds" : "holds no", tr->opt.ema ? "keeps them" : "has train.ema=0");
    rc = -1;
  }
  if (rc == 0) rc = read_group(f, path, "params", m, host, err, err_size);
  if (rc == 0 && has_ema) rc = read_group(f, path, "ema", m, host + n, err, err_size);
  if (rc == 0) rc = read_group(f, path, "adam_m", m, host + 2 * n, err, err_size);
  if (rc == 0) rc = read_group(f, path, "adam_v", m, host + 3 * n, err, err_size);
  int64_t *rows = rc == 0 ? malloc(sizeof(int64_t) * 4 * (size_t)world) : NULL;
  if (rc == 0 && !rows) {
    snprintf(err, err_size, "%s: out of memory for /ranks", path);
    rc = -1;
  }
  hsize_t rdims[2] = {(hsize_t)world, 4};
  if (rc == 0)
    rc = read_checked(f, path, "ranks", "the per-rank state /ranks", H5T_INTEGER, 8, H5T_NATIVE_INT64, 2, rdims, rows,
                      sizeof(int64_t) * 4 * (size_t)world, err, err_size);
  for (int64_t r = 0; rc == 0 && r < world; r++)
    if (rows[4 * r] != r || rows[4 * r + 2] != step + 1 || rows[4 * r + 3] != position) {
      snprintf(err, err_size, "%s: /ranks row %" PRId64 " disagrees with the checkpoint's step and stream position",
               path, r);
      rc = -1;
    }
  free(rows);
  char *text = NULL;
  size_t len = 0;
  if (rc == 0) rc = read_config_text(f, path, &text, &len, err, err_size);
  free(text);
  H5Fclose(f);
  /* everything verified: only now does the run change */
  const tpdiff_backend *be = tr->be;
  if (rc == 0 && (dit_weights_from_host(&tr->model, host) != 0 ||
                  (has_ema && be->copy_to_device(tr->opt.ema, host + n, bytes) != 0) ||
                  be->copy_to_device(tr->opt.m, host + 2 * n, bytes) != 0 ||
                  be->copy_to_device(tr->opt.v, host + 3 * n, bytes) != 0)) {
    snprintf(err, err_size, "%s: copying the checkpoint to the %s backend failed: %s", path, be->name,
             be->last_error());
    rc = -1;
  }
  free(host);
  if (rc == 0) {
    tr->opt.step = (int)adam_step;
    tr->skipped_steps = skipped;
    tr->nonfinite_in_a_row = in_a_row;
    meta->step = step;
    meta->world = (int)world;
    meta->stream_position = position;
    meta->skipped_steps = skipped;
    meta->nonfinite_in_a_row = in_a_row;
  }
  return rc;
}
