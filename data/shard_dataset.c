/* shard_dataset.c — opens a data set folder: index.json (or, without one, every shard-*.h5 in name
 * order), then opens each shard to check it agrees with the index and with the first shard. */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/shard_internal.h"

static void set_err(char *err, size_t err_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t err_size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, err_size, fmt, ap);
  va_end(ap);
}

void shard_dataset_close(shard_dataset *d) {
  if (!d) return;
  for (int i = 0; i < d->count && d->paths; i++) free(d->paths[i]);
  free(d->paths);
  free(d->clips);
  memset(d, 0, sizeof *d);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Lists folder/shard-*.h5 sorted by name into names (owned) and count. */
static int scan_shards(const char *folder, char ***names, int *count, char *err, size_t err_size) {
  DIR *dir = opendir(folder);
  if (!dir) {
    set_err(err, err_size, "%s: cannot list the folder: %s", folder, strerror(errno));
    return -1;
  }
  int cap = 0;
  *names = NULL;
  *count = 0;
  struct dirent *e;
  while ((e = readdir(dir))) {
    size_t len = strlen(e->d_name);
    if (len < 10 || strncmp(e->d_name, "shard-", 6) != 0 || strcmp(e->d_name + len - 3, ".h5") != 0) continue;
    if (*count == cap) {
      cap = cap ? cap * 2 : 64;
      char **grown = realloc(*names, (size_t)cap * sizeof *grown);
      if (!grown) break;
      *names = grown;
    }
    if (!((*names)[*count] = strdup(e->d_name))) break;
    ++*count;
  }
  int failed = e != NULL; /* left the loop early: out of memory */
  closedir(dir);
  if (failed) {
    for (int i = 0; i < *count; i++) free((*names)[i]);
    free(*names);
    *names = NULL;
    *count = 0;
    set_err(err, err_size, "%s: out of memory listing shards", folder);
    return -1;
  }
  if (*count) qsort(*names, (size_t)*count, sizeof **names, by_name);
  return 0;
}

/* What differs between layout b and the reference a (the first difference, "dtype float32 (<ref>
 * uint8)"), or NULL when they agree. */
static const char *layout_difference(const shard_layout *a, const shard_layout *b, const char *ref, char *buf,
                                     size_t buf_size) {
  if (a->frames != b->frames || a->height != b->height || a->width != b->width || a->channels != b->channels)
    snprintf(buf, buf_size, "clip shape T,H,W,C = %d,%d,%d,%d (%s %d,%d,%d,%d)", b->frames, b->height, b->width,
             b->channels, ref, a->frames, a->height, a->width, a->channels);
  else if (a->levels != b->levels)
    snprintf(buf, buf_size, "%d levels (%s %d)", b->levels, ref, a->levels);
  else if (a->dtype != b->dtype)
    snprintf(buf, buf_size, "dtype %s (%s %s)", shard_dtype_name(b->dtype), ref, shard_dtype_name(a->dtype));
  else if (a->scale != b->scale || a->shift != b->shift)
    snprintf(buf, buf_size, "scale %g, shift %g (%s %g, %g)", b->scale, b->shift, ref, a->scale, a->shift);
  else if (a->has_labels != b->has_labels)
    snprintf(buf, buf_size, "%s (%s %s)", b->has_labels ? "labels" : "no labels", ref,
             a->has_labels ? "labels" : "none");
  else if (a->fps != b->fps)
    snprintf(buf, buf_size, "fps %g (%s %g)", b->fps, ref, a->fps);
  else
    return NULL;
  return buf;
}

int shard_dataset_open(shard_dataset *d, const char *folder, char *err, size_t err_size) {
  if (!d || !folder) {
    set_err(err, err_size, "shard data set: no %s given", !d ? "result" : "folder");
    return -1;
  }
  memset(d, 0, sizeof *d);
  struct stat st;
  if (stat(folder, &st) != 0) {
    set_err(err, err_size, "%s: cannot open the data set: %s", folder, strerror(errno));
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) {
    set_err(err, err_size, "%s: not a folder (expected a data set folder of shard-*.h5 and index.json)", folder);
    return -1;
  }
  char index_path[SHARD_PATH_BYTES];
  if (snprintf(index_path, sizeof index_path, "%s/index.json", folder) >= (int)sizeof index_path) {
    set_err(err, err_size, "%s: path too long", folder);
    return -1;
  }
  shard_index_doc doc;
  memset(&doc, 0, sizeof doc);
  int have_index = access(index_path, F_OK) == 0;
  if (have_index) {
    if (shard_index_read(index_path, &doc, err, err_size) != 0) return -1;
    if (doc.count == 0) {
      set_err(err, err_size, "%s: lists no shards", index_path);
      shard_index_free(&doc);
      return -1;
    }
  } else {
    if (scan_shards(folder, &doc.names, &doc.count, err, err_size) != 0) return -1;
    if (doc.count == 0) {
      set_err(err, err_size, "%s: no index.json and no shard-*.h5 files (expected a tpdiff data set)", folder);
      return -1;
    }
    fprintf(stderr, "tpdiff: %s: no index.json; using the %d shard-*.h5 files found there, in name order\n", folder,
            doc.count);
  }
  d->count = doc.count;
  d->paths = calloc((size_t)doc.count, sizeof *d->paths);
  d->clips = calloc((size_t)doc.count, sizeof *d->clips);
  if (!d->paths || !d->clips) {
    set_err(err, err_size, "%s: out of memory", folder);
    goto fail;
  }
  for (int i = 0; i < doc.count; i++) {
    size_t len = strlen(folder) + strlen(doc.names[i]) + 2;
    if (!(d->paths[i] = malloc(len))) {
      set_err(err, err_size, "%s: out of memory", folder);
      goto fail;
    }
    snprintf(d->paths[i], len, "%s/%s", folder, doc.names[i]);
    if (have_index && access(d->paths[i], F_OK) != 0) {
      set_err(err, err_size, "%s: shards[%d] \"%s\" is missing: %s", index_path, i, doc.names[i], strerror(errno));
      goto fail;
    }
    shard_layout layout;
    long clips;
    shard_reader *r = shard_reader_open(d->paths[i], &layout, &clips, err, err_size);
    if (!r) goto fail;
    shard_reader_close(r);
    d->clips[i] = clips;
    d->total += clips;
    char diff[512], ref[320];
    snprintf(ref, sizeof ref, "the first shard %s has", doc.names[0]);
    if (i == 0) d->layout = layout;
    if (i > 0 && layout_difference(&d->layout, &layout, ref, diff, sizeof diff)) {
      set_err(err, err_size, "%s: %s", d->paths[i], diff);
      goto fail;
    }
    if (!have_index) continue;
    shard_layout listed = layout;
    listed.frames = (int)doc.frames, listed.height = (int)doc.height, listed.width = (int)doc.width;
    listed.channels = (int)doc.channels, listed.levels = (int)doc.levels;
    int dt = shard_dtype_from_name(doc.dtype);
    if (dt < 0) {
      set_err(err, err_size, "%s: dtype is \"%s\" (expected uint8, float16 or float32)", index_path, doc.dtype);
      goto fail;
    }
    listed.dtype = (shard_dtype)dt;
    if (layout_difference(&listed, &layout, "index.json says", diff, sizeof diff)) {
      set_err(err, err_size, "%s: disagrees with %s: %s", d->paths[i], index_path, diff);
      goto fail;
    }
    if (clips != doc.clips[i]) {
      set_err(err, err_size, "%s: shard %s holds %ld clips (index.json says %ld)", index_path, doc.names[i], clips,
              doc.clips[i]);
      goto fail;
    }
  }
  shard_index_free(&doc);
  return 0;
fail:
  shard_index_free(&doc);
  shard_dataset_close(d);
  return -1;
}
