/* test_master_range.c — the address arithmetic by which the CUDA backend keeps the bf16 copy of the
 * master weights in step (kernels/cuda/master_range.h): which floats a write touches, and whether a
 * weight pointer lies inside the named weights. The backend itself needs a GPU; this part does not. */
#include <stdio.h>

#include "kernels/cuda/master_range.h"
#include "tests/unit/test_report.h"

static void touched(const char *name, size_t dst_byte, size_t bytes, int want_hit, size_t want_first,
                    size_t want_count) {
  const uintptr_t base = 4096; /* a buffer of 100 floats at address 4096 */
  size_t first = 999, count = 999;
  int hit = master_range_touched(base, 100, base + dst_byte - 1000, bytes, &first, &count);
  int ok = hit == want_hit && (!hit || (first == want_first && count == want_count));
  check(name, ok, "hit %d first %zu count %zu (expected %d %zu %zu)", hit, hit ? first : 0, hit ? count : 0, want_hit,
        want_first, want_count);
}

static void inside(const char *name, long float_offset, size_t n, int want, size_t want_offset) {
  const uintptr_t base = 1 << 20;
  size_t offset = 999;
  int got = master_range_inside(base, 100, (uintptr_t)((long)base + 4 * float_offset), n, &offset);
  check(name, got == want && (!got || offset == want_offset), "got %d offset %zu", got, got ? offset : 0);
}

int main(void) {
  /* dst_byte is relative to base - 1000 bytes: 1000 = the buffer's first byte, 1400 = one past it */
  touched("write wholly before the buffer misses", 0, 1000, 0, 0, 0);
  touched("write ending at the buffer's first byte misses", 900, 100, 0, 0, 0);
  touched("write starting one past the end misses", 1400, 8, 0, 0, 0);
  touched("empty write misses", 1200, 0, 0, 0, 0);
  touched("the whole buffer", 1000, 400, 1, 0, 100);
  touched("a write covering the buffer and more is clipped", 0, 5000, 1, 0, 100);
  touched("overlap at the start", 996, 12, 1, 0, 2);
  touched("overlap at the end", 1392, 100, 1, 98, 2);
  touched("one float in the middle", 1040, 4, 1, 10, 1);
  touched("a partly written float counts (unaligned start and end)", 1041, 6, 1, 10, 2);
  touched("the last byte alone", 1399, 1, 1, 99, 1);
  inside("tensor at the start", 0, 10, 1, 0);
  inside("tensor ending at the last float", 90, 10, 1, 90);
  inside("tensor running one float past the end", 91, 10, 0, 0);
  inside("pointer before the buffer", -1, 2, 0, 0);
  inside("pointer one past the end with n = 0", 100, 0, 1, 100);
  inside("more floats than the buffer holds", 0, 101, 0, 0);
  inside("pointer past the end", 150, 1, 0, 0);
  {
    size_t off = 0;
    check("pointer between floats is not inside", !master_range_inside(4096, 100, 4098, 1, &off), NULL);
  }
  test_summary("test_master_range", NULL);
  return test_exit_code();
}
