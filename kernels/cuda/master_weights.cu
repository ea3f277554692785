/* master_weights.cu — bf16 mode's copy of the model's master weights (backend.h set_master_weights).
 *
 * In bf16 mode every Linear multiplies bf16(weight). Without a copy each call casts its weight into
 * scratch; with one, AdamW writes the bf16 weights as it writes the fp32 master weights, and the
 * matmuls read them in place. The copy must never go stale: every write into the master weights
 * that goes through the backend's table refreshes the part it touched (copy_to_device, copy_device
 * and fill_zero call tcu_master_note_write; adamw_step writes both), and the model writes its
 * weights in no other way. A stale copy would be a silent wrong answer, so check_model --bf16
 * trains with the copy and with per-call casts (TPDIFF_BF16_WEIGHTS=cast) and requires the same
 * bits.
 *
 * The copy has the master buffer's layout (element i is bf16 of float i). The model's registry
 * starts every tensor at a multiple of 128 floats, so each tensor's bf16 copy is 256-byte aligned,
 * like a freshly cast scratch copy: cuBLASLt plans (keyed by alignment) and so the bits are the same
 * either way. */
#include <cuda_bf16.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_internal.cuh"
#include "kernels/cuda/master_range.h"

namespace {

const float *g_base;            /* the named master weights, or NULL */
size_t g_count;                 /* their floats */
__nv_bfloat16 *g_copy;          /* bf16 mode: bf16(g_base[i]) for every i, else NULL */

/* Casts master elements [first, first + n) into the copy (stream 0, after the write that made it
 * necessary), with the cast a per-call Linear uses: the same bits either way. */
bool refresh(size_t first, size_t n) { return tcu_cast_bf16(g_copy + first, g_base + first, n); }

void drop_copy(void) {
  if (g_copy) CUDA_OK(cudaFree(g_copy));
  g_copy = NULL;
}

/* Allocates and fills the copy when bf16 mode and named weights meet. */
bool make_copy(void) {
  if (g_copy || !g_base || !g_tcu.bf16) return true;
  cudaError_t err = cudaMalloc((void **)&g_copy, g_count * sizeof(__nv_bfloat16));
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    g_copy = NULL;
    TCU_FAIL("cudaMalloc of %zu bytes for the bf16 copy of the weights: %s", g_count * sizeof(__nv_bfloat16),
             cudaGetErrorString(err));
    return false;
  }
  if (refresh(0, g_count)) return true;
  drop_copy(); /* never leave a copy that does not hold bf16(weights) (the error is recorded) */
  return false;
}

}  // namespace

int tcu_set_master_weights(const float *weights, size_t n) {
  if (n == 0) {
    if (weights == g_base) {
      drop_copy();
      g_base = NULL;
      g_count = 0;
    }
    return 0;
  }
  drop_copy();
  g_base = weights;
  g_count = n;
  return make_copy() ? 0 : -1;
}

bool tcu_master_precision_changed(void) {
  if (!g_tcu.bf16) {
    drop_copy();
    return true;
  }
  return make_copy();
}

void tcu_master_note_write(const void *dst, size_t bytes) {
  size_t first = 0, count = 0;
  if (g_copy && master_range_touched((uintptr_t)g_base, g_count, (uintptr_t)dst, bytes, &first, &count) &&
      !refresh(first, count))
    drop_copy(); /* the matmuls then cast per call; the error is recorded */
}

void tcu_master_forget_if(const void *freed) {
  if (freed && freed == (const void *)g_base) tcu_set_master_weights(g_base, 0);
}

__nv_bfloat16 *tcu_master_bf16(const float *p, size_t n) {
  size_t offset = 0;
  if (!g_copy || !master_range_inside((uintptr_t)g_base, g_count, (uintptr_t)p, n, &offset)) return NULL;
  return g_copy + offset;
}

const __nv_bfloat16 *tcu_master_bf16_for_matmul(const float *weight, size_t n) {
  if (!g_copy) return NULL;
  /* TPDIFF_BF16_WEIGHTS=cast: cast per call even where the copy exists (check_model compares the
   * two); read at every call, like TPDIFF_ATTN, so a check can switch without a rebuild */
  const char *v = getenv("TPDIFF_BF16_WEIGHTS");
  if (v && v[0] && strcmp(v, "copy") != 0) {
    if (strcmp(v, "cast") != 0)
      TCU_FAIL("TPDIFF_BF16_WEIGHTS=%.40s: expected \"copy\" (the default) or \"cast\"", v);
    return NULL;
  }
  return tcu_master_bf16(weight, n);
}
