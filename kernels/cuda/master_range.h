/* master_range.h — the address arithmetic of master_weights.cu, kept apart as plain C so the CPU
 * test suite checks it (tests/unit/test_master_range.c) where no GPU can run the backend itself.
 * Addresses are integers (uintptr_t): the ranges compared belong to different allocations, which C
 * pointer comparison does not define. */
#ifndef TPDIFF_MASTER_RANGE_H
#define TPDIFF_MASTER_RANGE_H

#include <stddef.h>
#include <stdint.h>

/* A write of `bytes` bytes at address `dst` against the buffer of `total` floats at `base`: returns 1
 * and the floats it touched, [*first, *first + *count) (a float partly written counts), or 0 when
 * it misses the buffer. */
static inline int master_range_touched(uintptr_t base, size_t total, uintptr_t dst, size_t bytes, size_t *first,
                                       size_t *count) {
  const uintptr_t hi = base + total * sizeof(float), w_hi = dst + bytes;
  if (bytes == 0 || total == 0 || w_hi <= base || dst >= hi) return 0;
  const uintptr_t lo_hit = dst > base ? dst : base, hi_hit = w_hi < hi ? w_hi : hi;
  *first = (size_t)(lo_hit - base) / sizeof(float);
  const size_t end = ((size_t)(hi_hit - base) + sizeof(float) - 1) / sizeof(float);
  *count = end - *first;
  return 1;
}

/* Whether the n floats at address p lie wholly inside the buffer of `total` floats at `base` (and
 * start on a float of it); *offset is then p's index in it. */
static inline int master_range_inside(uintptr_t base, size_t total, uintptr_t p, size_t n, size_t *offset) {
  if (p < base || (p - base) % sizeof(float) != 0 || n > total) return 0;
  const size_t at = (size_t)(p - base) / sizeof(float);
  if (at > total - n) return 0;
  *offset = at;
  return 1;
}

#endif
