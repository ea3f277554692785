/* npy_read.c — .npy reader for float32 arrays: header dict parsed strictly, sizes checked against
 * the file's length before any allocation. */
#include "data/npy_read.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int fail(char *err, size_t err_size, const char *path, const char *what) {
  snprintf(err, err_size, "%s: %s", path, what);
  return -1;
}

/* The value text after 'key': in the header dict (NULL when absent). */
static const char *dict_value(const char *dict, const char *key) {
  char quoted[32];
  snprintf(quoted, sizeof quoted, "'%s'", key);
  const char *at = strstr(dict, quoted);
  if (!at) return NULL;
  at += strlen(quoted);
  while (*at == ' ') at++;
  if (*at != ':') return NULL;
  at++;
  while (*at == ' ') at++;
  return at;
}

static int parse_shape(const char *s, npy_f32 *out) {
  if (*s++ != '(') return -1;
  out->ndim = 0;
  out->count = 1;
  for (;;) {
    while (*s == ' ') s++;
    if (*s == ')') return 0;
    if (*s < '0' || *s > '9' || out->ndim == NPY_READ_MAX_DIMS) return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return -1;
    if (v && out->count > SIZE_MAX / 4 / v) return -1;
    out->shape[out->ndim++] = (size_t)v;
    out->count *= (size_t)v;
    s = end;
    while (*s == ' ') s++;
    if (*s == ',')
      s++;
    else if (*s != ')')
      return -1;
  }
}

int npy_read_f32(const char *path, npy_f32 *out, char *err, size_t err_size) {
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, err_size, "%s: cannot open: %s", path, strerror(errno));
    return -1;
  }
  struct stat st;
  unsigned char pre[12];
  char *dict = NULL;
  int rc = -1;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fail(err, err_size, path, "not a regular file");
    goto done;
  }
  if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
    fail(err, err_size, path, "not a .npy file (no \\x93NUMPY magic)");
    goto done;
  }
  int major = pre[6];
  size_t hlen, start;
  if (major == 1) {
    hlen = (size_t)pre[8] | ((size_t)pre[9] << 8);
    start = 10;
  } else if (major == 2 || major == 3) {
    if (fread(pre + 10, 1, 2, f) != 2) {
      fail(err, err_size, path, "truncated header");
      goto done;
    }
    hlen = (size_t)pre[8] | ((size_t)pre[9] << 8) | ((size_t)pre[10] << 16) | ((size_t)pre[11] << 24);
    start = 12;
  } else {
    snprintf(err, err_size, "%s: .npy format version %d.%d is not one of 1.0, 2.0, 3.0", path, pre[6], pre[7]);
    goto done;
  }
  if ((uint64_t)hlen > (uint64_t)st.st_size - start || hlen > (1u << 20)) {
    fail(err, err_size, path, "header length runs past the end of the file");
    goto done;
  }
  dict = malloc(hlen + 1);
  if (!dict || fread(dict, 1, hlen, f) != hlen) {
    fail(err, err_size, path, "cannot read the header");
    goto done;
  }
  dict[hlen] = '\0';
  if (strlen(dict) != hlen) {
    fail(err, err_size, path, "NUL byte inside the header");
    goto done;
  }
  const char *descr = dict_value(dict, "descr"), *order = dict_value(dict, "fortran_order"),
             *shape = dict_value(dict, "shape");
  if (!descr || !order || !shape) {
    fail(err, err_size, path, "header lacks 'descr', 'fortran_order' or 'shape'");
    goto done;
  }
  if (strncmp(descr, "'<f4'", 5) != 0) {
    char got[24];
    size_t n = 0;
    while (n + 1 < sizeof got && descr[n] && descr[n] != ',') got[n] = descr[n], n++;
    got[n] = '\0';
    snprintf(err, err_size, "%s: dtype %s, expected float32 little-endian '<f4'", path, got);
    goto done;
  }
  if (strncmp(order, "False", 5) != 0) {
    fail(err, err_size, path, "Fortran order; expected C order (numpy.ascontiguousarray)");
    goto done;
  }
  if (parse_shape(shape, out) != 0) {
    fail(err, err_size, path, "cannot parse the shape in the header (or it is too large)");
    goto done;
  }
  uint64_t data_bytes = (uint64_t)st.st_size - start - hlen;
  if (data_bytes != (uint64_t)out->count * 4) {
    snprintf(err, err_size, "%s: %llu data bytes, the header's shape needs %llu", path, (unsigned long long)data_bytes,
             (unsigned long long)out->count * 4);
    goto done;
  }
  out->data = malloc(out->count ? out->count * 4 : 1);
  if (!out->data) {
    fail(err, err_size, path, "out of memory");
    goto done;
  }
  if (fread(out->data, 4, out->count, f) != out->count) {
    fail(err, err_size, path, "short read");
    goto done;
  }
  rc = 0;
done:
  if (rc != 0) {
    free(out->data);
    out->data = NULL;
  }
  free(dict);
  fclose(f);
  return rc;
}
