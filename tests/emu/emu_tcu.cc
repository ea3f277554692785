/* emu_tcu.cc — what backend.cu provides the flash attention sources (error recording, the scratch
 * slots, the device state), for the emulator build: plain host memory, errors printed. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels/cuda/cuda_internal.cuh"
#include "tests/emu/emu_tcu.h"

tcu_device_state g_tcu = {4, 1}; /* few SMs: grid-stride kernels then need fewer emulated blocks */

static char g_first_error[512];

void tcu_fail(const char *file, int line, const char *fmt, ...) {
  if (g_first_error[0]) return;
  int n = snprintf(g_first_error, sizeof g_first_error, "%s:%d: ", file, line);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_first_error + n, sizeof g_first_error - (size_t)n, fmt, ap);
  va_end(ap);
  printf("emu: %s\n", g_first_error);
}

const char *emu_first_error() { return g_first_error; }
void emu_clear_error() { g_first_error[0] = 0; }

bool tcu_cuda_ok(cudaError_t err, const char *what, const char *file, int line) {
  if (err == cudaSuccess) return true;
  tcu_fail(file, line, "%s: %s", what, cudaGetErrorString(err));
  return false;
}

static void *g_slot[TCU_SCRATCH_SLOTS];
static size_t g_slot_bytes[TCU_SCRATCH_SLOTS];

void *tcu_scratch(tcu_scratch_slot slot, size_t bytes) {
  if (bytes <= g_slot_bytes[slot]) return g_slot[slot];
  free(g_slot[slot]);
  /* 0xFF bytes (NaN): what a kernel reads of scratch it did not write shows */
  g_slot[slot] = malloc(bytes);
  if (!g_slot[slot]) {
    g_slot_bytes[slot] = 0;
    TCU_FAIL("out of memory for %zu bytes of scratch", bytes);
    return NULL;
  }
  for (size_t i = 0; i < bytes; i++) ((unsigned char *)g_slot[slot])[i] = 0xFF;
  g_slot_bytes[slot] = bytes;
  return g_slot[slot];
}
