/* threads.c — how many threads the CPU kernels use. */
#include "kernels/kernels.h"
#include "kernels/cpu/cpu_internal.h"

int k_num_threads(void) {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}
