/* weights_io.c — weights and config from a checkpoint (HDF5) or a safetensors file. */
#include "trainer/weights_io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/safetensors.h"
#include "trainer/checkpoint.h"

static const unsigned char HDF5_SIGNATURE[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

int weights_file_kind_of(const char *path, weights_file_kind *kind, char *err, size_t err_size) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, err_size, "%s: cannot open: %s", path, strerror(errno));
    return -1;
  }
  unsigned char head[8];
  size_t n = fread(head, 1, 8, f);
  fclose(f);
  *kind = (n == 8 && memcmp(head, HDF5_SIGNATURE, 8) == 0) ? WEIGHTS_FILE_CHECKPOINT : WEIGHTS_FILE_SAFETENSORS;
  return 0;
}

/* The config text of a safetensors file's metadata; messages name "<file>:__metadata__/tpdiff.config". */
static int config_from_text(const char *path, const char *text, tpdiff_config *cfg, char *err, size_t err_size) {
  char origin[TPDIFF_PATH_MAX + 32];
  snprintf(origin, sizeof origin, "%s:__metadata__/tpdiff.config", path);
  if (config_load_text(cfg, text, strlen(text), origin, err, err_size) != 0) return -1;
  snprintf(cfg->source, sizeof cfg->source, "%s", path);
  return 0;
}

int weights_read_config(const char *path, tpdiff_config *cfg, char *err, size_t err_size) {
  weights_file_kind kind;
  if (weights_file_kind_of(path, &kind, err, err_size) != 0) return -1;
  if (kind == WEIGHTS_FILE_CHECKPOINT) {
    long step;
    if (checkpoint_read_config(path, cfg, &step, err, err_size) != 0) return -1;
    snprintf(cfg->source, sizeof cfg->source, "%s", path);
    return 0;
  }
  st_file sf;
  int rc = st_open(&sf, path, err, err_size);
  if (rc == 0) {
    const char *text = st_meta(&sf, "tpdiff.config");
    if (!text) {
      snprintf(
          err, err_size,
          "%s: no \"tpdiff.config\" in __metadata__ (not written by tpdiff-export), so the model's shape is unknown",
          path);
      rc = -1;
    } else {
      rc = config_from_text(path, text, cfg, err, err_size);
    }
  }
  st_close(&sf);
  return rc;
}

int weights_read_step(const char *path, long *step, char *err, size_t err_size) {
  weights_file_kind kind;
  *step = -1;
  if (weights_file_kind_of(path, &kind, err, err_size) != 0) return -1;
  if (kind == WEIGHTS_FILE_CHECKPOINT) {
    static tpdiff_config cfg; /* large; only the step is wanted */
    return checkpoint_read_config(path, &cfg, step, err, err_size);
  }
  st_file sf;
  int rc = st_open(&sf, path, err, err_size);
  const char *text = rc == 0 ? st_meta(&sf, "tpdiff.step") : NULL;
  if (text) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < 0) {
      snprintf(err, err_size, "%s: __metadata__ tpdiff.step is '%.40s', not a step number", path, text);
      rc = -1;
    } else {
      *step = v;
    }
  }
  st_close(&sf);
  return rc;
}

static const char *shape_text(int ndim, const size_t *shape, char *buf, size_t size) {
  size_t used = (size_t)snprintf(buf, size, "[");
  for (int d = 0; d < ndim && used < size; d++)
    used += (size_t)snprintf(buf + used, size - used, "%s%zu", d ? ", " : "", shape[d]);
  if (used < size) snprintf(buf + used, size - used, "]");
  return buf;
}

static const char *param_shape_text(const dit_param *p, char *buf, size_t size) {
  size_t shape[2] = {(size_t)p->shape[0], (size_t)p->shape[1]};
  return shape_text(p->ndim, shape, buf, size);
}

/* Which set a safetensors file holds, against the set asked for. */
static int check_weight_set(const st_file *sf, int ema, int *used_ema, char *err, size_t err_size) {
  const char *set = st_meta(sf, "tpdiff.weights");
  int has_ema = set && strcmp(set, "ema") == 0;
  if (set && !has_ema && strcmp(set, "raw") != 0) {
    snprintf(err, err_size, "%s: __metadata__ tpdiff.weights is '%.40s', expected ema or raw", sf->path, set);
    return -1;
  }
  if (set && ema != WEIGHTS_EMA_IF_PRESENT && ema != has_ema) {
    snprintf(err, err_size, "%s: holds the %s weights only (exported so); the %s weights were asked for", sf->path, set,
             ema ? "EMA" : "raw");
    return -1;
  }
  if (used_ema) *used_ema = has_ema;
  return 0;
}

static int read_safetensors(const char *path, const dit_model *m, int ema, float *host, int *used_ema, char *err,
                            size_t err_size) {
  st_file sf;
  memset(host, 0, m->num_floats * sizeof(float)); /* the registry's alignment gaps: zero, not stored */
  int rc = st_open(&sf, path, err, err_size);
  if (rc == 0) rc = check_weight_set(&sf, ema, used_ema, err, err_size);
  char want[64], got[64];
  for (int i = 0; i < m->num_params && rc == 0; i++) {
    const dit_param *p = &m->params[i];
    const st_entry *e = st_find(&sf, p->name);
    if (!e) {
      snprintf(err, err_size, "%s: parameter '%s' %s of the model is missing", path, p->name,
               param_shape_text(p, want, sizeof want));
      rc = -1;
      break;
    }
    int same = e->ndim == p->ndim;
    for (int d = 0; d < p->ndim && same; d++) same = e->shape[d] == (size_t)p->shape[d];
    if (!same) {
      snprintf(err, err_size, "%s: parameter '%s' has shape %s in the file, the model (from its config) expects %s",
               path, p->name, shape_text(e->ndim, e->shape, got, sizeof got), param_shape_text(p, want, sizeof want));
      rc = -1;
      break;
    }
    rc = st_read(&sf, e, host + p->offset, err, err_size);
  }
  for (int i = 0; i < sf.count && rc == 0; i++) {
    if (dit_find_param(m, sf.entries[i].name)) continue;
    snprintf(err, err_size,
             "%s: tensor '%.100s' %s is not a parameter of this model (%d blocks, dim %d, %d classes, %d stages)", path,
             sf.entries[i].name, shape_text(sf.entries[i].ndim, sf.entries[i].shape, got, sizeof got), m->shape.depth,
             m->shape.dim, m->shape.classes, m->shape.stages);
    rc = -1;
  }
  st_close(&sf);
  return rc;
}

int weights_read_host(const char *path, const dit_model *m, int ema, float *host, int *used_ema, char *err,
                      size_t err_size) {
  weights_file_kind kind;
  if (weights_file_kind_of(path, &kind, err, err_size) != 0) return -1;
  if (kind == WEIGHTS_FILE_SAFETENSORS) return read_safetensors(path, m, ema, host, used_ema, err, err_size);
  int take_ema = ema;
  if (ema == WEIGHTS_EMA_IF_PRESENT && checkpoint_has_ema(path, &take_ema, err, err_size) != 0) return -1;
  if (checkpoint_read_weights(path, m, take_ema, host, err, err_size) != 0) return -1;
  if (used_ema) *used_ema = take_ema != 0;
  return 0;
}

int weights_load(const char *path, dit_model *m, int ema, char *err, size_t err_size) {
  float *host = malloc(sizeof(float) * m->num_floats);
  if (!host) {
    snprintf(err, err_size, "%s: out of memory for %zu weights", path, m->num_floats);
    return -1;
  }
  int rc = weights_read_host(path, m, ema, host, NULL, err, err_size);
  if (rc == 0 && dit_weights_from_host(m, host) != 0) {
    const char *why = m->be->last_error();
    snprintf(err, err_size, "%s: uploading the weights failed%s%s", path, why[0] ? ": " : "", why);
    rc = -1;
  }
  free(host);
  return rc;
}

int weights_write_safetensors(const char *path, const dit_model *m, const float *host, const tpdiff_config *cfg,
                              int ema, long step, st_dtype dtype, char *err, size_t err_size) {
  st_tensor_out *tensors = calloc((size_t)m->num_params, sizeof *tensors);
  size_t(*shapes)[2] = calloc((size_t)m->num_params, sizeof *shapes);
  char *yaml = config_yaml_text(cfg, NULL);
  int rc = -1;
  if (!tensors || !shapes || !yaml) {
    snprintf(err, err_size, "%s: out of memory", path);
  } else {
    for (int i = 0; i < m->num_params; i++) {
      const dit_param *p = &m->params[i];
      shapes[i][0] = (size_t)p->shape[0];
      shapes[i][1] = (size_t)p->shape[1];
      tensors[i] = (st_tensor_out){p->name, p->ndim, shapes[i], host + p->offset};
    }
    char step_text[32];
    snprintf(step_text, sizeof step_text, "%ld", step);
    const char *keys[] = {"format", "tpdiff.config", "tpdiff.weights", "tpdiff.step"};
    const char *values[] = {"pt", yaml, ema ? "ema" : "raw", step_text};
    rc = st_write(path, tensors, m->num_params, dtype, keys, values, step >= 0 ? 4 : 3, err, err_size);
  }
  free(tensors);
  free(shapes);
  free(yaml);
  return rc;
}
