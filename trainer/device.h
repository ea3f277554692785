/* device.h — the compute backend that train.device names: `cpu` (kernels/cpu), `cuda` (the
 * dlopen'ed libtpdiff_cuda.so, backend.h), or `auto` (CUDA when it loads, else the CPU). */
#ifndef TPDIFF_DEVICE_H
#define TPDIFF_DEVICE_H

#include <stddef.h>

#include "kernels/backend.h"

/* Returns the backend for `device` (cpu, cuda or auto). cuda that cannot load: NULL with one line in
 * err. auto that cannot load CUDA: the CPU backend, with one line in notice saying why (notice is
 * "" otherwise). `option` names where the choice came from in those lines ("train.device",
 * "--device"). */
const tpdiff_backend *device_open(const char *option, const char *device, char *notice, size_t notice_size, char *err,
                                  size_t err_size);

#endif
