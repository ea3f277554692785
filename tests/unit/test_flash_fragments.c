/* test_flash_fragments.c — the lane-to-row maps by which the bf16 flash attention kernels load their
 * mma.m16n8k16 operands with ldmatrix (kernels/cuda/flash_fragments.h). The kernels need a GPU; the
 * maps do not: an emulated ldmatrix (the PTX ISA's rule for which lane receives which element) run
 * on the addresses the maps give must hand every lane exactly the fragment that mma.m16n8k16 expects
 * (attention_flash.cuh spells out that layout), at every row stride the kernels use, with every
 * address 16-byte aligned, and without shared-memory bank conflicts. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kernels/cuda/flash_fragments.h"
#include "tests/unit/test_report.h"

enum { kRows = 48, kMaxLd = 136 + 8 };

/* element (r, c) of the emulated shared tile holds a 16-bit code of its own position */
static uint16_t code(int r, int c) { return (uint16_t)(r * 256 + c); }

typedef int (*lane_map)(int lane);

/* ldmatrix.x4 (trans = .trans) on a tile with `ld` elements per row; out[lane][i] as the hardware
 * fills register i of that lane. addr[lane] = element offset of the row that lane names. */
static void ldmatrix_x4(uint32_t out[32][4], const uint16_t *tile, const int addr[32], int trans) {
  for (int lane = 0; lane < 32; lane++)
    for (int i = 0; i < 4; i++) {
      const int r = lane / 4, w = lane % 4;
      uint16_t lo, hi;
      if (!trans) {
        lo = tile[addr[8 * i + r] + 2 * w];
        hi = tile[addr[8 * i + r] + 2 * w + 1];
      } else {
        lo = tile[addr[8 * i + 2 * w] + r];
        hi = tile[addr[8 * i + 2 * w + 1] + r];
      }
      out[lane][i] = (uint32_t)lo | ((uint32_t)hi << 16);
    }
}

static uint32_t pair(int r0, int c0, int r1, int c1) { return (uint32_t)code(r0, c0) | ((uint32_t)code(r1, c1) << 16); }

/* The fragment mma.m16n8k16 expects (PTX ISA, "Matrix fragments for mma.m16n8k16"), g = lane / 4,
 * t = lane % 4, for a 16x16 block of the tile with its corner at (r0, c0). kind 0: A (rows m);
 * kind 1: B over two n tiles, tile rows = n; kind 2: B over two n tiles, tile rows = k. */
static void expected(uint32_t out[32][4], int kind, int r0, int c0) {
  for (int lane = 0; lane < 32; lane++) {
    const int g = lane / 4, t = lane % 4;
    if (kind == 0) {
      out[lane][0] = pair(r0 + g, c0 + 2 * t, r0 + g, c0 + 2 * t + 1);
      out[lane][1] = pair(r0 + g + 8, c0 + 2 * t, r0 + g + 8, c0 + 2 * t + 1);
      out[lane][2] = pair(r0 + g, c0 + 2 * t + 8, r0 + g, c0 + 2 * t + 9);
      out[lane][3] = pair(r0 + g + 8, c0 + 2 * t + 8, r0 + g + 8, c0 + 2 * t + 9);
    } else {
      for (int j = 0; j < 2; j++) {
        if (kind == 1) { /* b0 = B[k 2t, 2t+1][n g] = tile[n g][k 2t, 2t+1]; b1: k + 8 */
          const int n = r0 + 8 * j + g;
          out[lane][2 * j] = pair(n, c0 + 2 * t, n, c0 + 2 * t + 1);
          out[lane][2 * j + 1] = pair(n, c0 + 2 * t + 8, n, c0 + 2 * t + 9);
        } else { /* b0 = (tile[k 2t][n g], tile[k 2t+1][n g]); b1: k + 8 */
          const int n = c0 + 8 * j + g;
          out[lane][2 * j] = pair(r0 + 2 * t, n, r0 + 2 * t + 1, n);
          out[lane][2 * j + 1] = pair(r0 + 2 * t + 8, n, r0 + 2 * t + 9, n);
        }
      }
    }
  }
}

/* One operand kind at one row stride and corner: fragments, alignment, banks. */
static void check_kind(const char *what, int kind, lane_map row_of, lane_map col_of, int trans, int ld, int r0,
                       int c0) {
  static uint16_t tile[kRows * kMaxLd];
  for (int r = 0; r < kRows; r++)
    for (int c = 0; c < ld; c++) tile[r * ld + c] = code(r, c);
  int addr[32];
  for (int lane = 0; lane < 32; lane++) addr[lane] = (r0 + row_of(lane)) * ld + c0 + col_of(lane);

  uint32_t got[32][4], want[32][4];
  ldmatrix_x4(got, tile, addr, trans);
  expected(want, kind, r0, c0);
  int wrong = 0, first_lane = -1, first_reg = -1;
  for (int lane = 0; lane < 32; lane++)
    for (int i = 0; i < 4; i++)
      if (got[lane][i] != want[lane][i] && wrong++ == 0) first_lane = lane, first_reg = i;
  char name[160];
  snprintf(name, sizeof name, "%s ld=%d corner (%d,%d): every lane gets its mma fragment", what, ld, r0, c0);
  check(name, wrong == 0, "%d of 128 registers wrong, first lane %d register %d", wrong, first_lane, first_reg);

  int misaligned = 0;
  for (int lane = 0; lane < 32; lane++) misaligned += (addr[lane] * 2) % 16 != 0;
  snprintf(name, sizeof name, "%s ld=%d corner (%d,%d): row addresses 16-byte aligned", what, ld, r0, c0);
  check(name, misaligned == 0, "%d lanes misaligned", misaligned);

  /* ldmatrix reads each 8x8 matrix's 8 rows of 4 words together: conflict-free when they cover 32
   * different banks (4-byte words, 32 banks) */
  int conflicted = 0;
  for (int i = 0; i < 4; i++) {
    int used[32] = {0};
    for (int r = 0; r < 8; r++)
      for (int w = 0; w < 4; w++) used[(addr[8 * i + r] / 2 + w) % 32]++;
    for (int b = 0; b < 32; b++) conflicted += used[b] != 1;
  }
  snprintf(name, sizeof name, "%s ld=%d corner (%d,%d): no bank conflicts", what, ld, r0, c0);
  check(name, conflicted == 0, "%d banks hit other than once", conflicted);
}

int main(void) {
  /* the row strides of the kernels' shared tiles: head dimension + 8 (Row<DH>::ld), for the head
   * dimensions flash_head_dim picks */
  const int head_dims[] = {16, 32, 64, 80, 128};
  for (size_t h = 0; h < sizeof head_dims / sizeof head_dims[0]; h++) {
    const int ld = head_dims[h] + 8;
    const int corners[][2] = {{0, 0}, {16, head_dims[h] - 16}, {32, 0}};
    for (int c = 0; c < 3; c++) {
      const int r0 = corners[c][0], c0 = corners[c][1];
      check_kind("A (Q, dO, K, V rows)", 0, flash_ldsm_a_row, flash_ldsm_a_col, 0, ld, r0, c0);
      check_kind("B rows are n (K in Q K^T)", 1, flash_ldsm_b_rows_n_row, flash_ldsm_b_rows_n_col, 0, ld, r0, c0);
      check_kind("B rows are k, .trans (V in P V)", 2, flash_ldsm_b_rows_k_row, flash_ldsm_b_rows_k_col, 1, ld, r0, c0);
    }
  }
  /* the test must be able to fail: a map with two register pairs swapped is caught */
  {
    uint16_t tile[kRows * 72];
    for (int r = 0; r < kRows; r++)
      for (int c = 0; c < 72; c++) tile[r * 72 + c] = code(r, c);
    int addr[32];
    for (int lane = 0; lane < 32; lane++)
      addr[lane] = flash_ldsm_b_rows_n_row(lane) * 72 + flash_ldsm_a_col(lane); /* A's column map: wrong here */
    uint32_t got[32][4], want[32][4];
    ldmatrix_x4(got, tile, addr, 0);
    expected(want, 1, 0, 0);
    check("a wrong map (B rows are n with A's columns) is told apart", memcmp(got, want, sizeof got) != 0, NULL);
  }
  test_summary("test_flash_fragments", NULL);
  return test_exit_code();
}
