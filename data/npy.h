/* npy.h — NumPy .npy files (format version 1.0, little-endian, C order): the exchange format for
 * noise inputs, raw sample outputs and reference-check dumps. */
#ifndef TPDIFF_NPY_H
#define TPDIFF_NPY_H

#include <stddef.h>

/* dtype codes as they appear in the header: "<f4", "<f8", "<i4". */
typedef enum { NPY_F32, NPY_F64, NPY_I32 } npy_dtype;

/* Writes data (shape[0..ndim)) to path via a temporary name and rename, so a reader never sees a
 * half-written file. Returns 0, or -1 with one line in err naming the file and the reason. */
int npy_write(const char *path, npy_dtype dtype, const void *data, int ndim, const size_t *shape, char *err,
              size_t err_size);

#endif
