/* flash_fragments.h — which shared-memory row each lane hands to ldmatrix in the bf16 flash attention
 * kernels (attention_flash.cuh), kept apart as plain C so the CPU test suite checks it
 * (tests/unit/test_flash_fragments.c) against the mma.m16n8k16 fragment layout, apart from the
 * kernels (which tests/emu runs on the CPU with an emulated ldmatrix).
 *
 * ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16 loads four 8x8 matrices of 16-bit elements: lane
 * 8i + r gives the address of row r of matrix i (16 contiguous bytes), and lane 4r + w receives in
 * register i the pair (row r, columns 2w, 2w+1) of matrix i; with .trans, the pair (rows 2w, 2w+1,
 * column r). A 16x16 operand block is four such matrices. Each function below gives a lane's row and
 * column inside the block (add the block's corner), for the register order the kernels use:
 *
 *   A (rows m, columns k), not transposed: a0..a3 = (m 0-7, k 0-7), (m 8-15, k 0-7), (m 0-7, k 8-15),
 *     (m 8-15, k 8-15): exactly the A fragment of mma.m16n8k16.
 *   B with the shared rows being B's columns n (K in Q K^T), not transposed: two n tiles of 8, as
 *     b0, b1 of n 0-7 then b0, b1 of n 8-15: (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7),
 *     (n 8-15, k 8-15).
 *   B with the shared rows being B's rows k (V in P V), transposed: b0, b1 of n 0-7 then of n 8-15:
 *     (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15). */
#ifndef TPDIFF_FLASH_FRAGMENTS_H
#define TPDIFF_FLASH_FRAGMENTS_H

#ifdef __CUDACC__
#define FLASH_HD __host__ __device__
#else
#define FLASH_HD
#endif

static inline FLASH_HD int flash_ldsm_a_row(int lane) { return (lane & 7) + ((lane >> 3) & 1) * 8; }
static inline FLASH_HD int flash_ldsm_a_col(int lane) { return ((lane >> 4) & 1) * 8; }

static inline FLASH_HD int flash_ldsm_b_rows_n_row(int lane) { return (lane & 7) + ((lane >> 4) & 1) * 8; }
static inline FLASH_HD int flash_ldsm_b_rows_n_col(int lane) { return ((lane >> 3) & 1) * 8; }

static inline FLASH_HD int flash_ldsm_b_rows_k_row(int lane) { return (lane & 7) + ((lane >> 3) & 1) * 8; }
static inline FLASH_HD int flash_ldsm_b_rows_k_col(int lane) { return ((lane >> 4) & 1) * 8; }

#endif
