/* align.h — data-noise alignment (MATH.md section 7): pair each clip of a microbatch with one of B
 * candidate noises by an exact linear assignment that minimises sum_i -<X_i, E_pi(i)>. */
#ifndef TPDIFF_ALIGN_H
#define TPDIFF_ALIGN_H

#include <stddef.h>

/* Exact linear assignment (Jonker-Volgenant shortest augmenting paths with potentials, O(n^3)
 * time, O(n^2) memory): perm[i] = the column assigned to row i, minimising
 * sum_i cost[i*n + perm[i]]. Ties are broken deterministically. Returns 0, or -1 when memory runs out. */
int lap_solve(const double *cost, int n, int *perm);

/* X [B, D] clips, E [B, D] candidate noises (drawn by the caller). Computes G = X Eᵀ with one GEMM,
 * solves the assignment on -G, writes eps_out[i] = E[perm[i]] (a permutation of the candidates:
 * the multiset of noise values is unchanged) and perm. B = 1 is the identity. eps_out must not
 * alias E. Returns 0, or -1 when memory runs out. */
int align_noise(const float *X, const float *E, int B, size_t D, float *eps_out, int *perm);

#endif
