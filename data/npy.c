/* npy.c — NumPy .npy writer (version 1.0 header, padded to 64 bytes as NumPy itself does). */
#include "data/npy.h"

#include <stdio.h>
#include <string.h>

#include "data/atomic_file.h"

static size_t dtype_size(npy_dtype d) { return d == NPY_F64 ? 8 : 4; }
static const char *dtype_descr(npy_dtype d) { return d == NPY_F32 ? "<f4" : d == NPY_F64 ? "<f8" : "<i4"; }

int npy_write(const char *path, npy_dtype dtype, const void *data, int ndim, const size_t *shape, char *err,
              size_t err_size) {
  char dict[256], shape_text[160] = "";
  size_t count = 1, used = 0;
  for (int i = 0; i < ndim; i++) {
    count *= shape[i];
    used += (size_t)snprintf(shape_text + used, sizeof shape_text - used, "%zu,%s", shape[i],
                             (i + 1 < ndim) ? " " : "");
    if (used >= sizeof shape_text) {
      snprintf(err, err_size, "%s: too many dimensions for the .npy header", path);
      return -1;
    }
  }
  if (ndim > 1 && used > 0) shape_text[used - 1] = '\0'; /* "(2, 3)" not "(2, 3,)"; 1-D keeps "(n,)" */
  int dict_len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                          dtype_descr(dtype), shape_text);
  /* magic(6) + version(2) + header_len(2) + dict + padding + '\n' is a multiple of 64 */
  size_t total = 10 + (size_t)dict_len + 1;
  size_t padded = (total + 63) / 64 * 64;
  char header[512];
  memcpy(header, "\x93NUMPY\x01\x00", 8);
  unsigned short hlen = (unsigned short)(padded - 10);
  header[8] = (char)(hlen & 0xff);
  header[9] = (char)(hlen >> 8);
  memcpy(header + 10, dict, (size_t)dict_len);
  memset(header + 10 + dict_len, ' ', padded - total);
  header[padded - 1] = '\n';

  atomic_file af;
  if (atomic_file_open(&af, path, err, err_size) != 0) return -1;
  /* a short write sets the stream's error flag, which the commit reports */
  (void)(fwrite(header, 1, padded, af.f) == padded && fwrite(data, dtype_size(dtype), count, af.f) == count);
  return atomic_file_commit(&af, err, err_size);
}
