/* npy_read.h — reading a NumPy .npy file of float32 values (format versions 1.0, 2.0 and 3.0,
 * little-endian '<f4', C order): the --noise input of tpdiff-sample. Every read is bounds-checked;
 * a file of another dtype, order, rank or size is refused with one line naming the file. */
#ifndef TPDIFF_NPY_READ_H
#define TPDIFF_NPY_READ_H

#include <stddef.h>

#define NPY_READ_MAX_DIMS 8

typedef struct {
  int ndim;
  size_t shape[NPY_READ_MAX_DIMS];
  size_t count; /* product of shape */
  float *data;  /* count values, malloc'ed; the caller frees */
} npy_f32;

/* Reads path into out. 0, or -1 with one line in err "<path>: <reason>" (and out->data NULL). */
int npy_read_f32(const char *path, npy_f32 *out, char *err, size_t err_size);

#endif
