/* device.c — train.device to a compute backend: cpu, cuda, or auto with a one-line fallback notice. */
#include "trainer/device.h"

#include <stdio.h>
#include <string.h>

const tpdiff_backend *device_open(const char *option, const char *device, char *notice, size_t notice_size, char *err,
                                  size_t err_size) {
  if (notice && notice_size) notice[0] = '\0';
  if (strcmp(device, "cpu") == 0) return tpdiff_cpu_backend();
  char why[768];
  const tpdiff_backend *be = tpdiff_load_cuda_backend(NULL, why, sizeof why);
  if (be) return be;
  if (strcmp(device, "cuda") == 0) {
    snprintf(err, err_size, "%s=cuda: %s", option, why);
    return NULL;
  }
  /* auto: the CPU always works; say once why the GPU was not used */
  if (notice && notice_size) snprintf(notice, notice_size, "%s=auto: %s; running on the CPU", option, why);
  return tpdiff_cpu_backend();
}
